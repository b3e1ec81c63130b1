// How deep a request value may nest. Validation, cloning and translation walk
// values recursively, so a body nested a few thousand levels deep (a free-form
// FilterBinding config, say) overflowed the stack in them and was answered
// 500 "internal error". It is refused first, naming where, with no state
// touched. No manifest of ours comes near the limit.

import { joinPath, type FieldError } from './result.ts';

/** Levels of objects and arrays a request value may have (the value itself is level 1). */
export const MAX_NESTING = 100;
/** Segments of the path given in the error: enough to name the field, not the whole descent. */
const PATH_SEGMENTS = 4;

/** The place where `value` nests deeper than MAX_NESTING, or undefined. Iterative, so any depth is safe to check. */
export function nestingError(value: unknown, root = ''): FieldError | undefined {
  const stack: { value: unknown; depth: number; path: string }[] = [{ value, depth: 1, path: root }];
  while (stack.length > 0) {
    const { value: v, depth, path } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > MAX_NESTING) return { path, message: `nests objects or arrays more than ${MAX_NESTING} levels deep` };
    const named = depth <= PATH_SEGMENTS;
    const entries: [string | number, unknown][] = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
    for (const [key, child] of entries) stack.push({ value: child, depth: depth + 1, path: named ? joinPath(path, key) : path });
  }
  return undefined;
}
