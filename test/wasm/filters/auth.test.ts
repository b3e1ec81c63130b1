import assert from 'node:assert/strict';
import { constants, createECDH, createHash, createHmac, createPrivateKey, generateKeyPairSync, privateEncrypt, randomBytes, sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { readFileSync } from 'node:fs';
import { validateConfig } from '../../../control/filters/config-schema.ts';
import { WasmPlugin } from '../../../sidecar/wasm/index.ts';
import { exchange, filterBytes, header, headerValues, loadFilter } from './kit.ts';

const NOW = 1_800_000_000; // seconds; the host clock is pinned to it
const ISSUER = 'https://id.weft.test';
const FRONTEND = 'spiffe://weft.local/ns/default/sa/frontend';
const hmacSecret = randomBytes(32);
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const otherEc = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

function token(alg: string, kid: string | undefined, claims: Record<string, unknown>, key: Buffer | KeyObject | null): string {
  const head = b64url(JSON.stringify(kid === undefined ? { alg, typ: 'JWT' } : { alg, typ: 'JWT', kid }));
  const body = b64url(JSON.stringify(claims));
  const input = `${head}.${body}`;
  let sig = '';
  if (alg === 'HS256') sig = b64url(createHmac('sha256', key as Buffer).update(input).digest());
  if (alg === 'RS256') sig = b64url(sign('sha256', Buffer.from(input), key as KeyObject));
  // JWS ES256 signatures are R || S, 32 bytes each (RFC 7518 §3.4), not DER.
  if (alg === 'ES256') sig = b64url(sign('sha256', Buffer.from(input), { key: key as KeyObject, dsaEncoding: 'ieee-p1363' }));
  return `${input}.${sig}`;
}

const valid = { iss: ISSUER, aud: 'orders', sub: 'alice', tenant: 'acme', exp: NOW + 300, nbf: NOW - 10, admin: true, n: 7 };
const rsaJwk = { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rsa-1', alg: 'RS256' };
const ecJwk = { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec-1', alg: 'ES256' };
const config = {
  realm: 'orders',
  jwt: {
    issuer: ISSUER,
    audiences: ['orders', 'orders-admin'],
    clockSkewSeconds: 30,
    jwks: { keys: [{ kty: 'oct', kid: 'hs-1', k: b64url(hmacSecret) }, rsaJwk, ecJwk] },
    forwardClaims: { sub: 'x-weft-user', tenant: 'x-weft-tenant', admin: 'x-weft-admin', n: 'x-weft-n' },
  },
  apiKeys: { header: 'x-api-key', keys: [{ name: 'ci', sha256: createHash('sha256').update('ci-secret-123').digest('hex') }] },
  spiffe: { allow: [FRONTEND] },
  rules: [
    { prefix: '/public', action: 'allow' },
    { prefix: '/admin', methods: ['DELETE'], action: 'deny' },
  ],
};

describe('auth filter', () => {
  let plugin: WasmPlugin;
  before(async () => {
    plugin = await loadFilter('auth', config, { now: () => BigInt(NOW) * 1_000_000_000n });
  });

  async function expectRejected(headers: Record<string, string>, status: number, reason: RegExp, options = {}) {
    const { stream, request } = await exchange(plugin, headers, options);
    assert.equal(request.action, 'local_reply', 'request never forwarded');
    const reply = stream.localReply!;
    assert.equal(reply.status, status);
    assert.equal(header(reply.headers, 'content-type'), 'application/json');
    const body = JSON.parse(Buffer.from(reply.body).toString()) as { error: string; message: string };
    assert.match(body.message, reason);
    return { reply, body };
  }

  async function expectAllowed(headers: Record<string, string> | [string, string][], options = {}) {
    const { stream, request } = await exchange(plugin, headers, options);
    assert.equal(request.action, 'continue', stream.localReply ? Buffer.from(stream.localReply.body).toString() : '');
    return stream;
  }

  it('accepts HS256 and RS256 tokens signed with node:crypto keys and forwards the chosen claims', async () => {
    const hs = await expectAllowed({ authorization: `Bearer ${token('HS256', 'hs-1', valid, hmacSecret)}` });
    assert.equal(header(hs.requestHeaders, 'x-weft-user'), 'alice');
    assert.equal(header(hs.requestHeaders, 'x-weft-tenant'), 'acme');
    assert.equal(header(hs.requestHeaders, 'x-weft-admin'), 'true');
    assert.equal(header(hs.requestHeaders, 'x-weft-n'), '7');
    const rs = await expectAllowed({ authorization: `Bearer ${token('RS256', 'rsa-1', { ...valid, sub: 'bob', aud: ['x', 'orders-admin'] }, rsa.privateKey)}` });
    assert.equal(header(rs.requestHeaders, 'x-weft-user'), 'bob');
    // Without a kid every key of the right type is tried.
    await expectAllowed({ authorization: `Bearer ${token('RS256', undefined, valid, rsa.privateKey)}` });
  });

  it('takes the verified token off the request unless jwt.forwardToken, and never forwards a second Authorization header', async () => {
    const good = `Bearer ${token('HS256', 'hs-1', valid, hmacSecret)}`;
    const forged = `Bearer ${token('HS256', 'hs-1', { ...valid, sub: 'root' }, randomBytes(32))}`;
    const stripped = await expectAllowed([['authorization', good], ['authorization', forged]]);
    assert.deepEqual(headerValues(stripped.requestHeaders, 'authorization'), []);
    const p = await loadFilter('auth', { ...config, jwt: { ...config.jwt, forwardToken: true } }, { now: () => BigInt(NOW) * 1_000_000_000n });
    const kept = await exchange(p, [['authorization', good], ['authorization', forged]]);
    assert.equal(kept.request.action, 'continue');
    assert.deepEqual(headerValues(kept.stream.requestHeaders, 'authorization'), [good]);
    await p.close();
  });

  it('removes spoofed claim headers sent by the client', async () => {
    const stream = await expectAllowed({ 'x-weft-user': 'mallory', 'x-weft-tenant': 'evil' }, { path: '/public/info' });
    assert.equal(header(stream.requestHeaders, 'x-weft-user'), undefined);
    assert.equal(header(stream.requestHeaders, 'x-weft-tenant'), undefined);
  });

  for (const [name, claims, reason] of [
    ['expired', { ...valid, exp: NOW - 31 }, /token expired/],
    ['not yet valid', { ...valid, nbf: NOW + 31 }, /token not yet valid/],
    ['wrong issuer', { ...valid, iss: 'https://evil.test' }, /issuer not accepted/],
    ['wrong audience', { ...valid, aud: 'payments' }, /audience not accepted/],
    ['without exp', { ...valid, exp: undefined }, /token has no exp/],
  ] as const) {
    it(`refuses a ${name} token with 401 and a Bearer challenge`, async () => {
      const { reply } = await expectRejected({ authorization: `Bearer ${token('HS256', 'hs-1', claims, hmacSecret)}` }, 401, reason);
      assert.match(header(reply.headers, 'www-authenticate') ?? '', /^Bearer realm="orders", error="invalid_token", error_description="/);
    });
  }

  it('tolerates exp and nbf within the clock skew', async () => {
    await expectAllowed({ authorization: `Bearer ${token('HS256', 'hs-1', { ...valid, exp: NOW - 29, nbf: NOW + 29 }, hmacSecret)}` });
  });

  it('refuses bad signatures, alg none, unknown key ids and algorithm confusion', async () => {
    const good = token('HS256', 'hs-1', valid, hmacSecret);
    const tampered = good.replace(/\.([^.]+)\./, `.${b64url(JSON.stringify({ ...valid, sub: 'root' }))}.`);
    await expectRejected({ authorization: `Bearer ${tampered}` }, 401, /bad signature/);
    await expectRejected({ authorization: `Bearer ${token('HS256', 'hs-1', valid, randomBytes(32))}` }, 401, /bad signature/);
    await expectRejected({ authorization: `Bearer ${token('RS256', 'rsa-1', valid, otherRsa.privateKey)}` }, 401, /bad signature/);
    await expectRejected({ authorization: `Bearer ${token('none', undefined, valid, null)}` }, 401, /unsupported alg "none"/);
    await expectRejected({ authorization: `Bearer ${token('HS256', 'nope', valid, hmacSecret)}` }, 401, /unknown key id "nope"/);
    // An HS256 token whose secret is the RSA public key must not verify against the RSA key.
    const pem = rsa.publicKey.export({ format: 'pem', type: 'spki' }) as string;
    await expectRejected({ authorization: `Bearer ${token('HS256', 'rsa-1', valid, Buffer.from(pem))}` }, 401, /unknown key id|bad signature/);
    await expectRejected({ authorization: 'Bearer not.a.jwt' }, 401, /malformed/);
    assert.ok((plugin.metrics.find('weft_auth_decisions_total_decision=.=deny;.;reason=.=invalid_token;.;')?.value ?? 0n) >= 7n);
  });

  it('keeps the challenge a sendable header when the token carries a DEL, non-ASCII or huge alg or kid', async () => {
    for (const [alg, kid] of [['HS256', 'k\u007f'], ['HS256', '\u540d'], ['HS256', 'x'.repeat(20_000)], ['\u00ff\u007f', undefined], ['A'.repeat(20_000), undefined]] as const) {
      const { reply } = await expectRejected({ authorization: `Bearer ${token(alg, kid, valid, hmacSecret)}` }, 401, /unknown key id|unsupported alg/);
      const challenge = header(reply.headers, 'www-authenticate') ?? '';
      assert.match(challenge, /^Bearer realm="orders", error="invalid_token", error_description="(unknown key id|unsupported alg) \\"[\x20-\x7e]*\\""$/);
      assert.ok(challenge.length < 200, `challenge of ${challenge.length} characters`);
    }
  });

  it('accepts ES256 tokens signed with node:crypto P-256 keys (R || S signatures), with and without a kid', async (t) => {
    const started = process.hrtime.bigint();
    const count = 20;
    // Fresh claims each time: the verified-token cache never answers.
    for (let i = 0; i < count; i++) {
      const es = await expectAllowed({ authorization: `Bearer ${token('ES256', i % 2 ? 'ec-1' : undefined, { ...valid, sub: `carol-${i}` }, ec.privateKey)}` });
      assert.equal(header(es.requestHeaders, 'x-weft-user'), `carol-${i}`);
    }
    // No assertion on time (shared machine): printed for the record.
    t.diagnostic(`ES256: ${(Number(process.hrtime.bigint() - started) / 1e6 / count).toFixed(2)} ms per request (verification, wasm)`);
  });

  it('verifies the ES256 example of RFC 7515 Appendix A.3 (its JWK and JWS), and not with one bit changed', async () => {
    // RFC 7515 A.3.1 (public part of the key) and A.3.1's compact serialization.
    const a3Jwk = { kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' };
    const a3 = 'eyJhbGciOiJFUzI1NiJ9' +
      '.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ' +
      '.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q';
    // The token expires at 1300819380 (2011): the clock is pinned before it.
    const p = await loadFilter('auth', { jwt: { issuer: 'joe', jwks: { keys: [a3Jwk] }, forwardClaims: { iss: 'x-iss' } } }, { now: () => 1_300_819_000n * 1_000_000_000n });
    const ok = await exchange(p, { authorization: `Bearer ${a3}` });
    assert.equal(ok.request.action, 'continue', ok.stream.localReply ? Buffer.from(ok.stream.localReply.body).toString() : '');
    assert.equal(header(ok.stream.requestHeaders, 'x-iss'), 'joe');
    const sig = Buffer.from(a3.split('.')[2]!, 'base64url');
    for (const i of [0, 31, 32, 63]) {
      const flipped = Buffer.from(sig);
      flipped[i]! ^= 1;
      const bad = await exchange(p, { authorization: `Bearer ${a3.slice(0, a3.lastIndexOf('.'))}.${b64url(flipped)}` });
      assert.match(Buffer.from(bad.stream.localReply!.body).toString(), /bad signature/, `bit flipped in byte ${i}`);
    }
    await p.close();
  });

  it('refuses ES256 forgeries: tampered payload, another key, r or s of 0 or n, a DER or 65-byte signature; accepts (r, n - s)', async () => {
    const n = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
    const int = (b: Buffer): bigint => BigInt(`0x${b.toString('hex')}`);
    const bytes32 = (v: bigint): Buffer => Buffer.from(v.toString(16).padStart(64, '0'), 'hex');
    const input = `${b64url(JSON.stringify({ alg: 'ES256', kid: 'ec-1' }))}.${b64url(JSON.stringify({ ...valid, sub: 'dave' }))}`;
    const sig = sign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' });
    const [r, s] = [int(sig.subarray(0, 32)), int(sig.subarray(32))];
    const send = (signature: Buffer) => ({ authorization: `Bearer ${input}.${b64url(signature)}` });
    await expectAllowed(send(sig));
    // ECDSA signatures are malleable: (r, n - s) verifies as well (SEC 1 §4.1.4),
    // and JWS does not ask for a low s (RFC 7518 §3.4), nor does BoringSSL's ECDSA_do_verify.
    const highS = Buffer.concat([bytes32(r), bytes32(n - s)]);
    assert.ok(verify('sha256', Buffer.from(input), { key: ec.publicKey, dsaEncoding: 'ieee-p1363' }, highS), 'node:crypto accepts (r, n - s)');
    const stream = await expectAllowed(send(highS));
    assert.equal(header(stream.requestHeaders, 'x-weft-user'), 'dave');
    const tampered = `${input.split('.')[0]}.${b64url(JSON.stringify({ ...valid, sub: 'root' }))}`;
    await expectRejected({ authorization: `Bearer ${tampered}.${b64url(sig)}` }, 401, /bad signature/);
    await expectRejected({ authorization: `Bearer ${token('ES256', 'ec-1', valid, otherEc.privateKey)}` }, 401, /bad signature/);
    const der = sign('sha256', Buffer.from(input), ec.privateKey); // node's default encoding: DER
    for (const [name, forged] of [
      ['r = 0', Buffer.concat([bytes32(0n), bytes32(s)])],
      ['s = 0', Buffer.concat([bytes32(r), bytes32(0n)])],
      ['r = n', Buffer.concat([bytes32(n), bytes32(s)])],
      ['s = n', Buffer.concat([bytes32(r), bytes32(n)])],
      ['r = 2^256 - 1', Buffer.concat([Buffer.alloc(32, 0xff), bytes32(s)])],
      ['zeros', Buffer.alloc(64)],
      ['DER', der],
      ['65 bytes (a leading zero)', Buffer.concat([Buffer.from([0]), sig])],
      ['63 bytes', sig.subarray(1)],
    ] as [string, Buffer][]) await expectRejected(send(forged), 401, /bad signature/).catch((e: Error) => assert.fail(`${name}: ${e.message}`));
    // Random signatures of every length around 64 bytes: refused, never a trap.
    for (let i = 0; i < 40; i++) await expectRejected(send(randomBytes(i < 30 ? 64 : 56 + i - 30)), 401, /bad signature/);
    assert.equal(plugin.vmFailures, 0);
  });

  it('refuses ES256 with a key of another type and other algorithms with an EC key (kid naming the wrong key)', async () => {
    await expectRejected({ authorization: `Bearer ${token('ES256', 'rsa-1', valid, ec.privateKey)}` }, 401, /unknown key id "rsa-1"/);
    await expectRejected({ authorization: `Bearer ${token('ES256', 'hs-1', valid, ec.privateKey)}` }, 401, /unknown key id "hs-1"/);
    await expectRejected({ authorization: `Bearer ${token('RS256', 'ec-1', valid, rsa.privateKey)}` }, 401, /unknown key id "ec-1"/);
    // An HS256 token whose secret is the EC public key's coordinates.
    const xy = Buffer.concat([Buffer.from(ecJwk.x as string, 'base64url'), Buffer.from(ecJwk.y as string, 'base64url')]);
    await expectRejected({ authorization: `Bearer ${token('HS256', 'ec-1', valid, xy)}` }, 401, /unknown key id "ec-1"/);
    // With only RSA and oct keys configured, an ES256 token has no key at all.
    const p = await loadFilter('auth', { jwt: { jwks: { keys: [rsaJwk, { kty: 'oct', k: b64url(hmacSecret) }] } } }, { now: () => BigInt(NOW) * 1_000_000_000n });
    const none = await exchange(p, { authorization: `Bearer ${token('ES256', undefined, valid, ec.privateKey)}` });
    assert.match(Buffer.from(none.stream.localReply!.body).toString(), /no key for ES256/);
    await p.close();
  });

  it('handles the edge points of ES256: a key that is G itself or -G, and a signature whose u1 G + u2 Q is the point at infinity', async () => {
    const n = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
    const bytes32 = (v: bigint): Buffer => Buffer.from(v.toString(16).padStart(64, '0'), 'hex');
    const modPow = (b: bigint, e: bigint, m: bigint): bigint => {
      let out = 1n;
      for (b %= m; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) out = (out * b) % m;
      return out;
    };
    const ordinary = BigInt(`0x${Buffer.from(ec.privateKey.export({ format: 'jwk' }).d as string, 'base64url').toString('hex')}`);
    // d = 1: Q = G, so the verifier's G + Q is a doubling; d = n - 1: Q = -G, so G + Q is infinity.
    for (const d of [1n, n - 1n, ordinary]) {
      const ecdh = createECDH('prime256v1');
      ecdh.setPrivateKey(bytes32(d));
      const point = ecdh.getPublicKey();
      const jwk = { kty: 'EC', crv: 'P-256', x: b64url(point.subarray(1, 33)), y: b64url(point.subarray(33)) };
      const key = createPrivateKey({ key: { ...jwk, d: b64url(bytes32(d)) }, format: 'jwk' });
      const p = await loadFilter('auth', { jwt: { jwks: { keys: [jwk] } } }, { now: () => BigInt(NOW) * 1_000_000_000n });
      for (let i = 0; i < 4; i++) {
        const ok = await exchange(p, { authorization: `Bearer ${token('ES256', undefined, { ...valid, n: i }, key)}` });
        assert.equal(ok.request.action, 'continue', `d = ${d}: ${ok.stream.localReply ? Buffer.from(ok.stream.localReply.body).toString() : ''}`);
      }
      // u1 G + u2 Q = ((e + r d) / s) G is infinity when r = -e / d mod n, whatever s: refused.
      const input = `${b64url(JSON.stringify({ alg: 'ES256' }))}.${b64url(JSON.stringify(valid))}`;
      const e = BigInt(`0x${createHash('sha256').update(input).digest('hex')}`) % n;
      const r = ((n - e) * modPow(d, n - 2n, n)) % n;
      const refused = await exchange(p, { authorization: `Bearer ${input}.${b64url(Buffer.concat([bytes32(r), bytes32(12345n)]))}` });
      assert.match(Buffer.from(refused.stream.localReply!.body).toString(), /bad signature/, `d = ${d}`);
      await p.close();
    }
  });

  it('refuses EC keys at configure time, naming the field: off the curve, coordinates not 32 bytes or not below p, no crv', async () => {
    const x = Buffer.from(ecJwk.x as string, 'base64url');
    const y = Buffer.from(ecJwk.y as string, 'base64url');
    const plusOne = Buffer.from((BigInt(`0x${y.toString('hex')}`) + 1n).toString(16).padStart(64, '0').slice(-64), 'hex');
    const p = 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n;
    // y + p is y mod p, but not a field element (BoringSSL refuses coordinates >= p too).
    const yPlusP = BigInt(`0x${y.toString('hex')}`) + p;
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ y: b64url(plusOne) }, /jwt\.jwks\.keys\[1\]\.y: \(x, y\) is not a point on P-256/],
      [{ x: b64url(Buffer.alloc(32)), y: b64url(Buffer.alloc(32)) }, /jwt\.jwks\.keys\[1\]\.y: \(x, y\) is not a point on P-256/],
      [{ x: b64url(x.subarray(1)) }, /jwt\.jwks\.keys\[1\]\.x: must be 32 bytes of base64url/],
      [{ y: b64url(Buffer.concat([Buffer.from([0]), y])) }, /jwt\.jwks\.keys\[1\]\.y: must be 32 bytes of base64url/],
      [{ x: 'not base64!' }, /jwt\.jwks\.keys\[1\]\.x: must be 32 bytes of base64url/],
      [{ crv: undefined }, /jwt\.jwks\.keys\[1\]\.crv/],
      [{ y: undefined }, /jwt\.jwks\.keys\[1\]\.y/],
    ];
    if (yPlusP < 2n ** 256n) cases.push([{ y: b64url(Buffer.from(yPlusP.toString(16).padStart(64, '0'), 'hex')) }, /jwt\.jwks\.keys\[1\]\.y: \(x, y\) is not a point on P-256/]);
    for (const [change, expected] of cases) {
      const logs: string[] = [];
      await assert.rejects(
        loadFilter('auth', { jwt: { jwks: { keys: [rsaJwk, { ...ecJwk, ...change }] } } }, { onLog: (m: { message: string }) => void logs.push(m.message) }),
        /proxy_on_configure/, JSON.stringify(change),
      );
      assert.match(logs.join('\n'), expected);
    }
    // The control plane's check (the filter's schema.json) wants crv, x and y on an EC key too.
    const schema = JSON.parse(readFileSync(new URL('../../../filters/auth/schema.json', import.meta.url), 'utf8')) as unknown;
    assert.deepEqual(validateConfig(schema, { jwt: { jwks: { keys: [ecJwk] } } }), []);
    const { y: _y, ...noY } = ecJwk;
    assert.deepEqual(validateConfig(schema, { jwt: { jwks: { keys: [noY] } } }), [{ path: 'jwt.jwks.keys[0].y', message: 'required' }]);
  });

  it('refuses RSA keys whose exponent makes signatures forgeable or costly (e = 1, even, over 33 bits), at the e field', async () => {
    for (const e of [Buffer.from([1]), Buffer.from([0, 0, 1]), Buffer.from([0x01, 0x00, 0x00]), Buffer.from([0x03, 0, 0, 0, 0x01])]) {
      const logs: string[] = [];
      await assert.rejects(
        loadFilter('auth', { jwt: { jwks: { keys: [{ ...rsaJwk, e: b64url(e) }] } } }, { onLog: (m: { message: string }) => void logs.push(m.message) }),
        /proxy_on_configure/, `e = ${e.toString('hex')}`,
      );
      assert.match(logs.join('\n'), /jwt\.jwks\.keys\[0\]\.e: must be odd, 3 to 33 bits/);
    }
    // (With e = 1 a "signature" is the padded digest itself, which anyone can write.) e = 3 stays accepted.
    const p = await loadFilter('auth', { jwt: { jwks: { keys: [{ ...rsaJwk, e: b64url(Buffer.from([0, 0, 3])) }] } } });
    await p.close();
  });

  it('verifies with a JWK whose n carries a leading zero byte, as BoringSSL reads it', async () => {
    const n = Buffer.concat([Buffer.from([0]), Buffer.from(rsaJwk.n as string, 'base64url')]);
    const p = await loadFilter('auth', { jwt: { jwks: { keys: [{ ...rsaJwk, n: b64url(n) }] } } }, { now: () => BigInt(NOW) * 1_000_000_000n });
    const ok = await exchange(p, { authorization: `Bearer ${token('RS256', 'rsa-1', valid, rsa.privateKey)}` });
    assert.equal(ok.request.action, 'continue', ok.stream.localReply ? Buffer.from(ok.stream.localReply.body).toString() : '');
    const bad = await exchange(p, { authorization: `Bearer ${token('RS256', 'rsa-1', valid, otherRsa.privateKey)}` });
    assert.equal(bad.stream.localReply?.status, 401);
    await p.close();
  });

  it('refuses a token whose header or claims repeat a name (RFC 7519 §4), which readers resolve differently', async () => {
    const signed = (head: string, body: string): string => {
      const input = `${b64url(head)}.${b64url(body)}`;
      return `Bearer ${input}.${b64url(createHmac('sha256', hmacSecret).update(input).digest())}`;
    };
    const head = '{"alg":"HS256","kid":"hs-1"}';
    const claims = JSON.stringify(valid).slice(0, -1);
    // JSON.parse, as an app behind the proxy reads it, takes the last "sub": the filter took the first.
    await expectRejected({ authorization: signed(head, `${claims},"sub":"root"}`) }, 401, /malformed token payload/);
    await expectRejected({ authorization: signed(head, `${claims},"aud":"payments"}`) }, 401, /malformed token payload/);
    await expectRejected({ authorization: signed('{"alg":"HS256","kid":"hs-1","kid":"other"}', `${claims}}`) }, 401, /malformed token header/);
    await expectAllowed({ authorization: signed(head, `${claims}}`) });
  });

  it('checks the whole PKCS#1 v1.5 encoding of an RS256 signature: no forgery with loose padding, garbage or another digest', async () => {
    const head = b64url(JSON.stringify({ alg: 'RS256', kid: 'rsa-1' }));
    const input = `${head}.${b64url(JSON.stringify(valid))}`;
    const hash = createHash('sha256').update(input).digest();
    const sha256Info = Buffer.from('3031300d060960864801650304020105000420', 'hex');
    const k = 256;
    // EM = 00 01 FF..FF 00 DigestInfo hash, signed raw with the private key.
    const em = (parts: { lead?: Buffer; ps?: Buffer; sep?: Buffer; info?: Buffer; digest?: Buffer; tail?: Buffer }): Buffer => {
      const info = parts.info ?? sha256Info;
      const digest = parts.digest ?? hash;
      const tail = parts.tail ?? Buffer.alloc(0);
      const lead = parts.lead ?? Buffer.from([0, 1]);
      const sep = parts.sep ?? Buffer.from([0]);
      const ps = parts.ps ?? Buffer.alloc(k - lead.length - sep.length - info.length - digest.length - tail.length, 0xff);
      const out = Buffer.concat([lead, ps, sep, info, digest, tail]);
      assert.equal(out.length, k);
      return out;
    };
    const rawSign = (m: Buffer): Buffer => privateEncrypt({ key: rsa.privateKey, padding: constants.RSA_NO_PADDING }, m);
    const send = (sig: Buffer) => ({ authorization: `Bearer ${input}.${b64url(sig)}` });
    await expectAllowed(send(rawSign(em({}))));
    const forgeries: [string, Buffer][] = [
      ['garbage after the hash (Bleichenbacher 2006)', rawSign(em({ ps: Buffer.alloc(8, 0xff), tail: Buffer.alloc(k - 2 - 8 - 1 - 19 - 32, 0x5a) }))],
      ['a non-FF padding byte', rawSign(em({ ps: Buffer.concat([Buffer.alloc(100, 0xff), Buffer.from([0xfe]), Buffer.alloc(k - 2 - 1 - 19 - 32 - 101, 0xff)]) }))],
      ['the 00 01 header not at the start', rawSign(Buffer.concat([Buffer.alloc(k - 2 - 7 - 1 - 19 - 32, 0), Buffer.from([0, 1]), Buffer.alloc(7, 0xff), Buffer.from([0]), sha256Info, hash]))],
      ['block type 2', rawSign(em({ lead: Buffer.from([0, 2]) }))],
      ['no zero separator', rawSign(em({ sep: Buffer.from([0xff]) }))],
      ['DigestInfo without the NULL parameters', rawSign(em({ info: Buffer.from('302f300b0609608648016503040201' + '0420', 'hex') }))],
      ['a SHA-1 DigestInfo', rawSign(em({ info: Buffer.from('3021300906052b0e03021a05000414', 'hex'), digest: createHash('sha1').update(input).digest() }))],
      ['another digest', rawSign(em({ digest: createHash('sha256').update('other').digest() }))],
    ];
    for (const [name, sig] of forgeries) await expectRejected(send(sig), 401, /bad signature/).catch((e: Error) => assert.fail(`${name}: ${e.message}`));
    const n = Buffer.from(rsaJwk.n as string, 'base64url');
    const good = rawSign(em({}));
    for (const [name, sig] of [
      ['the modulus itself', n], ['signature + n', Buffer.from((BigInt(`0x${good.toString('hex')}`) + BigInt(`0x${n.toString('hex')}`)).toString(16).padStart(2 * k, '0'), 'hex')],
      ['a leading zero byte', Buffer.concat([Buffer.from([0]), good])], ['one byte short', good.subarray(1)],
    ] as [string, Buffer][]) await expectRejected(send(sig), 401, /bad signature|malformed/).catch((e: Error) => assert.fail(`${name}: ${e.message}`));
  });

  it("takes an identity provider's JWKS as published: other members ignored, keys it cannot use skipped (RFC 7517 §4, §5)", async () => {
    const published = {
      keys: [
        { ...rsaJwk, kid: 'enc-1', alg: 'RSA-OAEP', use: 'enc', x5c: ['MIIC...'], x5t: 'abc', 'x5t#S256': 'def' },
        { kty: 'EC', kid: 'ec-1', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0', use: 'sig' },
        { ...rsaJwk, kid: 'ps-1', alg: 'PS256' },
        { ...generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' }), kid: 'p384-1' },
        { ...ecJwk, kid: 'es384-1', alg: 'ES384' },
        { ...rsaJwk, use: 'sig', x5c: ['MIIC...'], x5t: 'abc', issuer: ISSUER },
      ],
    };
    // The control plane's check of a binding's config (the filter's schema.json) lets it through too.
    const schema = JSON.parse(readFileSync(new URL('../../../filters/auth/schema.json', import.meta.url), 'utf8')) as unknown;
    assert.deepEqual(validateConfig(schema, { jwt: { jwks: published } }), []);
    const p = await loadFilter('auth', { jwt: { jwks: published } }, { now: () => BigInt(NOW) * 1_000_000_000n });
    assert.equal((await exchange(p, { authorization: `Bearer ${token('RS256', 'rsa-1', valid, rsa.privateKey)}` })).request.action, 'continue');
    const enc = await exchange(p, { authorization: `Bearer ${token('RS256', 'enc-1', valid, rsa.privateKey)}` });
    assert.match((JSON.parse(Buffer.from(enc.stream.localReply!.body).toString()) as { message: string }).message, /unknown key id "enc-1"/, 'an encryption key never verifies a signature');
    // The P-256 key (RFC 7515 A.3's) is used: a token of another key fails its signature check.
    // The P-384 key and the key for ES384 are skipped.
    const message = async (kid: string): Promise<string> =>
      (JSON.parse(Buffer.from((await exchange(p, { authorization: `Bearer ${token('ES256', kid, valid, ec.privateKey)}` })).stream.localReply!.body).toString()) as { message: string }).message;
    assert.match(await message('ec-1'), /bad signature/);
    assert.match(await message('p384-1'), /unknown key id "p384-1"/);
    assert.match(await message('es384-1'), /unknown key id "es384-1"/);
    await p.close();
    const logs: string[] = [];
    await assert.rejects(
      loadFilter('auth', { jwt: { jwks: { keys: published.keys.filter((k) => k.kid !== 'ec-1' && k.kid !== 'rsa-1') } } }, { onLog: (m: { message: string }) => void logs.push(m.message) }),
      /proxy_on_configure/,
    );
    assert.match(logs.join('\n'), /jwt\.jwks\.keys: must contain an HS256 \(oct\), RS256 \(RSA\) or ES256 \(EC P-256\) signing key/);
  });

  it("refuses a token written in plain base64 ('+', '/'): JWS segments are base64url only", async () => {
    let t = '';
    for (let i = 0; !/[-_]/.test(t.split('.')[2] ?? ''); i++) t = token('HS256', 'hs-1', { ...valid, n: i }, hmacSecret);
    await expectAllowed({ authorization: `Bearer ${t}` });
    const [head, body, sig] = t.split('.') as [string, string, string];
    const plain = `${head}.${body}.${sig.replace(/-/g, '+').replace(/_/g, '/')}`;
    await expectRejected({ authorization: `Bearer ${plain}` }, 401, /malformed token/);
  });

  it('accepts a known API key and refuses an unknown one', async () => {
    const stream = await expectAllowed({ 'x-api-key': 'ci-secret-123' });
    assert.equal(header(stream.requestHeaders, 'x-api-key'), undefined, 'key not forwarded upstream');
    const { reply } = await expectRejected({ 'x-api-key': 'guess' }, 401, /invalid API key/);
    assert.equal(header(reply.headers, 'www-authenticate'), 'ApiKey realm="orders", header="x-api-key"');
  });

  it('allows peers on the SPIFFE allowlist and forbids other peers', async () => {
    await expectAllowed({}, { properties: { 'connection.uri_san_peer_certificate': FRONTEND } });
    // A bearer token from an allowed peer is still verified (Istio's RequestAuthentication): claims forwarded, a bad one refused.
    const frontend = { properties: { 'connection.uri_san_peer_certificate': FRONTEND } };
    const passed = await expectAllowed({ authorization: `Bearer ${token('RS256', 'rsa-1', valid, rsa.privateKey)}` }, frontend);
    assert.equal(header(passed.requestHeaders, 'x-weft-user'), 'alice');
    assert.equal(header(passed.requestHeaders, 'authorization'), undefined);
    await expectRejected({ authorization: `Bearer ${token('RS256', 'rsa-1', { ...valid, sub: 'root' }, otherRsa.privateKey)}` }, 401, /bad signature/, frontend);
    await expectRejected({}, 403, /peer identity not allowed/, { properties: { 'connection.uri_san_peer_certificate': 'spiffe://weft.local/ns/default/sa/batch' } });
  });

  it('applies rules by path prefix and method: anonymous, deny, and credentials required by default', async () => {
    await expectAllowed({}, { path: '/public/x?y=1' });
    await expectRejected({ authorization: 'Bearer garbage' }, 401, /malformed/, { path: '/public/x' });
    await expectAllowed({ 'x-api-key': 'ci-secret-123' }, { path: '/admin/users', method: 'GET' });
    const { body } = await expectRejected({ 'x-api-key': 'ci-secret-123' }, 403, /denied by rule/, { path: '/admin/users', method: 'DELETE' });
    assert.equal(body.error, 'forbidden');
    const missing = await expectRejected({}, 401, /credentials required/, { path: '/orders' });
    assert.equal(header(missing.reply.headers, 'www-authenticate'), 'Bearer realm="orders"');
    assert.equal(missing.body.error, 'unauthorized');
    assert.ok((plugin.metrics.find('weft_auth_decisions_total_decision=.=allow;.;reason=.=anonymous;.;')?.value ?? 0n) >= 1n);
  });

  it('re-checks exp on every request, also for a token whose signature it has seen', async () => {
    let now = BigInt(NOW);
    const p = await loadFilter('auth', config, { now: () => now * 1_000_000_000n });
    const t = `Bearer ${token('RS256', 'rsa-1', { ...valid, exp: NOW + 60 }, rsa.privateKey)}`;
    assert.equal((await exchange(p, { authorization: t })).request.action, 'continue');
    assert.equal((await exchange(p, { authorization: t })).request.action, 'continue');
    now += 91n;
    const late = await exchange(p, { authorization: t });
    assert.equal(late.stream.localReply?.status, 401);
    assert.match(Buffer.from(late.stream.localReply!.body).toString(), /token expired/);
    const forged = t.slice(0, -4) + (t.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    now = BigInt(NOW);
    assert.match(Buffer.from((await exchange(p, { authorization: forged })).stream.localReply!.body).toString(), /bad signature/);
    await p.close();
  });

  it('answers malformed credentials with 401 and never traps', async () => {
    const h = b64url(JSON.stringify({ alg: 'HS256', kid: 'hs-1' }));
    const cases = [
      '', '.', '..', '...', 'a.b.c', '=.=.=', `${h}.${b64url('[')}.AAAA`, `${h}.${b64url('{"exp":"soon"}')}.AAAA`,
      `${b64url('{"alg":"HS256","kid":5}')}.${b64url('{}')}.AAAA`, `${h}.${b64url('['.repeat(10_000))}.AAAA`,
      `${h}.${b64url('"\\ud800"')}.AAAA`, `${b64url('\u00ff{')}.e30.AA`, 'x'.repeat(50_000),
      ...Array.from({ length: 50 }, (_, i) => [randomBytes(i % 40), randomBytes(i % 17), randomBytes(i % 23)].map((x) => x.toString(i % 2 ? 'base64url' : 'base64')).join('.')),
    ];
    for (const c of cases) {
      const { request, stream } = await exchange(plugin, { authorization: `Bearer ${c}` });
      assert.equal(request.action, 'local_reply', c.slice(0, 60));
      assert.equal(stream.localReply?.status, 401);
    }
    assert.equal(plugin.vmFailures, 0);
  });

  it('reads the claims JSON as written: escapes, exponents, negative and 2^53 integers forward as the same text', async () => {
    // Raw JSON (not JSON.stringify's), so every escape and number form the parser knows is in the token.
    const claims = String.raw`{"iss":"https:\/\/id.weft.test","aud":"orders","exp":18000003E2,"nbf":-1.5e+1,"sub":"a\/b\u0041\u004a\u004A\"\\",` +
      String.raw`"tenant":"x\by","admin":false,"n":[-12,2.5e1,9007199254740991,true,0]}`;
    const input = `${b64url(JSON.stringify({ alg: 'HS256', kid: 'hs-1' }))}.${b64url(claims)}`;
    const signed = `${input}.${b64url(createHmac('sha256', hmacSecret).update(input).digest())}`;
    const stream = await expectAllowed({ authorization: `Bearer ${signed}` });
    assert.equal(header(stream.requestHeaders, 'x-weft-user'), 'a/bAJJ"\\');
    assert.equal(header(stream.requestHeaders, 'x-weft-tenant'), undefined, 'a backspace is no header value');
    assert.equal(header(stream.requestHeaders, 'x-weft-admin'), 'false');
    assert.equal(header(stream.requestHeaders, 'x-weft-n'), '-12,25,9007199254740991,true,0');
  });

  it('escapes what the token puts in the JSON error body and in the challenge', async () => {
    const alg = 'x\u0001\u001f"\\\n/';
    const t = `${b64url(JSON.stringify({ alg }))}.${b64url('{}')}.AAAA`;
    const { reply, body } = await expectRejected({ authorization: `Bearer ${t}` }, 401, /unsupported alg/);
    assert.equal(body.message, `unsupported alg "${alg}"`);
    assert.equal(Buffer.from(reply.body).toString(), String.raw`{"error":"unauthorized","message":"unsupported alg \"x\u0001\u001f\"\\\n/\""}`);
    assert.equal(header(reply.headers, 'www-authenticate'), String.raw`Bearer realm="orders", error="invalid_token", error_description="unsupported alg \"x??\"\\?/\""`);
  });

  it('counts each decision under its tagged name, one series per decision and reason', async () => {
    const p = await loadFilter('auth', config, { now: () => BigInt(NOW) * 1_000_000_000n });
    for (let i = 0; i < 3; i++) await exchange(p, { 'x-api-key': 'ci-secret-123' });
    await exchange(p, { 'x-api-key': 'guess' });
    await exchange(p, {}, { path: '/public' });
    const series = p.metrics.all().filter((m) => m.name.startsWith('weft_auth_decisions_total')).map((m) => `${m.name} ${m.value}`).sort();
    assert.deepEqual(series, [
      'weft_auth_decisions_total_decision=.=allow;.;reason=.=anonymous;.; 1',
      'weft_auth_decisions_total_decision=.=allow;.;reason=.=api_key;.; 3',
      'weft_auth_decisions_total_decision=.=deny;.;reason=.=invalid_api_key;.; 1',
    ]);
    await p.close();
  });

  it('names the element of a list, and the offset in configuration that is not JSON', async () => {
    const logs: string[] = [];
    const onLog = (e: { message: string }): void => void logs.push(e.message);
    await assert.rejects(
      loadFilter('auth', {
        jwt: { jwks: { keys: [{ kty: 'oct', k: b64url(hmacSecret) }] }, audiences: ['a', 5], clockSkewSeconds: 3601 },
        spiffe: { allow: [FRONTEND, 'frontend', FRONTEND, 'spiffe:/x'] },
        rules: [{ prefix: '/a' }, 'b'],
      }, { onLog }),
      /proxy_on_configure/,
    );
    const text = logs.join('\n');
    for (const expected of [
      'jwt.audiences[1]: expected string, got number',
      'jwt.clockSkewSeconds: must be between 0 and 3600',
      'spiffe.allow[1]: must be a spiffe:// ID',
      'spiffe.allow[3]: must be a spiffe:// ID',
      'rules[1]: expected object, got string',
    ]) assert.ok(text.includes(expected), `${expected} in ${text}`);
    assert.ok(!text.includes('spiffe.allow[0]') && !text.includes('spiffe.allow[2]'), text);
    const bytes = await filterBytes('auth');
    for (const [raw, at, message] of [
      ['{"realm": "x",\n  "rules": tru}', 26, 'unexpected character'],
      ['{"realm": "\\u12G4"}', 13, 'bad \\u escape'],
      ['{"realm": "\\u12', 13, 'bad \\u escape'],
      ['{"realm": "a\\qb"}', 14, 'bad escape'],
      ['{"jwt": {"clockSkewSeconds": 1e}}', 31, 'bad number'],
    ] as const) {
      logs.length = 0;
      await assert.rejects(WasmPlugin.load(bytes, { name: 'auth', configuration: raw }, { onLog }), /proxy_on_configure/);
      assert.ok(logs.join('\n').includes(`invalid JSON at offset ${at}: ${message}`), `${raw}: ${logs.join('\n')}`);
    }
  });

  it('refuses invalid configurations at configure time, naming each field', async () => {
    const logs: string[] = [];
    const onLog = (e: { message: string }): void => void logs.push(e.message);
    await assert.rejects(
      loadFilter('auth', {
        jwt: { jwks: { keys: [{ kty: 'oct', k: b64url(Buffer.alloc(8)) }, { kty: 'EC', crv: 'P-256' }, { ...rsaJwk, n: b64url(Buffer.alloc(64, 255)) }] }, clockSkewSeconds: -1 },
        apiKeys: { keys: [{ name: 'x', sha256: 'abc' }] },
        rules: [{ prefix: 'admin', action: 'block' }],
      }, { onLog }),
      /proxy_on_configure/,
    );
    const text = logs.join('\n');
    for (const expected of [
      /jwt\.jwks\.keys\[0\]\.k: HS256 keys must be at least 32 bytes/,
      /jwt\.jwks\.keys\[1\]\.x: /,
      /jwt\.jwks\.keys\[2\]\.n: modulus must be at least 2048 bits/,
      /jwt\.clockSkewSeconds: must be between 0 and 3600/,
      /apiKeys\.keys\[0\]\.sha256: must be 64 hex characters/,
      /rules\[0\]\.prefix: must start with '\/'/,
      /rules\[0\]\.action: must be one of require, allow, deny/,
    ]) assert.match(text, expected);
    logs.length = 0;
    await assert.rejects(loadFilter('auth', {}, { onLog }), /proxy_on_configure/);
    assert.match(logs.join('\n'), /requires credentials but none of jwt, apiKeys, spiffe is configured/);
  });
});
