// Component status, modelled on the OpenTelemetry Collector's: the lifecycle states are reported by the
// framework, components report runtime changes (an exporter failing, a receiver recovering).

export const STATUSES = [
  'starting',
  'ok',
  'recoverable_error',
  'permanent_error',
  'fatal_error',
  'stopping',
  'stopped',
] as const;
export type Status = (typeof STATUSES)[number];

// A component is `starting` from the moment it is created: the service it belongs to is starting, and
// /status must never show a state outside the seven above.
const TRANSITIONS: Record<Status, readonly Status[]> = {
  starting: ['ok', 'recoverable_error', 'permanent_error', 'fatal_error', 'stopping'],
  ok: ['ok', 'recoverable_error', 'permanent_error', 'fatal_error', 'stopping'],
  recoverable_error: ['ok', 'recoverable_error', 'permanent_error', 'fatal_error', 'stopping'],
  permanent_error: ['stopping'],
  fatal_error: [],
  stopping: ['recoverable_error', 'permanent_error', 'fatal_error', 'stopped'],
  stopped: [],
};

export type ComponentKind = 'receiver' | 'processor' | 'exporter' | 'extension';

/** Items through one component, counted by the framework at its edges (components never count these). */
export interface ItemCounters {
  /** Items handed to the component. */
  in: number;
  /** Items the component passed on (processors), produced (receivers) or delivered (exporters). */
  out: number;
  /**
   * Items lost to a full queue or a limit: data the user will not see. For a processor, the items of the
   * batches it returned nothing (undefined) for: a plugin that forgot its return loses them all.
   */
  dropped: number;
  /** Items in batches the component failed to process or export. */
  failed: number;
  /**
   * Receivers only: items handed over that no pipeline took — emitted after shutdown closed the
   * pipelines, or turned away by every pipeline's full `drop_newest` queue (those are also `dropped`).
   * `out` counts the items at least one pipeline took, so `out + refused` is everything handed over.
   */
  refused?: number;
  /**
   * Processors only: rows they did not pass on by design — left out of the batch they returned, or the
   * whole batch when they returned null: a filter's, delta's baselines and unchanged flows, classify's
   * second copy of a connection.
   */
  filtered?: number;
}

export interface ComponentState {
  kind: ComponentKind;
  id: string;
  signal?: string;
  /** Set for processors, which are instantiated once per pipeline. */
  pipeline?: string;
  status: Status;
  /** ms since the Unix epoch of the last status change. */
  since: number;
  /** When the current run of recoverable errors began (ms), for liveness budgets. */
  errorSince?: number;
  lastError?: string;
  lastErrorTime?: number;
  items: ItemCounters;
  /** Component-specific facts for /status (sync state, table sizes), read when the document is made. */
  details?: () => Record<string, unknown>;
}

/** What a component holds to report its own runtime status. */
export interface StatusReporter {
  ok(): void;
  recoverableError(err: unknown): void;
  permanentError(err: unknown): void;
  fatalError(err: unknown): void;
  /** Publishes component-specific facts in /status; `facts` is called each time the document is made. */
  describe(facts: () => Record<string, unknown>): void;
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Status of every component instance in the process. */
export class StatusBoard {
  private readonly entries = new Map<string, ComponentState>();
  private readonly listeners = new Set<(state: ComponentState, previous: Status) => void>();

  static key(kind: ComponentKind, id: string, signal?: string, pipeline?: string): string {
    return [kind, signal ?? '', pipeline ?? '', id].join('|');
  }

  register(
    kind: ComponentKind,
    id: string,
    opts: { signal?: string; pipeline?: string } = {},
  ): ComponentState {
    const key = StatusBoard.key(kind, id, opts.signal, opts.pipeline);
    let state = this.entries.get(key);
    if (!state) {
      state = {
        kind,
        id,
        signal: opts.signal,
        pipeline: opts.pipeline,
        status: 'starting',
        since: Date.now(),
        items:
          kind === 'receiver'
            ? { in: 0, out: 0, dropped: 0, failed: 0, refused: 0 }
            : kind === 'processor'
              ? { in: 0, out: 0, dropped: 0, failed: 0, filtered: 0 }
              : { in: 0, out: 0, dropped: 0, failed: 0 },
      };
      this.entries.set(key, state);
    }
    return state;
  }

