import { z } from 'zod';
import { duration } from '../config/duration.js';
import type { BackoffOptions } from './send-queue.js';

/**
 * The `retry` key of exporters that send through a SendQueue. `which` says which failures are retried
 * (it differs per protocol) and ends the key's description.
 */
export function retryConfig(which: string) {
  return z
    .strictObject({
      initial_interval: duration({ min: 10 })
        .prefault('1s')
        .describe(
          'Wait after the first failed send; each further failure waits 1.5 times longer (±20% jitter).',
        ),
      max_interval: duration({ min: 10 })
        .prefault('30s')
        .describe(
          'Longest wait between two attempts. Sends are retried until they succeed, are rejected or the queue overflows.',
        ),
    })
    .superRefine((c, ctx) => {
      if (c.max_interval < c.initial_interval) {
        ctx.addIssue({
          code: 'custom',
          path: ['max_interval'],
          message: 'max_interval must not be shorter than initial_interval',
        });
      }
    })
    .prefault({})
    .describe(`Backoff between attempts of a failed send. ${which}`);
}

export type RetryConfig = z.output<ReturnType<typeof retryConfig>>;

/** The SendQueue backoff a `retry` key asks for. */
export function backoffOf(retry: RetryConfig): Partial<BackoffOptions> {
  return { initialMs: retry.initial_interval, maxMs: retry.max_interval };
}
