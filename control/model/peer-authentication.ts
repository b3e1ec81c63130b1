// PeerAuthentication: the mutual TLS mode of a service's inbound side, for one
// service or a whole namespace (Istio's PeerAuthentication). The mesh default,
// when no policy applies, is PERMISSIVE: plaintext and mTLS are both accepted,
// so services can join the mesh one at a time (Istio's migration default).

import { Enum, ServiceRef } from './fields.ts';
import { defineKind } from './kind.ts';
import { Type } from '@sinclair/typebox';
import type { PeerAuthentication, PeerAuthenticationMode } from './types.ts';

export const PEER_AUTHENTICATION_MODES = ['STRICT', 'PERMISSIVE', 'DISABLE'] as const satisfies readonly PeerAuthenticationMode[];
export const DEFAULT_PEER_AUTHENTICATION_MODE: PeerAuthenticationMode = 'PERMISSIVE';

export const peerAuthenticationKind = defineKind({
  kind: 'PeerAuthentication',
  description: "mutual TLS mode of a service's (or a namespace's) inbound traffic",
  spec: {
    service: Type.Optional(ServiceRef('the service it applies to; absent = every service of the namespace')),
    mode: Enum([...PEER_AUTHENTICATION_MODES], 'STRICT (mTLS only), PERMISSIVE (mTLS and plaintext) or DISABLE (plaintext only)'),
  },
  build(meta, spec) {
    const value: PeerAuthentication = { name: meta.name, namespace: meta.namespace, mode: spec.mode };
    if (spec.service !== undefined) value.service = spec.service;
    return { value, errors: [] };
  },
});

export const PeerAuthenticationSchema = peerAuthenticationKind.schema;
export const validatePeerAuthentication = peerAuthenticationKind.validate;
