// The component graph made from a validated config: one instance per extension, receiver and exporter id
// (serving every pipeline and signal that lists it, with one start and one shutdown), one processor per
// pipeline. Each instance has one status entry per signal (per pipeline for processors), where the
// framework counts its items; what the instance reports itself goes to all of them.
import { type Meter, type MeterProvider, metrics } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { Subject } from 'rxjs';
import { DnsBatch } from '../batch/dns-batch.js';
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
  Receiver,
  ReceiverFactory,
  Signal,
} from '../component.js';
import { formatDuration } from '../config/duration.js';
import type { ComponentSpec, ResolvedConfig } from '../config/resolve.js';
import { type BatchStatusPolicy, type ComponentState, errorMessage, type StatusBoard } from '../status.js';
import type { BoundedQueue } from './bounded-queue.js';

/** One component instance: its lifecycle and every status entry it reports to. */
export interface Instance<C extends Lifecycle = Lifecycle> {
  component: C;
  states: ComponentState[];
  logger: Logger;
}

/** One status entry's view of an instance: a receiver or exporter for one signal, a processor in one pipeline. */
export interface Node<C extends Lifecycle = Lifecycle> {
  state: ComponentState;
  component: C;
  logger: Logger;
  /** Calls into the component that have outlasted service::stall_timeout and are still running. */
  stalled?: number;
}

export interface ReceiverNode extends Node<Receiver> {
  subject: Subject<Batch>;
  edges: Edge[];
  closed: boolean;
  /** The batch being handed to the pipelines right now, and how many of their queues turned it away. */
  emitting?: Batch;
  refusals: number;
}

/** A receiver's batches of one signal into one pipeline, through the pipeline's bounded queue. */
export interface Edge {
  pipeline: string;
  receiver: string;
  queue: BoundedQueue<Batch>;
  /** The batch being processed or exported, if any. */
  inFlight?: Batch;
  droppedBatches: number;
  droppedItems: number;
  done: Promise<void>;
}

export interface Graph {
  extensions: (Instance<Extension> & { type: string })[];
  exporters: Instance<Exporter>[];
  processors: Instance<Processor>[];
  receivers: Instance<Receiver>[];
  receiverNodes: ReceiverNode[];
  edges: Edge[];
}

/** What routes batches: the receiver's hand-off and the pipelines behind it. */
export interface Routing {
  emit(node: ReceiverNode, batch: Batch): void;
  connect(
    receiver: ReceiverNode,
    pipeline: string,
    signal: Signal,
    queue: { size: number; overflow: 'drop_oldest' | 'drop_newest' },
    processors: Node<Processor>[],
    exporters: Node<Exporter>[],
  ): Edge;
}

export interface GraphContext {
  config: ResolvedConfig;
  logger: Logger;
  meterProvider?: MeterProvider;
  board: StatusBoard;
  policy: BatchStatusPolicy;
  host: Host;
  routing: Routing;
}

export function signalOf(batch: Batch): Signal {
  return batch instanceof DnsBatch ? 'dns' : 'flows';
}

/**
 * Creates every component; nothing runs until the service starts them. When one cannot be created, those
 * created before it are shut down (never started, they may hold what their constructor opened) and the
 * error names the component.
 */
export async function buildGraph(ctx: GraphContext): Promise<Graph> {
  const graph: Graph = {
    extensions: [],
    exporters: [],
    processors: [],
    receivers: [],
    receiverNodes: [],
    edges: [],
  };
  try {
    await populate(ctx, graph);
  } catch (err) {
    const made = [...graph.extensions, ...graph.exporters, ...graph.processors, ...graph.receivers];
    for (const instance of made.reverse()) {
      try {
        await instance.component.shutdown?.();
      } catch (shutdownErr) {
        instance.logger.warn({ err: errorMessage(shutdownErr) }, 'shutdown after a failed build failed');
      }
    }
    throw err;
  }
  return graph;
}

