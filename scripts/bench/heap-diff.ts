// node --import tsx scripts/bench/heap-diff.ts before.heapsnapshot after.heapsnapshot [rows] [paths]
// What a V8 heap snapshot holds that an earlier one of the same process did
// not: the objects born since the first snapshot and still alive at the
// second (V8 keeps an object's snapshot id for its life, across snapshots of
// one inspector session, as bench:soak takes them), counted and summed (self
// size) by kind and constructor, largest first; then, for the kinds that grew
// most by count, the shortest retaining path of a few of them, from a GC root
// down to the object. That path is what a leak fix needs. Chrome DevTools
// (Memory, Comparison) shows the same for one object at a time.

import { readFileSync } from 'node:fs';

interface RawSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]]; edge_fields: string[]; edge_types: [string[], ...unknown[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

export class HeapSnapshot {
  readonly #s: RawSnapshot;
  readonly #nf: number;
  readonly #ef: number;
  readonly #at: { type: number; name: number; id: number; size: number; edges: number; edgeType: number; edgeName: number; edgeTo: number };
  /** Index (into nodes / node_fields) of each node's first edge. */
  readonly #firstEdge: Uint32Array;

  constructor(file: string) {
    this.#s = JSON.parse(readFileSync(file, 'utf8')) as RawSnapshot;
    const m = this.#s.snapshot.meta;
    this.#nf = m.node_fields.length;
    this.#ef = m.edge_fields.length;
    this.#at = {
      type: m.node_fields.indexOf('type'),
      name: m.node_fields.indexOf('name'),
      id: m.node_fields.indexOf('id'),
      size: m.node_fields.indexOf('self_size'),
      edges: m.node_fields.indexOf('edge_count'),
      edgeType: m.edge_fields.indexOf('type'),
      edgeName: m.edge_fields.indexOf('name_or_index'),
      edgeTo: m.edge_fields.indexOf('to_node'),
    };
    this.#firstEdge = new Uint32Array(this.count + 1);
    for (let n = 0, e = 0; n < this.count; n++) {
      this.#firstEdge[n] = e;
      e += this.#s.nodes[n * this.#nf + this.#at.edges]! * this.#ef;
    }
    this.#firstEdge[this.count] = this.#s.edges.length;
  }

  get count(): number {
    return this.#s.nodes.length / this.#nf;
  }
  type(n: number): string {
    return this.#s.snapshot.meta.node_types[0][this.#s.nodes[n * this.#nf + this.#at.type]!]!;
  }
  name(n: number): string {
    return this.#s.strings[this.#s.nodes[n * this.#nf + this.#at.name]!]!;
  }
  id(n: number): number {
    return this.#s.nodes[n * this.#nf + this.#at.id]!;
  }
  size(n: number): number {
    return this.#s.nodes[n * this.#nf + this.#at.size]!;
  }
  /** "type:name", strings counted together (a string's name is its contents). */
  kind(n: number): string {
    const t = this.type(n);
    return t.endsWith('string') ? `${t}:` : `${t}:${this.name(n).slice(0, 80)}`;
  }
  *edges(n: number): Generator<{ to: number; type: string; name: string }> {
    const types = this.#s.snapshot.meta.edge_types[0];
    for (let e = this.#firstEdge[n]!; e < this.#firstEdge[n + 1]!; e += this.#ef) {
      const type = types[this.#s.edges[e + this.#at.edgeType]!]!;
      const raw = this.#s.edges[e + this.#at.edgeName]!;
      const name = type === 'element' || type === 'hidden' ? `[${raw}]` : (this.#s.strings[raw] ?? String(raw));
      yield { to: this.#s.edges[e + this.#at.edgeTo]! / this.#nf, type, name };
    }
  }

  /**
   * For each node, the node one step nearer the root (node 0) on a shortest path over strong edges, as
   * DevTools' retainers view orders them; -1 for the root and for what only weak edges reach.
   */
  shortestRetainers(): Int32Array {
    const parent = new Int32Array(this.count).fill(-1);
    const seen = new Uint8Array(this.count);
    seen[0] = 1;
    let frontier = [0];
    while (frontier.length) {
      const next: number[] = [];
      for (const n of frontier) {
        for (const e of this.edges(n)) {
          if (e.type === 'weak' || e.type === 'shortcut' || seen[e.to]) continue;
          seen[e.to] = 1;
          parent[e.to] = n;
          next.push(e.to);
        }
      }
      frontier = next;
    }
    return parent;
  }

  /** The path from a GC root to n: "(root) -> Kind.edge -> Kind.edge ...". */
  path(n: number, parent: Int32Array): string {
    const steps: string[] = [];
    for (let at = n; parent[at]! >= 0 && steps.length < 14; at = parent[at]!) {
      const from = parent[at]!;
      let via = '?';
      for (const e of this.edges(from)) {
        if (e.to === at) {
          via = e.name;
          break;
        }
      }
      steps.unshift(`${this.kind(from).replace(/^object:/, '')} .${via}`);
    }
    return `${steps.join(' -> ')} -> ${this.kind(n)}`;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [a, b, rows = '25', paths = '3'] = process.argv.slice(2);
  if (!a || !b) {
    console.error('usage: heap-diff.ts before.heapsnapshot after.heapsnapshot [rows] [paths per kind]');
    process.exit(2);
  }
  const before = new HeapSnapshot(a);
  const earlier = new Set<number>();
  for (let n = 0; n < before.count; n++) earlier.add(before.id(n));
  const after = new HeapSnapshot(b);
  const born = new Map<string, { count: number; size: number; nodes: number[] }>();
  for (let n = 0; n < after.count; n++) {
    if (earlier.has(after.id(n))) continue;
    const k = after.kind(n);
    const e = born.get(k) ?? { count: 0, size: 0, nodes: [] };
    e.count++;
    e.size += after.size(n);
    if (e.nodes.length < 50) e.nodes.push(n);
    born.set(k, e);
  }
  const kinds = [...born.entries()];
  console.log(`objects born after the first snapshot and alive at the second: ${kinds.reduce((x, [, e]) => x + e.count, 0)}, ${kinds.reduce((x, [, e]) => x + e.size, 0)} bytes`);
  // What the program keeps (its objects with their property and element stores, closures, arrays, strings) apart
  // from what V8 keeps for it (compiled code, feedback, maps, IC handlers) and from native wrappers (whose snapshot
  // ids are not kept across snapshots, so they all look born).
  const engineKind = (k: string) => /^(code|hidden|object shape):/.test(k) || /^array:\((code|internal)/.test(k);
  const programKind = (k: string) => !engineKind(k) && /^(object|closure|array|string|concatenated string|sliced string|regexp|number|bigint):/.test(k);
  const sum = (keep: (k: string) => boolean) => kinds.filter(([k]) => keep(k)).reduce((x, [, e]) => x + e.size, 0);
  console.log(`  the program's objects: ${sum(programKind)} bytes; V8's (code, feedback, maps, handlers): ${sum(engineKind)} bytes; native and synthetic: ${sum((k) => !programKind(k) && !engineKind(k))} bytes`);
  console.log('    bytes    count  type:name');
  for (const [k, e] of kinds.sort((x, y) => y[1].size - x[1].size).slice(0, Number(rows))) console.log(`${String(e.size).padStart(9)}  ${String(e.count).padStart(7)}  ${k}`);
  // Retaining paths for the kinds most born by count, leaving out V8's own (code, maps, feedback): what a program keeps.
  const parent = after.shortestRetainers();
  const ours = kinds.filter(([k]) => programKind(k) && !/^array:\((object properties|object elements)/.test(k)).sort((x, y) => y[1].count - x[1].count);
  for (const [k, e] of ours.slice(0, 8)) {
    console.log(`\n${k} (${e.count} born and kept):`);
    const shown = new Set<string>();
    for (const n of e.nodes) {
      const p = after.path(n, parent);
      if (shown.has(p)) continue;
      shown.add(p);
      console.log(`  ${p}`);
      if (shown.size >= Number(paths)) break;
    }
  }
}
