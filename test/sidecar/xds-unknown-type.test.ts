// The weft sidecar's xDS client against an ADS server that is not weft's: a
// response of a type the sidecar does not take (here RTDS's Runtime) gets a
// NACK for that nonce with INVALID_ARGUMENT and a message naming the type,
// on Delta and on SotW, and the sidecar stays up and keeps asking for the
// types it does take.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fakeAds } from './fake-ads.ts';
import { eventually, freePort, spawnWeft } from './harness.ts';

const RUNTIME = 'type.googleapis.com/envoy.service.runtime.v3.Runtime';

/** An ADS server that answers the sidecar's first request with one Runtime response, and records every request. */
const runtimeAds = (sotw: boolean) =>
  fakeAds(sotw, () => (sotw ? { version_info: '1', type_url: RUNTIME, nonce: 'n-runtime', resources: [] } : { system_version_info: '1', type_url: RUNTIME, nonce: 'n-runtime', resources: [] }));

for (const sotw of [false, true]) {
  test(`${sotw ? 'SotW' : 'Delta'}: a response of a type the sidecar does not take is NACKed for its nonce, naming the type`, { timeout: 60_000 }, async (t) => {
    const ads = await runtimeAds(sotw);
    const adminPort = await freePort();
    const sidecar = spawnWeft(['sidecar', '--service', 'odd', '--xds', `127.0.0.1:${ads.port}`, '--app-port', '9', '--admin-port', String(adminPort), ...(sotw ? ['--sotw'] : [])]);
    t.after(async () => {
      sidecar.kill();
      await sidecar.exited;
      ads.close();
    });
    await eventually(() => ads.seen.some((m) => m.response_nonce === 'n-runtime'), 30_000, `the sidecar's answer to the Runtime response\n${sidecar.output()}`);
    const answer = ads.seen.find((m) => m.response_nonce === 'n-runtime')!;
    assert.equal(answer.type_url, RUNTIME);
    assert.equal(answer.error_detail?.code, 3, 'INVALID_ARGUMENT');
    assert.equal(answer.error_detail?.message, `type ${RUNTIME} is not supported by the weft sidecar`);
    // It asked for its own types (clusters and listeners) and is still up, waiting for them.
    const asked = new Set(ads.seen.map((m) => m.type_url));
    assert.ok(asked.has('type.googleapis.com/envoy.config.cluster.v3.Cluster') && asked.has('type.googleapis.com/envoy.config.listener.v3.Listener'), [...asked].join(', '));
    const ready = await fetch(`http://127.0.0.1:${adminPort}/ready`);
    assert.equal(ready.status, 503);
    assert.equal(await ready.text(), 'PRE_INITIALIZING\n');
  });
}
