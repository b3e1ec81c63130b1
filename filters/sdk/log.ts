// Logging that costs one integer compare when the level is off. The host's
// level is read at VM start, configure, each tick and each new stream
// (`refreshLogLevel`), not per call, so a level changed at run time applies
// from the next request. Guard expensive messages with
// `logEnabled(LogLevel.Debug)` so the string is never built.

import { proxy_get_log_level, proxy_log } from './imports';
import { LogLevel, WasmResult } from './status';
import { Utf8Writer } from './encoding';

let currentLevel: i32 = LogLevel.Info;
const LEVEL_SLOT: usize = memory.data(4);

/** Re-reads the host's log level; hosts without the call keep the last one. */
export function refreshLogLevel(): void {
  if (proxy_get_log_level(LEVEL_SLOT) == WasmResult.Ok) currentLevel = load<i32>(LEVEL_SLOT);
}

export function logEnabled(level: LogLevel): bool {
  return <i32>level >= currentLevel;
}

export function log(level: LogLevel, message: string): void {
  if (<i32>level < currentLevel) return;
  const buf = String.UTF8.encode(message);
  proxy_log(level, changetype<usize>(buf), <usize>buf.byteLength);
}

export function logTrace(message: string): void { log(LogLevel.Trace, message); }
export function logDebug(message: string): void { log(LogLevel.Debug, message); }
export function logInfo(message: string): void { log(LogLevel.Info, message); }
export function logWarn(message: string): void { log(LogLevel.Warn, message); }
export function logError(message: string): void { log(LogLevel.Error, message); }

/** Logs the writer's bytes as they are: no string, no encoding pass. */
export function logUtf8(level: LogLevel, message: Utf8Writer): void {
  if (<i32>level < currentLevel) return;
  proxy_log(level, message.dataStart, <usize>message.length);
}
