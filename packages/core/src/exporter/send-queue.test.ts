import { metrics } from '@opentelemetry/api';
import { describe, expect, it, vi } from 'vitest';
import { StatusBoard } from '../status.js';
import { silentLogger } from '../telemetry/logger.js';
import { SendQueue, type SendQueueOptions } from './send-queue.js';

/** A backend that fails while `down` is set; payloads are arrays of numbers, one item each. */
function setup(opts: Partial<SendQueueOptions<number[]>> = {}) {
  const board = new StatusBoard();
  const state = board.register('exporter', 'test');
  board.set(state, 'starting');
  board.set(state, 'ok');
  const received: number[] = [];
  const backend = { down: false, reject: false, attempts: 0 };
  const queue = new SendQueue<number[]>({
    send: async (p) => {
      backend.attempts++;
      await new Promise((r) => setTimeout(r, 1));
      if (backend.reject) throw Object.assign(new Error('bad request'), { retry: false });
      if (backend.down) throw Object.assign(new Error('unavailable'), { retry: true });
      received.push(...p);
    },
    items: (p) => p.length,
    retryable: (err) => (err as { retry?: boolean }).retry === true,
    capacity: 100,
    backoff: { initialMs: 5, maxMs: 20, jitter: 0 },
    logger: silentLogger(),
    status: board.reporter(state),
    meter: metrics.getMeterProvider().getMeter('test'),
    attributes: { component: 'test' },
    ...opts,
  });
  return { queue, received, backend, state };
}

const until = async (cond: () => boolean) => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(cond()).toBe(true);
};

