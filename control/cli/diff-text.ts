// A readable line diff of two resources (pretty JSON), unified-diff style
// with a little context, for `weft diff`. Resources are small (one cluster,
// one route config), so a plain LCS table is fast enough and exact.

export function lineDiff(before: string, after: string, context = 2): string[] {
  const a = before ? before.split('\n') : [];
  const b = after ? after.split('\n') : [];
  const n = a.length;
  const m = b.length;
  // lcs[i][j] = LCS length of a[i..] and b[j..]
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const ops: { mark: ' ' | '-' | '+'; line: string }[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      ops.push({ mark: ' ', line: a[i]! });
      i++;
      j++;
    } else if (i < n && (j >= m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      // removals before additions, as in a unified diff
      ops.push({ mark: '-', line: a[i]! });
      i++;
    } else {
      ops.push({ mark: '+', line: b[j]! });
      j++;
    }
  }
  const keep = ops.map((op, k) =>
    ops.slice(Math.max(0, k - context), k + context + 1).some((o) => o.mark !== ' '),
  );
  const out: string[] = [];
  let skipped = false;
  ops.forEach((op, k) => {
    if (keep[k]) {
      if (skipped) out.push('  ...');
      skipped = false;
      out.push(`${op.mark} ${op.line}`);
    } else {
      skipped = true;
    }
  });
  return out;
}
