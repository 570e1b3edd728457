// The running graph: shared receivers fanned out to every pipeline that lists them, processors per pipeline,
// shared exporters fed by every pipeline that lists them (fan-in). Batches, never single flows, move
// between stages; each receiver→pipeline edge has a bounded queue that drops and counts when full.
import { type Meter, type MeterProvider, metrics } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { defer, EMPTY, lastValueFrom, config as rxConfig, Subject } from 'rxjs';
import { catchError, defaultIfEmpty } from 'rxjs/operators';
import { DnsBatch } from '../batch/dns-batch.js';
import { FlowBatch } from '../batch/flow-batch.js';
import { UNSEAL } from '../batch/unseal.js';
import type {
  Batch,
  BatchSink,
  ComponentSettings,
  Exporter,
  ExporterFactory,
  Extension,
  ExtensionFactory,
  Host,
  Lifecycle,
  Processor,
  ProcessorFactory,
  QueueState,
  ReceiverFactory,
  ServicePhase,
  Signal,
} from '../component.js';
import { formatDuration } from '../config/duration.js';
import type { ComponentSpec, ResolvedConfig } from '../config/resolve.js';
import {
  type ComponentKind,
  type ComponentState,
  errorMessage,
  StatusBoard,
  type StatusReporter,
} from '../status.js';
import type { CollectedMetrics } from '../telemetry/self-metrics.js';
import { BoundedQueue, boundedConcatMap } from './bounded-queue.js';

interface Node<C extends Lifecycle> {
  state: ComponentState;
  component: C;
  logger: Logger;
  /** Calls into the component that have outlasted service::stall_timeout and are still running. */
  stalled?: number;
}

/** One batch inside one processor or exporter: what the stall check watches. */
interface Call {
  node: Node<Lifecycle>;
  pipeline: string;
  items: number;
  since: number;
  /** The status message this call set once it stalled, so a later check updates only its own message. */
  message?: string;
}

interface ProcessorNode extends Node<Processor> {}

interface ExporterNode extends Node<Exporter> {}

interface Edge {
  pipeline: string;
  receiver: string;
  queue: BoundedQueue<Batch>;
  /** The batch being processed or exported, if any. */
  inFlight?: Batch;
  droppedBatches: number;
  droppedItems: number;
  done: Promise<void>;
}

interface ReceiverNode extends Node<Lifecycle> {
  subject: Subject<Batch>;
  edges: Edge[];
  closed: boolean;
  /** The batch being handed to the pipelines right now, and how many of their queues turned it away. */
  emitting?: Batch;
  refusals: number;
}

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

/**
 * Builds the component graph from a validated config and runs its lifecycle: extensions, exporters,
 * processors, receivers on start; the reverse on shutdown, after draining the queues to the exporters.
 */
export class Service implements Host {
  readonly status = new StatusBoard();
  private phaseValue: ServicePhase = 'starting';
  private readonly started = Date.now();
  /** Components whose recoverable_error was set by the framework for a failed batch. */
  private readonly failedBatch = new Set<ComponentState>();
  private readonly logger: Logger;
  private readonly meterProvider: MeterProvider;
  private readonly collectSelfMetrics?: () => Promise<CollectedMetrics | undefined>;
  private extensions: { id: string; type: string; node: Node<Extension> }[] = [];
  private exporters = new Map<string, ExporterNode>();
  private processors: ProcessorNode[] = [];
  private receivers: ReceiverNode[] = [];
  private edges: Edge[] = [];
  private startedNodes: Node<Lifecycle>[] = [];
  /** Batches inside a processor or exporter now, for the stall check. */
  private readonly calls = new Set<Call>();
  private stallTimer?: NodeJS.Timeout;
  private stopping?: Promise<ShutdownReport>;

  private constructor(
    private readonly config: ResolvedConfig,
    opts: ServiceOptions,
  ) {
    this.logger = opts.logger;
    this.meterProvider = opts.meterProvider ?? metrics.getMeterProvider();
    this.collectSelfMetrics = opts.selfMetrics;
    // An error that escapes an observable must never crash the agent through an uncaught exception.
    rxConfig.onUnhandledError = (err) => this.logger.error({ err }, 'unhandled pipeline error');
  }

  /** Creates every component; nothing runs until `start`. */
  static async build(config: ResolvedConfig, opts: ServiceOptions): Promise<Service> {
    const service = new Service(config, opts);
    await service.create();
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
    return this.edges.map((e) => ({
      pipeline: e.pipeline,
      receiver: e.receiver,
      capacity: e.queue.capacity,
      depth: e.queue.depth,
      droppedBatches: e.droppedBatches,
      droppedItems: e.droppedItems,
    }));
  }

