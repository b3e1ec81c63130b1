// The worker thread of configure-sandbox.ts: runs a module's proxy_on_configure
// (configure-check.ts) off the control plane's main thread, so a module that
// never returns costs the worker, which the sandbox terminates, and not the
// API and xDS server. Plain JavaScript: a worker does not inherit the parent's
// tsx loader, so the TypeScript is loaded through tsx's API.
import { parentPort } from 'node:worker_threads';

const { tsImport } = await import('tsx/esm/api');
const { configureErrors } = await tsImport('./configure-check.ts', import.meta.url);

parentPort.on('message', async ({ id, module, plugin }) => {
  try {
    parentPort.postMessage({ id, errors: await configureErrors(module, plugin) });
  } catch (err) {
    parentPort.postMessage({ id, failure: err instanceof Error ? err.message : String(err) });
  }
});
parentPort.postMessage({ ready: true });
