// PGV rule kinds that exist in validate.proto but that no loaded Envoy message uses
// (or uses only in corners): checked through the compiled rules directly.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FieldError } from '../../control/envoy/index.ts';
import { compileMapRules, compileRepeatedRules, compileValueRules } from '../../control/envoy/pgv.ts';
import type { CheckedKind } from '../../control/envoy/pgv.ts';
import type { FieldRules } from '../../control/envoy/pgv-types.ts';

function errorsOf(rules: FieldRules, kind: CheckedKind, value: unknown): string[] {
  const check = compileValueRules(rules, kind, new Set([0, 1, 2]));
  assert.ok(check, 'rules compiled to a check');
  const errors: FieldError[] = [];
  check(value, 'f', errors);
  return errors.map((e) => e.message);
}

const ok = (rules: FieldRules, kind: CheckedKind, value: unknown): void => assert.deepEqual(errorsOf(rules, kind, value), []);
const bad = (rules: FieldRules, kind: CheckedKind, value: unknown, message: RegExp): void => {
  const errors = errorsOf(rules, kind, value);
  assert.equal(errors.length, 1, JSON.stringify(errors));
  assert.match(errors[0]!, message);
};

describe('compiled PGV rules', () => {
  it('string prefix, suffix, contains, not_contains, const, len', () => {
    bad({ string: { prefix: 'spiffe://' } }, 'string', 'http://x', /prefix "spiffe:\/\/"/);
    ok({ string: { prefix: 'spiffe://' } }, 'string', 'spiffe://weft/ns/a');
    bad({ string: { suffix: '.wasm' } }, 'string', 'a.wat', /suffix/);
    bad({ string: { contains: '/' } }, 'string', 'ab', /contain substring/);
    bad({ string: { not_contains: '..' } }, 'string', 'a/../b', /contains substring/);
    bad({ string: { const: 'v3' } }, 'string', 'v2', /equal "v3"/);
    bad({ string: { len: 2 } }, 'string', 'héé', /length must be 2 characters/);
    ok({ string: { len: 2 } }, 'string', 'hé');
    bad({ string: { max_len: 2 } }, 'string', 'abc', /at most 2 characters/);
    bad({ string: { min_bytes: 3 } }, 'string', 'é', /at least 3 bytes/);
  });

  it('string well-known formats', () => {
    bad({ string: { hostname: true } }, 'string', 'bad_host', /hostname/);
    ok({ string: { hostname: true } }, 'string', 'orders.default.svc');
    bad({ string: { ip: true } }, 'string', '300.1.1.1', /IP address/);
    ok({ string: { ipv6: true } }, 'string', '::1');
    bad({ string: { ipv4: true } }, 'string', '::1', /IPv4/);
    ok({ string: { address: true } }, 'string', '127.0.0.1');
    bad({ string: { address: true } }, 'string', 'a b', /hostname or IP/);
    bad({ string: { uri: true } }, 'string', '/relative', /absolute URI/);
    ok({ string: { uri: true } }, 'string', 'http://weft-control:8080/wasm/x.wasm');
    bad({ string: { uuid: true } }, 'string', 'not-a-uuid', /UUID/);
    bad({ string: { email: true } }, 'string', 'nobody', /email/);
    // strict header names refuse what the loose variant allows
    bad({ string: { well_known_regex: 'HTTP_HEADER_NAME' } }, 'string', 'x y', /header name/);
    ok({ string: { well_known_regex: 'HTTP_HEADER_NAME', strict: false } }, 'string', 'x y');
  });

  it('numeric ranges, inclusive and exclusive, for 32-bit numbers and bigints', () => {
    bad({ int32: { gte: -1, lte: 1 } }, 'number', 2, /greater than or equal to -1 and less than or equal to 1/);
    ok({ int32: { gt: 0, lt: 10 } }, 'number', 5);
    // lt below gt means "outside the range" in PGV
    bad({ int32: { gt: 10, lt: 0 } }, 'number', 5, /greater than 10 or less than 0/);
    ok({ int32: { gt: 10, lt: 0 } }, 'number', 11);
    bad({ int64: { gt: '9007199254740993' } }, 'bigint', 9007199254740993n, /greater than 9007199254740993/);
    ok({ int64: { gt: '9007199254740993' } }, 'bigint', 9007199254740994n);
    bad({ uint32: { in: [80, 443] } }, 'number', 8080, /in list \[80, 443\]/);
    bad({ uint32: { not_in: [0] } }, 'number', 0, /not be in list/);
    bad({ double: { const: 1.5 } }, 'number', 2, /equal 1.5/);
  });

  it('bool const, enum const/in, duration and timestamp ranges, any in/not_in', () => {
    bad({ bool: { const: true } }, 'bool', false, /equal true/);
    bad({ enum: { const: 2 } }, 'enum', 1, /equal 2/);
    bad({ enum: { defined_only: true } }, 'enum', 7, /defined enum/);
    bad({ duration: { lte: { seconds: 1 } } }, 'duration', 1_500_000_000n, /less than or equal to 1s/);
    bad({ duration: { in: [{ seconds: 1 }, { nanos: 500_000_000 }] } }, 'duration', 2_000_000_000n, /in list \[1s, 0.500s\]/);
    bad({ timestamp: { gt_now: true } }, 'timestamp', 0n, /greater than now/);
    bad({ any: { in: ['type.googleapis.com/a.B'] } }, 'any', 'type.googleapis.com/a.C', /type URL must be in list/);
    bad({ any: { not_in: ['type.googleapis.com/a.B'] } }, 'any', 'type.googleapis.com/a.B', /must not be in list/);
  });

  it('bytes length and ip', () => {
    bad({ bytes: { len: 4 } }, 'bytes', new Uint8Array(3), /length must be 4 bytes/);
    bad({ bytes: { ipv4: true } }, 'bytes', new Uint8Array(16), /IPv4/);
  });

  it('repeated unique and map pairs', () => {
    const unique = compileRepeatedRules({ unique: true, max_items: 3 })!;
    const errors: FieldError[] = [];
    unique(['a', 'b', 'a'], 'domains', errors);
    unique(['a', 'b', 'c', 'd'], 'domains', errors);
    assert.deepEqual(errors.map((e) => e.message), ['repeated value must contain unique items', 'value must contain no more than 3 item(s)']);
    const pairs = compileMapRules({ min_pairs: 1, max_pairs: 2 })!;
    const mapErrors: FieldError[] = [];
    pairs(0, 'm', mapErrors);
    pairs(3, 'm', mapErrors);
    pairs(2, 'm', mapErrors);
    assert.deepEqual(mapErrors.map((e) => e.message), ['value must contain at least 1 pair(s)', 'value must contain no more than 2 pair(s)']);
  });
});
