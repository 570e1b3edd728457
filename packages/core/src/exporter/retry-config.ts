// The `retry_on_failure` and `sending_queue` keys of exporters that send through a SendQueue, named and
// meant as the OpenTelemetry Collector's exporterhelper keys
// (https://github.com/open-telemetry/opentelemetry-collector/blob/main/exporter/exporterhelper/README.md),
// with defaults of its own only where netmon's rule (lose nothing the queue can hold, count every drop)
// asks for them; each such default says why in its description.
import { z } from 'zod';
import { duration } from '../config/duration.js';
import type { BackoffOptions } from './send-queue.js';

/**
 * The `retry_on_failure` key. `which` says which failures are retried (it differs per protocol) and ends
 * the key's description.
 */
export function retryOnFailureConfig(which: string) {
  return z
    .strictObject({
      enabled: z
        .boolean()
        .default(true)
        .describe(
          'false: a failed send is not retried; the request is dropped and counted (netmon_exporter_dropped_items{reason="retry_exhausted"}).',
        ),
      initial_interval: duration({ min: 10 })
        .prefault('5s')
        .describe(
          'Wait after the first failed attempt of a request; each further failure waits multiplier times longer.',
        ),
      max_interval: duration({ min: 10 }).prefault('30s').describe('Longest wait between two attempts.'),
      max_elapsed_time: duration()
        .prefault('0s')
        .describe(
          'Longest time a request is retried, from its first attempt: a retry that would start later is not made, and the request is dropped and counted (reason="retry_exhausted"). 0: no limit. Default 0, where the Collector’s is 5m: a request then leaves the queue only when delivered, rejected by the backend, or pushed out by newer data when the queue is full, so an outage loses nothing the queue can hold.',
        ),
      multiplier: z
        .number()
        .min(1)
        .default(1.5)
        .describe('Factor by which the wait grows after each failed attempt.'),
      randomization_factor: z
        .number()
        .min(0)
        .max(1)
        .default(0.5)
        .describe(
          'Each wait is chosen at random within ± this fraction, so a fleet of agents does not retry in step.',
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
    .describe(
      `Retries of a failed send, with exponential backoff, one request at a time, in order. ${which}`,
    );
}

export type RetryOnFailureConfig = z.output<ReturnType<typeof retryOnFailureConfig>>;

/** The SendQueue backoff a `retry_on_failure` key asks for. */
export function backoffOf(retry: RetryOnFailureConfig): Partial<BackoffOptions> {
  return {
    enabled: retry.enabled,
    initialMs: retry.initial_interval,
    maxMs: retry.max_interval,
    maxElapsedMs: retry.max_elapsed_time,
    multiplier: retry.multiplier,
    jitter: retry.randomization_factor,
  };
}

/**
 * The fields of a `sending_queue` key; components may add their own (devzero's directory). `size` says
 * what the queue holds, in which unit, and what it costs.
 */
export function sendingQueueShape(opts: { defaultSize: number; size: string }) {
  return {
    enabled: z
      .boolean()
      .default(true)
      .describe(
        'false: no queue. A request is sent at once, with its retries; requests made while an earlier one is still being sent or retried are dropped and counted (reason="queue_full"), as nothing waits. The requests of one interval are still sent one after another.',
      ),
    queue_size: z
      .number()
      .int()
      .min(1)
      .default(opts.defaultSize)
      .describe(
        `${opts.size} Past it the oldest waiting requests are dropped and counted (reason="queue_full"): never the one in flight, never one of the interval being queued. Unlike the Collector, which refuses the newest data, the oldest goes, so the backend gets the most recent data when it is back. Ignored when enabled is false.`,
      ),
  };
}

/** The description of a `sending_queue` key (`z.strictObject(sendingQueueShape(…)).prefault({})`). */
export const SENDING_QUEUE_DESCRIPTION =
  'Requests waiting to be sent: a bounded queue, sent one request at a time and in order (the Collector’s num_consumers is 1 here, so a backend sees intervals in order).';
