// State of the world: every response of a type carries the whole subscribed
// set. Per-type version and nonce; requests answering an older nonce are
// stale and ignored; a NACKed version is remembered and not sent again until
// the configuration changes.
import type { ChangeStamp, EncodedResource } from './cache.ts';
import { versionOf } from './cache.ts';
import type { DiscoveryRequest } from './discovery.ts';
import { discoveryTypes, TypeUrl, WILDCARD_TYPES } from './discovery.ts';
import type { ResponseInfo, TypeConfig } from './stream.ts';
import { AdsStream } from './stream.ts';

interface SotwTypeState {
  wildcard: boolean;
  names: Set<string>;
  /**
   * A request of this type named resources ("*" included). From then on an empty resource_names is
   * an unsubscription from everything, not the legacy wildcard (xds_protocol "How the client specifies
   * what resources to return").
   */
  explicit: boolean;
  /** Latest response sent; only a request carrying its nonce counts. */
  lastNonce?: string;
  lastVersion?: string;
  lastSent: ReadonlyMap<string, EncodedResource>;
  /** The last response the client accepted: what it holds. */
  acked: ReadonlyMap<string, EncodedResource>;
  lastStamp?: ChangeStamp;
  inFlight: boolean;
  ackedVersion?: string;
  nackedVersion?: string;
  nacked: boolean;
  /** EDS: a cluster using one of these CLAs was updated; the next response goes out even at the same version. */
  rewarm: boolean;
}

export class SotwStream extends AdsStream<SotwTypeState> {

  /** Applies one DiscoveryRequest (ACK, NACK, subscription change or stale). */
  handleRequest(req: DiscoveryRequest): void {
    const typeUrl = req.type_url ?? '';
    if (!typeUrl) return;
    const names = req.resource_names ?? [];
    let st = this.types.get(typeUrl);
    if (!st) {
      st = {
        wildcard: names.includes('*') || (names.length === 0 && WILDCARD_TYPES.has(typeUrl)),
        names: new Set(names.filter((n) => n !== '*')),
        explicit: names.length > 0,
        lastSent: new Map(),
        acked: new Map(),
        inFlight: false,
        nacked: false,
        rewarm: false,
      };
      this.types.set(typeUrl, st);
      if (typeUrl === TypeUrl.endpoint) this.takeRewarmOnSubscribe(); // a first response is sent anyway
      this.markDirty(typeUrl);
      this.pump();
      return;
    }
    if (req.response_nonce !== st.lastNonce) return; // stale: answers a response since superseded
    const nacked = req.error_detail !== undefined && req.error_detail !== null;
    if (st.inFlight) {
      st.inFlight = false;
      if (nacked) {
        st.nacked = true;
        st.nackedVersion = st.lastVersion;
        this.hooks.nacked?.(this.info, typeUrl, st.lastVersion ?? '', req.error_detail?.message ?? '', st.lastStamp);
      } else {
        st.nacked = false;
        // A version refused before is no longer held back: the configuration has changed since (A, B refused, C
        // taken, then back to B: B goes out again).
        st.nackedVersion = undefined;
        st.ackedVersion = st.lastVersion;
        st.acked = st.lastSent;
        this.hooks.acked?.(this.info, typeUrl, st.lastVersion ?? '');
      }
    }
    if (names.length > 0) st.explicit = true;
    const wildcard = names.includes('*') || (names.length === 0 && !st.explicit && WILDCARD_TYPES.has(typeUrl));
    const nextNames = new Set(names.filter((n) => n !== '*'));
    if (wildcard !== st.wildcard || !sameNames(st.names, nextNames)) {
      st.wildcard = wildcard;
      st.names = nextNames;
      this.markDirty(typeUrl);
    }
    this.afterReply(nacked);
  }

  protected override buildResponse(typeUrl: string, stamp: ChangeStamp | undefined): { bytes: Buffer; info: ResponseInfo } | null {
    const st = this.types.get(typeUrl);
    if (!st || !this.group()) return null;
    const scope = this.scope(typeUrl);
    const selected = new Map<string, EncodedResource>();
    if (st.wildcard) for (const [n, r] of scope) selected.set(n, r);
    else for (const n of st.names) {
      const r = scope.get(n);
      if (r) selected.set(n, r);
    }
    const version = versionOf(selected.values());
    const rewarm = st.rewarm;
    st.rewarm = false;
    if (st.lastVersion !== undefined && version === st.lastVersion && !rewarm) return null;
    if (version === st.nackedVersion) return null;
    const updatedClusters = typeUrl === TypeUrl.cluster ? [...selected.values()].filter((r) => st.lastSent.has(r.name) && st.lastSent.get(r.name)!.version !== r.version) : [];
    const addsClusters = typeUrl === TypeUrl.cluster && [...selected.keys()].some((n) => !this.clientHas(typeUrl, n));
    const nonce = this.nextNonce();
    const { DiscoveryResponse } = discoveryTypes();
    const resources = [...selected.values()].map((r) => ({ type_url: typeUrl, value: r.bytes }));
    const w = DiscoveryResponse.encode({ version_info: version, resources, type_url: typeUrl, nonce }).finish();
    st.lastNonce = nonce;
    st.lastVersion = version;
    st.lastSent = selected;
    st.lastStamp = stamp ?? this.group()?.stamp;
    st.inFlight = true;
    if (updatedClusters.length > 0) this.clustersUpdated(updatedClusters, st.lastStamp);
    if (addsClusters) this.clustersAdded();
    const bytes = Buffer.from(w.buffer, w.byteOffset, w.byteLength);
    return { bytes, info: { typeUrl, version, nonce, bytes: bytes.length, resources: selected.size, removed: 0, stamp: st.lastStamp } };
  }

  protected override clientHas(typeUrl: string, name: string): boolean {
    const st = this.types.get(typeUrl);
    if (!st) return false;
    return st.acked.has(name) || (st.inFlight && st.lastSent.has(name));
  }

  protected override resendEndpoints(edsNames: ReadonlySet<string>): void {
    const st = this.types.get(TypeUrl.endpoint);
    if (!st) return;
    for (const n of edsNames) if (st.wildcard || st.names.has(n)) st.rewarm = true;
  }

  protected override inFlight(typeUrl: string): boolean {
    return this.types.get(typeUrl)?.inFlight ?? false;
  }

  protected override isNacked(typeUrl: string): boolean {
    return this.types.get(typeUrl)?.nacked ?? false;
  }

  override config(): Record<string, TypeConfig> {
    const out: Record<string, TypeConfig> = {};
    for (const [typeUrl, st] of this.types) {
      out[typeUrl] = {
        version: st.ackedVersion ?? '',
        resources: [...st.acked.values()].map((r) => ({ name: r.name, version: r.version, resource: r.json })),
      };
    }
    return out;
  }
}

function sameNames(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}
