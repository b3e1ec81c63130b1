// A reader over one Envoy proto3 JSON message that remembers which fields the
// sidecar looked at. done() reports every other field set to a non-default
// value: that is the fidelity contract. A field the sidecar neither honours
// nor explicitly ignores is a NACK, never a silent no-op.

export interface FieldError {
  /** Field path from the resource root, e.g. virtual_hosts[0].routes[2].match.safe_regex */
  path: string;
  message: string;
}

export type JsonObject = Record<string, unknown>;

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** proto3 JSON omits defaults, but encoders may still emit them; both mean "unset". */
export function isDefault(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '' || v === '0') return true;
  if (Array.isArray(v)) return v.length === 0;
  if (isObject(v)) return Object.keys(v).length === 0;
  return false;
}

export function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path === '' ? key : `${path}.${key}`;
}

/** Parses a proto3 JSON Duration ("1.5s") or {seconds, nanos} into milliseconds. */
export function parseDurationMs(v: unknown): number | undefined {
  if (typeof v === 'string') {
    const m = /^(-?\d+(?:\.\d+)?)s$/.exec(v);
    return m ? Math.round(Number(m[1]) * 1000) : undefined;
  }
  if (isObject(v)) {
    const seconds = Number(v.seconds ?? 0);
    const nanos = Number(v.nanos ?? 0);
    if (Number.isFinite(seconds) && Number.isFinite(nanos)) return Math.round(seconds * 1000 + nanos / 1e6);
  }
  return undefined;
}

export class Fields {
  readonly #obj: JsonObject;
  readonly #used = new Set<string>();
  readonly path: string;
  readonly errors: FieldError[];

  constructor(obj: JsonObject, path: string, errors: FieldError[]) {
    this.#obj = obj;
    this.path = path;
    this.errors = errors;
  }

  static of(value: unknown, path: string, errors: FieldError[]): Fields | undefined {
    if (value === undefined || value === null) return undefined;
    if (!isObject(value)) {
      errors.push({ path, message: 'expected an object' });
      return undefined;
    }
    return new Fields(value, path, errors);
  }

  fail(key: string, message: string): void {
    this.errors.push({ path: join(this.path, key), message });
  }

  keys(): string[] {
    return Object.keys(this.#obj).filter((k) => k !== '@type');
  }

  has(key: string): boolean {
    return !isDefault(this.#obj[key]);
  }

  raw(key: string): unknown {
    this.#used.add(key);
    return this.#obj[key];
  }

  /** Fields accepted because they change nothing the sidecar's behaviour depends on (names, stat prefixes). */
  ignore(...keys: string[]): this {
    for (const k of keys) this.#used.add(k);
    return this;
  }

  str(key: string): string | undefined {
    const v = this.raw(key);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') {
      this.fail(key, 'expected a string');
      return undefined;
    }
    return v;
  }

  num(key: string): number | undefined {
    let v = this.raw(key);
    if (v === undefined || v === null) return undefined;
    // uint64 / wrappers may arrive as strings or {value}; an empty wrapper is 0.
    if (isObject(v)) v = v.value ?? 0;
    const n = typeof v === 'string' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isFinite(n)) {
      this.fail(key, 'expected a number');
      return undefined;
    }
    return n;
  }

  bool(key: string): boolean | undefined {
    let v = this.raw(key);
    if (v === undefined || v === null) return undefined;
    if (isObject(v) && 'value' in v) v = v.value;
    if (typeof v !== 'boolean') {
      this.fail(key, 'expected a boolean');
      return undefined;
    }
    return v;
  }

  durationMs(key: string): number | undefined {
    const v = this.raw(key);
    if (v === undefined || v === null) return undefined;
    const ms = parseDurationMs(v);
    if (ms === undefined || ms < 0) this.fail(key, `invalid duration ${JSON.stringify(v)}`);
    return ms;
  }

  obj(key: string): Fields | undefined {
    return Fields.of(this.raw(key), join(this.path, key), this.errors);
  }

  list(key: string): Fields[] {
    const v = this.raw(key);
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      this.fail(key, 'expected a list');
      return [];
    }
    const out: Fields[] = [];
    v.forEach((item, i) => {
      const f = Fields.of(item, join(join(this.path, key), i), this.errors);
      if (f) out.push(f);
    });
    return out;
  }

  strList(key: string): string[] {
    const v = this.raw(key);
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) {
      this.fail(key, 'expected a list of strings');
      return [];
    }
    return v as string[];
  }

  /** Enum by name; proto3 JSON may also carry the number. */
  enumOf<T extends string>(key: string, allowed: readonly T[], byNumber: readonly string[] = []): T | undefined {
    const v = this.raw(key);
    if (v === undefined || v === null) return undefined;
    const name = typeof v === 'number' ? byNumber[v] : v;
    if (typeof name !== 'string' || !allowed.includes(name as T)) {
      this.fail(key, `unsupported value ${JSON.stringify(v)} (the weft sidecar supports ${allowed.join(', ')})`);
      return undefined;
    }
    return name as T;
  }

  /** Which oneof member is set, among those the sidecar supports; any other set field is reported by done(). */
  oneof(keys: readonly string[]): string | undefined {
    return keys.find((k) => this.#obj[k] !== undefined && this.#obj[k] !== null);
  }

  /** Reports every field that was not read and is not at its default value. */
  done(): void {
    for (const [k, v] of Object.entries(this.#obj)) {
      if (this.#used.has(k) || k === '@type' || isDefault(v)) continue;
      this.fail(k, 'field not supported by the weft sidecar');
    }
  }
}

export function typeName(f: Fields): string {
  const t = f.raw('@type');
  return typeof t === 'string' ? t.replace(/^type\.googleapis\.com\//, '') : '';
}

export function formatErrors(resource: string, errors: FieldError[]): string {
  return errors.map((e) => `${resource}: ${e.path}: ${e.message}`).join('; ');
}