async function populate(ctx: GraphContext, graph: Graph): Promise<void> {
  const { config } = ctx;
  const meters = ctx.meterProvider ?? metrics.getMeterProvider();
  const spec = (kind: ComponentSpec['kind'], id: string): ComponentSpec => {
    const s = config.components[kind].get(id);
    if (!s) throw new Error(`${kind} "${id}" is not configured`);
    return s;
  };
  const settings = (
    s: ComponentSpec,
    states: ComponentState[],
    signals: readonly Signal[],
    pipeline?: string,
  ): ComponentSettings => {
    const bindings: Record<string, string> = { kind: s.kind, component: s.id };
    if (pipeline) bindings.pipeline = pipeline;
    const extensions = new Map<string, Extension>();
    for (const type of [...(s.factory.extensions ?? []), ...(s.factory.optionalExtensions ?? [])]) {
      const ext = graph.extensions.find((e) => e.type === type);
      if (ext) extensions.set(type, ext.component);
    }
    // Processors exist once per pipeline: their instruments must not collide across pipelines.
    const meter: Meter = meters.getMeter(`netmon/${s.kind}/${s.id}${pipeline ? `@${pipeline}` : ''}`);
    return {
      id: s.id,
      kind: s.kind,
      signals,
      logger: ctx.logger.child(bindings),
      meter,
      status: ctx.policy.reporter(states),
      configDir: s.configDir,
      extensions,
      host: ctx.host,
    };
  };
  const created = async <C>(s: ComponentSpec, make: () => C | Promise<C>): Promise<C> => {
    try {
      return await createWithin(make, config.startTimeoutMs);
    } catch (err) {
      throw new Error(`${s.kind} "${s.id}" could not be created: ${errorMessage(err)}`);
    }
  };

  for (const id of config.extensions) {
    const s = spec('extension', id);
    const states = [ctx.board.register('extension', id)];
    const set = settings(s, states, []);
    const component = await created(s, () => (s.factory as ExtensionFactory).create(set, s.config));
    graph.extensions.push({ type: s.type, component, states, logger: set.logger });
  }

  // The signals each receiver and exporter id serves, in pipeline order.
  const signalsOf = (kind: 'receivers' | 'exporters') => {
    const by = new Map<string, Signal[]>();
    for (const p of config.pipelines) {
      for (const id of p[kind]) {
        const list = by.get(id) ?? [];
        if (!list.includes(p.signal)) list.push(p.signal);
        by.set(id, list);
      }
    }
    return by;
  };

  const exporterNodes = new Map<string, Node<Exporter>>();
  for (const [id, signals] of signalsOf('exporters')) {
    const s = spec('exporter', id);
    const states = signals.map((signal) => ctx.board.register('exporter', id, { signal }));
    const set = settings(s, states, signals);
    const component = await created(s, () => (s.factory as ExporterFactory).create(set, s.config));
    graph.exporters.push({ component, states, logger: set.logger });
    for (const [i, signal] of signals.entries()) {
      exporterNodes.set(`${signal}|${id}`, { state: states[i], component, logger: set.logger });
    }
  }

  const pipelineProcessors = new Map<string, Node<Processor>[]>();
  for (const p of config.pipelines) {
    const nodes: Node<Processor>[] = [];
    for (const id of p.processors) {
      const s = spec('processor', id);
      const states = [ctx.board.register('processor', id, { signal: p.signal, pipeline: p.id })];
      const set = settings(s, states, [p.signal], p.id);
      const component = await created(s, () =>
        (s.factory as ProcessorFactory).create(set, s.config, p.signal),
      );
      graph.processors.push({ component, states, logger: set.logger });
      nodes.push({ state: states[0], component, logger: set.logger });
    }
    pipelineProcessors.set(p.id, nodes);
  }

  const receiverNodes = new Map<string, ReceiverNode>();
  for (const [id, signals] of signalsOf('receivers')) {
    const s = spec('receiver', id);
    const states = signals.map((signal) => ctx.board.register('receiver', id, { signal }));
    const set = settings(s, states, signals);
    const nodes = new Map<Signal, ReceiverNode>();
    for (const [i, signal] of signals.entries()) {
      const node: ReceiverNode = {
        state: states[i],
        // The instance, once created below: its sink needs these nodes first.
        component: {},
        subject: new Subject<Batch>(),
        edges: [],
        closed: false,
        refusals: 0,
        logger: set.logger,
      };
      nodes.set(signal, node);
      receiverNodes.set(`${signal}|${id}`, node);
    }
    const sink: BatchSink = {
      consume: (batch) => {
        const node = nodes.get(signalOf(batch));
        if (node) {
          ctx.routing.emit(node, batch);
          return;
        }
        // A receiver's bug: a batch of a signal no pipeline of it carries. Counted, never routed.
        const first = states[0];
        first.items.refused = (first.items.refused ?? 0) + batch.length;
        set.logger.warn(
          { signal: signalOf(batch), items: batch.length, serves: signals },
          'batch of a signal no pipeline of this receiver carries was refused',
        );
      },
      ready: () =>
        Promise.all([...nodes.values()].flatMap((n) => n.edges.map((e) => e.queue.whenRoom()))).then(
          () => undefined,
        ),
    };
    const component = await created(s, () => (s.factory as ReceiverFactory).create(set, s.config, sink));
    for (const node of nodes.values()) node.component = component;
    graph.receivers.push({ component, states, logger: set.logger });
    graph.receiverNodes.push(...nodes.values());
  }

  for (const p of config.pipelines) {
    const exporters = p.exporters.map((id) => exporterNodes.get(`${p.signal}|${id}`)!);
    const processors = pipelineProcessors.get(p.id)!;
    for (const id of p.receivers) {
      const receiver = receiverNodes.get(`${p.signal}|${id}`)!;
      const edge = ctx.routing.connect(receiver, p.id, p.signal, p.queue, processors, exporters);
      receiver.edges.push(edge);
      graph.edges.push(edge);
    }
  }
}

/**
 * Runs a factory's create within service::start_timeout (creating is part of starting). The timer is what
 * keeps Node alive meanwhile: a create awaiting a promise that holds nothing open (a plugin module whose
 * top-level await never settles) would otherwise let the process exit 0 with nothing said. An instance
 * that arrives after the deadline is shut down at once, so whatever its create opened is released.
 */
async function createWithin<C>(make: () => C | Promise<C>, timeoutMs: number): Promise<C> {
  let timer: NodeJS.Timeout | undefined;
  let late = false;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      late = true;
      reject(new Error(`it did not finish within ${formatDuration(timeoutMs)} (service::start_timeout)`));
    }, timeoutMs);
  });
  // new Promise turns a create that throws synchronously into a rejection.
  const making = new Promise<C>((resolve) => resolve(make()));
  making.then(
    (instance) => {
      if (late) void Promise.resolve((instance as Lifecycle | undefined)?.shutdown?.()).catch(() => {});
    },
    () => {},
  );
  try {
    return await Promise.race([making, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
