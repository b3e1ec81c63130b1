// Child process for root-crash.test.ts: says "ready", waits for a line on
// stdin (so the test can lower its file size limit first), then creates the
// data dir's CA root.
import { createInterface } from 'node:readline';
import { loadOrCreateCa } from '../../control/ca/root.ts';

const dir = process.argv[2]!;
process.stdout.write('ready\n');
const lines = createInterface({ input: process.stdin });
for await (const _ of lines) break;
await loadOrCreateCa(dir, 'weft.local');
process.stdout.write('done\n');
process.exit(0);
