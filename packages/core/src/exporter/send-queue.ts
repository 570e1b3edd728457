// What every network exporter needs between "data is ready" and "the backend has it": a bounded queue,
// one request in flight (so a backend sees intervals in order), retries with exponential backoff on
// errors worth retrying, and counts of everything dropped. Like the Collector's exporterhelper (whose
// sending_queue and retry_on_failure keys configure it, see retry-config.ts), it is the framework's job,
// not each exporter's: the OTLP gRPC library makes one attempt only, and the DevZero client must not
// lose an interval because its backend blinked.
import type { Meter } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { errorMessage, type StatusReporter } from '../status.js';
import { defineMetrics, observeMetrics } from '../telemetry/declare.js';

/** The send queue's self-metrics: exporters that send through one list these in their factory's `metrics`. */
export const SEND_QUEUE_METRICS = defineMetrics({
  queued: {
    name: 'netmon_exporter_queue_items',
    kind: 'gauge',
    unit: '{item}',
    description: 'Items waiting in an exporter’s send queue.',
    attributes: { component: 'the exporter id' },
  },
  sent: {
    name: 'netmon_exporter_sent_items',
    kind: 'counter',
    unit: '{item}',
    description: 'Items an exporter’s backend acknowledged.',
    attributes: { component: 'the exporter id' },
  },
  failed: {
    name: 'netmon_exporter_send_failures',
    kind: 'counter',
    unit: '{attempt}',
    description: 'Send attempts that failed (each retry counts).',
    attributes: { component: 'the exporter id' },
  },
  dropped: {
    name: 'netmon_exporter_dropped_items',
    kind: 'counter',
    unit: '{item}',
    description:
      'Items an exporter gave up on: reason=queue_full (oldest dropped for newer data, or sending_queue disabled and a send in progress), rejected (the backend refused them for good), retry_exhausted (a retryable failure with retry_on_failure disabled or past max_elapsed_time), shutdown (still queued when the agent stopped).',
    attributes: { component: 'the exporter id', reason: 'queue_full, rejected, retry_exhausted or shutdown' },
  },
});

export interface BackoffOptions {
  /** false: no retry; a retryable failure drops the payload (counted `retry_exhausted`). */
  enabled: boolean;
  /** First wait after a failure. */
  initialMs: number;
  /** Longest wait between two attempts. */
  maxMs: number;
  /**
   * Longest time a payload is retried, from its first attempt: a retry whose wait would end later is not
   * made, and the payload is dropped (counted `retry_exhausted`). 0: no limit.
   */
  maxElapsedMs: number;
  multiplier: number;
  /** ± fraction of each wait chosen at random, so a fleet of agents does not retry in step. */
  jitter: number;
}

/** The Collector's retry_on_failure defaults, except max_elapsed_time (see retry-config.ts). */
export const DEFAULT_BACKOFF: BackoffOptions = {
  enabled: true,
  initialMs: 5000,
  maxMs: 30_000,
  maxElapsedMs: 0,
  multiplier: 1.5,
  jitter: 0.5,
};

/** An exporter's `sending_queue` key as the queue reads it. */
export interface SendingQueueConfig {
  /** false: no waiting room (see `SendQueueOptions.capacity`). */
  enabled: boolean;
  /** Items the queue holds. */
  queue_size: number;
}

