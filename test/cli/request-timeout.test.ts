// The CLI gives up on a request the API does not answer: --timeout or WEFT_TIMEOUT (default 30 s), one line naming
// the API's URL and the timeout, exit 1 as for an API it cannot reach. Before, against a control plane that accepts
// connections and never answers (stopped with kill -STOP), `weft get` or `weft proxy-status` waited on and on. The
// limit is per request: proxy-status --wait makes many and waits its own time, and weft tap's stream has none.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { weft } from './control-process.ts';

/** Listens on 127.0.0.1, accepts every connection, and never reads or answers: what a stopped process's port does. */
async function silentServer(): Promise<{ api: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    api: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** An HTTP server answering with `handler`, for the commands that wait longer than one request. */
async function fakeApi(handler: http.RequestListener): Promise<{ api: string; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    api: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

test('a request the API does not answer fails after --timeout or WEFT_TIMEOUT, naming the API and the timeout', async (t) => {
  const silent = await silentServer();
  t.after(() => silent.close());
  const flag = await weft({ api: silent.api, token: 'x' }, ['get', 'services', '--timeout', '1s']);
  assert.equal(flag.code, 1, flag.stderr);
  assert.equal(
    flag.stderr.trim(),
    `error: the weft API at ${silent.api} did not answer within 1s (--timeout or WEFT_TIMEOUT); is \`weft control\` running, and not stopped or overloaded?`,
  );
  assert.equal(flag.stdout, '');
  // The environment's, in the operator's own unit.
  const env = await weft({ api: silent.api, token: 'x' }, ['proxy-status'], { WEFT_TIMEOUT: '1500ms' });
  assert.equal(env.code, 1, env.stderr);
  assert.match(env.stderr, new RegExp(`^error: the weft API at ${silent.api} did not answer within 1500ms \\(--timeout or WEFT_TIMEOUT\\)`));
  assert.equal(env.stderr.trim().split('\n').length, 1, env.stderr);
});

test('a --timeout that is no duration is a usage error naming the flag and the variable', async () => {
  for (const [args, env, got] of [[['--timeout', 'soon'], {}, 'soon'], [[], { WEFT_TIMEOUT: '30' }, '30']] as const) {
    const r = await weft({ api: 'http://127.0.0.1:9', token: 'x' }, ['get', 'services', ...args], env);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim(), `error: --timeout (or WEFT_TIMEOUT) must be a duration like 30s, 2m or 1500ms, or 0 for none (got "${got}")`);
  }
});

test('the timeout is per request: proxy-status --wait waits its own time, and weft tap waits for its first line', async (t) => {
  let syncs = 0;
  const api = await fakeApi((req, res) => {
    if (req.url === '/api/v1/proxies/p/sync') {
      syncs++;
      // Each answer well within the timeout; all of them together not.
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ proxy: 'p', service: 's', source: 'admin', inSync: false, summary: {}, resources: [] }));
      }, 300);
    } else if (/^\/api\/v1\/proxies\/p\/tap(\?|$)/.test(req.url ?? '')) {
      // As the API's tap: headers only with the first request through the proxy, here after more than the timeout.
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.end(JSON.stringify({ start_time: 't0', listener: 'inbound', method: 'GET', authority: 'a', path: '/x', response_code: 200, response_flags: '-', duration_ms: 1, upstream_host: '' }) + '\n');
      }, 2000);
    } else {
      res.writeHead(404).end();
    }
  });
  t.after(() => api.close());
  const started = Date.now();
  const status = await weft({ api: api.api, token: 'x' }, ['proxy-status', 'p', '--wait', '3', '--timeout', '1s']);
  assert.equal(status.code, 1, status.stderr);
  assert.match(status.stderr, /^proxy p is not in sync/, 'the wait ran out, not the timeout');
  // Three times the timeout, in several requests (a lower bound: a slow machine only makes it longer).
  assert.ok(Date.now() - started >= 3000 && syncs >= 2, `${syncs} requests in ${Date.now() - started} ms`);

  const tap = await weft({ api: api.api, token: 'x' }, ['tap', 'p', '--timeout', '1s']);
  assert.equal(tap.code, 0, tap.stderr);
  assert.equal(tap.stdout, 't0 inbound GET a/x -> 200 - 1 ms\n');
});