  private settings(
    spec: ComponentSpec,
    opts: { signal?: Signal; pipeline?: string },
  ): { settings: ComponentSettings; state: ComponentState } {
    const state = this.status.register(spec.kind, spec.id, opts);
    const bindings: Record<string, string> = { kind: spec.kind, component: spec.id };
    if (opts.pipeline) bindings.pipeline = opts.pipeline;
    const extensions = new Map<string, Extension>();
    for (const type of [...(spec.factory.extensions ?? []), ...(spec.factory.optionalExtensions ?? [])]) {
      const ext = this.extensions.find((e) => e.type === type);
      if (ext) extensions.set(type, ext.node.component);
    }
    // Processors exist once per pipeline: their instruments must not collide across pipelines.
    const scope = `netmon/${spec.kind}/${spec.id}${opts.pipeline ? `@${opts.pipeline}` : ''}`;
    const meter: Meter = this.meterProvider.getMeter(scope);
    return {
      state,
      settings: {
        id: spec.id,
        kind: spec.kind,
        logger: this.logger.child(bindings),
        meter,
        status: this.componentReporter(state),
        configDir: spec.configDir,
        extensions,
        host: this,
      },
    };
  }

  private spec(kind: ComponentKind, id: string): ComponentSpec {
    const spec = this.config.components[kind].get(id);
    if (!spec) throw new Error(`${kind} "${id}" is not configured`);
    return spec;
  }

  private async create(): Promise<void> {
    for (const id of this.config.extensions) {
      const spec = this.spec('extension', id);
      const { settings, state } = this.settings(spec, {});
      const component = (spec.factory as ExtensionFactory).create(settings, spec.config);
      this.extensions.push({ id, type: spec.type, node: { state, component, logger: settings.logger } });
    }

    const receiverNodes = new Map<string, ReceiverNode>();
    for (const p of this.config.pipelines) {
      const exporters: ExporterNode[] = [];
      for (const id of p.exporters) {
        const key = `${p.signal}|${id}`;
        let node = this.exporters.get(key);
        if (!node) {
          const spec = this.spec('exporter', id);
          const { settings, state } = this.settings(spec, { signal: p.signal });
          const component = (spec.factory as ExporterFactory).create(settings, spec.config, p.signal);
          node = { state, component, logger: settings.logger };
          this.exporters.set(key, node);
        }
        exporters.push(node);
      }
      const processors: ProcessorNode[] = [];
      for (const id of p.processors) {
        const spec = this.spec('processor', id);
        const { settings, state } = this.settings(spec, { signal: p.signal, pipeline: p.id });
        const component = await (spec.factory as ProcessorFactory).create(settings, spec.config, p.signal);
        processors.push({ state, component, logger: settings.logger });
      }
      this.processors.push(...processors);
      for (const id of p.receivers) {
        const key = `${p.signal}|${id}`;
        let node = receiverNodes.get(key);
        if (!node) {
          const spec = this.spec('receiver', id);
          const { settings, state } = this.settings(spec, { signal: p.signal });
          const subject = new Subject<Batch>();
          const edges: Edge[] = [];
          const self: ReceiverNode = {
            state,
            subject,
            edges,
            closed: false,
            refusals: 0,
            logger: settings.logger,
          } as ReceiverNode;
          const sink: BatchSink = {
            consume: (batch) => this.emit(self, batch),
            ready: () => Promise.all(edges.map((e) => e.queue.whenRoom())).then(() => undefined),
          };
          self.component = (spec.factory as ReceiverFactory).create(settings, spec.config, p.signal, sink);
          node = self;
          receiverNodes.set(key, node);
        }
        this.connect(node, p.id, p.signal, p.queue, processors, exporters);
      }
    }
    this.receivers = [...receiverNodes.values()];
  }

  /** A receiver's batch enters every pipeline that lists the receiver. */
  private emit(node: ReceiverNode, batch: Batch): void {
    const n = batch.length;
    if (node.closed) {
      node.state.items.refused = (node.state.items.refused ?? 0) + n;
      node.logger.warn({ items: n }, 'batch emitted after shutdown was refused');
      return;
    }
    // Shared by several pipelines: read-only, and mutating processors get their own copy.
    if (node.edges.length > 1) batch.seal();
    // Queues push synchronously inside next(): onDrop counts the queues that turned this very batch away.
    const outer = node.emitting;
    const outerRefusals = node.refusals;
    node.emitting = batch;
    node.refusals = 0;
    try {
      node.subject.next(batch);
    } finally {
      if (node.refusals > 0 && node.refusals >= node.edges.length) {
        node.state.items.refused = (node.state.items.refused ?? 0) + n;
      } else {
        node.state.items.out += n;
      }
      node.emitting = outer;
      node.refusals = outerRefusals;
    }
  }

