import { from, Observable, type ObservableInput, type OperatorFunction } from 'rxjs';

export type Overflow = 'drop_oldest' | 'drop_newest';

/**
 * A fixed-capacity FIFO that never blocks its producer: when full it drops (the oldest or the newest
 * entry) and says so. Kernel sources cannot be paused, so loss must be counted, never hidden in an
 * unbounded buffer.
 */
export class BoundedQueue<T> {
  private readonly items: (T | undefined)[];
  private head = 0;
  private count = 0;
  private waiters: (() => void)[] = [];

  constructor(
    readonly capacity: number,
    readonly overflow: Overflow = 'drop_oldest',
  ) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError('queue capacity must be an integer >= 1');
    this.items = new Array(capacity);
  }

  get depth(): number {
    return this.count;
  }

  /** Adds an item; returns the item that was dropped to make room (possibly `item` itself), if any. */
  push(item: T): T | undefined {
    if (this.count === this.capacity) {
      if (this.overflow === 'drop_newest') return item;
      const dropped = this.items[this.head];
      this.items[this.head] = item;
      this.head = (this.head + 1) % this.capacity;
      return dropped;
    }
    this.items[(this.head + this.count) % this.capacity] = item;
    this.count++;
    return undefined;
  }

  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.capacity;
    this.count--;
    if (this.waiters.length > 0 && this.count < this.capacity) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    }
    return item;
  }

  /** Removes and returns everything queued. */
  clear(): T[] {
    const out: T[] = [];
    for (let item = this.shift(); item !== undefined; item = this.shift()) out.push(item);
    return out;
  }

  /** Resolves once the queue has room for one more item. */
  whenRoom(): Promise<void> {
    if (this.count < this.capacity) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

/**
 * Like concatMap, but the values waiting for their turn sit in `queue`, which drops instead of growing
 * (concatMap's own buffer is unbounded). `onDrop` is told about every dropped value. Errors from `work`
 * must be handled inside it: one failing value must not stop the stream.
 */
export function boundedConcatMap<T>(
  queue: BoundedQueue<T>,
  work: (value: T) => ObservableInput<unknown>,
  onDrop: (value: T) => void,
): OperatorFunction<T, never> {
  return (source) =>
    new Observable<never>((subscriber) => {
      let busy = false;
      let sourceDone = false;
      // An exception thrown in an observer's callback would reach RxJS' unhandled-error hook, which rethrows
      // it asynchronously (a process crash): it ends this stream with the error instead.
      const guarded = (fn: () => void): void => {
        try {
          fn();
        } catch (err) {
          subscriber.error(err);
        }
      };
      const pump = (): void => {
        if (busy) return;
        const next = queue.shift();
        if (next === undefined) {
          if (sourceDone) subscriber.complete();
          return;
        }
        busy = true;
        const inner = from(work(next)).subscribe({
          error: (err) => subscriber.error(err),
          complete: () =>
            guarded(() => {
              busy = false;
              pump();
            }),
        });
        subscriber.add(inner);
      };
      const sub = source.subscribe({
        next: (value) =>
          guarded(() => {
            const dropped = queue.push(value);
            if (dropped !== undefined) onDrop(dropped);
            pump();
          }),
        error: (err) => subscriber.error(err),
        complete: () =>
          guarded(() => {
            sourceDone = true;
            pump();
          }),
      });
      return () => sub.unsubscribe();
    });
}
