// Incremental xDS: per resource versions. Only resources whose version differs
// from what the client holds are sent; resources leaving the proxy's scope are
// sent as removed_resources. Subscription changes are honoured whatever the
// nonce; a reconnect's initial_resource_versions seeds what the client holds,
// so it gets only what differs. A NACKed resource version is not resent
// until the configuration changes. After a NACK the server does not know what
// the client holds of the response's resources (a client may take the good
// ones of a response and refuse the bad), so it forgets their versions: once
// one of them changes or goes, the next response carries the others again in
// their current version (a refused one included), and a client that
// subscribes to one again gets it.
// A refused resource that the client unsubscribes from, or that leaves its
// scope, is no longer refused: once none is left the type is not NACKED.
import type { ChangeStamp, EncodedResource } from './cache.ts';
import { versionOf } from './cache.ts';
import type { DeltaDiscoveryRequest } from './discovery.ts';
import { discoveryTypes, TypeUrl, WILDCARD_TYPES } from './discovery.ts';
import type { ResponseInfo, TypeConfig } from './stream.ts';
import { AdsStream } from './stream.ts';

/** clientVersions' value for a resource the client may hold in some version (it NACKed a response carrying it). */
const UNKNOWN = '';

interface InFlightResponse {
  systemVersion: string;
  sent: Map<string, string>;
  stamp?: ChangeStamp;
}

interface DeltaTypeState {
  wildcard: boolean;
  names: Set<string>;
  /** What the client holds, name -> version (assumed applied once sent; UNKNOWN after a NACK). */
  clientVersions: Map<string, string>;
  /**
   * Versions the client rejected, not sent again until the configuration changes, each with the NACK that refused
   * it (resources refused together are resent together once one of them changes or goes).
   */
  nackedVersions: Map<string, { version: string; nack: number }>;
  /** NACKs so far on this type (numbers the refusals). */
  nacks: number;
  inFlight: Map<string, InFlightResponse>;
  nacked: boolean;
  /** Subscribed names the client was told do not exist (in removed_resources), so it is told once. */
  toldAbsent: Set<string>;
  /** Names unsubscribed from while a wildcard subscription stands: the next response says what became of each. */
  unsubscribedUnderWildcard: Set<string>;
}

export class DeltaStream extends AdsStream<DeltaTypeState> {

