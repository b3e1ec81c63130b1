// Auth filter configuration (schema.json documents the same fields). Keys
// are decoded, RSA constants precomputed and EC points checked here, once per
// configuration.

import { asciiLower, base64Decode, decimal, ConfigErrors, ConfigNode, configRoot } from '../sdk/index';
import { p256PublicKey } from './p256';
import { RsaKey, rsaKeyProblem } from './rsa';

export class Jwk {
  kid: string = '';
  /** The one algorithm the key is used with: HS256 (oct), RS256 (RSA) or ES256 (EC P-256). */
  alg: string = '';
  hmac: Uint8Array | null = null;
  rsa: RsaKey | null = null;
  /** ES256: the public point, as p256.ts uses it. */
  ec: StaticArray<u32> | null = null;
}

export class Rule {
  prefix: string = '/';
  methods: string[] = [];
  /** require | allow | deny */
  action: string = 'require';
}

export class AuthConfig {
  realm: string = 'weft';
  jwtEnabled: bool = false;
  issuer: string = '';
  audiences: string[] = [];
  clockSkewSeconds: i64 = 60;
  requireExpiry: bool = true;
  forwardToken: bool = false;
  keys: Jwk[] = [];
  /** [claim, header, claim, header, ...] */
  forwardClaims: string[] = [];
  apiKeyHeader: string = '';
  /** The keys' SHA-256 hashes, lowercase hex (a key's name is only checked). */
  apiKeys: string[] = [];
  spiffeEnabled: bool = false;
  allowedPeers: string[] = [];
  rules: Rule[] = [];
  defaultAction: string = 'require';
}

const ACTIONS = ['require', 'allow', 'deny'];

