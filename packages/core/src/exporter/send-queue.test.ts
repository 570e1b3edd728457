import { metrics } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
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
    for (let i = 0; i < 6; i++) queue.push([i]);
    backend.down = false;
    await until(() => queue.statistics().queuedItems === 0);
    expect(received).toEqual([0, 4, 5]);
    expect(queue.statistics().dropped.queue_full).toBe(3);
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
});