  /** Applies one DeltaDiscoveryRequest. */
  handleRequest(req: DeltaDiscoveryRequest): void {
    const typeUrl = req.type_url ?? '';
    if (!typeUrl) return;
    const subscribe = req.resource_names_subscribe ?? [];
    const unsubscribe = req.resource_names_unsubscribe ?? [];
    let st = this.types.get(typeUrl);
    let changed = false;
    if (!st) {
      const initial = Object.entries(req.initial_resource_versions ?? {});
      if (initial.length > 0) this.hooks.resumed?.(this.info, typeUrl, versionOf(initial.map(([name, version]) => ({ name, version }))));
      st = {
        // The legacy wildcard: a first request naming nothing, neither to subscribe nor to unsubscribe (xds_protocol).
        wildcard: subscribe.includes('*') || (subscribe.length === 0 && unsubscribe.length === 0 && WILDCARD_TYPES.has(typeUrl)),
        names: new Set(),
        clientVersions: new Map(initial),
        nackedVersions: new Map(),
        nacks: 0,
        inFlight: new Map(),
        nacked: false,
        toldAbsent: new Set(),
        unsubscribedUnderWildcard: new Set(),
      };
      this.types.set(typeUrl, st);
      if (typeUrl === TypeUrl.endpoint) this.resendEndpoints(this.takeRewarmOnSubscribe());
      changed = true;
    } else {
      // A later subscribe to a name the client may already hold: it may have forgotten it, so it is sent again
      // (xds_protocol: the server "must still provide those resources"). Only a stream's first request says what it holds.
      // That holds for a version it refused too: asking again is the client's own act, not a loop.
      for (const n of subscribe) {
        if (n === '*') continue;
        st.clientVersions.delete(n);
        st.nackedVersions.delete(n);
        st.toldAbsent.delete(n);
        changed = true;
      }
    }
    for (const n of subscribe) {
      if (n === '*') {
        if (!st.wildcard) changed = true;
        st.wildcard = true;
      } else if (!st.names.has(n)) {
        st.names.add(n);
        changed = true;
      }
    }
    for (const n of unsubscribe) {
      if (n === '*') {
        if (st.wildcard) changed = true;
        st.wildcard = false;
      } else if (st.names.delete(n)) {
        // the client forgot it; it must be sent again if re-subscribed
        st.clientVersions.delete(n);
        st.nackedVersions.delete(n);
        // Under a wildcard the answer says what became of it: in resources if the wildcard covers it, else in
        // removed_resources (xds_protocol "Unsubscribing from Resources"), also when it never existed.
        if (st.wildcard) st.unsubscribedUnderWildcard.add(n);
        st.toldAbsent.delete(n);
        changed = true;
      }
    }
    if (!st.wildcard) {
      for (const n of st.clientVersions.keys()) if (!st.names.has(n)) st.clientVersions.delete(n);
    }

    let nacked = false;
    const nonce = req.response_nonce ?? '';
    const answered = nonce ? st.inFlight.get(nonce) : undefined;
    if (answered) {
      st.inFlight.delete(nonce);
      if (req.error_detail !== undefined && req.error_detail !== null) {
        nacked = true;
        st.nacked = true;
        st.nacks++;
        for (const [name, version] of answered.sent) {
          st.nackedVersions.set(name, { version, nack: st.nacks });
          // Taken or refused, the server cannot tell: neither the old version nor this one is assumed
          // (still listed, so a removal from scope is sent).
          if (st.clientVersions.get(name) === version) st.clientVersions.set(name, UNKNOWN);
        }
        this.hooks.nacked?.(this.info, typeUrl, answered.systemVersion, req.error_detail?.message ?? '', answered.stamp);
      } else {
        st.nacked = false;
        // Everything the response carried was taken, a version refused before included.
        for (const name of answered.sent.keys()) st.nackedVersions.delete(name);
        this.hooks.acked?.(this.info, typeUrl, answered.systemVersion);
      }
    }
    if (!nacked) this.#settleNack(typeUrl, st);
    if (changed) this.markDirty(typeUrl);
    this.afterReply(nacked);
  }

