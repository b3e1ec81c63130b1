import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as turn } from 'node:timers/promises';
import { bufferedLines } from '../../sidecar/access-log.ts';

test('access log lines of one turn leave in one write, in order, by the end of the turn', async () => {
  const writes: string[] = [];
  const w = bufferedLines((c) => writes.push(c));
  w.line('{"n":1}');
  w.line('{"n":2}');
  w.line('{"n":3}');
  assert.deepEqual(writes, []);
  await turn();
  assert.deepEqual(writes, ['{"n":1}\n{"n":2}\n{"n":3}\n']);
  w.line('{"n":4}');
  await turn();
  assert.deepEqual(writes, ['{"n":1}\n{"n":2}\n{"n":3}\n', '{"n":4}\n']);
  w.close();
});

test('a full buffer is written at once, and close writes what is queued and every later line', () => {
  const writes: string[] = [];
  const w = bufferedLines((c) => writes.push(c), 16);
  w.line('0123456789');
  assert.deepEqual(writes, []);
  w.line('abcdef');
  assert.deepEqual(writes, ['0123456789\nabcdef\n']);
  w.line('queued');
  w.close();
  assert.deepEqual(writes, ['0123456789\nabcdef\n', 'queued\n']);
  w.line('late');
  assert.deepEqual(writes, ['0123456789\nabcdef\n', 'queued\n', 'late\n']);
});
