// Typed reading of JSON plugin configuration. Every accessor records an error
// with its field path ("rules[2].prefix: expected string") instead of
// stopping, so `onConfigure` can report all problems at once and return false.

import { JsonKind, JsonValue, kindName, parseJson } from './json';
import { decimal } from './ascii';

export class ConfigErrors {
  list: string[] = [];
  add(path: string, message: string): void { this.list.push((path.length > 0 ? path : '<root>') + ': ' + message); }
  get ok(): bool { return this.list.length == 0; }
  toString(): string { return this.list.join('; '); }
}

export class ConfigNode {
  constructor(public value: JsonValue, public path: string, public errors: ConfigErrors) {}

  private childPath(name: string): string { return this.path.length > 0 ? this.path + '.' + name : name; }

  has(name: string): bool { return this.value.get(name) !== null; }

  /** Reports members other than `allowed` (a typo is an error, not a silent default). */
  allowOnly(allowed: string[]): void {
    for (let i = 0; i < this.value.keys.length; i++) {
      if (!allowed.includes(this.value.keys[i])) this.errors.add(this.childPath(this.value.keys[i]), 'unknown field');
    }
  }

  private member(name: string, kind: JsonKind, required: bool): JsonValue | null {
    const v = this.value.get(name);
    if (v === null) {
      if (required) this.errors.add(this.childPath(name), 'required');
      return null;
    }
    if (v.kind != kind) {
      this.errors.add(this.childPath(name), 'expected ' + kindName(kind) + ', got ' + kindName(v.kind));
      return null;
    }
    return v;
  }

  str(name: string, def: string, required: bool = false): string {
    const v = this.member(name, JsonKind.String, required);
    return v === null ? def : v.str;
  }

  /** A non-empty string. */
  nonEmpty(name: string, def: string, required: bool = false): string {
    const s = this.str(name, def, required);
    if (this.has(name) && s.length == 0 && this.value.get(name)!.kind == JsonKind.String) this.errors.add(this.childPath(name), 'must not be empty');
    return s;
  }

  oneOf(name: string, options: string[], def: string, required: bool = false): string {
    const s = this.str(name, def, required);
    if (this.has(name) && !options.includes(s)) this.errors.add(this.childPath(name), 'must be one of ' + options.join(', '));
    return s;
  }

  int(name: string, def: i64, min: i64, max: i64, required: bool = false): i64 {
    const v = this.member(name, JsonKind.Number, required);
    if (v === null) return def;
    const n = v.num;
    if (n != Math.floor(n)) { this.errors.add(this.childPath(name), 'expected integer'); return def; }
    if (n < <f64>min || n > <f64>max) {
      this.errors.add(this.childPath(name), 'must be between ' + decimal(min) + ' and ' + decimal(max));
      return def;
    }
    return <i64>n;
  }

  bool(name: string, def: bool): bool {
    const v = this.member(name, JsonKind.Bool, false);
    return v === null ? def : v.bool;
  }

  strings(name: string, required: bool = false): string[] {
    const v = this.member(name, JsonKind.Array, required);
    const out = new Array<string>();
    if (v === null) return out;
    for (let i = 0; i < v.items.length; i++) {
      const item = v.items[i];
      if (item.kind != JsonKind.String) this.errors.add(this.childPath(name) + '[' + decimal(i) + ']', 'expected string, got ' + kindName(item.kind));
      else out.push(item.str);
    }
    return out;
  }

  /** Array of objects as nodes with paths `name[i]`. */
  objects(name: string, required: bool = false): ConfigNode[] {
    const v = this.member(name, JsonKind.Array, required);
    const out = new Array<ConfigNode>();
    if (v === null) return out;
    for (let i = 0; i < v.items.length; i++) {
      const p = this.childPath(name) + '[' + decimal(i) + ']';
      if (v.items[i].kind != JsonKind.Object) this.errors.add(p, 'expected object, got ' + kindName(v.items[i].kind));
      else out.push(new ConfigNode(v.items[i], p, this.errors));
    }
    return out;
  }

  object(name: string, required: bool = false): ConfigNode | null {
    const v = this.member(name, JsonKind.Object, required);
    return v === null ? null : new ConfigNode(v, this.childPath(name), this.errors);
  }

  /** An object whose members are all strings, as [key, value, key, value, ...]. */
  stringMap(name: string): string[] {
    const v = this.member(name, JsonKind.Object, false);
    const out = new Array<string>();
    if (v === null) return out;
    for (let i = 0; i < v.keys.length; i++) {
      if (v.items[i].kind != JsonKind.String) this.errors.add(this.childPath(name) + '.' + v.keys[i], 'expected string');
      else { out.push(v.keys[i]); out.push(v.items[i].str); }
    }
    return out;
  }

  fail(name: string, message: string): void { this.errors.add(name.length > 0 ? this.childPath(name) : this.path, message); }
}

/** Parses the configuration text; an empty configuration is `{}`. */
export function configRoot(text: string, errors: ConfigErrors): ConfigNode | null {
  const parsed = parseJson(text.length == 0 ? '{}' : text);
  if (parsed.value === null) { errors.add('', parsed.error); return null; }
  const v = parsed.value!;
  if (v.kind != JsonKind.Object) { errors.add('', 'configuration must be a JSON object'); return null; }
  return new ConfigNode(v, '', errors);
}