export interface SendQueueOptions<T> {
  /**
   * Delivers one payload; resolves when the backend acknowledged it. While the queue is closing,
   * `deadline` (ms since the epoch) is when `close` gives up: a call should not be given longer.
   */
  send(payload: T, deadline?: number): Promise<void>;
  /** Items (data points, flows) in a payload: the unit of `capacity` and of the drop counters. */
  items(payload: T): number;
  /** True when a failed send may succeed later (UNAVAILABLE, a timeout). Others drop the payload. */
  retryable(err: unknown): boolean;
  /**
   * Items the queue holds (a number, or the exporter's `sending_queue`: its queue_size); past it the oldest
   * payloads are dropped (counted), so recent data survives. Payloads pushed in one synchronous run (one
   * flush) are a group that never pushes out its own members, unless the group alone is larger than the
   * capacity. A `sending_queue` with `enabled: false` has no waiting room: a group is taken only when
   * nothing of an earlier group is queued or in flight, otherwise it is dropped (counted `queue_full`).
   */
  capacity: number | SendingQueueConfig;
  backoff?: Partial<BackoffOptions>;
  logger: Logger;
  status: StatusReporter;
  /** Self-metrics go here, with these attributes (at least `component`). */
  meter: Meter;
  attributes: { component: string } & Record<string, string>;
  /** Called after the queue's content changed (sent, dropped, added): exporters that persist it save here. */
  onChange?(): void;
}

export type DropReason = 'queue_full' | 'rejected' | 'retry_exhausted' | 'shutdown';

/** At shutdown, how long an exporter's call in flight and last attempts may take by default. */
export const DEFAULT_CLOSE_DEADLINE_MS = 3000;

export interface CloseOptions {
  /** Leave what was not delivered in `contents()` (the exporter persists it) instead of dropping it. */
  keep?: boolean;
  /**
   * How long the call in flight and the last attempts may take in all; when it has passed, `cancel` is
   * called and whatever is still undelivered is left (kept or dropped). Default 3 s: exporters stop one
   * after another within the agent's service::shutdown_timeout, and one blackholed backend must not use
   * up the time of the ones after it.
   */
  deadlineMs?: number;
  /**
   * Cancels the exporter's calls in flight, called once when the deadline passes. A call cancelled then
   * may still have reached the backend: a kept payload may be delivered twice (at least once).
   */
  cancel?: () => void;
}

/** Counters a queue keeps, for /status and tests. */
export interface SendQueueStats {
  queuedPayloads: number;
  queuedItems: number;
  sentPayloads: number;
  sentItems: number;
  failedAttempts: number;
  dropped: Record<DropReason, number>;
  /** ms since the epoch of the last failure still unresolved, if any. */
  failingSince?: number;
  lastError?: string;
}

/**
 * A bounded FIFO of payloads sent one at a time. A retryable failure keeps the payload at the head and
 * waits (exponential backoff with jitter); data leaves the queue by delivery, by a rejection the backend
 * means, by overflow, or — when the backoff says so — when retrying is off or has lasted `maxElapsedMs`.
 * The exporter's status is recoverable_error while the head keeps failing and ok again after the next
 * success.
 */
export class SendQueue<T> {
  private readonly queue: T[] = [];
  private queuedItems = 0;
  private running = false;
  private closed = false;
  private timer?: NodeJS.Timeout;
  private wake?: () => void;
  private attempt = 0;
  /** The payload whose attempts `firstAttemptAt` dates (the head being sent). */
  private trying?: T;
  private firstAttemptAt = 0;
  private readonly capacity: number;
  private readonly queueEnabled: boolean;
  /** Payloads and items refused in the current synchronous run because the queue is disabled and busy. */
  private busyDrops = { payloads: 0, items: 0 };
  /** Payloads (at the tail) and their items pushed in the current synchronous run. */
  private group = 0;
  private groupItems = 0;
  /** Set once close() has returned: late outcomes of an abandoned call change nothing. */
  private finished = false;
  private readonly backoff: BackoffOptions;
  private readonly stats: Omit<SendQueueStats, 'queuedPayloads' | 'queuedItems'> = {
    sentPayloads: 0,
    sentItems: 0,
    failedAttempts: 0,
    dropped: { queue_full: 0, rejected: 0, retry_exhausted: 0, shutdown: 0 },
  };
  private idle: Promise<void> = Promise.resolve();
  private readonly unobserve: () => void;

