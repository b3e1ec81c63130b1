// The host's hot-path shortcuts must not change what a filter sees: header
// maps that share the caller's pairs, strings remembered by address, and text
// written straight into guest memory.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeaderMap, type HeaderPairs } from '../../sidecar/wasm/headers.ts';
import { GuestMemory } from '../../sidecar/wasm/memory.ts';
import { encodeProperty } from '../../sidecar/wasm/properties.ts';
import { wasmApi, type WasmMemory } from '../../sidecar/wasm/wasm-api.ts';

test('a header map never changes the pairs it was built from', () => {
  const given: HeaderPairs = [
    [':path', '/a'],
    ['x-one', '1'],
    ['x-one', '2'],
  ];
  const before = JSON.stringify(given);
  const map = new HeaderMap(given);
  map.add('x-added', 'yes');
  map.replace('x-one', 'only');
  map.remove(':path');
  assert.equal(JSON.stringify(given), before);
  assert.deepEqual(map.pairs(), [
    ['x-one', 'only'],
    ['x-added', 'yes'],
  ]);
  assert.equal(map.modified, true);
  // The caller's later changes do not reach the map either.
  given.push(['x-late', '1']);
  assert.equal(map.get('x-late'), undefined);
});

test('a header map lowercases names it was given in any case', () => {
  const map = new HeaderMap([
    ['Content-Type', 'text/plain'],
    ['x-b', 'b'],
  ]);
  assert.deepEqual(map.pairs(), [
    ['content-type', 'text/plain'],
    ['x-b', 'b'],
  ]);
  assert.equal(map.get('CONTENT-TYPE'), 'text/plain');
  assert.equal(map.modified, false);
});

function guest(pages = 1): { memory: WasmMemory; guest: GuestMemory; bytes: () => Uint8Array; next: { at: number } } {
  const memory = new wasmApi.Memory({ initial: pages, maximum: 4 });
  const next = { at: 1024 };
  const g = new GuestMemory(memory, (size) => {
    const at = next.at;
    next.at += size;
    return at;
  });
  return { memory, guest: g, bytes: () => new Uint8Array(memory.buffer), next };
}

test('a string read again from the same address is read again, not remembered stale', () => {
  const { guest: g, bytes } = guest();
  const enc = new TextEncoder();
  bytes().set(enc.encode(':path'), 100);
  assert.equal(g.readString(100, 5), ':path');
  assert.equal(g.readString(100, 5), ':path');
  // The module reuses the address for other bytes of the same length.
  bytes().set(enc.encode('x-abc'), 100);
  assert.equal(g.readString(100, 5), 'x-abc');
  // A shorter read at the same address.
  assert.equal(g.readString(100, 3), 'x-a');
  // UTF-8 at the same address: decoded, never matched byte-for-char.
  bytes().set(enc.encode('é-ü'), 100);
  assert.equal(g.readString(100, 5), 'é-ü');
  assert.equal(g.readString(100, 5), 'é-ü');
  assert.equal(g.readString(100, 0), '');
  assert.equal(g.readString(65530, 10), undefined);
});

test('remembered strings survive memory.grow and still track the bytes', () => {
  const { memory, guest: g, bytes } = guest();
  bytes().set(new TextEncoder().encode('traceparent'), 200);
  assert.equal(g.readString(200, 11), 'traceparent');
  memory.grow(1);
  assert.equal(g.readString(200, 11), 'traceparent');
  bytes().set(new TextEncoder().encode('TRACEPARENT'), 200);
  assert.equal(g.readString(200, 11), 'TRACEPARENT');
  assert.equal(g.readString(70000, 4), new TextDecoder().decode(bytes().subarray(70000, 70004)));
});

test('text written into guest memory is its UTF-8, short, long or not ASCII', () => {
  const { guest: g, bytes } = guest();
  for (const text of ['', 'ok', 'x'.repeat(64), 'y'.repeat(65) + 'z'.repeat(300), 'naïve-ü-日本', 'a'.repeat(70) + 'é']) {
    assert.equal(g.copyOutString(text, 16, 20), true);
    const view = new DataView(bytes().buffer);
    const ptr = view.getUint32(16, true);
    const size = view.getUint32(20, true);
    const expected = new TextEncoder().encode(text);
    assert.equal(size, expected.length, JSON.stringify(text));
    assert.deepEqual(bytes().slice(ptr, ptr + size), expected);
  }
});

test('text that does not fit where the module allocated it is refused', () => {
  const { guest: g, next } = guest();
  next.at = 65536 - 2;
  assert.equal(g.copyOutString('too long', 16, 20), false);
});

test('integer properties are int64 little-endian, safe or not', () => {
  for (const v of [0, 1, -1, 200, 43210, 2 ** 32, 2 ** 32 + 5, -(2 ** 32), -(2 ** 40) - 7, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 60]) {
    const expected = new Uint8Array(8);
    new DataView(expected.buffer).setBigInt64(0, BigInt(v), true);
    assert.deepEqual(encodeProperty(v), expected, String(v));
  }
});
