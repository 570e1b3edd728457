// The running service: builds the component graph (graph.ts), routes batches through it (route.ts), watches
// for stalls (stall.ts), and runs the lifecycle — extensions, exporters, processors, receivers on start;
// the reverse on shutdown, after draining the queues to the exporters — within its deadlines (lifecycle.ts).
import type { MeterProvider } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { Host, Lifecycle, QueueState, ServicePhase } from '../component.js';
import { formatDuration } from '../config/duration.js';
import type { ResolvedConfig } from '../config/resolve.js';
import { BatchStatusPolicy, type ComponentState, errorMessage, StatusBoard } from '../status.js';
import type { CollectedMetrics } from '../telemetry/self-metrics.js';
import { buildGraph, type Graph, type Instance } from './graph.js';
import { type ShutdownReport, StartAbortedError, startWithin, withDeadline } from './lifecycle.js';
import { BatchRouter } from './route.js';
import { StallWatch } from './stall.js';

export { type ShutdownReport, StartAbortedError } from './lifecycle.js';

export interface ServiceOptions {
  logger: Logger;
  meterProvider?: MeterProvider;
  /**
   * Reads `meterProvider`'s instruments now (the agent passes its MetricReader's collect), so exporters
   * can serve the self-metrics through `Host.selfMetrics`.
   */
  selfMetrics?: () => Promise<CollectedMetrics | undefined>;
}

export interface StartOptions {
  /**
   * Aborting it interrupts the start: the component starting then is not waited for, none after it is
   * started, and `start` rejects with StartAbortedError. The caller stops what started with `shutdown`.
   */
  signal?: AbortSignal;
}

/** Builds the component graph from a validated config and runs its lifecycle. */
export class Service implements Host {
  readonly status = new StatusBoard();
  private phaseValue: ServicePhase = 'starting';
  private readonly started = Date.now();
  private readonly logger: Logger;
  private readonly policy = new BatchStatusPolicy(this.status);
  private readonly stalls: StallWatch;
  private readonly collectSelfMetrics?: () => Promise<CollectedMetrics | undefined>;
  private graph!: Graph;
  private stopping?: Promise<ShutdownReport>;

  private constructor(
    private readonly config: ResolvedConfig,
    opts: ServiceOptions,
  ) {
    this.logger = opts.logger;
    this.collectSelfMetrics = opts.selfMetrics;
    this.stalls = new StallWatch(config.stallTimeoutMs, {
      stalled: (node, err) =>
        this.policy.failed(node.state, node.logger, err, 'stalled: one batch is taking far too long'),
      refresh: (node, err) => this.status.set(node.state, 'recoverable_error', err),
    });
  }

  /** Creates every component; nothing runs until `start`. */
  static async build(config: ResolvedConfig, opts: ServiceOptions): Promise<Service> {
    const service = new Service(config, opts);
    service.graph = await buildGraph({
      config,
      logger: opts.logger,
      meterProvider: opts.meterProvider,
      board: service.status,
      policy: service.policy,
      host: service,
      routing: new BatchRouter(opts.logger, service.policy, service.stalls),
    });
    return service;
  }

  phase(): ServicePhase {
    return this.phaseValue;
  }

  startedAt(): number {
    return this.started;
  }

  components(): readonly ComponentState[] {
    return this.status.all();
  }

  /** The self-metrics now, or undefined without a reader (or once it has shut down). */
  async selfMetrics(): Promise<CollectedMetrics | undefined> {
    if (!this.collectSelfMetrics) return undefined;
    try {
      return await this.collectSelfMetrics();
    } catch (err) {
      this.logger.debug({ err: errorMessage(err) }, 'self-metrics collection failed');
      return undefined;
    }
  }

  queues(): readonly QueueState[] {
    return this.graph.edges.map((e) => ({
      pipeline: e.pipeline,
      receiver: e.receiver,
      capacity: e.queue.capacity,
      depth: e.queue.depth,
      droppedBatches: e.droppedBatches,
      droppedItems: e.droppedItems,
    }));
  }

