// freePort picks the ports `weft up` and the tests listen on later. A port
// from the kernel's ephemeral range can be taken by an outgoing connection
// in the meantime (a sidecar then NACKed its listener with EADDRINUSE), so
// the ports come from below that range, and one process never gets the same
// port twice in a row.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import { freePort } from '../../sidecar/main.ts';

const RANGE = '/proc/sys/net/ipv4/ip_local_port_range';

test('freePort: 200 ports, all different, all listenable, none in the ephemeral range outgoing connections use', async () => {
  const ports: number[] = [];
  for (let i = 0; i < 200; i++) ports.push(await freePort());
  assert.equal(new Set(ports).size, ports.length, 'no port handed out twice');
  if (existsSync(RANGE)) {
    const [lo, hi] = readFileSync(RANGE, 'utf8').trim().split(/\s+/).map(Number);
    const inside = ports.filter((p) => p >= lo! && p <= hi!);
    assert.deepEqual(inside, [], `ports inside the ephemeral range ${lo}-${hi}`);
  }
  for (const port of ports.slice(0, 20)) {
    const s = net.createServer();
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => resolve());
    });
    await new Promise<void>((r) => s.close(() => r()));
  }
});
