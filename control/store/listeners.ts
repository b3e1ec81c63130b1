// Revision listeners. A throwing listener is reported and skipped: one bad
// subscriber must never fail a commit that is already durable.

export class RevisionListeners {
  private readonly listeners = new Set<(revision: number) => void>();

  add(listener: (revision: number) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  notify(revision: number): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(revision);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  clear(): void {
    this.listeners.clear();
  }
}