  constructor(private readonly opts: SendQueueOptions<T>) {
    this.backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
    const cap = opts.capacity;
    this.capacity = typeof cap === 'number' ? cap : cap.queue_size;
    this.queueEnabled = typeof cap === 'number' || cap.enabled;
    const attrs = opts.attributes;
    const observed = observeMetrics(opts.meter, SEND_QUEUE_METRICS, (r) => {
      r.queued(this.queuedItems, attrs);
      r.sent(this.stats.sentItems, attrs);
      r.failed(this.stats.failedAttempts, attrs);
      for (const [reason, n] of Object.entries(this.stats.dropped)) r.dropped(n, { ...attrs, reason });
    });
    this.unobserve = observed.close;
  }

  /**
   * Adds a payload and starts sending if idle. After `close`, the payload is dropped (counted). Past
   * `capacity`, the oldest payloads waiting are dropped: never the one in flight, and never one pushed in
   * the same synchronous run as this one (the other requests of the same flush), unless those alone
   * exceed `capacity` (then their oldest go, the newest payload always stays). While a payload is in
   * flight the queue may hold its items on top of `capacity`. With the queue disabled, a payload is
   * dropped when payloads of an earlier run are still queued or in flight.
   */
  push(payload: T): void {
    const n = this.opts.items(payload);
    if (this.closed) {
      this.count('shutdown', n);
      return;
    }
    if (!this.queueEnabled && this.queue.length > this.group) {
      this.count('queue_full', n);
      if (this.busyDrops.payloads === 0) queueMicrotask(() => this.reportBusyDrops());
      this.busyDrops.payloads++;
      this.busyDrops.items += n;
      return;
    }
    this.queue.push(payload);
    this.queuedItems += n;
    if (this.group === 0) queueMicrotask(() => this.endGroup());
    this.group++;
    this.groupItems += n;
    this.makeRoom();
    this.opts.onChange?.();
    this.kick();
  }

  private reportBusyDrops(): void {
    this.opts.logger.warn(
      { dropped_items: this.busyDrops.items, dropped_requests: this.busyDrops.payloads },
      'sending_queue is disabled and a send is still in progress: dropped the new data',
    );
    this.busyDrops = { payloads: 0, items: 0 };
  }

  /** Drops the oldest payloads until the queue fits its capacity (see `push`). */
  private makeRoom(): void {
    if (!this.queueEnabled) return;
    const cap = this.capacity;
    let dropped = 0;
    let droppedItems = 0;
    const drop = (index: number) => {
      const [old] = this.queue.splice(index, 1);
      const m = this.opts.items(old);
      this.queuedItems -= m;
      dropped++;
      droppedItems += m;
      return m;
    };
    // The head may be in flight: its outcome is the sender's to handle, so it is never dropped.
    const first = this.running ? 1 : 0;
    // Older payloads waiting, oldest first.
    while (this.queuedItems > cap && this.queue.length - this.group > first) drop(first);
    // This run's payloads alone are more than the queue holds: their oldest go, the newest stays.
    let start = this.queue.length - this.group;
    if (start < first) {
      // The group's first payload is already in flight: it stays, and does not count.
      this.groupItems -= this.opts.items(this.queue[0]);
      this.group--;
      start = first;
    }
    while (this.groupItems > cap && this.group > 1) {
      this.groupItems -= drop(start);
      this.group--;
    }
    if (dropped > 0) {
      this.count('queue_full', droppedItems);
      this.opts.logger.warn(
        { dropped_items: droppedItems, dropped_requests: dropped, capacity: cap },
        'send queue full: dropped the oldest waiting data',
      );
    }
  }

  private endGroup(): void {
    this.group = 0;
    this.groupItems = 0;
  }

  /** Payloads waiting (including the one in flight), oldest first; for exporters that persist them. */
  contents(): readonly T[] {
    return this.queue;
  }

  statistics(): SendQueueStats {
    return {
      ...this.stats,
      dropped: { ...this.stats.dropped },
      queuedPayloads: this.queue.length,
      queuedItems: this.queuedItems,
    };
  }