  /**
   * Starts extensions, exporters, processors, then receivers, each within service::start_timeout. A
   * failure (or a start that outlasts the deadline) stops what started and throws, naming the component.
   * Aborting `opts.signal` stops waiting and rejects with StartAbortedError; the caller then shuts down.
   */
  async start(opts: StartOptions = {}): Promise<void> {
    const { extensions, exporters, processors, receivers } = this.graph;
    const order: Instance[] = [...extensions, ...exporters, ...processors, ...receivers];
    this.stalls.start();
    for (const instance of order) {
      const [first] = instance.states;
      const what = `${first.kind} "${first.id}"`;
      const outcome = await startWithin(instance.component, this.config.startTimeoutMs, opts.signal);
      if (outcome.kind === 'aborted') {
        instance.logger.warn('stop requested while this component was starting: start interrupted');
        throw new StartAbortedError(what);
      }
      if (outcome.kind !== 'started') {
        const err =
          outcome.kind === 'failed'
            ? outcome.err
            : new Error(
                `did not finish starting within ${formatDuration(this.config.startTimeoutMs)} (service::start_timeout)`,
              );
        for (const s of instance.states) this.status.set(s, 'permanent_error', err);
        instance.logger.error({ err: errorMessage(err) }, 'failed to start');
        await this.shutdown();
        throw new Error(`${what} failed to start: ${errorMessage(err)}`);
      }
      // A component may already have reported an error while starting; keep that.
      for (const s of instance.states) if (s.status === 'starting') this.status.set(s, 'ok');
    }
    this.phaseValue = 'running';
  }

  /**
   * Stops receivers, lets the queues drain into the exporters (bounded by `deadlineMs`), then stops
   * processors, exporters and extensions. Everything already read reaches the exporters unless the
   * deadline passes; what is abandoned then is counted and reported.
   */
  shutdown(deadlineMs = this.config.shutdownTimeoutMs): Promise<ShutdownReport> {
    // A second caller (the agent after a failed or interrupted start) gets the outcome of the first.
    this.stopping ??= this.stop(deadlineMs);
    return this.stopping;
  }

  private async stop(deadlineMs: number): Promise<ShutdownReport> {
    this.phaseValue = 'stopping';
    const { extensions, exporters, processors, receivers, receiverNodes, edges } = this.graph;
    const begin = Date.now();
    // The drain may use most of the time, not all: exporters still need a moment to flush what it delivered.
    const drainDeadline = begin + Math.floor(deadlineMs * 0.8);
    const deadline = begin + deadlineMs;
    const errors: string[] = [];
    const stop = async ({ component, states }: Instance<Lifecycle>) => {
      for (const s of states) this.status.set(s, 'stopping');
      try {
        await withDeadline(Promise.resolve(component.shutdown?.()), deadline);
        for (const s of states) {
          // A component that reported an error while stopping has still stopped.
          if (s.status !== 'stopping') this.status.set(s, 'stopping');
          this.status.set(s, 'stopped');
        }
      } catch (err) {
        errors.push(`${states[0].kind} "${states[0].id}": ${errorMessage(err)}`);
        for (const s of states) this.status.set(s, 'permanent_error', err);
      }
    };

    // 1. Receivers stop producing; whatever they flush while stopping still enters the queues.
    for (const r of receivers) {
      await stop(r);
      for (const node of receiverNodes) {
        if (node.component !== r.component) continue;
        node.closed = true;
        node.subject.complete();
      }
    }
    // 2. Queues drain through the processors into the exporters.
    const drained = await withDeadline(Promise.all(edges.map((e) => e.done)), drainDeadline).then(
      () => true,
      () => false,
    );
    let abandonedItems = 0;
    if (!drained) {
      for (const e of edges) {
        for (const b of e.queue.clear()) {
          abandonedItems += b.length;
          e.droppedItems += b.length;
          e.droppedBatches++;
        }
      }
      this.logger.error(
        { abandoned_items: abandonedItems, deadline_ms: deadlineMs },
        'shutdown deadline passed before the queues drained; queued data was abandoned',
      );
    }
    // 3. Processors, exporters (which flush), extensions.
    for (const p of [...processors].reverse()) await stop(p);
    for (const e of [...exporters].reverse()) await stop(e);
    for (const e of [...extensions].reverse()) await stop(e);
    // A batch still inside a processor or exporter now was not delivered before everything stopped.
    for (const e of edges) {
      if (!e.inFlight) continue;
      abandonedItems += e.inFlight.length;
      e.droppedItems += e.inFlight.length;
      e.droppedBatches++;
    }
    this.stalls.stop();
    this.phaseValue = 'stopped';
    return { drained, abandonedItems, errors };
  }
}