  protected override buildResponse(typeUrl: string, stamp: ChangeStamp | undefined): { bytes: Buffer; info: ResponseInfo } | null {
    const st = this.types.get(typeUrl);
    if (!st || !this.group()) return null;
    const scope = this.scope(typeUrl);
    const selected = new Map<string, EncodedResource>();
    if (st.wildcard) for (const [n, r] of scope) selected.set(n, r);
    for (const n of st.names) {
      const r = scope.get(n);
      if (r) selected.set(n, r);
    }
    // NACKs one of whose refused resources changed or left: the configuration moved on from what that NACK
    // refused, so its other resources go out again (below).
    const revisited = new Set<number>();
    let outOfScope = false;
    for (const [n, refused] of st.nackedVersions) {
      if (selected.has(n)) continue;
      st.nackedVersions.delete(n);
      revisited.add(refused.nack);
      outOfScope = true;
    }
    if (outOfScope) this.#settleNack(typeUrl, st);
    const send: EncodedResource[] = [];
    const stillRefused: EncodedResource[] = [];
    for (const r of selected.values()) {
      if (st.clientVersions.get(r.name) === r.version) continue;
      const refused = st.nackedVersions.get(r.name);
      if (refused?.version === r.version) {
        if (st.clientVersions.get(r.name) === UNKNOWN) stillRefused.push(r);
        continue;
      }
      if (refused) revisited.add(refused.nack);
      send.push(r);
    }
    const removed = [...st.clientVersions.keys()].filter((n) => !selected.has(n));
    for (const n of st.unsubscribedUnderWildcard) {
      const r = selected.get(n);
      if (!r) {
        if (!removed.includes(n)) removed.push(n);
      } else if (!send.includes(r) && !stillRefused.includes(r)) send.push(r);
    }
    st.unsubscribedUnderWildcard.clear();
    // A name subscribed to that does not exist (for this proxy) is listed in removed_resources once, so the
    // client need not wait out a timeout (xds_protocol "Knowing When a Requested Resource Does Not Exist").
    for (const n of st.names) if (!selected.has(n) && !st.clientVersions.has(n) && !st.toldAbsent.has(n)) removed.push(n);
    for (const n of removed) if (st.names.has(n)) st.toldAbsent.add(n);
    for (const r of send) st.toldAbsent.delete(r.name);
    if (send.length === 0 && removed.length === 0) return null;
    // A NACKed response one of whose resources changed or left (a fix, most likely): the rest of it goes out
    // again in its current version, as a SotW response would carry the whole set. The client may have taken all
    // of it, some (Envoy's CDS and LDS take each good resource) or none, and the server cannot tell which. A
    // refused resource is not resent with unrelated changes: were one still bad in every response, a client
    // that stops at the first bad resource (Envoy's EDS watches, in order) might take none of them.
    for (const r of stillRefused) if (revisited.has(st.nackedVersions.get(r.name)!.nack)) send.push(r);
    const systemVersion = versionOf(selected.values());
    const nonce = this.nextNonce();
    const updatedClusters = typeUrl === TypeUrl.cluster ? send.filter((r) => st.clientVersions.has(r.name)) : [];
    const addsClusters = typeUrl === TypeUrl.cluster && updatedClusters.length < send.length;
    const sent = new Map<string, string>();
    for (const r of send) {
      sent.set(r.name, r.version);
      st.clientVersions.set(r.name, r.version);
    }
    for (const n of removed) st.clientVersions.delete(n);
    const effectiveStamp = stamp ?? this.group()?.stamp;
    st.inFlight.set(nonce, { systemVersion, sent, stamp: effectiveStamp });
    if (updatedClusters.length > 0) this.clustersUpdated(updatedClusters, effectiveStamp);
    if (addsClusters) this.clustersAdded();

    const { DeltaDiscoveryResponse } = discoveryTypes();
    const w = DeltaDiscoveryResponse.encode({
      system_version_info: systemVersion,
      resources: send.map((r) => ({ name: r.name, version: r.version, resource: { type_url: typeUrl, value: r.bytes } })),
      type_url: typeUrl,
      removed_resources: removed,
      nonce,
    }).finish();
    const bytes = Buffer.from(w.buffer, w.byteOffset, w.byteLength);
    return { bytes, info: { typeUrl, version: systemVersion, nonce, bytes: bytes.length, resources: send.length, removed: removed.length, stamp: effectiveStamp } };
  }

  /** A NACKed type whose refused resources are all gone (unsubscribed or out of scope) is NACKED no more. */
  #settleNack(typeUrl: string, st: DeltaTypeState): void {
    if (!st.nacked || st.nackedVersions.size > 0) return;
    st.nacked = false;
    this.hooks.nackCleared?.(this.info, typeUrl);
  }

  protected override clientHas(typeUrl: string, name: string): boolean {
    return this.types.get(typeUrl)?.clientVersions.has(name) ?? false;
  }

  protected override resendEndpoints(edsNames: ReadonlySet<string>): void {
    const st = this.types.get(TypeUrl.endpoint);
    if (!st) return;
    for (const n of edsNames) if (st.clientVersions.get(n) !== UNKNOWN) st.clientVersions.delete(n);
  }

  protected override inFlight(typeUrl: string): boolean {
    return (this.types.get(typeUrl)?.inFlight.size ?? 0) > 0;
  }

  protected override isNacked(typeUrl: string): boolean {
    return this.types.get(typeUrl)?.nacked ?? false;
  }

  override config(): Record<string, TypeConfig> {
    const out: Record<string, TypeConfig> = {};
    for (const [typeUrl, st] of this.types) {
      const scope = this.scope(typeUrl);
      const resources: TypeConfig['resources'] = [];
      const known = [...st.clientVersions].filter(([, version]) => version !== UNKNOWN);
      for (const [name, version] of known) {
        const r = scope.get(name);
        resources.push({ name, version, resource: r && r.version === version ? r.json : null });
      }
      out[typeUrl] = { version: versionOf(known.map(([name, version]) => ({ name, version }))), resources };
    }
    return out;
  }
}
