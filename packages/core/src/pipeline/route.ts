// Batches through the graph: a receiver's batch enters every pipeline that lists the receiver through a
// bounded queue, runs through the pipeline's processors (sealed read-only unless the processor mutates and
// owns it) and reaches every exporter of the pipeline. The framework counts items at every edge.
import type { Logger } from 'pino';
import { defer, EMPTY, lastValueFrom } from 'rxjs';
import { catchError, defaultIfEmpty } from 'rxjs/operators';
import { DnsBatch } from '../batch/dns-batch.js';
import { FlowBatch } from '../batch/flow-batch.js';
import { UNSEAL } from '../batch/unseal.js';
import type { Batch, Exporter, Processor, Signal } from '../component.js';
import type { BatchStatusPolicy } from '../status.js';
import { BoundedQueue, boundedConcatMap } from './bounded-queue.js';
import type { Edge, Node, ReceiverNode, Routing } from './graph.js';
import type { StallWatch } from './stall.js';

export class BatchRouter implements Routing {
  constructor(
    private readonly logger: Logger,
    private readonly policy: BatchStatusPolicy,
    private readonly stalls: StallWatch,
  ) {}

  /** A receiver's batch enters every pipeline that lists the receiver. */
  emit(node: ReceiverNode, batch: Batch): void {
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

  connect(
    receiver: ReceiverNode,
    pipeline: string,
    signal: Signal,
    queueConfig: { size: number; overflow: 'drop_oldest' | 'drop_newest' },
    processors: Node<Processor>[],
    exporters: Node<Exporter>[],
  ): Edge {
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
        // Each batch runs on its own: a failing stage never ends the pipeline or its siblings.
        catchError((err) => {
          this.logger.error({ err, pipeline }, 'pipeline stage failed');
          return EMPTY;
        }),
      );
    edge.done = lastValueFrom(
      receiver.subject.pipe(boundedConcatMap(queue, run, onDrop), defaultIfEmpty(undefined)),
    ).then(
      () => undefined,
      (err) => this.logger.error({ err, pipeline }, 'pipeline ended on an error'),
    );
    return edge;
  }

  /** Runs one batch through a pipeline's processors, then hands it to every exporter of the pipeline. */
  private async runChain(
    input: Batch,
    owned: boolean,
    pipeline: string,
    signal: Signal,
    processors: Node<Processor>[],
    exporters: Node<Exporter>[],
  ): Promise<void> {
    let batch = input;
    let ownsBatch = owned && !input.readonly;
    for (const p of processors) {
      if (p.component.mutates && !ownsBatch) {
        batch = batch.clone();
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
        result = await this.stalls.track(p, pipeline, n, () => p.component.process(batch));
      } catch (err) {
        p.state.items.failed += n;
        this.failed(p, err, 'processor failed on a batch; the batch is dropped');
        return;
      } finally {
        if (lent && ownsBatch) ownsBatch = unseal(batch);
      }
      // Returning nothing (undefined: a function that forgot its return) drops the batch, counted as
      // dropped so that the mistake shows in /status and the final log line instead of silently losing
      // everything. Returning null is a processor's way to pass nothing on, by design: filtered.
      if (result === undefined) {
        p.state.items.dropped += n;
        this.healthy(p);
        return;
      }
      if (result === null) {
        p.state.items.filtered = (p.state.items.filtered ?? 0) + n;
        this.healthy(p);
        return;
      }
      if (!isBatchOf(result, signal)) {
        p.state.items.failed += n;
        const err = new Error(
          `process returned ${describeValue(result)}; expected a ${BATCH_CLASS[signal].name}, or null to pass nothing on`,
        );
        this.failed(p, err, 'processor returned something that is not a batch; the batch is dropped');
        return;
      }
      this.healthy(p);
      // Rows a processor left out of the batch it returned (a filter's, delta's baselines) are filtered,
      // by design: in = out + filtered + dropped unless it returns more rows than it got.
      if (result.length < n) p.state.items.filtered = (p.state.items.filtered ?? 0) + n - result.length;
      if (result.length === 0) return;
      p.state.items.out += result.length;
      if (result !== batch) ownsBatch = !result.readonly;
      batch = result;
    }
    // Exporters deliver read-only batches (they may keep them, e.g. queued for a backend): sealed always.
    batch.seal();
    await Promise.all(exporters.map((e) => this.export(e, pipeline, batch)));
  }

  private async export(node: Node<Exporter>, pipeline: string, batch: Batch): Promise<void> {
    const n = batch.length;
    node.state.items.in += n;
    try {
      await this.stalls.track(node, pipeline, n, () => node.component.export(batch));
      node.state.items.out += n;
      this.healthy(node);
    } catch (err) {
      node.state.items.failed += n;
      this.failed(node, err, 'export failed');
    }
  }

  private failed(node: Node, err: unknown, message: string): void {
    this.policy.failed(node.state, node.logger, err, message);
  }

  private healthy(node: Node): void {
    // Another batch of a shared exporter may still be stalled: the stall stays reported until it completes.
    if ((node.stalled ?? 0) > 0) return;
    this.policy.succeeded(node.state, node.logger);
  }
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