  /** Resolves when the queue is empty and nothing is in flight (or it was closed). */
  whenIdle(): Promise<void> {
    return this.idle;
  }

  /**
   * Stops retrying, waits for the call in flight, then makes one last attempt per payload, oldest first,
   * until one fails in a way worth retrying (a payload the backend rejects for good is dropped, counted
   * `rejected`, and the next one is tried). All of it within `deadlineMs`: when that has passed, `cancel`
   * is called and close returns without waiting for the call any longer. With `keep` (the exporter
   * persists what is left) the rest stays in `contents()`; otherwise it is dropped and counted as
   * `shutdown`. Returns the number of items not delivered.
   */
  async close(opts: CloseOptions = {}): Promise<number> {
    if (this.closed) return this.queuedItems;
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.wake?.();
    const budget = opts.deadlineMs ?? DEFAULT_CLOSE_DEADLINE_MS;
    const deadline = Date.now() + budget;
    let expired = false;
    let timer: NodeJS.Timeout | undefined;
    const expiry = new Promise<'expired'>((resolve) => {
      timer = setTimeout(() => {
        expired = true;
        try {
          opts.cancel?.();
        } catch (err) {
          this.opts.logger.warn({ err: errorMessage(err) }, 'cancelling the calls in flight failed');
        }
        resolve('expired');
      }, budget);
    });
    try {
      await Promise.race([this.idle, expiry]);
      while (!expired && this.queue.length > 0) {
        const head = this.queue[0];
        const outcome = await Promise.race([this.attemptOnce(head, deadline), expiry]);
        if (outcome === 'expired') break;
        if (outcome.ok) {
          this.delivered(head);
          continue;
        }
        this.stats.failedAttempts++;
        this.stats.lastError = errorMessage(outcome.err);
        if (!this.opts.retryable(outcome.err)) {
          this.reject(head, outcome.err);
          continue;
        }
        this.opts.logger.warn({ err: errorMessage(outcome.err) }, 'final send failed while stopping');
        break;
      }
    } finally {
      clearTimeout(timer);
    }
    if (expired) {
      this.opts.logger.warn(
        { deadline_ms: budget, queued_items: this.queuedItems },
        'stopping: the backend did not answer within the shutdown deadline; gave up on the call in flight',
      );
    }
    this.finished = true;
    const left = this.queuedItems;
    this.unobserve();
    if (left > 0 && !opts.keep) {
      this.count('shutdown', left);
      this.queue.length = 0;
      this.queuedItems = 0;
      this.opts.logger.error({ dropped_items: left }, 'stopped with data the backend never acknowledged');
    }
    this.opts.onChange?.();
    return left;
  }

  private kick(): void {
    if (this.running || this.closed || this.queue.length === 0) return;
    this.running = true;
    this.idle = this.run().finally(() => {
      this.running = false;
      // A payload pushed after the loop saw the queue empty, before this ran, found it still running.
      this.kick();
    });
  }

