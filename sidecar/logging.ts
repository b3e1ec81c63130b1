// The sidecar's log levels, per logger as Envoy keeps them: set at start by
// `weft sidecar --log-level` and `--component-log-level` (Envoy's flags of the
// same names), read and changed at run time by POST /logging on the admin port.
//
// Two loggers exist, and each level changes what is written:
// - wasm: what filters log through proxy_log, and what proxy_get_log_level
//   tells them (a filter can skip building a line nobody will see);
// - config: the xDS client's lines: a NACK at warning, every applied update
//   (ACK) at debug.
// The access log is not a logger (as in Envoy it is configured by the
// listener; WEFT_ACCESS_LOG=off turns it off), nor are the lifecycle lines
// (`ready: ...`) that `weft up` waits for.

/** Envoy's (spdlog's) levels, in order; `warn` is read as `warning`. */
export const LEVEL_NAMES = ['trace', 'debug', 'info', 'warning', 'error', 'critical', 'off'] as const;
export type LevelName = (typeof LEVEL_NAMES)[number];
export const Level = { trace: 0, debug: 1, info: 2, warning: 3, error: 4, critical: 5, off: 6 } as const;

export const LOGGER_NAMES = ['config', 'wasm'] as const;
export type LoggerName = (typeof LOGGER_NAMES)[number];

/** A level's number, or undefined for anything that is not a level name (`warn` is `warning`, as in Envoy). */
export function parseLevel(name: string): number | undefined {
  const n = name === 'warn' ? 'warning' : name;
  return (LEVEL_NAMES as readonly string[]).includes(n) ? Level[n as LevelName] : undefined;
}

const isLogger = (name: string): name is LoggerName => (LOGGER_NAMES as readonly string[]).includes(name);
const levelList = 'trace, debug, info, warning (or warn), error, critical, off';

/**
 * Envoy's `--component-log-level` value, `name:level,name:level`, as
 * [logger, level] pairs; a string error naming what is wrong otherwise.
 */
export function parseComponentLevels(spec: string, field = 'component-log-level'): [LoggerName, number][] | string {
  const out: [LoggerName, number][] = [];
  for (const part of spec.split(',')) {
    const m = /^([^:]+):([^:]+)$/.exec(part.trim());
    if (!m) return `${field}: expected name:level[,name:level...], got ${JSON.stringify(part)}`;
    const [, name, level] = m as unknown as [string, string, string];
    if (!isLogger(name)) return `${field}: unknown logger ${JSON.stringify(name)} (loggers: ${LOGGER_NAMES.join(', ')})`;
    const n = parseLevel(level);
    if (n === undefined) return `${field}: ${JSON.stringify(level)} is not a log level (${levelList})`;
    out.push([name, n]);
  }
  return out;
}

export class Loggers {
  readonly #levels = new Map<LoggerName, number>();
  readonly #watchers: ((name: LoggerName, level: number) => void)[] = [];

  /** Every logger at `level` (default info), then the per-logger levels on top. */
  constructor(level: number = Level.info, components: [LoggerName, number][] = []) {
    for (const name of LOGGER_NAMES) this.#levels.set(name, level);
    for (const [name, l] of components) this.#levels.set(name, l);
  }

  level(name: LoggerName): number {
    return this.#levels.get(name)!;
  }

  /** True when a line at `level` from `name` is written. */
  enabled(name: LoggerName, level: number): boolean {
    return level >= this.#levels.get(name)! && level < Level.off;
  }

  set(name: LoggerName, level: number): void {
    if (this.#levels.get(name) === level) return;
    this.#levels.set(name, level);
    for (const w of this.#watchers) w(name, level);
  }

  /** Called with each change, and once now for every logger. */
  watch(fn: (name: LoggerName, level: number) => void): void {
    this.#watchers.push(fn);
    for (const [name, level] of this.#levels) fn(name, level);
  }

  /** Envoy's /logging body. */
  list(): string {
    return `active loggers:\n${[...this.#levels].map(([name, level]) => `  ${name}: ${LEVEL_NAMES[level]}\n`).join('')}`;
  }

  /**
   * POST /logging's query, as Envoy's: one parameter, `level=L` for every
   * logger, `NAME=L` for one or `paths=NAME:L,NAME:L` for several. It is
   * checked whole before any level changes; the error names the parameter.
   */
  change(params: URLSearchParams): string | undefined {
    const keys = [...params.keys()];
    if (keys.length > 1) return `${keys.join(', ')}: one parameter at a time, as Envoy's /logging (level, paths or a logger name)`;
    const changes: [LoggerName | '*', number][] = [];
    for (const [key, value] of params) {
      if (key === 'paths') {
        const parsed = parseComponentLevels(value, 'paths');
        if (typeof parsed === 'string') return parsed;
        changes.push(...parsed);
        continue;
      }
      if (key !== 'level' && !isLogger(key)) return `${key}: unknown parameter (logging takes level, paths or a logger name: ${LOGGER_NAMES.join(', ')})`;
      const level = parseLevel(value);
      if (level === undefined) return `${key}: ${JSON.stringify(value)} is not a log level (${levelList})`;
      changes.push([key === 'level' ? '*' : (key as LoggerName), level]);
    }
    for (const [name, level] of changes) {
      if (name === '*') for (const n of LOGGER_NAMES) this.set(n, level);
      else this.set(name, level);
    }
    return undefined;
  }
}