function isHex64(s: string): bool {
  if (s.length != 64) return false;
  for (let i = 0; i < 64; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

// A JWKS is often an identity provider's as published: members not understood
// are ignored (RFC 7517 §4: x5c, x5t and the like), and so are keys this
// filter cannot verify with (§5): other key types (OKP), other curves (P-384),
// other algorithms (RS384, PS256, ES384, RSA-OAEP) and encryption keys (use: enc).
function parseJwk(node: ConfigNode): Jwk | null {
  const jwk = new Jwk();
  const kty = node.str('kty', '', true);
  jwk.kid = node.str('kid', '');
  const alg = node.str('alg', '');
  const use = node.str('use', 'sig');
  if (use != 'sig') return null;
  if (kty == 'oct') {
    if (alg.length > 0 && alg != 'HS256') return null;
    const k = base64Decode(node.str('k', '', true));
    if (k === null || k.length == 0) { node.fail('k', 'must be non-empty base64url'); return null; }
    if (k.length < 32) node.fail('k', 'HS256 keys must be at least 32 bytes (RFC 7518 §3.2)');
    jwk.hmac = k;
    jwk.alg = 'HS256';
  } else if (kty == 'RSA') {
    if (alg.length > 0 && alg != 'RS256') return null;
    const n = base64Decode(node.str('n', '', true));
    const e = base64Decode(node.str('e', '', true));
    if (n === null || e === null) { node.fail('', 'n and e must be base64url'); return null; }
    const problem = rsaKeyProblem(n, e);
    if (problem.length > 0) { node.fail(problem.startsWith('modulus') ? 'n' : 'e', problem); return null; }
    jwk.rsa = new RsaKey(n, e);
    jwk.alg = 'RS256';
  } else if (kty == 'EC') {
    // RFC 7518 §6.2.1: crv is required, and x and y are the full 32 bytes.
    // A point off the curve is refused, as BoringSSL's
    // EC_KEY_set_public_key_affine_coordinates does for Envoy
    // (google/jwt_verify_lib src/jwks.cc): an invalid-curve key.
    const crv = node.str('crv', '', true);
    if ((alg.length > 0 && alg != 'ES256') || crv != 'P-256') return null;
    const x = base64Decode(node.str('x', '', true));
    const y = base64Decode(node.str('y', '', true));
    if (x === null || x.length != 32) { node.fail('x', 'must be 32 bytes of base64url'); return null; }
    if (y === null || y.length != 32) { node.fail('y', 'must be 32 bytes of base64url'); return null; }
    jwk.ec = p256PublicKey(x, y);
    if (jwk.ec === null) { node.fail('y', '(x, y) is not a point on P-256'); return null; }
    jwk.alg = 'ES256';
  } else {
    return null;
  }
  return jwk;
}

export function parseAuthConfig(text: string, errors: ConfigErrors): AuthConfig {
  const c = new AuthConfig();
  const root = configRoot(text, errors);
  if (root === null) return c;
  root.allowOnly(['realm', 'jwt', 'apiKeys', 'spiffe', 'rules', 'defaultAction']);
  c.realm = root.str('realm', c.realm);
  c.defaultAction = root.oneOf('defaultAction', ACTIONS, c.defaultAction);

  const jwt = root.object('jwt');
  if (jwt !== null) {
    c.jwtEnabled = true;
    jwt.allowOnly(['issuer', 'audiences', 'clockSkewSeconds', 'requireExpiry', 'jwks', 'forwardClaims', 'forwardToken']);
    c.issuer = jwt.str('issuer', '');
    c.audiences = jwt.strings('audiences');
    c.clockSkewSeconds = jwt.int('clockSkewSeconds', 60, 0, 3600);
    c.requireExpiry = jwt.bool('requireExpiry', true);
    c.forwardToken = jwt.bool('forwardToken', false);
    const jwks = jwt.object('jwks', true);
    if (jwks !== null) {
      const keys = jwks.objects('keys', true);
      for (let i = 0; i < keys.length; i++) {
        const k = parseJwk(keys[i]);
        if (k !== null) c.keys.push(k);
      }
      if (c.keys.length == 0 && jwks.has('keys')) jwks.fail('keys', 'must contain an HS256 (oct), RS256 (RSA) or ES256 (EC P-256) signing key');
    }
    c.forwardClaims = jwt.stringMap('forwardClaims');
    for (let i = 1; i < c.forwardClaims.length; i += 2) c.forwardClaims[i] = asciiLower(c.forwardClaims[i]);
  }

  const api = root.object('apiKeys');
  if (api !== null) {
    api.allowOnly(['header', 'keys']);
    c.apiKeyHeader = asciiLower(api.nonEmpty('header', 'x-api-key'));
    const keys = api.objects('keys', true);
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      key.allowOnly(['name', 'sha256']);
      key.nonEmpty('name', '', true);
      const hash = asciiLower(key.str('sha256', '', true));
      if (key.has('sha256') && !isHex64(hash)) key.fail('sha256', 'must be 64 hex characters (its SHA-256)');
      c.apiKeys.push(hash);
    }
  }

  const spiffe = root.object('spiffe');
  if (spiffe !== null) {
    c.spiffeEnabled = true;
    spiffe.allowOnly(['allow']);
    c.allowedPeers = spiffe.strings('allow', true);
    for (let i = 0; i < c.allowedPeers.length; i++) {
      if (!c.allowedPeers[i].startsWith('spiffe://')) spiffe.fail('allow[' + decimal(i) + ']', 'must be a spiffe:// ID');
    }
  }

  const rules = root.objects('rules');
  for (let i = 0; i < rules.length; i++) {
    const node = rules[i];
    node.allowOnly(['prefix', 'methods', 'action']);
    const r = new Rule();
    r.prefix = node.str('prefix', '/', true);
    if (node.has('prefix') && !r.prefix.startsWith('/')) node.fail('prefix', "must start with '/'");
    r.methods = node.strings('methods');
    r.action = node.oneOf('action', ACTIONS, 'require', true);
    c.rules.push(r);
  }

  if (!c.jwtEnabled && c.apiKeys.length == 0 && !c.spiffeEnabled) {
    let needsCredentials = c.defaultAction == 'require';
    for (let i = 0; i < c.rules.length; i++) if (c.rules[i].action == 'require') needsCredentials = true;
    if (needsCredentials) root.fail('', 'a rule requires credentials but none of jwt, apiKeys, spiffe is configured');
  }
  return c;
}