  private async run(): Promise<void> {
    while (!this.closed && this.queue.length > 0) {
      const head = this.queue[0];
      if (this.trying !== head) {
        this.trying = head;
        this.firstAttemptAt = Date.now();
      }
      try {
        await this.opts.send(head);
      } catch (err) {
        // close() gave up on this call: what became of it no longer matters.
        if (this.finished) return;
        this.stats.failedAttempts++;
        this.stats.lastError = errorMessage(err);
        this.stats.failingSince ??= Date.now();
        if (!this.opts.retryable(err)) {
          this.reject(head, err);
          this.opts.status.recoverableError(err);
          // A rejection is about that payload: the next one starts its own backoff.
          this.attempt = 0;
          continue;
        }
        this.opts.status.recoverableError(err);
        // Closing: close() makes the last attempts itself; a backoff now would only delay shutdown.
        if (this.closed) break;
        const wait = this.nextWait();
        const { enabled, maxElapsedMs } = this.backoff;
        const elapsed = Date.now() - this.firstAttemptAt;
        if (!enabled || (maxElapsedMs > 0 && elapsed + wait > maxElapsedMs)) {
          this.giveUp(head, err, enabled ? elapsed : undefined);
          this.attempt = 0;
          continue;
        }
        this.opts.logger.warn(
          {
            err: errorMessage(err),
            attempt: this.attempt,
            retry_in_ms: wait,
            queued_items: this.queuedItems,
          },
          'send failed; will retry',
        );
        await this.sleep(wait);
        continue;
      }
      if (this.finished) return;
      this.delivered(head);
      if (this.attempt > 0 || this.stats.failingSince !== undefined) {
        this.opts.logger.info(
          { after_attempts: this.attempt + 1 },
          'backend reachable again; sending resumed',
        );
      }
      this.attempt = 0;
      this.stats.failingSince = undefined;
      this.stats.lastError = undefined;
      this.opts.status.ok();
    }
  }

  /** One send whose failure, even a synchronous throw, comes back as a value. */
  private attemptOnce(payload: T, deadline: number): Promise<{ ok: true } | { ok: false; err: unknown }> {
    try {
      return this.opts.send(payload, deadline).then(
        () => ({ ok: true as const }),
        (err: unknown) => ({ ok: false as const, err }),
      );
    } catch (err) {
      return Promise.resolve({ ok: false as const, err });
    }
  }

  /** Drops a payload the backend refused for good (counted `rejected`). */
  private reject(payload: T, err: unknown): void {
    if (!this.remove(payload)) return;
    const n = this.opts.items(payload);
    this.count('rejected', n);
    this.opts.logger.error(
      { err: errorMessage(err), dropped_items: n },
      'the backend rejected data for good; dropped it',
    );
    this.opts.onChange?.();
  }

  /**
   * Drops a payload whose failure was retryable but may not be retried (counted `retry_exhausted`):
   * retrying is off, or the next wait would end past max_elapsed_time (`elapsedMs` since its first attempt).
   */
  private giveUp(payload: T, err: unknown, elapsedMs?: number): void {
    if (!this.remove(payload)) return;
    const n = this.opts.items(payload);
    this.count('retry_exhausted', n);
    if (elapsedMs === undefined) {
      this.opts.logger.error(
        { err: errorMessage(err), dropped_items: n },
        'send failed and retry_on_failure is disabled; dropped the data',
      );
    } else {
      this.opts.logger.error(
        {
          err: errorMessage(err),
          dropped_items: n,
          attempts: this.attempt,
          elapsed_ms: elapsedMs,
          max_elapsed_ms: this.backoff.maxElapsedMs,
        },
        'send kept failing until retry_on_failure::max_elapsed_time; dropped the data',
      );
    }
    this.opts.onChange?.();
  }

  private delivered(payload: T): void {
    if (!this.remove(payload)) return;
    const n = this.opts.items(payload);
    this.stats.sentPayloads++;
    this.stats.sentItems += n;
    this.opts.onChange?.();
  }

  /** Removes a payload if it is still queued (overflow may have dropped it meanwhile). */
  private remove(payload: T): boolean {
    const i = this.queue.indexOf(payload);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    this.queuedItems -= this.opts.items(payload);
    return true;
  }

  private nextWait(): number {
    const { initialMs, maxMs, multiplier, jitter } = this.backoff;
    const base = Math.min(maxMs, initialMs * multiplier ** this.attempt);
    this.attempt++;
    return Math.round(base * (1 + jitter * (2 * Math.random() - 1)));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = () => {
        clearTimeout(this.timer);
        this.timer = undefined;
        this.wake = undefined;
        resolve();
      };
      this.timer = setTimeout(() => this.wake?.(), ms);
    });
  }

  private count(reason: DropReason, items: number): void {
    this.stats.dropped[reason] += items;
  }
}
