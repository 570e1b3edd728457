import type { Batch, BatchSink } from '../component.js';

/** Collects what a receiver emits. */
export class CollectingSink<B extends Batch = Batch> implements BatchSink {
  readonly batches: B[] = [];
  consume(batch: Batch): void {
    this.batches.push(batch as B);
  }
  ready(): Promise<void> {
    return Promise.resolve();
  }
  get items(): number {
    return this.batches.reduce((n, b) => n + b.length, 0);
  }
  /** Resolves once at least `n` items arrived, or rejects after `timeoutMs`. */
  async waitForItems(n: number, timeoutMs = 5000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.items < n) {
      if (Date.now() > until)
        throw new Error(`expected ${n} items, got ${this.items} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}
