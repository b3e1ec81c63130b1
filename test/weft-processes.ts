// Every `weft` process a test file started and that still runs. A test that
// fails before it can stop its process must not leave it behind (its pipes
// would also keep the test file from ending), and node --test ends a file
// that runs past its timeout with SIGTERM, which skips `after` hooks. So when
// this process exits, or is ended with SIGTERM, each gets SIGINT, which
// bin/weft.mjs passes on to the command (which stops cleanly). One module for
// every helper that starts one: were two to handle SIGTERM, the first's exit
// would leave the other's processes running.
import type { ChildProcess } from 'node:child_process';

const running = new Set<ChildProcess>();
const stopRunning = () => {
  for (const child of running) child.kill('SIGINT');
};
process.once('exit', stopRunning);
process.once('SIGTERM', () => {
  stopRunning();
  process.exit(143);
});

/** Stops `child` (a `weft` launcher) with this test process if it still runs then. */
export function stopWithTestProcess(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
}
