// Field schemas and checks shared by every kind: names, ports, durations,
// percentages, labels, addresses, header names, regexes.

import { isIP } from 'node:net';
import { Type, type TLiteral, type TUnion } from '@sinclair/typebox';
import { re2Error } from '../envoy/re2.ts';
import { joinPath, type FieldError } from './result.ts';

export const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
const DNS_LABEL_MESSAGE =
  "must be a DNS-1123 label: 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit";

/** A name or namespace (DNS-1123 label). */
export const Name = (description = 'DNS-1123 label') =>
  Type.String({ minLength: 1, maxLength: 63, pattern: DNS_LABEL, description, errorMessage: DNS_LABEL_MESSAGE });

/** A service reference: `name` (same namespace) or `name.namespace`. */
export const ServiceRef = (description = 'service name, or name.namespace for another namespace') =>
  Type.String({
    minLength: 1,
    maxLength: 127,
    pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)?$',
    description,
    errorMessage: "must be a service name (DNS-1123 label) or 'name.namespace'",
  });

export const Port = (description = 'port, 1..65535') =>
  Type.Integer({ minimum: 1, maximum: 65535, description, errorMessage: 'must be an integer port in 1..65535' });

/** A positive duration in milliseconds. */
export const DurationMs = (description: string) =>
  Type.Integer({ exclusiveMinimum: 0, maximum: 86_400_000, description, errorMessage: 'must be a positive integer number of milliseconds (at most one day)' });

/** A duration in milliseconds where 0 means none (Envoy's `0s`: no timeout). */
export const DurationMsOrNone = (description: string) =>
  Type.Integer({ minimum: 0, maximum: 86_400_000, description, errorMessage: 'must be an integer number of milliseconds in 0..86400000 (0: none)' });

export const Percentage = (description: string) =>
  Type.Number({ minimum: 0, maximum: 100, description, errorMessage: 'must be a percentage in 0..100' });

export const PositiveInt = (description: string, maximum = 2 ** 31 - 1) =>
  Type.Integer({ minimum: 1, maximum, description, errorMessage: `must be an integer in 1..${maximum}` });

/** A closed set of strings; one error message listing the choices instead of one per alternative. */
export function Enum<const V extends string[]>(values: V, description: string): TUnion<{ [K in keyof V]: TLiteral<V[K]> }> {
  return Type.Union(
    values.map((v) => Type.Literal(v)),
    { description, errorMessage: `must be one of: ${values.join(', ')}` },
  ) as unknown as TUnion<{ [K in keyof V]: TLiteral<V[K]> }>;
}

export const Labels = (description = 'labels, e.g. {"version": "v2"}') =>
  Type.Record(Type.String(), Type.String(), { description });

export const DEFAULT_NAMESPACE = 'default';

// --- semantic checks (what JSON Schema cannot say) -------------------------

const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Kubernetes-style label keys (`[prefix/]name`) and values, so labels survive a move to Kubernetes. */
export function labelErrors(labels: Record<string, string>, path: string): FieldError[] {
  const errors: FieldError[] = [];
  for (const [key, value] of Object.entries(labels)) {
    const at = joinPath(path, key);
    const slash = key.indexOf('/');
    const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
    const name = slash >= 0 ? key.slice(slash + 1) : key;
    if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
      errors.push({ path: at, message: 'label key prefix must be a DNS subdomain (e.g. example.com/name)' });
    } else if (name.length === 0 || name.length > 63 || !LABEL_NAME.test(name)) {
      errors.push({ path: at, message: "label key must be 1-63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit" });
    } else if (value.length > 63 || (value.length > 0 && !LABEL_NAME.test(value))) {
      errors.push({ path: at, message: "label value must be at most 63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit" });
    }
  }
  return errors;
}

const HOST_LABEL = /^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$/;

/** An IPv4 or IPv6 literal, or a DNS hostname (whose last label is not all digits, so "10.0.0.300" is not a hostname). */
export function isAddress(address: string): boolean {
  if (isIP(address) !== 0) return true;
  const name = address.endsWith('.') ? address.slice(0, -1) : address;
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  if (!labels.every((l) => l.length <= 63 && HOST_LABEL.test(l))) return false;
  return !/^\d+$/.test(labels[labels.length - 1]!);
}

const HEADER_NAME = /^:?[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

/** An HTTP header name; pseudo-headers (`:authority`) only where `allowPseudo` (matching, not mutating). */
export function headerNameError(name: string, path: string, allowPseudo: boolean): FieldError | undefined {
  if (!HEADER_NAME.test(name)) return { path, message: 'must be a valid HTTP header name' };
  if (!allowPseudo && (name.startsWith(':') || name.toLowerCase() === 'host')) {
    return { path, message: 'pseudo-headers and host cannot be added or removed' };
  }
  return undefined;
}

export function headerValueError(value: string, path: string): FieldError | undefined {
  return /[\r\n\0]/.test(value) ? { path, message: 'header value must not contain CR, LF or NUL' } : undefined;
}

/**
 * A regex both data planes run the same way: Envoy matches with RE2, the
 * weft sidecar with JavaScript's RegExp in unicode mode. So it must compile
 * there (the unicode mode refuses escapes such as \Z or \y that RE2 refuses
 * too, and that the non-unicode mode silently read as letters), and use
 * nothing RE2 lacks or reads otherwise (control/envoy/re2.ts): lookaround,
 * backreferences, \u and \c escapes, repetitions past 1000, [] and [^].
 */
export function regexError(pattern: string, path: string): FieldError | undefined {
  try {
    new RegExp(pattern, 'u');
  } catch (e) {
    return { path, message: `regex does not compile: ${(e as Error).message}` };
  }
  const re2 = re2Error(pattern);
  if (re2) return { path, message: `regex ${re2}` };
  return undefined;
}

/** Reports every repeat of a key after its first occurrence. */
export function duplicateErrors<T>(items: T[], keyOf: (item: T) => string | number | undefined, path: (i: number) => string, what: string): FieldError[] {
  const seen = new Map<string | number, number>();
  const errors: FieldError[] = [];
  items.forEach((item, i) => {
    const key = keyOf(item);
    if (key === undefined) return;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, i);
    else errors.push({ path: path(i), message: `duplicate ${what} ${JSON.stringify(key)} (also at index ${first})` });
  });
  return errors;
}
