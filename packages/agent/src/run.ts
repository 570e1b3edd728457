import {
  type ComponentState,
  type ConfigInput,
  type Logger,
  type LogLevel,
  loadConfig,
  type Registry,
  registerSelfMetrics,
  Service,
  StartAbortedError,
} from '@netmon/core';
import { queueDocument } from '@netmon/extensions';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { VERSION } from './version.js';

/**
 * Pull reader: collects the self-metrics when an exporter asks (a Prometheus scrape) and never on its
 * own, so an agent that serves none pays nothing for them. Cumulative, as Prometheus wants counters.
 */
export class SelfMetricsReader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

export interface RunOptions {
  /** Config files, or documents made from the command line. */
  configFiles: ConfigInput[];
  registry: Registry;
  logger: (level: LogLevel) => Logger;
  /** --log-level: overrides service::telemetry::logs::level. */
  logLevel?: LogLevel;
  /** Said in the log once the logger exists (flags that were accepted but change nothing). */
  notes?: string[];
  /** Stop when this resolves (tests); otherwise on SIGTERM/SIGINT. */
  stop?: Promise<unknown>;
}

/**
 * Runs the agent until SIGTERM/SIGINT: validate everything, build, start (each component within
 * service::start_timeout); on the signal, drain queued data to the exporters within
 * service::shutdown_timeout. A signal while starting interrupts the start and stops what started.
 * Returns the process exit code.
 */
export async function runAgent(opts: RunOptions): Promise<number> {
  // Signal handlers and pending promises do not keep Node alive. Without this, a step waiting on a promise
  // that holds nothing open (a plugin module whose top-level await never settles, a start that waits on
  // nothing) would let the process exit 0 with nothing said instead of reaching its deadline. Held from
  // the first step until a stop is requested, so the deadlines and shutdown (drain, final counts) always run.
  const keepAlive = setInterval(() => {}, 1 << 30);
  try {
    return await run(opts, () => clearInterval(keepAlive));
  } finally {
    clearInterval(keepAlive);
  }
}

