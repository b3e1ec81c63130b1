// Auth filter: decides per request, from rules by path prefix and method,
// whether credentials are required, optional or the request is denied.
// Credentials: a peer SPIFFE ID from the mTLS certificate on an allowlist, a
// JWT (HS256/RS256/ES256, inline JWKS), or an API key checked against SHA-256
// hashes. A refused request gets 401 (with WWW-Authenticate) or 403 and a
// JSON body, and is never forwarded. Chosen claims are forwarded as request
// headers; the same headers arriving from the client are always removed.

export * from '../sdk/exports';
import {
  Action, asciiLower, charString, ConfigErrors, decimal, getHeader, HeaderMapType, HeaderPair, HttpContext, defineMetric, jsonString,
  logDebug, logEnabled, logError, LogLevel, MetricType, nowSeconds, Property, registerRoot, removeHeader, replaceHeader, RootContext,
  sendLocalResponse, sha256, toHex, utf8,
} from '../sdk/index';
import { proxy_increment_metric } from '../sdk/imports';
import { AuthConfig, parseAuthConfig, Rule } from './config';
import { claimText, verifyJwt } from './jwt';

class AuthRoot extends RootContext {
  config: AuthConfig = new AuthConfig();

  onConfigure(configuration: string): bool {
    const errors = new ConfigErrors();
    const config = parseAuthConfig(configuration, errors);
    if (!errors.ok) {
      logError('auth: invalid configuration: ' + errors.toString());
      return false;
    }
    this.config = config;
    return true;
  }

  createHttpContext(id: u32): HttpContext | null {
    return new AuthStream(id, this);
  }
}

function ruleFor(config: AuthConfig, path: string, method: string): string {
  const q = path.indexOf('?');
  const p = q < 0 ? path : path.substring(0, q);
  for (let i = 0; i < config.rules.length; i++) {
    const r: Rule = config.rules[i];
    if (!p.startsWith(r.prefix)) continue;
    if (r.methods.length > 0 && !r.methods.includes(method)) continue;
    return r.action;
  }
  return config.defaultAction;
}

// weft_auth_decisions_total by decision and reason: a handful of fixed names,
// so their host ids are kept here, found by a scan, instead of in the SDK's
// string-keyed metric map (which would add ~0.8 KB of hashing to the module).
// As with incrementCounter, a name the host refuses is tried again next time.
const counterNames = new Array<string>();
const counterIds = new Array<u32>();

function countDecision(decision: string, reason: string): void {
  const name = 'weft_auth_decisions_total_decision=.=' + decision + ';.;reason=.=' + reason + ';.;';
  let i = counterNames.indexOf(name);
  if (i < 0) {
    const id = defineMetric(MetricType.Counter, name);
    if (id == u32.MAX_VALUE) return;
    i = counterNames.length;
    counterNames.push(name);
    counterIds.push(id);
  }
  proxy_increment_metric(counterIds[i], 1);
}

/** The peer certificate's URI SAN (its SPIFFE ID), the path encoded once. */
const PEER_URI_SAN = new Property(['connection', 'uri_san_peer_certificate']);

