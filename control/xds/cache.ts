// The snapshot cache: the only mutable state between translation and serving.
//
// Proxies of the same service, kind and listener ports form a group and share
// one snapshot (and its encoded bytes). Endpoints are not part of a group's
// snapshot: ClusterLoadAssignments are the same for every proxy, so they live
// in one table versioned per cluster and a group only lists which of them it
// may see. One instance change therefore touches one CLA, and only streams
// subscribed to that cluster are woken.
//
// Every set is all-or-nothing: each resource is encoded and validated first,
// the snapshot is checked for consistency, and only then swapped in. On any
// error the last good snapshot stays and the errors are returned.
import { createHash } from 'node:crypto';
import { TypeUrl } from './discovery.ts';

export interface FieldError {
  path: string;
  message: string;
}

/** An error in a snapshot, naming the resource and the field path inside it. */
export interface SnapshotError {
  typeUrl: string;
  resource: string;
  path: string;
  message: string;
}

/** Encodes one resource (Envoy proto3 JSON) after validating it. */
export type ResourceEncoder = (typeUrl: string, json: unknown) => { bytes: Uint8Array } | { errors: FieldError[] };

export interface ResourceInput {
  name: string;
  value: unknown;
}

export interface EncodedResource {
  readonly typeUrl: string;
  readonly name: string;
  /** Content hash of the encoded bytes. */
  readonly version: string;
  readonly bytes: Uint8Array;
  /** The JSON it was encoded from, for config dumps. */
  readonly json: unknown;
}

/** What a change was caused by, for convergence and NACK attribution. */
export interface ChangeStamp {
  revision: number;
  /** Date.now() at which the change was committed to the store. */
  committedAt: number;
}

export interface ResourceSet {
  readonly version: string;
  readonly resources: ReadonlyMap<string, EncodedResource>;
}

export interface GroupSnapshot {
  readonly group: string;
  readonly stamp: ChangeStamp;
  /** Per type URL (never endpoints). */
  readonly types: ReadonlyMap<string, ResourceSet>;
  /** The ClusterLoadAssignments proxies of this group may see. */
  readonly endpointNames: ReadonlySet<string>;
}

export interface GroupSnapshotInput {
  stamp: ChangeStamp;
  /** Keyed by type URL; endpoints are set with setEndpoints. */
  resources: Record<string, ResourceInput[]>;
  endpointNames: Iterable<string>;
}

export type CacheEvent =
  | { kind: 'group'; group: string; changedTypes: ReadonlySet<string>; stamp: ChangeStamp }
  | { kind: 'endpoints'; names: ReadonlySet<string>; stamp: ChangeStamp };

/** A group snapshot encoded and checked by prepareGroup, not yet published. */
export interface PreparedGroup {
  readonly ok: true;
  readonly group: string;
  readonly stamp: ChangeStamp;
  readonly types: ReadonlyMap<string, ResourceSet>;
  readonly endpointNames: ReadonlySet<string>;
}

export type SetResult = { ok: true; changed: number } | { ok: false; errors: SnapshotError[] };

export function contentHash(parts: Iterable<string | Uint8Array>): string {
  const h = createHash('sha256');
  for (const p of parts) {
    h.update(p);
    h.update('\0');
  }
  return h.digest('base64url').slice(0, 16);
}

/** The per-type version of a set of resources: a hash of their names and versions. */
export function versionOf(resources: Iterable<Pick<EncodedResource, 'name' | 'version'>>): string {
  const entries = [...resources].map((r) => `${r.name}=${r.version}`).sort();
  return contentHash(entries);
}

export class SnapshotCache {
  readonly #encode: ResourceEncoder;
  readonly #groups = new Map<string, GroupSnapshot>();
  readonly #endpoints = new Map<string, EncodedResource>();
  /** Hash of each CLA's JSON, so re-sending an unchanged CLA costs no encoding. */
  readonly #endpointJsonHash = new Map<string, string>();
  readonly #listeners = new Set<(event: CacheEvent) => void>();
  /**
   * Encoded resources shared across groups, keyed by type, name and a hash of
   * the JSON, so the same cluster in 500 groups is encoded and stored once.
   * Reference-counted by the snapshots that hold them.
   */
  readonly #interned = new Map<string, { resource: EncodedResource; refs: number }>();
  /** Prepared snapshots not yet committed or discarded (each holds references on #interned). */
  readonly #prepared = new Set<PreparedGroup>();

  constructor(encode: ResourceEncoder) {
    this.#encode = encode;
  }