  private connect(
    receiver: ReceiverNode,
    pipeline: string,
    signal: Signal,
    queueConfig: { size: number; overflow: 'drop_oldest' | 'drop_newest' },
    processors: ProcessorNode[],
    exporters: ExporterNode[],
  ): void {
    const queue = new BoundedQueue<Batch>(queueConfig.size, queueConfig.overflow);
    const edge: Edge = {
      pipeline,
      receiver: receiver.state.id,
      queue,
      droppedBatches: 0,
      droppedItems: 0,
      done: Promise.resolve(),
    };
    const onDrop = (batch: Batch) => {
      if (batch === receiver.emitting) receiver.refusals++;
      edge.droppedBatches++;
      edge.droppedItems += batch.length;
      receiver.state.items.dropped += batch.length;
      if (edge.droppedBatches === 1 || edge.droppedBatches % 1000 === 0) {
        receiver.logger.warn(
          { pipeline, dropped_batches: edge.droppedBatches, dropped_items: edge.droppedItems },
          'pipeline queue full: dropping batches (the pipeline is slower than the receiver)',
        );
      }
    };
    const run = (batch: Batch) =>
      defer(() => {
        edge.inFlight = batch;
        return this.runChain(
          batch,
          receiver.edges.length === 1,
          pipeline,
          signal,
          processors,
          exporters,
        ).finally(() => {
          edge.inFlight = undefined;
        });
      }).pipe(
        catchError((err) => {
          this.logger.error({ err, pipeline }, 'pipeline stage failed');
          return EMPTY;
        }),
      );
    edge.done = lastValueFrom(
      receiver.subject.pipe(boundedConcatMap(queue, run, onDrop), defaultIfEmpty(undefined)),
    ).then(() => undefined);
    receiver.edges.push(edge);
    this.edges.push(edge);
  }

  /** Runs one batch through a pipeline's processors, then hands it to every exporter of the pipeline. */
  private async runChain(
    input: Batch,
    owned: boolean,
    pipeline: string,
    signal: Signal,
    processors: ProcessorNode[],
    exporters: ExporterNode[],
  ): Promise<void> {
    let batch = input;
    let ownsBatch = owned && !input.readonly;
    for (const p of processors) {
      if (p.component.mutates && !ownsBatch) {
        batch = cloneBatch(batch);
        ownsBatch = true;
      }
      // A processor that does not declare `mutates` gets the batch read-only whether or not another
      // pipeline shares it, as the contract says; the seal is lifted afterwards when this pipeline owns the
      // batch, so a mutating processor later in the chain still works on it without a copy.
      const lent = !p.component.mutates && !batch.readonly;
      if (lent) batch.seal();
      const n = batch.length;
      p.state.items.in += n;
      let result: unknown;
      try {
        result = await this.track(p, pipeline, n, () => p.component.process(batch));
      } catch (err) {
        p.state.items.failed += n;
        this.recoverable(p, err, 'processor failed on a batch; the batch is dropped');
        return;
      } finally {
        if (lent && ownsBatch) ownsBatch = unseal(batch);
      }
      if (result === null || result === undefined) {
        this.healthy(p);
        return;
      }
      if (!isBatchOf(result, signal)) {
        p.state.items.failed += n;
        const err = new Error(
          `process returned ${describeValue(result)}; expected a ${BATCH_CLASS[signal].name}, or null to drop the batch`,
        );
        this.recoverable(p, err, 'processor returned something that is not a batch; the batch is dropped');
        return;
      }
      this.healthy(p);
      if (result.length === 0) return;
      p.state.items.out += result.length;
      if (result !== batch) ownsBatch = !result.readonly;
      batch = result;
    }
    // Exporters deliver read-only batches (they may keep them, e.g. queued for a backend): sealed always.
    batch.seal();
    await Promise.all(exporters.map((e) => this.export(e, pipeline, batch)));
  }

