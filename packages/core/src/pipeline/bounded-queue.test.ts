import { firstValueFrom, lastValueFrom, Subject, timer } from 'rxjs';
import { defaultIfEmpty, map, toArray } from 'rxjs/operators';
import { describe, expect, it } from 'vitest';
import { BoundedQueue, boundedConcatMap } from './bounded-queue.js';

describe('BoundedQueue', () => {
  it('drops the oldest entry when full (drop_oldest)', () => {
    const q = new BoundedQueue<number>(3);
    expect([1, 2, 3].map((v) => q.push(v))).toEqual([undefined, undefined, undefined]);
    expect(q.push(4)).toBe(1);
    expect(q.clear()).toEqual([2, 3, 4]);
  });

  it('refuses the newest entry when full (drop_newest)', () => {
    const q = new BoundedQueue<number>(2, 'drop_newest');
    q.push(1);
    q.push(2);
    expect(q.push(3)).toBe(3);
    expect(q.clear()).toEqual([1, 2]);
  });

  it('wakes waiters when room appears', async () => {
    const q = new BoundedQueue<number>(1);
    q.push(1);
    let woke = false;
    const waiting = q.whenRoom().then(() => {
      woke = true;
    });
    await Promise.resolve();
    expect(woke).toBe(false);
    q.shift();
    await waiting;
    expect(woke).toBe(true);
  });
});

describe('boundedConcatMap', () => {
  it('processes one value at a time, drops what does not fit, and completes after draining', async () => {
    const source = new Subject<number>();
    const q = new BoundedQueue<number>(2);
    const dropped: number[] = [];
    const done: number[] = [];
    const result = firstValueFrom(
      source.pipe(
        boundedConcatMap(
          q,
          (v) => timer(5).pipe(map(() => done.push(v))),
          (v) => dropped.push(v),
        ),
        toArray(),
      ),
    );
    for (let i = 1; i <= 6; i++) source.next(i); // 1 runs at once; 2,3 queue; 4,5,6 push out the oldest
    source.complete();
    await result;
    expect(done).toEqual([1, 5, 6]);
    expect(dropped).toEqual([2, 3, 4]);
  });
});

describe('boundedConcatMap: a throwing callback', () => {
  it('ends the stream with the error instead of throwing it out of the subscriber (an uncaught exception)', async () => {
    const queue = new BoundedQueue<number>(1, 'drop_oldest');
    const source = new Subject<number>();
    const gate = new Subject<void>();
    const done = lastValueFrom(
      source.pipe(
        boundedConcatMap(
          queue,
          () => gate,
          () => {
            throw new Error('onDrop failed');
          },
        ),
        defaultIfEmpty(undefined),
      ),
    );
    source.next(1); // taken by work, which waits on the gate
    source.next(2); // queued
    source.next(3); // drops 2: onDrop throws
    await expect(done).rejects.toThrow('onDrop failed');
  });
});
