// Admin /cpuprofiler and /heapprofiler, as Envoy's (POST ?enable=y starts,
// ?enable=n stops and writes the profile), on V8's own profilers through an
// in-process inspector session: a .cpuprofile (sampled call stacks, wasm
// filters' functions included) and a .heapprofile (sampled allocations by
// stack, those already collected included), both opened by Chrome DevTools
// or VS Code. Nothing runs, and no
// inspector session exists, until a profile is asked for.

import { Session } from 'node:inspector/promises';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export type ProfileKind = 'cpu' | 'heap';

export class Profilers {
  #session: Session | undefined;
  readonly #running = new Set<ProfileKind>();

  /** `dir` is where profiles are written (weft sidecar --profile-path; default the system temp dir); `label` starts each file name. */
  constructor(
    readonly dir: string,
    readonly label: string,
  ) {}

  running(kind: ProfileKind): boolean {
    return this.#running.has(kind);
  }

  async start(kind: ProfileKind): Promise<void> {
    if (this.#running.has(kind)) throw new ProfilerError(`the ${kind} profiler is already running (POST ?enable=n stops it and writes the profile)`);
    const session = this.#connect();
    if (kind === 'cpu') {
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    } else {
      await session.post('HeapProfiler.enable');
      // Collected objects stay in the profile: what a request allocates (the garbage that sets the scavenge
      // rate) is what a proxy's heap profile is for, not only what is still alive when it stops.
      await session.post('HeapProfiler.startSampling', { samplingInterval: 32 * 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    }
    this.#running.add(kind);
  }

  /** Stops the profiler and writes its profile; resolves with the file written. */
  async stop(kind: ProfileKind): Promise<string> {
    if (!this.#running.has(kind)) throw new ProfilerError(`the ${kind} profiler is not running (POST ?enable=y starts it)`);
    const session = this.#connect();
    this.#running.delete(kind);
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    let file: string;
    let profile: unknown;
    if (kind === 'cpu') {
      ({ profile } = await session.post('Profiler.stop'));
      await session.post('Profiler.disable');
      file = join(this.dir, `${this.label}-${stamp}.cpuprofile`);
    } else {
      ({ profile } = await session.post('HeapProfiler.stopSampling'));
      await session.post('HeapProfiler.disable');
      file = join(this.dir, `${this.label}-${stamp}.heapprofile`);
    }
    await writeFile(file, JSON.stringify(profile));
    if (this.#running.size === 0) this.close();
    return file;
  }

  close(): void {
    this.#session?.disconnect();
    this.#session = undefined;
    this.#running.clear();
  }

  #connect(): Session {
    if (!this.#session) {
      this.#session = new Session();
      this.#session.connect();
    }
    return this.#session;
  }
}

/** A request the profiler's state refuses (already running, not running): the admin answers 400 with its message. */
export class ProfilerError extends Error {}
