// Deadlines of the lifecycle: a start that outlasts service::start_timeout or is interrupted by a stop
// request, a shutdown that outlasts its deadline. What is waited for is never cancelled, only left behind.
import type { Lifecycle } from '../component.js';

/** `start` was interrupted by its abort signal (a SIGTERM while starting); nothing failed. */
export class StartAbortedError extends Error {
  constructor(
    /** The component whose start was pending, e.g. `processor "plugin/slow"`. */
    readonly pending: string,
  ) {
    super(`start interrupted while ${pending} was starting`);
    this.name = 'StartAbortedError';
  }
}

export interface ShutdownReport {
  /** True when every queued batch reached the exporters before the deadline. */
  drained: boolean;
  /** Items still queued at the deadline, now lost. */
  abandonedItems: number;
  errors: string[];
}

export type StartOutcome =
  | { kind: 'started' }
  | { kind: 'failed'; err: unknown }
  | { kind: 'timeout' }
  | { kind: 'aborted' };

/**
 * Runs a component's start, and settles when it does, when `timeoutMs` passes, or when `signal` aborts,
 * whichever is first. A start left behind keeps running; its later rejection is handled here.
 */
export async function startWithin(
  component: Lifecycle,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<StartOutcome> {
  if (signal?.aborted) return { kind: 'aborted' };
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  // new Promise also turns a start that throws synchronously into a rejection.
  const started = new Promise<void>((resolve) => resolve(component.start?.())).then(
    (): StartOutcome => ({ kind: 'started' }),
    (err: unknown): StartOutcome => ({ kind: 'failed', err }),
  );
  const timeout = new Promise<StartOutcome>((resolve) => {
    timer = setTimeout(() => resolve({ kind: 'timeout' }), timeoutMs);
  });
  const aborted = new Promise<StartOutcome>((resolve) => {
    onAbort = () => resolve({ kind: 'aborted' });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([started, timeout, aborted]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

/** Settles with `promise`, or rejects once `deadline` (ms since the epoch) has passed, whichever is first. */
export function withDeadline<T>(promise: Promise<T>, deadline: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  // Even a deadline already past waits one timer tick, so work that has finished still wins the race.
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error('shutdown deadline passed')),
      Math.max(0, deadline - Date.now()),
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