async function run(opts: RunOptions, release: () => void): Promise<number> {
  const config = await loadConfig(opts.configFiles, opts.registry);
  const logger = opts.logger(opts.logLevel ?? config.logLevel);
  for (const note of opts.notes ?? []) logger.warn(note);
  // sdk-metrics 3.x takes readers only in the constructor. Every component's settings.meter comes from
  // this provider, so the reader sees the framework's, the process' and the components' instruments.
  const reader = new SelfMetricsReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  let collectErrorLogged = false;
  const selfMetrics = async () => {
    const { resourceMetrics, errors } = await reader.collect();
    if (errors.length > 0 && !collectErrorLogged) {
      collectErrorLogged = true;
      logger.warn({ errors: errors.map(String) }, 'a self-metrics callback failed (logged once)');
    }
    return resourceMetrics;
  };
  const service = await Service.build(config, { logger, meterProvider, selfMetrics });
  const stopSelfMetrics = registerSelfMetrics(meterProvider.getMeter('netmon'), service);

  for (const kind of ['receiver', 'processor', 'exporter', 'extension'] as const) {
    for (const spec of config.components[kind].values()) {
      if (spec.factory.stability === 'development' || spec.factory.stability === 'deprecated') {
        logger.info(
          { component: spec.id, kind },
          `${kind} ${spec.type} is ${spec.factory.stability}: expect changes`,
        );
      }
    }
  }
  logger.info(
    {
      version: VERSION,
      config: opts.configFiles.map((c) => (typeof c === 'string' ? c : c.name)),
      pipelines: config.pipelines.map((p) => p.id),
    },
    'starting netmon',
  );
  // Handlers go in before anything starts, so a signal during start still stops the agent cleanly.
  let stopRequested: (signal: string) => void = () => {};
  const stopSignal = new Promise<string>((resolve) => {
    stopRequested = resolve;
  });
  const onSignal = (name: NodeJS.Signals) => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    // A second signal means "now": skip the drain.
    process.once('SIGTERM', force);
    process.once('SIGINT', force);
    stopRequested(name);
  };
  const force = (again: NodeJS.Signals) => {
    logger.warn({ signal: again }, 'second signal: exiting without draining');
    process.exit(130);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  opts.stop?.then(() => stopRequested('stop requested'));
  const interrupt = new AbortController();
  void stopSignal.then(() => interrupt.abort());
  const unhook = () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', force);
    process.off('SIGINT', force);
  };

  try {
    await service.start({ signal: interrupt.signal });
    logger.info('netmon is running; SIGTERM or Ctrl-C stops it after draining in-flight data');
  } catch (err) {
    if (!(err instanceof StartAbortedError)) {
      release();
      // The service already stopped what had started.
      logger.fatal({ err: (err as Error).message }, 'netmon could not start');
      unhook();
      stopSelfMetrics();
      await meterProvider.shutdown();
      return 1;
    }
    logger.warn({ pending: err.pending }, `stop requested while ${err.pending} was starting`);
  }

  const signal = await stopSignal;
  release();
  logger.info({ signal, deadline_ms: config.shutdownTimeoutMs }, 'stopping: draining in-flight data');
  const report = await service.shutdown();
  stopSelfMetrics();
  await meterProvider.shutdown();
  for (const e of report.errors) logger.error({ error: e }, 'error while stopping');
  const components = service.components();
  const queues = service.queues();
  logger.info(
    {
      components: components.map((c) => ({ kind: c.kind, id: c.id, pipeline: c.pipeline, items: c.items })),
      queues: queues.map(queueDocument),
    },
    'final item counts',
  );
  // The verdict comes from the counters, not from the drain alone: a batch a processor failed on, or a
  // queue that overflowed an hour ago, was not delivered either.
  const lost = {
    failed_items: components.reduce((n, c) => n + c.items.failed, 0),
    dropped_items: queues.reduce((n, q) => n + q.droppedItems, 0),
    refused_items: components.reduce((n, c) => n + (c.items.refused ?? 0), 0),
  };
  // A batch a processor returned nothing for is lost (a plugin that forgot its return); rows processors
  // left out by design (a filter, delta's baselines) are not. Neither reached the exporters, and the line
  // must not claim that everything read did.
  const drops = processorCounts(components, 'dropped');
  const filtered = processorCounts(components, 'filtered');
  const dropFields = {
    ...(drops.items > 0 ? { processor_dropped_items: drops.items, dropped_by_processors: drops.by } : {}),
    ...(filtered.items > 0
      ? { processor_filtered_items: filtered.items, filtered_by_processors: filtered.by }
      : {}),
  };
  if (!report.drained) {
    logger.error(
      { abandoned_items: report.abandonedItems, ...lost, ...dropFields },
      `netmon stopped before the queues drained${drops.items > 0 ? `; besides, ${drops.text}` : ''}`,
    );
  } else if (lost.failed_items + lost.dropped_items + lost.refused_items > 0) {
    logger.warn(
      { ...lost, ...dropFields },
      `netmon stopped; not everything read reached the exporters (see failed, dropped and refused above)${drops.items > 0 ? `; besides, ${drops.text}` : ''}`,
    );
  } else if (drops.items > 0) {
    logger.warn(
      dropFields,
      `netmon stopped; ${drops.text}; everything else read was delivered to the exporters${filtered.items > 0 ? ' or filtered out by processors' : ''}`,
    );
  } else if (filtered.items > 0) {
    logger.info(
      dropFields,
      `netmon stopped; everything read was delivered to the exporters, or filtered out by processors by design (${filtered.where})`,
    );
  } else {
    logger.info('netmon stopped; everything read was delivered to the exporters');
  }
  unhook();
  return report.drained && report.errors.length === 0 ? 0 : 1;
}

const ITEM_NAMES: Record<string, [one: string, many: string]> = {
  flows: ['flow', 'flows'],
  dns: ['DNS lookup', 'DNS lookups'],
};

/**
 * The items processors dropped (returned no batch for) or filtered out (left out of a batch they returned),
 * per processor and pipeline, and words for them: "113 flows were dropped by processors that returned no
 * batch (plugin/x in pipeline flows: 113)".
 */
function processorCounts(
  components: readonly ComponentState[],
  outcome: 'dropped' | 'filtered',
): {
  items: number;
  by: { component: string; pipeline?: string; signal?: string; items: number }[];
  text: string;
  where: string;
} {
  const by = components
    .filter((c) => c.kind === 'processor' && (c.items[outcome] ?? 0) > 0)
    .map((c) => ({ component: c.id, pipeline: c.pipeline, signal: c.signal, items: c.items[outcome] ?? 0 }));
  const items = by.reduce((n, d) => n + d.items, 0);
  const perSignal = new Map<string, number>();
  for (const d of by) perSignal.set(d.signal ?? '', (perSignal.get(d.signal ?? '') ?? 0) + d.items);
  const counted = [...perSignal].map(([signal, n]) => {
    const [one, many] = ITEM_NAMES[signal] ?? ['item', 'items'];
    return `${n} ${n === 1 ? one : many}`;
  });
  const verb = items === 1 ? 'was' : 'were';
  const where = by
    .map((d) => `${d.component}${d.pipeline ? ` in pipeline ${d.pipeline}` : ''}: ${d.items}`)
    .join(', ');
  const how =
    outcome === 'dropped' ? 'dropped by processors that returned no batch' : 'filtered out by processors';
  return { items, by, where, text: `${counted.join(' and ')} ${verb} ${how} (${where})` };
}