  /** Applies a transition if the state machine allows it; returns whether it did. */
  set(state: ComponentState, status: Status, err?: unknown): boolean {
    const previous = state.status;
    if (!TRANSITIONS[previous].includes(status)) return false;
    const now = Date.now();
    if (status !== previous) state.since = now;
    if (status === 'recoverable_error') state.errorSince ??= now;
    else if (status !== 'stopping' && status !== 'stopped') state.errorSince = undefined;
    if (err !== undefined) {
      state.lastError = errorMessage(err);
      state.lastErrorTime = now;
    }
    state.status = status;
    for (const l of this.listeners) l(state, previous);
    return true;
  }

  reporter(state: ComponentState): StatusReporter {
    return {
      ok: () => this.set(state, 'ok'),
      recoverableError: (err) => this.set(state, 'recoverable_error', err),
      permanentError: (err) => this.set(state, 'permanent_error', err),
      fatalError: (err) => this.set(state, 'fatal_error', err),
      describe: (facts) => {
        state.details = facts;
      },
    };
  }

  onChange(listener: (state: ComponentState, previous: Status) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  all(): ComponentState[] {
    return [...this.entries.values()];
  }
}

/** Where the framework logs what it decides about a component's status. */
interface StatusLog {
  warn(obj: object, msg: string): void;
  info(msg: string): void;
}

/**
 * The framework's status policy for batches: a failed batch puts the component in recoverable_error, the
 * next good one clears it — unless the component reported that error itself (an exporter whose backend
 * is down while `export` only queues), which then stays until the component clears it.
 */
export class BatchStatusPolicy {
  /** Components whose recoverable_error the framework set for a failed batch. */
  private readonly failedBatch = new Set<ComponentState>();

  constructor(private readonly board: StatusBoard) {}

  /** A batch failed (or stalled) in the component: recoverable_error, logged once per distinct error. */
  failed(state: ComponentState, log: StatusLog, err: unknown, message: string): void {
    if (state.status !== 'recoverable_error' || state.lastError !== errorMessage(err)) {
      log.warn({ err: errorMessage(err) }, message);
    }
    // A component already reporting its own error keeps ownership of it: a later good batch must not clear it.
    const ownError = state.status === 'recoverable_error' && !this.failedBatch.has(state);
    if (this.board.set(state, 'recoverable_error', err) && !ownError) this.failedBatch.add(state);
  }

  /** A batch went through: clears the error a failed batch set, never one the component reported. */
  succeeded(state: ComponentState, log: StatusLog): void {
    if (!this.failedBatch.delete(state)) return;
    if (state.status === 'recoverable_error' && this.board.set(state, 'ok')) log.info('recovered');
  }

  /**
   * The reporter handed to a component (one instance may serve several states, one per signal): what it
   * reports is its own, never cleared by a healthy batch.
   */
  reporter(states: readonly ComponentState[]): StatusReporter {
    const reporters = states.map((s) => this.board.reporter(s));
    const own =
      (report: (r: StatusReporter, err: unknown) => void) =>
      (err?: unknown): void => {
        for (const [i, r] of reporters.entries()) {
          this.failedBatch.delete(states[i]);
          report(r, err);
        }
      };
    return {
      ok: own((r) => r.ok()),
      recoverableError: own((r, err) => r.recoverableError(err)),
      permanentError: own((r, err) => r.permanentError(err)),
      fatalError: own((r, err) => r.fatalError(err)),
      describe: (facts) => {
        for (const r of reporters) r.describe(facts);
      },
    };
  }
}
