// Instance liveness over the store. Registrations are durable (kind
// "Instance"), so they survive a restart; heartbeats are memory only, so a
// busy mesh does not write to disk every few seconds. An instance whose TTL
// lapses leaves the live set (and EDS) until it heartbeats again; one that
// stays silent for `reapAfterMs` is deregistered.

import { randomBytes } from 'node:crypto';
import { validateInstanceRegistration, type InstanceRegistration } from '../model/instance.ts';
import { fail, ok, type Result } from '../model/result.ts';
import type { Instance, InstanceHealth } from '../model/types.ts';
import type { Store } from '../store/store.ts';

export const INSTANCE_KIND = 'Instance';

export interface InstanceChange {
  type: 'added' | 'updated' | 'removed';
  /** Why: registered, reregistered, deregistered, health, expired (TTL lapsed), revived (heartbeat after expiry), reaped. */
  reason: 'registered' | 'reregistered' | 'deregistered' | 'health' | 'expired' | 'revived' | 'reaped';
  instance: Instance;
}

export interface RegistryOptions {
  /** Milliseconds since the epoch; injectable so tests drive TTLs without waiting. */
  now?: () => number;
  newId?: (service: string) => string;
  /** Deregister instances whose TTL lapsed this long ago (default one hour). */
  reapAfterMs?: number;
  /** Store actor for registry commits (default "registry"). */
  actor?: string;
}

export interface Registry {
  /** Validates and stores a registration. Same service, address and port as an existing one: that instance is updated and keeps its id. */
  register(service: string, namespace: string, input: unknown): Promise<Result<Instance>>;
  /** Renews the TTL (memory only); revives a lapsed instance. Undefined when the id is unknown. */
  heartbeat(id: string): Instance | undefined;
  /** False when the id is unknown. */
  deregister(id: string): Promise<boolean>;
  /** Persists the health (draining survives a restart). Undefined when the id is unknown. */
  setHealth(id: string, health: InstanceHealth): Promise<Instance | undefined>;
  /** A registered instance, live or lapsed. */
  get(id: string): Instance | undefined;
  /** When the instance last registered or sent a heartbeat (ms since the epoch); undefined for an unknown id. Memory only: a restart resets it to the reload time. */
  lastSeen(id: string): number | undefined;
  /** Whether the instance's TTL has not lapsed; false for an unknown id. */
  isLive(id: string): boolean;
  /** Registered instances whose TTL has not lapsed, sorted by namespace, service, id. */
  liveInstances(): Instance[];
  /** Applies TTL expiry (and reaping) as of now(); returns the changes it made, also sent to listeners. */
  sweep(): Promise<InstanceChange[]>;
  onChange(listener: (change: InstanceChange) => void): () => void;
  /** Sweeps every intervalMs until stop(); the timer does not keep the process alive. */
  start(intervalMs?: number): void;
  stop(): void;
}

interface Entry {
  instance: Instance;
  lastSeen: number;
  live: boolean;
}

