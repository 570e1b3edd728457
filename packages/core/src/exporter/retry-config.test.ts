import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  backoffOf,
  retryOnFailureConfig,
  SENDING_QUEUE_DESCRIPTION,
  sendingQueueShape,
} from './retry-config.js';

const retry = retryOnFailureConfig('Retried: UNAVAILABLE.');
const queue = z
  .strictObject(sendingQueueShape({ defaultSize: 1000, size: 'Items.' }))
  .prefault({})
  .describe(SENDING_QUEUE_DESCRIPTION);
const issues = (schema: z.ZodType, input: unknown) =>
  schema.safeParse(input).error?.issues.map((i) => `${i.path.join('::')}: ${i.message}`);

describe('retry_on_failure', () => {
  it("has the Collector's defaults, except max_elapsed_time 0 (no limit)", () => {
    const c = retry.parse(undefined);
    expect(c).toEqual({
      enabled: true,
      initial_interval: 5000,
      max_interval: 30_000,
      max_elapsed_time: 0,
      multiplier: 1.5,
      randomization_factor: 0.5,
    });
    expect(backoffOf(c)).toEqual({
      enabled: true,
      initialMs: 5000,
      maxMs: 30_000,
      maxElapsedMs: 0,
      multiplier: 1.5,
      jitter: 0.5,
    });
  });

  it('takes Collector-style values and refuses what cannot work', () => {
    expect(
      backoffOf(
        retry.parse({
          enabled: false,
          initial_interval: '100ms',
          max_interval: '2s',
          max_elapsed_time: '1m',
          multiplier: 2,
          randomization_factor: 0,
        }),
      ),
    ).toEqual({
      enabled: false,
      initialMs: 100,
      maxMs: 2000,
      maxElapsedMs: 60_000,
      multiplier: 2,
      jitter: 0,
    });
    expect(issues(retry, { initial_interval: '10s', max_interval: '5s' })).toEqual([
      'max_interval: max_interval must not be shorter than initial_interval',
    ]);
    expect(issues(retry, { max_elapsed_time: '5' })?.[0]).toMatch(/^max_elapsed_time: "5" is not a duration/);
    expect(issues(retry, { multiplier: 0.5 })).toHaveLength(1);
    expect(issues(retry, { randomization_factor: 1.5 })).toHaveLength(1);
    expect(issues(retry, { max_retries: 3 })).toHaveLength(1);
  });
});

describe('sending_queue', () => {
  it('is on by default; enabled and queue_size as the Collector names them', () => {
    expect(queue.parse(undefined)).toEqual({ enabled: true, queue_size: 1000 });
    expect(queue.parse({ enabled: false })).toEqual({ enabled: false, queue_size: 1000 });
    expect(issues(queue, { queue_size: 0 })).toHaveLength(1);
    expect(issues(queue, { num_consumers: 10 })).toHaveLength(1);
  });
});
