// Identity on the xDS stream: the authenticate hook (a proxy must present a
// join token for exactly the service and namespace its node claims) and the
// SDS secret source (each proxy group gets the Secrets of its own identity
// only). Refusals are logged and counted (weft_xds_auth_refusals_total by
// reason: missing, unknown, expired, foreign; next to the server's weft_xds_rejected_streams_total).

import { Counter, type Registry } from 'prom-client';
import type { ProxyRef } from '../model/types.ts';
import { sdsSecrets } from '../translate/secrets.ts';
import type { MeshCa } from './authority.ts';
import type { JoinTokens } from './join-tokens.ts';

/** node.metadata key carrying the join token. */
export const TOKEN_METADATA_KEY = 'WEFT_TOKEN';

export type AuthVerdict = { ok: true; credential?: string } | { ok: false; message: string };

/** The credential an admitted stream is filed under (AdsServer.endStreams), by join token id. */
export function joinTokenCredential(id: string): string {
  return `join-token:${id}`;
}

interface NodeLike {
  id?: string;
  metadata?: { fields?: Record<string, { string_value?: string; stringValue?: string }> };
}

export interface IdentityHooksOptions {
  tokens: JoinTokens;
  ca: MeshCa;
  log?: (message: string) => void;
  /** Where weft_xds_auth_refusals_total registers (the xDS metrics registry). */
  registry?: Registry;
}

export interface IdentityHooks {
  authenticate(node: NodeLike, metadata: unknown, proxy: ProxyRef): Promise<AuthVerdict>;
  secrets: SecretSource;
  /** Refusals so far, by reason (also in metrics). */
  refusals: Map<string, number>;
}

/** What the xDS controller asks for Secrets (control/xds's SecretSource). */
export interface SecretSource {
  secretsFor(proxy: ProxyRef): { name: string; value: Record<string, unknown> }[];
  subscribe(listener: () => void): () => void;
}

export function identityHooks(options: IdentityHooksOptions): IdentityHooks {
  const { tokens, ca } = options;
  const log = options.log ?? ((m: string) => console.warn(m));
  const refusals = new Map<string, number>();
  const counter = options.registry
    ? new Counter({ name: 'weft_xds_auth_refusals_total', help: 'xDS streams refused by authentication, by reason', labelNames: ['reason'], registers: [options.registry] })
    : undefined;
  const refuse = (reason: string, message: string, proxy: ProxyRef): AuthVerdict => {
    refusals.set(reason, (refusals.get(reason) ?? 0) + 1);
    counter?.inc({ reason });
    log(`xds: refused proxy ${JSON.stringify(proxy.id)} claiming ${proxy.service}.${proxy.namespace}: ${message}`);
    return { ok: false, message };
  };

  const listeners = new Set<() => void>();
  const notify = () => { for (const l of listeners) l(); };
  ca.onRotate(() => notify());

  return {
    refusals,
    async authenticate(node, _metadata, proxy) {
      // protobufjs decodes Value in camelCase off the wire; test clients may build snake_case.
      const value = node.metadata?.fields?.[TOKEN_METADATA_KEY];
      const token = value?.stringValue ?? value?.string_value;
      if (!token) return refuse('missing', `no join token (node.metadata.${TOKEN_METADATA_KEY})`, proxy);
      const checked = tokens.check(token);
      if (!checked.ok && checked.reason === 'expired') return refuse('expired', `join token ${checked.record.id} expired at ${checked.record.expiresAt}: issue a new one`, proxy);
      if (!checked.ok) return refuse('unknown', 'unknown or revoked join token', proxy);
      const { record } = checked;
      if (record.service !== proxy.service || record.namespace !== proxy.namespace) {
        return refuse('foreign', `join token ${record.id} is for ${record.service}.${record.namespace}, not ${proxy.service}.${proxy.namespace}`, proxy);
      }
      // Issue the certificate before the stream opens, so the first snapshot carries it.
      if (proxy.kind === 'sidecar') {
        await ca.svid(proxy.namespace, proxy.service);
        // The issue can take tens of milliseconds, and a revocation (or the expiry) in that gap ends the token's
        // streams before this one is filed under it: it would open with a token that no longer exists and keep
        // getting config and every rotated certificate. Looked at again here, synchronously with the filing.
        const again = tokens.check(token);
        if (!again.ok && again.reason === 'expired') return refuse('expired', `join token ${record.id} expired at ${again.record.expiresAt}: issue a new one`, proxy);
        if (!again.ok) return refuse('unknown', 'unknown or revoked join token', proxy);
      }
      return { ok: true, credential: joinTokenCredential(record.id) };
    },
    secrets: {
      secretsFor(proxy) {
        // Proxyless gRPC clients get no SDS (grpc-js-xds does not implement it).
        if (proxy.kind !== 'sidecar') return [];
        const svid = ca.current(proxy.namespace, proxy.service);
        if (!svid) {
          void ca.svid(proxy.namespace, proxy.service).then(notify, (e: Error) => log(`ca: cannot issue ${proxy.service}.${proxy.namespace}: ${e.message}`));
          return [];
        }
        return sdsSecrets(svid);
      },
      subscribe(listener) {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
    },
  };
}
