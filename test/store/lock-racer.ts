// Child process for lock-takeover.test.ts: waits until the given instant
// (so every racer starts together), then tries to take each lock file in
// turn and prints, as JSON, the ones it got. It holds them until its stdin
// closes (the test closes it once every racer has reported: a racer that
// exited early would leave its locks stale, free for a late one to take).
import { acquireLock, LockHeldError } from '../../control/store/lock.ts';

const [dir, count, startAt] = process.argv.slice(2).map((a, i) => (i === 0 ? a : Number(a))) as [string, number, number];
while (Date.now() < startAt) {
  // spin: a timer would wake each racer at a different moment
}
const got: number[] = [];
for (let i = 0; i < count; i++) {
  try {
    acquireLock(`${dir}/LOCK-${i}`);
    got.push(i);
  } catch (e) {
    if (!(e instanceof LockHeldError)) throw e;
  }
}
process.stdout.write(JSON.stringify(got) + '\n');
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