describe('SendQueue', () => {
  it('delivers in order, once, across an outage, and reports the outage as status', async () => {
    const { queue, received, backend, state } = setup();
    backend.down = true;
    for (let i = 0; i < 10; i++) queue.push([i]);
    await until(() => backend.attempts >= 4);
    expect(state.status).toBe('recoverable_error');
    expect(queue.statistics().queuedItems).toBe(10);
    backend.down = false;
    await until(() => received.length === 10);
    expect(received).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(state.status).toBe('ok');
    expect(queue.statistics()).toMatchObject({ sentItems: 10, queuedItems: 0, dropped: { queue_full: 0 } });
    await queue.close();
  });

  it('drops the oldest waiting payloads past capacity, never the one in flight, and counts them', async () => {
    const { queue, received, backend } = setup({ capacity: 3 });
    backend.down = true;
    // One flush each: payloads pushed apart from each other.
    for (let i = 0; i < 6; i++) {
      queue.push([i]);
      await Promise.resolve();
    }
    backend.down = false;
    await until(() => queue.statistics().queuedItems === 0);
    expect(received).toEqual([0, 4, 5]);
    expect(queue.statistics().dropped.queue_full).toBe(3);
    await queue.close();
  });

  it('never drops a payload pushed by the same flush while it is being pushed (healthy backend)', async () => {
    // Capacity 10: an older 2-item payload is in flight when a flush pushes five 2-item payloads.
    const { queue, received } = setup({ capacity: 10 });
    queue.push([100, 101]);
    await Promise.resolve();
    for (let i = 0; i < 5; i++) queue.push([2 * i, 2 * i + 1]);
    await until(() => queue.statistics().queuedItems === 0);
    expect(received).toEqual([100, 101, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(queue.statistics().dropped.queue_full).toBe(0);
    await queue.close();
  });

  it('a flush makes room by dropping older waiting payloads; one larger than the queue keeps its newest', async () => {
    const { queue, received, backend } = setup({ capacity: 4 });
    backend.down = true;
    queue.push([100]); // in flight, failing
    await Promise.resolve();
    queue.push([101]);
    queue.push([102]);
    await Promise.resolve();
    // A flush of four: the older waiting ones go, the one in flight stays (on top of capacity).
    for (let i = 0; i < 4; i++) queue.push([i]);
    expect(queue.contents()).toEqual([[100], [0], [1], [2], [3]]);
    expect(queue.statistics().dropped.queue_full).toBe(2);
    await Promise.resolve();
    // A flush of six alone exceeds the queue: its two oldest go (and everything older waiting).
    for (let i = 10; i < 16; i++) queue.push([i]);
    expect(queue.contents()).toEqual([[100], [12], [13], [14], [15]]);
    expect(queue.statistics().dropped.queue_full).toBe(8);
    backend.down = false;
    await until(() => queue.statistics().queuedItems === 0);
    expect(received).toEqual([100, 12, 13, 14, 15]);
    await queue.close();
  });

  it('a rejection resets the backoff: the next payload starts from the first wait', async () => {
    const waits: number[] = [];
    let calls = 0;
    const { queue, received } = setup({
      // Fails twice (retryable), then rejects the first payload; the second fails once, then succeeds.
      send: async (p) => {
        calls++;
        const t = Date.now();
        waits.push(t);
        if (calls <= 2) throw Object.assign(new Error('unavailable'), { retry: true });
        if (calls === 3) throw Object.assign(new Error('bad'), { retry: false });
        if (calls === 4) throw Object.assign(new Error('unavailable'), { retry: true });
        received.push(...p);
      },
      backoff: { initialMs: 20, maxMs: 10_000, multiplier: 10, jitter: 0 },
    });
    queue.push([1]);
    queue.push([2]);
    await until(() => received.length === 1);
    expect(received).toEqual([2]);
    // Waits: 20, 200 for the first payload; after its rejection, 20 again (not 2000).
    const gaps = waits.slice(1).map((t, i) => t - waits[i]);
    expect(gaps[3]).toBeLessThan(1000);
    expect(queue.statistics().dropped.rejected).toBe(1);
    await queue.close();
  });

  it('drops what the backend rejects for good and goes on', async () => {
    const { queue, received, backend } = setup();
    backend.reject = true;
    queue.push([1, 2]);
    await until(() => queue.statistics().dropped.rejected === 2);
    backend.reject = false;
    queue.push([3]);
    await until(() => received.length === 1);
    expect(received).toEqual([3]);
    await queue.close();
  });

  it('makes a last attempt on close; keeps or counts what is left', async () => {
    const a = setup();
    a.backend.down = true;
    a.queue.push([1]);
    a.queue.push([2]);
    await until(() => a.backend.attempts >= 1);
    a.backend.down = false;
    expect(await a.queue.close()).toBe(0);
    expect(a.received).toEqual([1, 2]);

    const b = setup();
    b.backend.down = true;
    b.queue.push([1, 2, 3]);
    await until(() => b.backend.attempts >= 1);
    expect(await b.queue.close({ keep: true })).toBe(3);
    expect(b.queue.contents()).toEqual([[1, 2, 3]]);
    expect(b.queue.statistics().dropped.shutdown).toBe(0);

    const c = setup();
    c.backend.down = true;
    c.queue.push([1, 2, 3]);
    expect(await c.queue.close()).toBe(3);
    expect(c.queue.statistics().dropped.shutdown).toBe(3);
    c.queue.push([4]);
    expect(c.queue.statistics().dropped.shutdown).toBe(4);
  });

  it('close drops (as rejected) a payload the backend refuses for good instead of keeping it, and goes on', async () => {
    const sent: number[][] = [];
    let hold: () => void = () => {};
    let calls = 0;
    const { queue } = setup({
      // The first call hangs until released; on close, [1] is refused for good and [2] accepted.
      send: (p) => {
        calls++;
        if (calls === 1)
          return new Promise<void>((r) => (hold = r)).then(() =>
            Promise.reject(Object.assign(new Error('x'), { retry: true })),
          );
        if (p[0] === 1) return Promise.reject(Object.assign(new Error('invalid'), { retry: false }));
        sent.push(p);
        return Promise.resolve();
      },
    });
    queue.push([1]);
    queue.push([2]);
    await new Promise((r) => setTimeout(r, 5));
    const closing = queue.close({ keep: true });
    hold();
    expect(await closing).toBe(0);
    expect(queue.contents()).toEqual([]);
    expect(sent).toEqual([[2]]);
    expect(queue.statistics().dropped).toEqual({
      queue_full: 0,
      rejected: 1,
      retry_exhausted: 0,
      shutdown: 0,
    });
  });

  it('close is bounded: past deadlineMs it cancels the call in flight and keeps or drops what is left', async () => {
    // A blackholed backend: calls never answer until cancelled.
    const pending = new Set<(err: Error) => void>();
    let cancels = 0;
    const hang = () =>
      new Promise<void>((_, reject) => {
        pending.add(reject);
      });
    const a = setup({ send: hang });
    a.queue.push([1]);
    a.queue.push([2, 3]);
    await new Promise((r) => setTimeout(r, 5));
    const t0 = Date.now();
    const left = await a.queue.close({
      keep: true,
      deadlineMs: 200,
      cancel: () => {
        cancels++;
        for (const reject of pending) reject(Object.assign(new Error('cancelled'), { retry: true }));
        pending.clear();
      },
    });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    expect(left).toBe(3);
    expect(cancels).toBe(1);
    expect(a.queue.contents()).toEqual([[1], [2, 3]]);

    // Without a cancel that works (the call goes on hanging), close still returns at the deadline, and
    // gives the last attempts only what is left of it.
    const deadlines: (number | undefined)[] = [];
    let first = true;
    const b = setup({
      send: (_p, deadline) => {
        deadlines.push(deadline);
        if (first) {
          first = false;
          return Promise.reject(Object.assign(new Error('unavailable'), { retry: true }));
        }
        return new Promise<void>(() => {});
      },
      backoff: { initialMs: 60_000, maxMs: 60_000, jitter: 0 },
    });
    b.queue.push([1]);
    await new Promise((r) => setTimeout(r, 5));
    const t1 = Date.now();
    expect(await b.queue.close({ deadlineMs: 150 })).toBe(1);
    expect(Date.now() - t1).toBeLessThan(2000);
    expect(b.queue.statistics().dropped.shutdown).toBe(1);
    expect(deadlines[0]).toBeUndefined();
    expect(deadlines[1]).toBeGreaterThanOrEqual(t1 + 150);
    expect(deadlines[1]).toBeLessThanOrEqual(t1 + 200);
  });

  it('does not sit out a backoff when the send in flight fails after close began', async () => {
    let fail: (err: Error) => void = () => {};
    let calls = 0;
    const { queue } = setup({
      // The first attempt hangs until failed by hand; the last attempt of close() fails at once.
      send: () =>
        ++calls === 1
          ? new Promise<void>((_, reject) => {
              fail = reject;
            })
          : Promise.reject(Object.assign(new Error('unavailable'), { retry: true })),
      backoff: { initialMs: 60_000, maxMs: 60_000, jitter: 0 },
    });
    queue.push([1]);
    await new Promise((r) => setTimeout(r, 5));
    const closing = queue.close({ keep: true });
    const t0 = Date.now();
    fail(Object.assign(new Error('cancelled'), { retry: true }));
    expect(await closing).toBe(1);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(queue.contents()).toEqual([[1]]);
    expect(calls).toBe(2);
  });

  it('retry disabled: a retryable failure drops that payload (retry_exhausted) and the next is tried', async () => {
    const { queue, received, backend, state } = setup({
      backoff: { enabled: false, initialMs: 5, maxMs: 5 },
    });
    backend.down = true;
    queue.push([1, 2]);
    await until(() => queue.statistics().dropped.retry_exhausted === 2);
    expect(backend.attempts).toBe(1);
    expect(queue.statistics()).toMatchObject({ queuedItems: 0, failedAttempts: 1 });
    expect(state.status).toBe('recoverable_error');
    backend.down = false;
    queue.push([3]);
    await until(() => received.length === 1);
    expect(received).toEqual([3]);
    expect(backend.attempts).toBe(2);
    expect(state.status).toBe('ok');
    await queue.close();
  });

  it('max_elapsed_time: a payload is retried until the next wait would end past it, then dropped and counted', async () => {
    vi.useFakeTimers();
    try {
      // Waits of 40 ms (no jitter, multiplier 1): attempts at 0, 40, 80, 120 ms; a fourth wait would end
      // at 160 ms, past 150 ms: four attempts, then the payload goes.
      const attempts: { first: number; at: number }[] = [];
      const { queue, received, backend } = setup({
        send: async (p) => {
          attempts.push({ first: p[0], at: Date.now() });
          if (backend.down) throw Object.assign(new Error('unavailable'), { retry: true });
          received.push(...p);
        },
        backoff: { initialMs: 40, maxMs: 40, multiplier: 1, jitter: 0, maxElapsedMs: 150 },
      });
      const t0 = Date.now();
      backend.down = true;
      queue.push([1, 2, 3]);
      queue.push([4]);
      await vi.advanceTimersByTimeAsync(119);
      expect(queue.statistics().dropped.retry_exhausted).toBe(0);
      await vi.advanceTimersByTimeAsync(1);
      expect(queue.statistics().dropped.retry_exhausted).toBe(3);
      // The next payload has its own clock: tried at once (at 120 ms), then after 40 ms.
      expect(attempts.map((a) => [a.first, a.at - t0])).toEqual([
        [1, 0],
        [1, 40],
        [1, 80],
        [1, 120],
        [4, 120],
      ]);
      expect(queue.contents()).toEqual([[4]]);
      await vi.advanceTimersByTimeAsync(40);
      expect(attempts.at(-1)).toEqual({ first: 4, at: t0 + 160 });
      backend.down = false;
      await vi.advanceTimersByTimeAsync(40);
      expect(received).toEqual([4]);
      expect(queue.statistics().dropped).toEqual({
        queue_full: 0,
        rejected: 0,
        retry_exhausted: 3,
        shutdown: 0,
      });
      await queue.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('max_elapsed_time 0 retries without limit', async () => {
    const { queue, received, backend } = setup({
      backoff: { initialMs: 2, maxMs: 2, jitter: 0, maxElapsedMs: 0 },
    });
    backend.down = true;
    queue.push([7]);
    await until(() => backend.attempts >= 30);
    backend.down = false;
    await until(() => received.length === 1);
    expect(queue.statistics().dropped.retry_exhausted).toBe(0);
    await queue.close();
  });

  it('queue disabled: a flush is sent whole; one made while an earlier send is in progress is dropped', async () => {
    const { queue, received, backend } = setup({ capacity: { enabled: false, queue_size: 1 } });
    backend.down = true;
    // One flush of three payloads, more items than queue_size (ignored when disabled): all taken.
    queue.push([1]);
    queue.push([2, 3]);
    queue.push([4]);
    expect(queue.contents()).toEqual([[1], [2, 3], [4]]);
    await until(() => backend.attempts >= 2);
    // The next flush arrives while the first is still being retried: nothing waits, it is dropped.
    queue.push([5]);
    queue.push([6, 7]);
    expect(queue.contents()).toEqual([[1], [2, 3], [4]]);
    expect(queue.statistics().dropped.queue_full).toBe(3);
    backend.down = false;
    await until(() => received.length === 4);
    expect(received).toEqual([1, 2, 3, 4]);
    // Idle again: the next flush goes.
    queue.push([8]);
    await until(() => received.length === 5);
    expect(received).toEqual([1, 2, 3, 4, 8]);
    expect(queue.statistics().dropped.queue_full).toBe(3);
    await queue.close();
  });

  it('queue enabled with the same size would keep the later flush (and drop the oldest instead)', async () => {
    const { queue, received, backend } = setup({ capacity: { enabled: true, queue_size: 3 } });
    backend.down = true;
    queue.push([1]);
    await Promise.resolve();
    queue.push([2]);
    await Promise.resolve();
    queue.push([3]);
    await Promise.resolve();
    queue.push([4]);
    expect(queue.contents()).toEqual([[1], [3], [4]]);
    expect(queue.statistics().dropped.queue_full).toBe(1);
    backend.down = false;
    await until(() => received.length === 3);
    expect(received).toEqual([1, 3, 4]);
    await queue.close();
  });
});
