// Access log lines leave in batches: one stdout write per event-loop turn
// instead of one per request. stdout to a pipe or a file is a synchronous
// write(2) on Linux, so a write per request put a syscall on every request's
// path; batching keeps the lines and their order and costs one syscall per turn.

export interface LineWriter {
  /** Queues one line (without its newline). */
  line(text: string): void;
  /** Writes whatever is queued now. */
  flush(): void;
  /** Writes what is queued; later lines are written at once. */
  close(): void;
}

const open = new Set<LineWriter>();
let exitHooked = false;

/**
 * Lines are written together at the end of the current event-loop turn, or
 * at once when `maxBytes` are queued (bounded memory under load). Queued
 * lines are also written when the process exits.
 */
export function bufferedLines(write: (chunk: string) => void, maxBytes = 64 * 1024): LineWriter {
  let pending: string[] = [];
  let size = 0;
  let scheduled = false;
  const writer: LineWriter = {
    line(text) {
      pending.push(text);
      size += text.length + 1;
      if (size >= maxBytes) writer.flush();
      else if (!scheduled) {
        scheduled = true;
        setImmediate(writer.flush);
      }
    },
    flush() {
      scheduled = false;
      if (pending.length === 0) return;
      const chunk = pending.join('\n') + '\n';
      pending = [];
      size = 0;
      write(chunk);
    },
    close() {
      open.delete(writer);
      writer.flush();
      maxBytes = 0;
    },
  };
  open.add(writer);
  if (!exitHooked) {
    exitHooked = true;
    process.once('exit', () => {
      for (const w of open) w.flush();
    });
  }
  return writer;
}
