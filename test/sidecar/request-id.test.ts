// x-request-id values the sidecar generates: version 4 UUIDs, all distinct.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { requestId } from '../../sidecar/request-id.ts';

test('generated request ids are RFC 9562 version 4 UUIDs, distinct across pool refills', () => {
  const seen = new Set<string>();
  const nibbles = new Set<string>();
  for (let i = 0; i < 10_000; i++) {
    const id = requestId();
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    seen.add(id);
    nibbles.add(id[0]!);
  }
  assert.equal(seen.size, 10_000);
  assert.equal(nibbles.size, 16, 'every hex digit shows up in the first position');
});
