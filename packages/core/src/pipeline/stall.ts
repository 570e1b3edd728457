// The stall watchdog: a processor or exporter that holds one batch far too long blocks its pipeline while
// the queue in front of it fills, and nothing else would show it.
import { formatDuration } from '../config/duration.js';
import type { Node } from './graph.js';

/** One batch inside one processor or exporter: what the watchdog watches. */
interface Call {
  node: Node;
  pipeline: string;
  items: number;
  since: number;
  /** The status message this call set once it stalled, so a later check updates only its own message. */
  message?: string;
}

export interface StallReports {
  /** The call has been stalled since `message` was first set: report it (recoverable_error). */
  stalled(node: Node, err: Error): void;
  /** The message of a call still stalled changed (its duration): refresh it if it is still the one shown. */
  refresh(node: Node, err: Error): void;
}

export class StallWatch {
  private readonly calls = new Set<Call>();
  private timer?: NodeJS.Timeout;

  constructor(
    /** service::stall_timeout, ms. */
    private readonly limitMs: number,
    private readonly reports: StallReports,
  ) {}

  /** Runs one call into a component with one batch, watched while it runs. */
  async track<T>(node: Node, pipeline: string, items: number, work: () => T): Promise<Awaited<T>> {
    const call: Call = { node, pipeline, items, since: Date.now() };
    this.calls.add(call);
    try {
      return await work();
    } finally {
      this.calls.delete(call);
      if (call.message !== undefined) {
        node.stalled = (node.stalled ?? 1) - 1;
        node.logger.info(
          { pipeline, waited_ms: Date.now() - call.since },
          'the stalled batch completed; the pipeline moves again',
        );
      }
    }
  }

  /**
   * Reports every call that has held one batch longer than the limit. The mark goes when the batch
   * completes (the node's next healthy batch).
   */
  check(now = Date.now()): void {
    const limit = this.limitMs;
    for (const call of this.calls) {
      const held = now - call.since;
      if (held <= limit) continue;
      const { node } = call;
      const what = node.state.kind === 'exporter' ? 'exporting' : 'processing';
      const message =
        `${what} one batch of ${call.items} items for ${formatDuration(held >= 1000 ? Math.floor(held / 1000) * 1000 : held)} ` +
        `(longer than service::stall_timeout, ${formatDuration(limit)}); pipeline ${call.pipeline} waits behind it`;
      if (call.message === undefined) {
        node.stalled = (node.stalled ?? 0) + 1;
        call.message = message;
        this.reports.stalled(node, new Error(message));
      } else if (
        message !== call.message &&
        node.state.status === 'recoverable_error' &&
        node.state.lastError === call.message
      ) {
        // Only the message this call set is refreshed: another error reported since stays as it is.
        call.message = message;
        this.reports.refresh(node, new Error(message));
      }
    }
  }

  start(): void {
    if (this.timer !== undefined) return;
    // A few checks per timeout, at most one a second: cheap, and a stall is seen soon after it begins.
    const every = Math.min(1000, Math.max(10, Math.floor(this.limitMs / 4)));
    this.timer = setInterval(() => this.check(), every);
    // The check must never be what keeps the process alive.
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