  private async export(node: ExporterNode, pipeline: string, batch: Batch): Promise<void> {
    const n = batch.length;
    node.state.items.in += n;
    try {
      await this.track(node, pipeline, n, () => node.component.export(batch));
      node.state.items.out += n;
      this.healthy(node);
    } catch (err) {
      node.state.items.failed += n;
      this.recoverable(node, err, 'export failed');
    }
  }

  /** Runs one call into a component with one batch, watched by the stall check while it runs. */
  private async track<T>(
    node: Node<Lifecycle>,
    pipeline: string,
    items: number,
    work: () => T,
  ): Promise<Awaited<T>> {
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
   * Marks every processor or exporter that has held one batch longer than service::stall_timeout as
   * recoverable_error: a stage that never completes blocks its pipeline while the queue in front of it
   * fills, and nothing else would show it. The mark goes when the batch completes (`healthy`).
   */
  private checkStalls(now = Date.now()): void {
    const limit = this.config.stallTimeoutMs;
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
        this.recoverable(node, new Error(message), 'stalled: one batch is taking far too long');
      } else if (
        message !== call.message &&
        node.state.status === 'recoverable_error' &&
        node.state.lastError === call.message
      ) {
        // Only the message this call set is refreshed: another error reported since stays as it is.
        call.message = message;
        this.status.set(node.state, 'recoverable_error', new Error(message));
      }
    }
  }

  private recoverable(node: Node<Lifecycle>, err: unknown, message: string): void {
    if (node.state.status !== 'recoverable_error' || node.state.lastError !== errorMessage(err)) {
      node.logger.warn({ err: errorMessage(err) }, message);
    }
    // A component already reporting its own error keeps ownership of it: a later good batch must not clear it.
    const ownError = node.state.status === 'recoverable_error' && !this.failedBatch.has(node.state);
    if (this.status.set(node.state, 'recoverable_error', err) && !ownError) this.failedBatch.add(node.state);
  }

  /**
   * A batch went through: clears the error a failed batch set. An error the component reported itself
   * (an exporter whose backend is down while `export` only queues) stays until the component clears it.
   */
  private healthy(node: Node<Lifecycle>): void {
    // Another batch of a shared exporter may still be stalled: the stall stays reported until it completes.
    if ((node.stalled ?? 0) > 0) return;
    if (!this.failedBatch.delete(node.state)) return;
    if (node.state.status === 'recoverable_error' && this.status.set(node.state, 'ok')) {
      node.logger.info('recovered');
    }
  }

  /** The component's own reporter: what it reports is its own, never cleared by a healthy batch. */
  private componentReporter(state: ComponentState): StatusReporter {
    const reporter = this.status.reporter(state);
    const own =
      <A extends unknown[]>(report: (...args: A) => void) =>
      (...args: A) => {
        this.failedBatch.delete(state);
        report(...args);
      };
    return {
      ok: own(reporter.ok),
      recoverableError: own(reporter.recoverableError),
      permanentError: own(reporter.permanentError),
      fatalError: own(reporter.fatalError),
      describe: reporter.describe,
    };
  }

  /**
   * Starts extensions, exporters, processors, then receivers, each within service::start_timeout. A
   * failure (or a start that outlasts the deadline) stops what started and throws, naming the component.
   * Aborting `opts.signal` stops waiting and rejects with StartAbortedError; the caller then shuts down.
   */
  async start(opts: StartOptions = {}): Promise<void> {
    const order: Node<Lifecycle>[] = [
      ...this.extensions.map((e) => e.node),
      ...this.exporters.values(),
      ...this.processors,
      ...this.receivers,
    ];
    this.watchStalls();
    for (const node of order) {
      const what = `${node.state.kind} "${node.state.id}"`;
      const outcome = await startWithin(node.component, this.config.startTimeoutMs, opts.signal);
      if (outcome.kind === 'aborted') {
        node.logger.warn('stop requested while this component was starting: start interrupted');
        throw new StartAbortedError(what);
      }
      if (outcome.kind !== 'started') {
        const err =
          outcome.kind === 'failed'
            ? outcome.err
            : new Error(
                `did not finish starting within ${formatDuration(this.config.startTimeoutMs)} (service::start_timeout)`,
              );
        this.status.set(node.state, 'permanent_error', err);
        node.logger.error({ err: errorMessage(err) }, 'failed to start');
        await this.shutdown();
        throw new Error(`${what} failed to start: ${errorMessage(err)}`);
      }
      this.startedNodes.push(node);
      // A component may already have reported an error while starting; keep that.
      if (node.state.status === 'starting') this.status.set(node.state, 'ok');
    }
    this.phaseValue = 'running';
  }

  private watchStalls(): void {
    if (this.stallTimer !== undefined) return;
    // A few checks per timeout, at most one a second: cheap, and a stall is seen soon after it begins.
    const every = Math.min(1000, Math.max(10, Math.floor(this.config.stallTimeoutMs / 4)));
    this.stallTimer = setInterval(() => this.checkStalls(), every);
    // The check must never be what keeps the process alive.
    this.stallTimer.unref();
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
    const begin = Date.now();
    // The drain may use most of the time, not all: exporters still need a moment to flush what it delivered.
    const drainDeadline = begin + Math.floor(deadlineMs * 0.8);
    const deadline = begin + deadlineMs;
    const errors: string[] = [];
    const stop = async (node: Node<Lifecycle>) => {
      this.status.set(node.state, 'stopping');
      try {
        await withDeadline(Promise.resolve(node.component.shutdown?.()), deadline);
        // A component that reported an error while stopping has still stopped.
        if (node.state.status !== 'stopping') this.status.set(node.state, 'stopping');
        this.status.set(node.state, 'stopped');
      } catch (err) {
        errors.push(`${node.state.kind} "${node.state.id}": ${errorMessage(err)}`);
        this.status.set(node.state, 'permanent_error', err);
      }
    };

    // 1. Receivers stop producing; whatever they flush while stopping still enters the queues.
    for (const r of this.receivers) {
      await stop(r);
      r.closed = true;
      r.subject.complete();
    }
    // 2. Queues drain through the processors into the exporters.
    const drained = await withDeadline(Promise.all(this.edges.map((e) => e.done)), drainDeadline).then(
      () => true,
      () => false,
    );
    let abandonedItems = 0;
    if (!drained) {
      for (const e of this.edges) {
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
    for (const p of [...this.processors].reverse()) await stop(p);
    for (const e of [...this.exporters.values()].reverse()) await stop(e);
    for (const e of [...this.extensions].reverse()) await stop(e.node);
    // A batch still inside a processor or exporter now was not delivered before everything stopped.
    for (const e of this.edges) {
      if (!e.inFlight) continue;
      abandonedItems += e.inFlight.length;
      e.droppedItems += e.inFlight.length;
      e.droppedBatches++;
    }
    clearInterval(this.stallTimer);
    this.phaseValue = 'stopped';
    return { drained, abandonedItems, errors };
  }
}

function cloneBatch(batch: Batch): Batch {
  return batch.clone();
}

const BATCH_CLASS = { flows: FlowBatch, dns: DnsBatch } as const satisfies Record<Signal, unknown>;

/** True when `value` is a batch of the pipeline's signal: anything else would corrupt every count after it. */
function isBatchOf(value: unknown, signal: Signal): value is Batch {
  return value instanceof BATCH_CLASS[signal];
}

/** What a processor returned instead of a batch, for the status message. */
function describeValue(value: unknown): string {
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object' && value !== null) {
    const name = Object.getPrototypeOf(value)?.constructor?.name;
    if (value instanceof FlowBatch || value instanceof DnsBatch) return `a ${name}`;
    if (name === 'FlowBatch' || name === 'DnsBatch') {
      // A plugin that bundles its own @netmon/core builds batches of another class of the same name.
      return `a ${name} from another copy of @netmon/core (make @netmon/core a peerDependency of the plugin, so it uses the agent's)`;
    }
    const text = safeJson(value);
    return name && name !== 'Object' ? `a ${name} ${text}` : `an object ${text}`;
  }
  if (typeof value === 'function') return 'a function';
  return `${typeof value} ${String(value).slice(0, 40)}`;
}

function safeJson(value: unknown): string {
  try {
    const text = JSON.stringify(value) ?? '';
    return text.length > 40 ? `${text.slice(0, 40)}…` : text;
  } catch {
    return '';
  }
}

/** Lifts the seal the pipeline put on a batch it owns for one read-only call; true when writable again. */
function unseal(batch: Batch): boolean {
  batch[UNSEAL]();
  return !batch.readonly;
}

type StartOutcome =
  | { kind: 'started' }
  | { kind: 'failed'; err: unknown }
  | { kind: 'timeout' }
  | { kind: 'aborted' };

/**
 * Runs a component's start, and settles when it does, when `timeoutMs` passes, or when `signal` aborts,
 * whichever is first. A start left behind keeps running; its later rejection is handled here.
 */
async function startWithin(
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
function withDeadline<T>(promise: Promise<T>, deadline: number): Promise<T> {
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
