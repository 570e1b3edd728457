import {
  type Logger,
  type LogLevel,
  loadConfig,
  type Registry,
  registerSelfMetrics,
  Service,
} from '@netmon/core';
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
  configFiles: string[];
  registry: Registry;
  logger: (level: LogLevel) => Logger;
  /** --log-level: overrides service::telemetry::logs::level. */
  logLevel?: LogLevel;
  /** Stop when this resolves (tests); otherwise on SIGTERM/SIGINT. */
  stop?: Promise<unknown>;
}

/**
 * Runs the agent until SIGTERM/SIGINT: validate everything, build, start; on the signal, drain queued
 * data to the exporters within service::shutdown_timeout. Returns the process exit code.
 */
export async function runAgent(opts: RunOptions): Promise<number> {
  const config = await loadConfig(opts.configFiles, opts.registry);
  const logger = opts.logger(opts.logLevel ?? config.logLevel);
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
    { version: VERSION, config: opts.configFiles, pipelines: config.pipelines.map((p) => p.id) },
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

  try {
    await service.start();
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'netmon could not start');
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    stopSelfMetrics();
    await meterProvider.shutdown();
    return 1;
  }
  logger.info('netmon is running; SIGTERM or Ctrl-C stops it after draining in-flight data');

  // Signal handlers do not keep Node alive: once a replay ends, nothing else might. Hold the process
  // open until a signal says to stop, so shutdown (drain, final counts) always runs.
  const keepAlive = setInterval(() => {}, 1 << 30);
  const signal = await stopSignal;
  clearInterval(keepAlive);
  logger.info({ signal, deadline_ms: config.shutdownTimeoutMs }, 'stopping: draining in-flight data');
  const report = await service.shutdown();
  stopSelfMetrics();
  await meterProvider.shutdown();
  for (const e of report.errors) logger.error({ error: e }, 'error while stopping');
  logger.info(
    {
      components: service
        .components()
        .map((c) => ({ kind: c.kind, id: c.id, pipeline: c.pipeline, items: c.items })),
      queues: service.queues(),
    },
    'final item counts',
  );
  if (report.drained) logger.info('netmon stopped; everything read was delivered to the exporters');
  else logger.error({ abandoned_items: report.abandonedItems }, 'netmon stopped before the queues drained');
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', force);
  process.off('SIGINT', force);
  return report.drained && report.errors.length === 0 ? 0 : 1;
}
