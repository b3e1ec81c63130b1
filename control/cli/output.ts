// Output formats shared by the read commands (aligned tables for people,
// YAML and JSON for scripts and for round-tripping into `weft apply`), and
// the option and input-file helpers the commands share.
import { readFileSync } from 'node:fs';
import { Document, Scalar, visit } from 'yaml';
import { CliError } from './client.ts';
import { firstInvalidUtf8 } from '../api/json-body.ts';

export type OutputFormat = 'table' | 'yaml' | 'json';

export function parseFormat(value: string | undefined): OutputFormat {
  const format = value ?? 'table';
  if (format === 'table' || format === 'yaml' || format === 'json') return format;
  throw new CliError(`error: -o must be one of table, yaml, json (got "${format}")`, 2);
}

/** A commander parser for `--wait <seconds>` (more than 0); milliseconds out, the error names the flag. */
export function waitMs(value: string): number {
  const ms = Number(value) * 1000;
  if (!/^\d+(\.\d+)?$/.test(value) || !(ms > 0)) throw new CliError(`error: --wait must be a number of seconds, more than 0 (got "${value}")`, 2);
  return ms;
}

/**
 * Text from elsewhere (a proxy's id or NACK message, a request's path) as a terminal may show it:
 * control characters (ESC, CR, BEL, C1, ...) written as \u00XX. Any xDS client names itself and
 * words its NACKs, and raw escape sequences in them could rewrite or hide what the operator reads,
 * as kubectl escapes them in its tables (kubernetes/kubernetes#112553, CVE-2021-25743).
 * JSON and YAML output escape them by their own rules (toJson, toYaml).
 */
export function terminalSafe(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${hex(c, 4)}`);
}

const hex = (c: string, digits: number) => c.charCodeAt(0).toString(16).padStart(digits, '0');

/**
 * DEL and the C1 controls, which JSON.stringify and the yaml library both write raw: U+009B is
 * CSI to a terminal that honours 8-bit controls, so `-o json` of a proxy's NACK could still drive
 * the operator's terminal as the table output no longer can.
 */
const RAW_CONTROLS = /[\u007f-\u009f]/g;

/**
 * JSON text with no raw control character: JSON.stringify escapes C0 itself, and DEL and C1 can
 * stand only inside a string literal, where `\u009b` is the same string.
 */
export function jsonTerminalSafe(json: string): string {
  return json.replace(RAW_CONTROLS, (c) => `\\u${hex(c, 4)}`);
}

export function table(headers: string[], rows: (string | number | undefined)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === undefined || c === '' ? '-' : terminalSafe(String(c)))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(widths[i]!))).join('  '))
    .join('\n');
}

/** Any control character but the line feed, which YAML output needs for its lines. */
const CONTROLS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

/**
 * YAML with no raw control character. A string holding one is written double-quoted, the only
 * YAML style with escapes (the yaml library does so for most, but not for a tab), where it escapes
 * C0 as JSON does but writes DEL and C1 raw between the quotes, which YAML 1.2 does not allow
 * (§5.1: only printable characters, others escaped; and a 1.1 parser reads a raw U+0085 as a
 * line break). `\x9b` in a double-quoted scalar is the same character, so the output still parses
 * to the same strings.
 */
export function toYaml(value: unknown): string {
  const doc = new Document(value);
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value === 'string' && CONTROLS.test(node.value)) node.type = Scalar.QUOTE_DOUBLE;
    },
  });
  return doc.toString({ lineWidth: 0 }).replace(RAW_CONTROLS, (c) => `\\x${hex(c, 2)}`);
}

/** YAML documents separated by `---`, the form `weft apply -f` reads back. */
export function toYamlDocuments(values: unknown[]): string {
  return values.map((v) => toYaml(v)).join('---\n');
}

export function toJson(value: unknown): string {
  return jsonTerminalSafe(JSON.stringify(value, null, 2) ?? 'null');
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A file named on the command line (`-`: stdin), its read error said as the CLI's. It must be
 * UTF-8: a Latin-1 file read leniently had its bytes replaced by U+FFFD, and the replacement was
 * applied as if the operator had written it.
 */
export function readInputFile(file: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file === '-' ? 0 : file);
  } catch (err) {
    throw new CliError(`error: cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return utf8.decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    const line = bytes.subarray(0, at).toString('latin1').split('\n').length;
    throw new CliError(`error: ${file === '-' ? 'stdin' : file} is not UTF-8: line ${line}, byte offset ${at} (save it as UTF-8)`);
  }
}