  /** Called synchronously after every successful set that changed something. */
  subscribe(listener: (event: CacheEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  group(group: string): GroupSnapshot | undefined {
    return this.#groups.get(group);
  }

  groups(): string[] {
    return [...this.#groups.keys()];
  }

  endpoint(name: string): EncodedResource | undefined {
    return this.#endpoints.get(name);
  }

  endpointNames(): string[] {
    return [...this.#endpoints.keys()];
  }

  /**
   * Replaces a group's snapshot atomically. Returns every error (resource name
   * and field path) and leaves the previous snapshot in place if any resource
   * fails validation or the snapshot is inconsistent.
   */
  setGroup(group: string, input: GroupSnapshotInput): SetResult {
    const prepared = this.prepareGroup(group, input);
    return prepared.ok ? this.commitGroup(prepared) : prepared;
  }

  /**
   * The expensive half of setGroup: encodes, validates and interns every
   * resource and checks the snapshot's consistency, without publishing it.
   * The prepared snapshot holds references on its interned resources until
   * commitGroup or discardGroup: a config change prepares its groups in
   * slices and publishes them together at the end.
   */
  prepareGroup(group: string, input: GroupSnapshotInput): PreparedGroup | { ok: false; errors: SnapshotError[] } {
    const errors: SnapshotError[] = [];
    const types = new Map<string, ResourceSet>();
    const acquired: string[] = [];
    for (const [typeUrl, list] of Object.entries(input.resources)) {
      if (typeUrl === TypeUrl.endpoint) {
        errors.push({ typeUrl, resource: '', path: 'resources', message: 'endpoints are set with setEndpoints, not in a group snapshot' });
        continue;
      }
      const resources = new Map<string, EncodedResource>();
      list.forEach((input, i) => {
        if (!input.name) {
          errors.push({ typeUrl, resource: `#${i}`, path: 'name', message: 'resource name is empty' });
          return;
        }
        if (resources.has(input.name)) {
          errors.push({ typeUrl, resource: input.name, path: 'name', message: 'duplicate resource name' });
          return;
        }
        const result = this.#intern(typeUrl, input);
        if ('errors' in result) {
          for (const e of result.errors) errors.push({ typeUrl, resource: input.name, ...e });
          return;
        }
        acquired.push(result.key);
        resources.set(input.name, result.resource);
      });
      types.set(typeUrl, { version: versionOf(resources.values()), resources });
    }
    const endpointNames = new Set(input.endpointNames);
    if (errors.length === 0) errors.push(...checkConsistency(types, endpointNames));
    if (errors.length > 0) {
      this.#release(acquired);
      return { ok: false, errors };
    }
    const prepared: PreparedGroup = { ok: true, group, stamp: input.stamp, types, endpointNames };
    this.#prepared.add(prepared);
    return prepared;
  }

  /** Publishes a prepared snapshot (cheap: a swap and the change event). */
  commitGroup(prepared: PreparedGroup): SetResult {
    if (!this.#prepared.delete(prepared)) throw new Error(`snapshot of group ${prepared.group} was already committed or discarded`);
    const { group, types, endpointNames } = prepared;
    const previous = this.#groups.get(group);
    const changedTypes = new Set<string>();
    for (const [typeUrl, set] of types) {
      if (previous?.types.get(typeUrl)?.version !== set.version) changedTypes.add(typeUrl);
    }
    for (const typeUrl of previous?.types.keys() ?? []) {
      if (!types.has(typeUrl)) changedTypes.add(typeUrl);
    }
    const scopeChanged = !previous || !sameSet(previous.endpointNames, endpointNames);
    if (scopeChanged) changedTypes.add(TypeUrl.endpoint);

    this.#groups.set(group, { group, stamp: prepared.stamp, types, endpointNames });
    if (previous) this.#release(keysOf(previous));
    if (changedTypes.size > 0) this.#emit({ kind: 'group', group, changedTypes, stamp: prepared.stamp });
    return { ok: true, changed: changedTypes.size };
  }

  /** Drops a prepared snapshot that will not be published, releasing what it held. */
  discardGroup(prepared: PreparedGroup): void {
    if (!this.#prepared.delete(prepared)) return;
    this.#release(keysOf(prepared));
  }

  /** Forgets a group (its last proxy left). Streams still in it see empty sets. */
  deleteGroup(group: string): void {
    const previous = this.#groups.get(group);
    if (!previous) return;
    this.#groups.delete(group);
    this.#release(keysOf(previous));
  }

  /**
   * Upserts and removes ClusterLoadAssignments, all or nothing. `upsert` items
   * whose bytes did not change are no-ops, so callers may pass every CLA.
   * `replaceAll` removes CLAs not in `upsert`.
   */
  setEndpoints(stamp: ChangeStamp, upsert: ResourceInput[], options: { remove?: string[]; replaceAll?: boolean } = {}): SetResult {
    const errors: SnapshotError[] = [];
    const next = new Map<string, EncodedResource>();
    const hashes = new Map<string, string>();
    for (const [i, input] of upsert.entries()) {
      if (!input.name) {
        errors.push({ typeUrl: TypeUrl.endpoint, resource: `#${i}`, path: 'cluster_name', message: 'resource name is empty' });
        continue;
      }
      const jsonHash = contentHash([JSON.stringify(input.value) ?? '']);
      hashes.set(input.name, jsonHash);
      const current = this.#endpoints.get(input.name);
      if (current && this.#endpointJsonHash.get(input.name) === jsonHash) {
        next.set(input.name, current);
        continue;
      }
      const encoded = encodeResource(this.#encode, TypeUrl.endpoint, input);
      if ('errors' in encoded) {
        for (const e of encoded.errors) errors.push({ typeUrl: TypeUrl.endpoint, resource: input.name, ...e });
        continue;
      }
      next.set(input.name, encoded.resource);
    }
    if (errors.length > 0) return { ok: false, errors };

    const changed = new Set<string>();
    for (const [name, resource] of next) {
      if (this.#endpoints.get(name)?.version !== resource.version) changed.add(name);
      this.#endpoints.set(name, resource);
      this.#endpointJsonHash.set(name, hashes.get(name)!);
    }
    const removals = options.replaceAll ? [...this.#endpoints.keys()].filter((n) => !next.has(n)) : (options.remove ?? []);
    for (const name of removals) {
      this.#endpointJsonHash.delete(name);
      if (this.#endpoints.delete(name)) changed.add(name);
    }
    if (changed.size > 0) this.#emit({ kind: 'endpoints', names: changed, stamp });
    return { ok: true, changed: changed.size };
  }

  #intern(typeUrl: string, input: ResourceInput): { key: string; resource: EncodedResource } | { errors: FieldError[] } {
    const key = `${typeUrl}\0${input.name}\0${contentHash([JSON.stringify(input.value) ?? ''])}`;
    const hit = this.#interned.get(key);
    if (hit) {
      hit.refs++;
      return { key, resource: hit.resource };
    }
    const encoded = encodeResource(this.#encode, typeUrl, input);
    if ('errors' in encoded) return encoded;
    internKeys.set(encoded.resource, key);
    this.#interned.set(key, { resource: encoded.resource, refs: 1 });
    return { key, resource: encoded.resource };
  }

  #release(keys: Iterable<string>): void {
    for (const key of keys) {
      const entry = this.#interned.get(key);
      if (entry && --entry.refs <= 0) this.#interned.delete(key);
    }
  }

  #emit(event: CacheEvent): void {
    for (const listener of this.#listeners) listener(event);
  }
}

const internKeys = new WeakMap<EncodedResource, string>();

function keysOf(snapshot: Pick<GroupSnapshot, 'types'>): string[] {
  const keys: string[] = [];
  for (const set of snapshot.types.values()) {
    for (const r of set.resources.values()) {
      const key = internKeys.get(r);
      if (key) keys.push(key);
    }
  }
  return keys;
}

function encodeResource(encode: ResourceEncoder, typeUrl: string, input: ResourceInput): { resource: EncodedResource } | { errors: FieldError[] } {
  let result: ReturnType<ResourceEncoder>;
  try {
    result = encode(typeUrl, input.value);
  } catch (err) {
    return { errors: [{ path: '', message: `encoder failed: ${(err as Error).message}` }] };
  }
  if ('errors' in result) return result;
  const bytes = result.bytes;
  const resource: EncodedResource = { typeUrl, name: input.name, version: contentHash([bytes]), bytes, json: input.value };
  return { resource };
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

/**
 * go-control-plane's consistency rule: every EDS cluster's CLA is in the
 * group's endpoint names and every RDS name a listener uses is in the routes.
 */
export function checkConsistency(types: ReadonlyMap<string, ResourceSet>, endpointNames: ReadonlySet<string>): SnapshotError[] {
  const errors: SnapshotError[] = [];
  for (const cluster of types.get(TypeUrl.cluster)?.resources.values() ?? []) {
    const json = cluster.json as { type?: unknown; eds_cluster_config?: { service_name?: string } } | undefined;
    const isEds = json?.type === 'EDS' || json?.type === 3 || json?.eds_cluster_config !== undefined;
    if (!isEds) continue;
    const edsName = json?.eds_cluster_config?.service_name || cluster.name;
    if (!endpointNames.has(edsName)) {
      errors.push({ typeUrl: TypeUrl.cluster, resource: cluster.name, path: 'eds_cluster_config.service_name', message: `ClusterLoadAssignment "${edsName}" is not in the snapshot` });
    }
  }
  const routes = types.get(TypeUrl.route)?.resources;
  for (const listener of types.get(TypeUrl.listener)?.resources.values() ?? []) {
    for (const ref of findRdsNames(listener.json, '')) {
      if (!routes?.has(ref.name)) {
        errors.push({ typeUrl: TypeUrl.listener, resource: listener.name, path: ref.path, message: `RouteConfiguration "${ref.name}" is not in the snapshot` });
      }
    }
  }
  return errors;
}

function findRdsNames(json: unknown, path: string): { name: string; path: string }[] {
  if (json === null || typeof json !== 'object') return [];
  if (Array.isArray(json)) return json.flatMap((v, i) => findRdsNames(v, `${path}[${i}]`));
  const out: { name: string; path: string }[] = [];
  for (const [key, value] of Object.entries(json)) {
    const here = path ? `${path}.${key}` : key;
    if (key === 'rds' && value && typeof value === 'object' && typeof (value as { route_config_name?: unknown }).route_config_name === 'string') {
      out.push({ name: (value as { route_config_name: string }).route_config_name, path: `${here}.route_config_name` });
    } else {
      out.push(...findRdsNames(value, here));
    }
  }
  return out;
}
