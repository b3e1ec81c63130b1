// Transport sockets: envoy.transport_sockets.tls with SDS-delivered
// certificates, the mutual TLS weft's translator emits. Inline certificates,
// cipher and protocol tuning, SNI and the other SAN types are outside the
// contract and NACKed.

import type { TlsSecretRefs } from '../config.ts';
import { adsConfigSource, stringMatcher } from './common.ts';
import { Fields, typeName } from './fields.ts';

const DOWNSTREAM = 'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const UPSTREAM = 'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

/** An SDS secret's name, and its sds_config's initial_fetch_timeout when it has one. */
function sdsName(f: Fields | undefined): { name: string; initialFetchTimeoutMs: number | undefined } | undefined {
  if (!f) return undefined;
  const name = f.str('name');
  const initialFetchTimeoutMs = adsConfigSource(f.obj('sds_config'));
  f.done();
  if (!name) f.fail('name', 'required');
  return name ? { name, initialFetchTimeoutMs } : undefined;
}

/** common_tls_context: one SDS certificate and an SDS trust bundle; returns the SANs an upstream must present. */
function commonTlsContext(f: Fields | undefined, sans: string[]): TlsSecretRefs | undefined {
  if (!f) return undefined;
  const certs = f.list('tls_certificate_sds_secret_configs');
  if (certs.length !== 1) f.fail('tls_certificate_sds_secret_configs', 'the weft sidecar needs exactly one SDS certificate');
  const certificate = certs.length === 1 ? sdsName(certs[0]) : undefined;
  let validation: { name: string; initialFetchTimeoutMs: number | undefined } | undefined;
  const combined = f.obj('combined_validation_context');
  if (combined) {
    validation = sdsName(combined.obj('validation_context_sds_secret_config'));
    const dvc = combined.obj('default_validation_context');
    for (const m of dvc?.list('match_typed_subject_alt_names') ?? []) {
      const type = m.enumOf('san_type', ['URI'] as const, ['SAN_TYPE_UNSPECIFIED', 'EMAIL', 'DNS', 'URI', 'IP_ADDRESS', 'OTHER_NAME']);
      const matcher = m.obj('matcher');
      const sm = matcher ? stringMatcher(matcher) : undefined;
      m.done();
      if (sm && sm.kind !== 'exact') m.fail('matcher', 'only exact SAN matching is supported');
      else if (sm && type === 'URI') sans.push(sm.value);
    }
    dvc?.done();
    combined.done();
  } else {
    validation = sdsName(f.obj('validation_context_sds_secret_config'));
  }
  f.ignore('alpn_protocols');
  f.done();
  if (!validation) f.fail('validation_context_sds_secret_config', 'mutual TLS needs an SDS trust bundle');
  if (!certificate || !validation) return undefined;
  return {
    certificate: certificate.name,
    validation: validation.name,
    ...(certificate.initialFetchTimeoutMs !== undefined ? { certificateInitialFetchTimeoutMs: certificate.initialFetchTimeoutMs } : {}),
    ...(validation.initialFetchTimeoutMs !== undefined ? { validationInitialFetchTimeoutMs: validation.initialFetchTimeoutMs } : {}),
  };
}

function socket(f: Fields, expected: string): Fields | undefined {
  f.ignore('name');
  const tc = f.obj('typed_config');
  f.done();
  if (!tc) {
    f.errors.push({ path: f.path, message: `needs a typed_config; the weft sidecar supports only ${expected} transport sockets here` });
    return undefined;
  }
  if (typeName(tc) !== expected) {
    tc.fail('@type', `the weft sidecar supports only ${expected} transport sockets here`);
    return undefined;
  }
  return tc;
}

export function downstreamTls(f: Fields): TlsSecretRefs | undefined {
  const tc = socket(f, DOWNSTREAM);
  if (!tc) return undefined;
  const required = tc.bool('require_client_certificate') ?? false;
  const refs = commonTlsContext(tc.obj('common_tls_context'), []);
  tc.done();
  if (!required) tc.fail('require_client_certificate', 'the weft sidecar only does mutual TLS: must be true');
  return required ? refs : undefined;
}

export function upstreamTls(f: Fields): (TlsSecretRefs & { uriSans: string[] }) | undefined {
  const tc = socket(f, UPSTREAM);
  if (!tc) return undefined;
  const uriSans: string[] = [];
  const refs = commonTlsContext(tc.obj('common_tls_context'), uriSans);
  tc.done();
  return refs ? { ...refs, uriSans } : undefined;
}