class AuthStream extends HttpContext {
  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action {
    const config = (this.root as AuthRoot).config;
    for (let i = 1; i < config.forwardClaims.length; i += 2) removeHeader(HeaderMapType.RequestHeaders, config.forwardClaims[i]);

    const path = getHeader(HeaderMapType.RequestHeaders, ':path');
    const method = getHeader(HeaderMapType.RequestHeaders, ':method');
    const action = ruleFor(config, path === null ? '/' : path, method === null ? '' : method);
    if (action == 'deny') return this.forbid('denied by rule', 'rule_deny');

    // A bearer token is checked whoever sends it, as Istio's RequestAuthentication
    // does: an allowed peer passing on a user's token gets its claims forwarded,
    // and with a bad one a 401: no unverified bearer token reaches the app.
    if (config.jwtEnabled) {
      const authorization = getHeader(HeaderMapType.RequestHeaders, 'authorization');
      if (authorization !== null && authorization.length > 7 && asciiLower(authorization.substring(0, 7)) == 'bearer ') {
        const result = verifyJwt(authorization.substring(7, authorization.length).trim(), config, nowSeconds());
        if (result.error.length > 0) {
          return this.unauthorized(bearerChallenge(config) + ', error="invalid_token", error_description=' + quoted(result.error), result.error, 'invalid_token');
        }
        const claims = result.value!;
        for (let i = 0; i + 1 < config.forwardClaims.length; i += 2) {
          const v = claims.get(config.forwardClaims[i]);
          if (v === null) continue;
          const text = claimText(v);
          if (text !== null) replaceHeader(HeaderMapType.RequestHeaders, config.forwardClaims[i + 1], text);
        }
        // As Envoy's jwt_authn with forward: false (Istio's forwardOriginalToken
        // default), the token stays here; forwarded, only the one verified goes
        // on (a second Authorization header the app might read is dropped).
        if (config.forwardToken) replaceHeader(HeaderMapType.RequestHeaders, 'authorization', authorization);
        else removeHeader(HeaderMapType.RequestHeaders, 'authorization');
        return this.allow('jwt');
      }
    }

    const peer = config.spiffeEnabled ? PEER_URI_SAN.string() : null;
    if (peer !== null && config.allowedPeers.includes(peer)) return this.allow('spiffe');

    if (config.apiKeys.length > 0) {
      const key = getHeader(HeaderMapType.RequestHeaders, config.apiKeyHeader);
      if (key !== null) {
        const hash = toHex(sha256(utf8(key)));
        for (let i = 0; i < config.apiKeys.length; i++) {
          if (config.apiKeys[i] == hash) {
            removeHeader(HeaderMapType.RequestHeaders, config.apiKeyHeader);
            return this.allow('api_key');
          }
        }
        return this.unauthorized(apiKeyChallenge(config), 'invalid API key', 'invalid_api_key');
      }
    }

    if (action == 'allow') return this.allow('anonymous');
    if (peer !== null) return this.forbid('peer identity not allowed', 'peer_not_allowed');
    return this.unauthorized(config.jwtEnabled ? bearerChallenge(config) : apiKeyChallenge(config), 'credentials required', 'missing');
  }

  allow(reason: string): Action {
    countDecision('allow', reason);
    if (logEnabled(LogLevel.Debug)) logDebug('auth: allowed, ' + reason);
    return Action.Continue;
  }

  unauthorized(challenge: string, message: string, reason: string): Action {
    return this.refuse(401, challenge, message, reason);
  }

  forbid(message: string, reason: string): Action {
    return this.refuse(403, '', message, reason);
  }

  refuse(status: u32, challenge: string, message: string, reason: string): Action {
    countDecision('deny', reason);
    const headers: HeaderPair[] = [new HeaderPair('content-type', 'application/json')];
    if (challenge.length > 0) headers.push(new HeaderPair('www-authenticate', challenge));
    const body = (status == 401 ? '{"error":"unauthorized","message":' : '{"error":"forbidden","message":') + jsonString(message) + '}';
    sendLocalResponse(status, 'weft_auth_' + reason, body, headers);
    if (logEnabled(LogLevel.Debug)) logDebug('auth: ' + decimal(status) + ' ' + message);
    return Action.Pause;
  }
}

/**
 * RFC 7235 quoted-string of visible ASCII: the error text echoes parts of the
 * client's token (its alg, its kid), and a DEL or non-ASCII character in a
 * header value is not one the proxy can send (RFC 9110 §5.5), so anything
 * else becomes '?'.
 */
function quoted(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 34 || c == 92) out += '\\';
    out += charString(c < 32 || c > 126 ? 63 : c);
  }
  return out + '"';
}

function bearerChallenge(config: AuthConfig): string {
  return 'Bearer realm=' + quoted(config.realm);
}

function apiKeyChallenge(config: AuthConfig): string {
  return 'ApiKey realm=' + quoted(config.realm) + ', header=' + quoted(config.apiKeyHeader);
}

registerRoot((id: u32): RootContext => new AuthRoot(id));
