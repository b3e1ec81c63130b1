// Output formats shared by the read commands (aligned tables for people,
// YAML and JSON for scripts and for round-tripping into `weft apply`), and
// the option and input-file helpers the commands share.
import { readFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { CliError } from './client.ts';

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

export function table(headers: string[], rows: (string | number | undefined)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === undefined || c === '' ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(widths[i]!))).join('  '))
    .join('\n');
}

export function toYaml(value: unknown): string {
  return stringify(value, { lineWidth: 0 });
}

/** YAML documents separated by `---`, the form `weft apply -f` reads back. */
export function toYamlDocuments(values: unknown[]): string {
  return values.map((v) => toYaml(v)).join('---\n');
}

export function toJson(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

/** A file named on the command line (`-`: stdin), its read error said as the CLI's. */
export function readInputFile(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new CliError(`error: cannot read ${file}: ${(err as Error).message}`);
  }
}
