// Child process for grpc-xds.test.ts: a proxyless gRPC client built on
// @grpc/grpc-js-xds (a client nobody here wrote). The bootstrap comes from
// GRPC_XDS_BOOTSTRAP_CONFIG, which the xds plugin reads at first use, so each
// client lives in its own process. Protocol on stdin/stdout, one JSON line each:
//   {"calls": N}  ->  {"answers": {"<backend>": count}, "errors": ["..."]}
import * as grpc from '@grpc/grpc-js';
import * as xds from '@grpc/grpc-js-xds';
import { createInterface } from 'node:readline';

xds.register();
const target = process.argv[2] ?? 'xds:///echo';
const client = new grpc.Client(target, grpc.credentials.createInsecure());
const identity = (b: Buffer) => b;

function call(): Promise<string> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest('/weft.test.Echo/Echo', identity, identity, Buffer.from('ping'), { deadline: Date.now() + 5000 }, (err, reply) => {
      if (err) reject(err);
      else resolve(reply!.toString());
    });
  });
}

const lines = createInterface({ input: process.stdin });
lines.on('line', async (line) => {
  const { calls } = JSON.parse(line) as { calls: number };
  const answers: Record<string, number> = {};
  const errors: string[] = [];
  for (let i = 0; i < calls; i++) {
    try {
      const who = await call();
      answers[who] = (answers[who] ?? 0) + 1;
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  process.stdout.write(`${JSON.stringify({ answers, errors })}\n`);
});
lines.on('close', () => {
  client.close();
  process.exit(0);
});
