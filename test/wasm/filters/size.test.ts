// What the built-in modules carry besides their own code. Every filter
// imports the whole SDK, and a string or table asc emits stays in the
// module's data even when the optimiser drops the code that used it (the
// memory is exported), so SDK code a filter never calls can still cost it
// bytes against the 32 KB budget. These pin the two cases that did.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { filterBytes } from './kit.ts';

const contains = (bytes: Uint8Array, needle: Buffer): boolean => Buffer.from(bytes).includes(needle);

describe('built-in filter modules', () => {
  it('format integers without the standard library number formatter (its radix error text and digit table stay in the data)', async () => {
    const radixMessage = Buffer.from('toString() radix argument', 'utf16le');
    const digits = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz', 'utf16le');
    for (const name of ['auth', 'route', 'telemetry']) {
      const bytes = await filterBytes(name);
      assert.ok(!contains(bytes, radixMessage), `${name} carries the radix error message`);
      assert.ok(!contains(bytes, digits), `${name} carries the base-36 digit table`);
    }
  });

  it('carry the SHA-256 tables only in the filter that hashes (auth: API keys, HS256, RS256)', async () => {
    // The first two round constants, 0x428a2f98 0x71374491, as the module stores them (little-endian).
    const roundConstants = Buffer.from('982f8a4291443771', 'hex');
    assert.ok(contains(await filterBytes('auth'), roundConstants), 'auth hashes');
    for (const name of ['route', 'telemetry']) assert.ok(!contains(await filterBytes(name), roundConstants), `${name} never hashes`);
  });
});
