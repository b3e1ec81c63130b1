// Join token lifetimes with the real `weft control --identity` process and
// the real CLI: `weft token create --join --ttl` prints a token that admits
// its proxy until expiresAt; at expiry the stream it opened ends saying the
// token expired (in the sidecar's log too), and no new stream is admitted.
// An acknowledged token, with its expiry, survives kill -9 of the control
// plane. Without --ttl a token never expires (as before).

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { TypeUrl } from '../../control/xds/discovery.ts';
import { runSidecar, type RunningSidecar } from '../../sidecar/main.ts';
import { startApp, type TestApp } from '../sidecar/harness.ts';
import { SotwClient, testNode } from '../xds/ads-client.ts';
import { api, eventually, startControl, weft, type ControlProcess } from './control-process.ts';

describe('join token lifetimes, against a real weft control --identity', () => {
  let dir: string;
  let control: ControlProcess;
  const closers: (() => unknown)[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-join-ttl-'));
    control = await startControl(dir, 60_000, ['--identity']);
    await api(control, 'POST', '/api/v1/services', { name: 'web', ports: [{ port: 8080, protocol: 'http' }] });
  });
  after(async () => {
    for (const close of closers.reverse()) await close();
    await control?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a bad --ttl naming the flag, and a bad ttl in the API naming the field, issuing nothing', async () => {
    const cli = await weft(control, ['token', 'create', '--join', '--service', 'web', '--ttl', 'soon']);
    assert.equal(cli.code, 2);
    assert.match(cli.stderr, /--ttl: "soon" is not a duration/);
    const res = await fetch(`${control.api}/api/v1/tokens/join`, {
      method: 'POST',
      headers: { authorization: `Bearer ${control.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ service: 'web', ttl: '10ms' }),
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { code: string; details: { path: string; message: string }[] } };
    assert.equal(body.error.code, 'VALIDATION_FAILED');
    assert.deepEqual(body.error.details, [{ path: 'ttl', message: 'must be at least 1000 ms' }]);
    const forever = await weft(control, ['token', 'create', '--join', '--service', 'web', '--ttl', '99999999d']);
    assert.equal(forever.code, 1);
    assert.match(forever.stderr, /ttl: must be at most 3650d \(leave it out for a token that never expires\)/);
    const role = await weft(control, ['token', 'create', '--join', '--service', 'web', '--role', 'admin']);
    assert.equal(role.code, 2);
    assert.match(role.stderr, /--role is for operator tokens/);
    assert.deepEqual((await api(control, 'GET', '/api/v1/tokens/join')).items, []);
    assert.equal((await weft(control, ['get', 'join-tokens'])).stdout, 'no join tokens found\n');
  });

  it('an acknowledged token with its expiry survives kill -9; one without --ttl never expires', async () => {
    const created = await weft(control, ['token', 'create', '--join', '--service', 'web', '--ttl', '24h']);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^wjt_\S+\n$/);
    assert.match(created.stderr, /created join token [0-9a-f]{16} for web\.default, expires \d{4}-/);
    const forever = await weft(control, ['token', 'create', '--join', '--service', 'web']);
    assert.match(forever.stderr, /valid until revoked/);
    const before = (await api(control, 'GET', '/api/v1/tokens/join')).items as { id: string; expiresAt: string | null; expired: boolean }[];
    const dated = before.find((t) => t.expiresAt !== null)!;
    assert.ok(Math.abs(Date.parse(dated.expiresAt!) - (Date.now() + 86_400_000)) < 60_000, `expiresAt is 24h ahead: ${dated.expiresAt}`);
    assert.equal(before.filter((t) => t.expiresAt === null).length, 1);

    await control.crash();
    control = await startControl(dir, 60_000, ['--identity']);
    assert.deepEqual((await api(control, 'GET', '/api/v1/tokens/join')).items, before, 'both tokens and their expiries survive the crash');
    const listed = await weft(control, ['get', 'join-tokens']);
    assert.match(listed.stdout, new RegExp(`${dated.id}\\s+web\\s+default\\s+\\S+\\s+${dated.expiresAt!.replace(/\./g, '\\.')}`));
    assert.match(listed.stdout, /\snever\n/);

    const stream = new SotwClient(control.xdsPort, testNode('web-kept', 'web', { WEFT_TOKEN: created.stdout.trim(), WEFT_KIND: 'sidecar' }));
    closers.push(() => stream.close());
    stream.request(TypeUrl.secret, ['default']);
    assert.equal((await stream.next()).typeUrl, TypeUrl.secret, 'the restored token admits its proxy');
  });

  it('at expiry the open stream ends saying the token expired (the sidecar logs it), and no new stream is admitted', { timeout: 60_000 }, async () => {
    const created = await weft(control, ['token', 'create', '--join', '--service', 'web', '--ttl', '4s']);
    assert.equal(created.code, 0, created.stderr);
    const token = created.stdout.trim();
    const id = /created join token (\w+)/.exec(created.stderr)![1]!;

    const open = new SotwClient(control.xdsPort, testNode('web-1', 'web', { WEFT_TOKEN: token, WEFT_KIND: 'sidecar' }));
    closers.push(() => open.close());
    open.request(TypeUrl.secret, ['default']);
    assert.equal((await open.next()).typeUrl, TypeUrl.secret, 'the token admits its proxy before it expires');

    const app: TestApp = await startApp('web');
    closers.push(() => app.close());
    const logs: string[] = [];
    const sidecar: RunningSidecar = await runSidecar({ service: 'web', xds: `127.0.0.1:${control.xdsPort}`, appPort: app.port, token, accessLog: false, log: (l) => logs.push(l) });
    closers.push(() => sidecar.close());
    await sidecar.ready;

    await assert.rejects(open.next(10_000), (err: grpc.ServiceError) => err.code === grpc.status.UNAUTHENTICATED && new RegExp(`join token ${id} expired at `).test(err.details));
    await eventually(async () => (/xds: join token \w+ expired: ended 2 stream\(s\)/.test(control.output()) ? true : undefined), 'the control plane logs the ended streams');
    const closed = await eventually(async () => logs.find((l) => /"msg":"xds stream closed"/.test(l)), "the sidecar's log line");
    const entry = JSON.parse(closed) as { level: string; code: number; error: string };
    assert.equal(entry.level, 'warn');
    assert.equal(entry.code, grpc.status.UNAUTHENTICATED);
    assert.match(entry.error, new RegExp(`join token ${id} expired at `));

    const again = new SotwClient(control.xdsPort, testNode('web-2', 'web', { WEFT_TOKEN: token, WEFT_KIND: 'sidecar' }));
    closers.push(() => again.close());
    again.request(TypeUrl.secret, ['default']);
    await assert.rejects(again.next(), (err: grpc.ServiceError) => err.code === grpc.status.UNAUTHENTICATED && /expired at .*: issue a new one/.test(err.details));
    assert.match(control.output(), /refused proxy "web-2" claiming web\.default: join token \w+ expired at/);

    const listed = ((await api(control, 'GET', '/api/v1/tokens/join')).items as { id: string; expired: boolean }[]).find((t) => t.id === id)!;
    assert.equal(listed.expired, true, 'an expired token is listed as expired until revoked');
  });
});