export function createRegistry(store: Store, opts: RegistryOptions = {}): Registry {
  const now = opts.now ?? Date.now;
  const reapAfterMs = opts.reapAfterMs ?? 3_600_000;
  const actor = opts.actor ?? 'registry';
  const newId = opts.newId ?? ((service: string) => `${service}-${randomBytes(5).toString('hex')}`);
  const entries = new Map<string, Entry>();
  /** endpointKey -> instance id */
  const byEndpoint = new Map<string, string>();
  const listeners = new Set<(change: InstanceChange) => void>();
  let timer: NodeJS.Timeout | undefined;
  // Writes to one endpoint (service, address, port) run one at a time, so two
  // registrations of it cannot both mint an id; different endpoints proceed
  // concurrently and share the store's fsyncs.
  const queues = new Map<string, Promise<unknown>>();
  const exclusive = <T>(key: string, task: () => Promise<T>): Promise<T> => {
    const run = (queues.get(key) ?? Promise.resolve()).then(task);
    const settled = run.catch(() => undefined);
    queues.set(key, settled);
    void settled.then(() => {
      if (queues.get(key) === settled) queues.delete(key);
    });
    return run;
  };
  /** exclusive() over several keys at once: runs after every task queued on any of them, and before any queued later. */
  const exclusiveAll = <T>(keys: string[], task: () => Promise<T>): Promise<T> => {
    const run = Promise.all(keys.map((k) => queues.get(k))).then(task);
    const settled = run.catch(() => undefined);
    for (const key of keys) queues.set(key, settled);
    void settled.then(() => {
      for (const key of keys) if (queues.get(key) === settled) queues.delete(key);
    });
    return run;
  };
  const endpointKey = (i: { namespace: string; service: string; address: string; port: number }) => `${i.namespace}/${i.service}/${i.address}/${i.port}`;
  /** Runs a write on an existing instance under its endpoint's key; undefined-returning when the id is unknown. */
  const onInstance = <T>(id: string, unknown: T, task: () => Promise<T>): Promise<T> => {
    const entry = entries.get(id);
    return entry ? exclusive(endpointKey(entry.instance), task) : Promise.resolve(unknown);
  };

  // After a restart every live registration gets a fresh TTL window: the
  // control plane was away, not the instances. One that had lapsed before
  // stays out until it heartbeats, and is reaped on its original schedule.
  for (const o of store.list(INSTANCE_KIND)) {
    const instance = o.spec as Instance;
    const lapsedAt = instance.lapsedAt === undefined ? NaN : Date.parse(instance.lapsedAt);
    if (Number.isNaN(lapsedAt)) entries.set(o.name, { instance, lastSeen: now(), live: true });
    else entries.set(o.name, { instance, lastSeen: lapsedAt - instance.ttlSeconds * 1000, live: false });
    byEndpoint.set(endpointKey(instance), instance.id);
  }

  const emit = (change: InstanceChange) => {
    for (const l of [...listeners]) {
      try {
        l(change);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  };
  const lapsed = (e: Entry, at: number) => e.instance.ttlSeconds > 0 && at - e.lastSeen > e.instance.ttlSeconds * 1000;
  const persist = (instance: Instance, summary: string) =>
    store.commit([{ op: 'put', kind: INSTANCE_KIND, namespace: instance.namespace, name: instance.id, spec: instance }], { actor, summary });

  async function remove(id: string, reason: 'deregistered' | 'reaped'): Promise<boolean> {
    const entry = entries.get(id);
    if (reason === 'reaped' && (entry?.live ?? true)) return false; // a heartbeat revived it meanwhile
    if (!entry) return false;
    const { instance } = entry;
    await store.commit([{ op: 'delete', kind: INSTANCE_KIND, namespace: instance.namespace, name: id }], {
      actor,
      summary: `${reason === 'reaped' ? 'reap lapsed' : 'deregister'} instance ${id} of ${instance.namespace}/${instance.service}`,
    });
    entries.delete(id);
    byEndpoint.delete(endpointKey(instance));
    if (entry.live) emit({ type: 'removed', reason, instance });
    return true;
  }

  async function registerNow(service: string, namespace: string, r: InstanceRegistration): Promise<Result<Instance>> {
    if (!store.get('Service', namespace, service)) {
      return fail([{ path: 'service', message: `unknown service ${namespace}/${service}: register the service first` }]);
    }
    const existing = entries.get(byEndpoint.get(endpointKey({ namespace, service, address: r.address, port: r.port })) ?? '');
    let id = existing?.instance.id;
    while (id === undefined || (!existing && entries.has(id))) id = newId(service);
    const instance: Instance = { id, service, namespace, address: r.address, port: r.port, labels: r.labels, health: r.health, ttlSeconds: r.ttlSeconds };
    if (r.zone !== undefined) instance.zone = r.zone;
    await persist(instance, `${existing ? 'reregister' : 'register'} instance ${id} of ${namespace}/${service} at ${r.address}:${r.port}`);
    const wasLive = existing?.live ?? false;
    entries.set(id, { instance, lastSeen: now(), live: true });
    byEndpoint.set(endpointKey(instance), id);
    emit(wasLive ? { type: 'updated', reason: 'reregistered', instance } : { type: 'added', reason: existing ? 'reregistered' : 'registered', instance });
    return ok(instance);
  }

  const registry: Registry = {
    async register(service, namespace, input) {
      const valid = validateInstanceRegistration(input);
      if (!valid.ok) return valid;
      const r = valid.value;
      return exclusive(endpointKey({ namespace, service, address: r.address, port: r.port }), () => registerNow(service, namespace, r));
    },

    heartbeat(id) {
      const entry = entries.get(id);
      if (!entry) return undefined;
      entry.lastSeen = now();
      if (!entry.live) {
        entry.live = true;
        if (entry.instance.lapsedAt !== undefined) {
          // Heartbeats stay memory-only; a revival is rare enough to be written (in the background: a crash before it lands only leaves the instance out until its next heartbeat).
          const { lapsedAt: _, ...instance } = entry.instance;
          entry.instance = instance;
          void exclusive(endpointKey(instance), async () => {
            if (entries.get(id) !== entry || !entry.live || entry.instance !== instance) return;
            await persist(instance, `instance ${id} of ${instance.namespace}/${instance.service} heartbeats again`);
          }).catch((e: Error) => process.emitWarning(`registry: recording the revival of ${id} failed: ${e.message}`));
        }
        emit({ type: 'added', reason: 'revived', instance: entry.instance });
      }
      return entry.instance;
    },

    deregister: (id) => onInstance(id, false, () => remove(id, 'deregistered')),

    setHealth: (id, health) => onInstance(id, undefined, async (): Promise<Instance | undefined> => {
      const entry = entries.get(id);
      if (!entry) return undefined;
      if (entry.instance.health === health) return entry.instance;
      const instance: Instance = { ...entry.instance, health };
      await persist(instance, `set instance ${id} of ${instance.namespace}/${instance.service} ${health}`);
      const current = entries.get(id);
      if (!current) return undefined;
      current.instance = instance;
      if (current.live) emit({ type: 'updated', reason: 'health', instance });
      return instance;
    }),

    get: (id) => entries.get(id)?.instance,
    lastSeen: (id) => entries.get(id)?.lastSeen,
    isLive: (id) => entries.get(id)?.live ?? false,

    liveInstances() {
      return [...entries.values()]
        .filter((e) => e.live)
        .map((e) => e.instance)
        .sort((a, b) => (a.namespace + '\0' + a.service + '\0' + a.id < b.namespace + '\0' + b.service + '\0' + b.id ? -1 : 1));
    },

    async sweep() {
      const at = now();
      const changes: InstanceChange[] = [];
      const reap: string[] = [];
      const expired: [string, Entry][] = [];
      for (const [id, entry] of entries) {
        if (entry.live && lapsed(entry, at)) {
          entry.live = false;
          const change: InstanceChange = { type: 'removed', reason: 'expired', instance: entry.instance };
          changes.push(change);
          emit(change);
          expired.push([id, entry]);
        }
        if (!entry.live && at - entry.lastSeen - entry.instance.ttlSeconds * 1000 > reapAfterMs) reap.push(id);
      }
      // The expiries are written (heartbeats never are), so a restart keeps them: one revision for the sweep, not
      // one per instance. A partition that lapsed a thousand instances made a thousand revisions, which pushed the
      // operators' own out of the 10,000 `weft history` keeps.
      if (expired.length > 0) {
        await exclusiveAll([...new Set(expired.map(([, entry]) => endpointKey(entry.instance)))], async () => {
          const lapsedNow = expired
            .filter(([id, entry]) => entries.get(id) === entry && !entry.live) // not revived or gone meanwhile
            .map(([id, entry]) => ({ id, entry, instance: { ...entry.instance, lapsedAt: new Date(entry.lastSeen + entry.instance.ttlSeconds * 1000).toISOString() } as Instance }));
          if (lapsedNow.length === 0) return;
          const named = lapsedNow.slice(0, 5).map(({ id, instance }) => `${id} of ${instance.namespace}/${instance.service}`).join(', ');
          const summary = lapsedNow.length === 1
            ? `instance ${named} lapsed: no heartbeat for ${lapsedNow[0]!.instance.ttlSeconds} s`
            : `${lapsedNow.length} instances lapsed, no heartbeat within their TTL: ${named}${lapsedNow.length > 5 ? ', ...' : ''}`;
          await store.commit(lapsedNow.map(({ instance }) => ({ op: 'put' as const, kind: INSTANCE_KIND, namespace: instance.namespace, name: instance.id, spec: instance })), { actor, summary });
          for (const { entry, instance } of lapsedNow) entry.instance = instance;
        });
      }
      for (const id of reap) {
        const instance = entries.get(id)?.instance;
        if (instance && (await exclusive(endpointKey(instance), () => remove(id, 'reaped')))) changes.push({ type: 'removed', reason: 'reaped', instance });
      }
      return changes;
    },

    onChange(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },

    start(intervalMs = 1000) {
      if (timer) return;
      timer = setInterval(() => {
        registry.sweep().catch((e: Error) => process.emitWarning(`registry sweep failed: ${e.message}`));
      }, intervalMs);
      timer.unref();
    },

    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
  return registry;
}
