// Secret (SDS) -> SecretConfig: an inline PEM certificate chain and key, or
// an inline PEM trust bundle, as weft's CA serves them. File and
// generic secrets, SPKI/hash pinning and CRLs are outside the contract.

import type { SecretConfig } from '../config.ts';
import { Fields } from './fields.ts';
import type { FieldError } from './fields.ts';

function inline(f: Fields | undefined, key: string, parent: Fields): string | undefined {
  if (!f) {
    parent.fail(key, 'required');
    return undefined;
  }
  const v = f.str('inline_string');
  f.done();
  if (!v) f.fail('inline_string', 'the weft sidecar accepts inline PEM only');
  return v;
}

export function decodeSecret(value: unknown, errors: FieldError[]): SecretConfig | undefined {
  const f = Fields.of(value, '', errors);
  if (!f) return undefined;
  const name = f.str('name') ?? '';
  const out: SecretConfig = { name };
  const which = f.oneof(['tls_certificate', 'validation_context']);
  if (which === 'tls_certificate') {
    const c = f.obj('tls_certificate')!;
    const certificateChain = inline(c.obj('certificate_chain'), 'certificate_chain', c);
    const privateKey = inline(c.obj('private_key'), 'private_key', c);
    c.done();
    if (certificateChain && privateKey) out.tlsCertificate = { certificateChain, privateKey };
  } else if (which === 'validation_context') {
    const v = f.obj('validation_context')!;
    const ca = inline(v.obj('trusted_ca'), 'trusted_ca', v);
    v.done();
    if (ca) out.trustedCa = ca;
  } else {
    f.fail('tls_certificate', 'a secret needs tls_certificate or validation_context');
  }
  f.done();
  if (!name) f.fail('name', 'required');
  return out;
}
