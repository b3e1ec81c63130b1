// The WASI calls proxy-wasm-cpp-host gives modules, under both
// `wasi_snapshot_preview1` and `wasi_unstable`: stdout/stderr go to the log
// (info/error), clocks and random work, the environment comes from the VM
// configuration, there are no files, and proc_exit fails the VM.

import { LogLevel } from './abi.ts';
import { encodeUtf8, type GuestMemory } from './memory.ts';
import { randomFillSync } from 'node:crypto';

const ESUCCESS = 0;
const EBADF = 8;
const EFAULT = 21;
const EINVAL = 28;
const ENOENT = 44;
const ENOSYS = 52;

export interface WasiHost {
  memory(): GuestMemory;
  log(level: number, message: string): void;
  realtimeNs(): bigint;
  monotonicNs(): bigint;
  environment: readonly [string, string][];
}

/** Thrown by proc_exit; the VM treats it like a trap. */
export class ProcExit extends Error {
  constructor(readonly code: number) {
    super(`module called proc_exit(${code})`);
  }
}

export function wasiImports(host: WasiHost): Record<string, (...args: never[]) => unknown> {
  const envEntries = (): Uint8Array[] => host.environment.map(([k, v]) => encodeUtf8(`${k}=${v}\0`));
  return {
    fd_write(fd: number, iovs: number, iovsLen: number, nwrittenPtr: number): number {
      const level = fd === 1 ? LogLevel.info : fd === 2 ? LogLevel.error : -1;
      if (level < 0) return EBADF;
      const mem = host.memory();
      const parts: Uint8Array[] = [];
      for (let i = 0; i < iovsLen; i++) {
        const buf = mem.readU32(iovs + i * 8);
        const len = mem.readU32(iovs + i * 8 + 4);
        if (buf === undefined || len === undefined) return EFAULT;
        const bytes = mem.read(buf, len);
        if (bytes === undefined) return EFAULT;
        parts.push(bytes);
      }
      const text = Buffer.concat(parts).toString('utf8');
      if (text.length > 0) host.log(level, text.endsWith('\n') ? text.slice(0, -1) : text);
      return mem.writeU32(nwrittenPtr, Buffer.byteLength(text)) ? ESUCCESS : EFAULT;
    },
    fd_read: () => ENOSYS,
    fd_seek: () => ESUCCESS,
    fd_close: () => ESUCCESS,
    fd_fdstat_get(fd: number, statPtr: number): number {
      if (fd !== 1 && fd !== 2) return EBADF;
      const stat = new Uint8Array(24);
      // fs_rights_base = FD_WRITE, as cpp-host reports for stdout/stderr.
      new DataView(stat.buffer).setBigUint64(8, 64n, true);
      return host.memory().write(statPtr, stat) ? ESUCCESS : EFAULT;
    },
    fd_fdstat_set_flags: () => ENOSYS,
    fd_prestat_get: () => EBADF,
    fd_prestat_dir_name: () => ENOSYS,
    path_open: () => ENOENT,
    environ_sizes_get(countPtr: number, sizePtr: number): number {
      const entries = envEntries();
      const size = entries.reduce((n, e) => n + e.length, 0);
      const mem = host.memory();
      return mem.writeU32(countPtr, entries.length) && mem.writeU32(sizePtr, size) ? ESUCCESS : EFAULT;
    },
    environ_get(arrayPtr: number, bufPtr: number): number {
      const mem = host.memory();
      for (const entry of envEntries()) {
        if (!mem.writeU32(arrayPtr, bufPtr) || !mem.write(bufPtr, entry)) return EFAULT;
        arrayPtr += 4;
        bufPtr += entry.length;
      }
      return ESUCCESS;
    },
    args_sizes_get(argcPtr: number, sizePtr: number): number {
      const mem = host.memory();
      return mem.writeU32(argcPtr, 0) && mem.writeU32(sizePtr, 0) ? ESUCCESS : EFAULT;
    },
    args_get: () => ESUCCESS,
    clock_time_get(clockId: number, _precision: bigint, timePtr: number): number {
      const now = clockId === 0 ? host.realtimeNs() : clockId === 1 ? host.monotonicNs() : undefined;
      if (now === undefined) return EINVAL;
      return host.memory().writeU64(timePtr, now) ? ESUCCESS : EFAULT;
    },
    clock_res_get(clockId: number, resPtr: number): number {
      if (clockId !== 0 && clockId !== 1) return EINVAL;
      return host.memory().writeU64(resPtr, 1n) ? ESUCCESS : EFAULT;
    },
    random_get(bufPtr: number, len: number): number {
      const bytes = new Uint8Array(len >>> 0);
      randomFillSync(bytes);
      return host.memory().write(bufPtr, bytes) ? ESUCCESS : EFAULT;
    },
    poll_oneoff: () => ENOSYS,
    sched_yield: () => ESUCCESS,
    proc_exit(code: number): never {
      throw new ProcExit(code);
    },
  };
}
