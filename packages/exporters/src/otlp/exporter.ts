import {
  type BackoffOptions,
  backoffOf,
  type ComponentSettings,
  DEFAULT_CLOSE_DEADLINE_MS,
  type DnsBatch,
  type Exporter,
  FlowBatch,
  formatDuration,
  getExtension,
  NETMON_VERSION,
  observeMetrics,
  SendQueue,
  type Signal,
} from '@netmon/core';
import { K8S_METADATA } from '@netmon/extensions';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { type Resource, resourceFromAttributes } from '@opentelemetry/resources';
import { labelFacts } from '../series/flow-labels.js';
import type { OtlpExporterConfig } from './config.js';
import { channelCredentials, ExportError, exportError, isRetryable, metadata, plaintext } from './grpc.js';
import {
  type Aggregate,
  AttributeCache,
  type Chunk,
  chunk,
  DnsAggregate,
  expire,
  FlowAggregate,
  type Scope,
  takeSnapshot,
  toResourceMetrics,
} from './metrics.js';
import { resourceAttributes } from './resource.js';
import { OTLP_METRICS } from './self-metrics.js';

const SCOPE: Scope = { name: 'netmon', version: NETMON_VERSION };
type Compression = NonNullable<ConstructorParameters<typeof OTLPMetricExporter>[0]>['compression'];
/** ExportResultCode.SUCCESS of @opentelemetry/core. */
const SUCCESS = 0;

/**
 * Closes an OTLPMetricExporter's gRPC channel at once (OTLPMetricExporter.shutdown() would first wait for
 * its calls in flight, up to `timeout`). grpc-js then fails the calls still waiting for a connection (a
 * blackholed backend) with UNAVAILABLE; a call a server holds open ends at its own deadline, which
 * SendQueue.close does not wait for. The library has no public way to cancel a call: this reaches its
 * transport, and does nothing if the library's insides change.
 */
function closeChannel(client: OTLPMetricExporter | undefined): void {
  const transport = (client as unknown as { _delegate?: { _transport?: { shutdown?: () => void } } })
    ?._delegate?._transport;
  if (typeof transport?.shutdown === 'function') transport.shutdown();
}

/** For tests and benchmarks: a clock, and shorter retry waits than the SendQueue's defaults. */
export interface OtlpExporterOptions {
  now?: () => number;
  backoff?: Partial<BackoffOptions>;
}

/** What the last interval sent, for /status (every signal's requests together). */
interface IntervalFacts {
  at: string;
  series: number;
  points: number;
  requests: number;
  largest_request_bytes: number;
}

/** One signal's series and the bookkeeping of their exports. */
class SignalSeries {
  readonly aggregate: Aggregate;
  readonly cache: AttributeCache;
  /** Something was added since the previous export (cumulative sends nothing otherwise). */
  dirty = false;
  previousEnd: number;
  expired = 0;

  constructor(
    readonly signal: Signal,
    config: OtlpExporterConfig,
    now: number,
  ) {
    this.aggregate =
      signal === 'dns'
        ? new DnsAggregate(config.max_series, {
            top: config.labels.dns_question.top,
            expirationMs: config.expiration,
          })
        : new FlowAggregate(config.granularity, config.max_series, config.labels, config.expiration);
    this.cache = new AttributeCache(this.aggregate);
    this.previousEnd = now;
  }
}

/**
 * Sums flows and DNS lookups into series as batches arrive (one set of series per signal the instance
 * serves) and, every `interval`, sends the series' points to an OTLP/gRPC endpoint: requests cut below the
 * gRPC size limit, queued in one bounded SendQueue that retries what is retryable with backoff, one
 * request in flight over one channel, whatever the signals.
 */
export class OtlpExporter implements Exporter<FlowBatch | DnsBatch> {
  /** The series of each signal in `settings.signals`, in that order. */
  private readonly bySignal = new Map<Signal, SignalSeries>();
  private queue?: SendQueue<Chunk>;
  private client?: OTLPMetricExporter;
  private timer?: NodeJS.Timeout;
  private started = false;
  private stopped = false;
  private resource?: { key: string; resource: Resource };
  private last?: IntervalFacts;
  private readonly unobserve: () => void;
  private readonly now: () => number;
  /** No attempt before this (ms since the epoch, real time): the delay the server last asked for. */
  private retryAt = 0;
  /** Ends the wait for `retryAt` early (shutdown). */
  private wakeRetry?: () => void;
  private retryAfter?: { ms: number; at: string };

  constructor(
    private readonly settings: ComponentSettings,
    private readonly config: OtlpExporterConfig,
    private readonly options: OtlpExporterOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    const now = this.now();
    for (const signal of settings.signals) this.bySignal.set(signal, new SignalSeries(signal, config, now));
    settings.status.describe(() => this.facts());

    const component = settings.id;
    this.unobserve = observeMetrics(settings.meter, OTLP_METRICS, (r) => {
      for (const s of this.bySignal.values()) {
        const attrs = { component, signal: s.signal };
        r.series(s.aggregate.table.size, attrs);
        r.overflow(s.aggregate.table.overflowRows, attrs);
        r.expired(s.expired, attrs);
      }
    }).close;
  }

  start(): void {
    if (this.started || this.stopped) return;
    const { config, settings } = this;
    const credentials = channelCredentials(config, settings.configDir);
    if (
      plaintext(config) &&
      (config.tls.ca_file || config.tls.cert_file || config.tls.insecure_skip_verify)
    ) {
      settings.logger.warn(
        { endpoint: config.endpoint },
        'tls settings are ignored: the endpoint is plaintext (tls.insecure: true)',
      );
    }
    this.client = new OTLPMetricExporter({
      url: config.endpoint,
      credentials,
      metadata: metadata(config.headers),
      // The library's CompressionAlgorithm enum has exactly these two string values.
      compression: config.compression as Compression,
      timeoutMillis: config.timeout,
      userAgent: `netmon/${NETMON_VERSION}`,
    });
    const backoff = { ...backoffOf(config.retry_on_failure), ...this.options.backoff };
    this.queue = new SendQueue<Chunk>({
      send: (c, deadline) => this.send(c, backoff.maxMs, deadline),
      items: (c) => c.points,
      retryable: isRetryable,
      capacity: config.sending_queue,
      backoff,
      logger: settings.logger,
      status: settings.status,
      meter: settings.meter,
      // One queue per exporter id: its requests carry every signal's points.
      attributes: { component: settings.id },
    });
    this.started = true;
    const now = this.now();
    for (const s of this.bySignal.values()) s.previousEnd = now;
    this.timer = setInterval(() => this.flush(), config.interval);
    this.timer.unref();
    settings.logger.info(
      {
        endpoint: config.endpoint,
        tls: !plaintext(config),
        compression: config.compression,
        temporality: config.temporality,
        interval: formatDuration(config.interval),
      },
      'exporting OTLP metrics',
    );
  }

  export(batch: FlowBatch | DnsBatch): void {
    if (this.stopped) throw new Error('otlp exporter: export after shutdown');
    if (batch instanceof FlowBatch && batch.temporality === 'cumulative') {
      throw new Error(
        'otlp exporter: refusing cumulative flow counters (conntrack or cilium read without the delta processor); add `delta` to the pipeline’s processors before this exporter',
      );
    }
    const signal: Signal = batch instanceof FlowBatch ? 'flows' : 'dns';
    const series = this.bySignal.get(signal);
    if (!series) {
      throw new Error(
        `otlp exporter: a ${signal} batch, but this instance serves ${[...this.bySignal.keys()].join(', ') || 'no signal'}`,
      );
    }
    if (batch.length === 0) return;
    series.aggregate.add(batch as FlowBatch & DnsBatch, this.now());
    series.dirty = true;
  }

  /**
   * Turns what each signal aggregated since the previous export into requests and queues them, all in
   * one synchronous run (one group for the queue's overflow rule); expires idle series. Runs every
   * `interval` and once more at shutdown.
   */
  flush(): void {
    const queue = this.queue;
    if (!queue) return;
    const now = this.now();
    const { config } = this;
    const delta = config.temporality === 'delta';
    let resource: Resource | undefined;
    const sent = { series: 0, points: 0, requests: 0, largest: 0 };
    for (const s of this.bySignal.values()) {
      if (delta || s.dirty) {
        resource ??= this.currentResource();
        const snapshot = takeSnapshot(s.aggregate, s.cache, {
          temporality: config.temporality,
          resource,
          scope: SCOPE,
          now,
          previousEnd: s.previousEnd,
        });
        if (snapshot) {
          const chunks = chunk(snapshot, config.max_points_per_request);
          for (const c of chunks) {
            sent.points += c.points;
            sent.largest = Math.max(sent.largest, c.bytes);
            queue.push(c);
          }
          sent.series += snapshot.length;
          sent.requests += chunks.length;
        }
      }
      s.dirty = false;
      s.previousEnd = now;
      s.expired += expire(s.aggregate, s.cache, now, config.expiration);
    }
    if (sent.requests > 0) {
      this.last = {
        at: new Date(now).toISOString(),
        series: sent.series,
        points: sent.points,
        requests: sent.requests,
        largest_request_bytes: sent.largest,
      };
    }
  }

  /**
   * Queues the partial interval and gives the backend at most 3 s (or `timeout`, if shorter) for the call
   * in flight and the last attempts: exporters stop one after another within the agent's shutdown
   * deadline, so a blackholed backend must not use up the time of the exporters after this one. Past
   * it the channel is closed and what is left is dropped (counted as `shutdown`).
   */
  async shutdown(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    // The last attempts go now: waiting out a server's delay would only use up the shutdown budget.
    this.wakeRetry?.();
    const budget = Math.min(DEFAULT_CLOSE_DEADLINE_MS, this.config.timeout);
    const deadline = Date.now() + budget;
    try {
      if (this.queue) {
        this.flush();
        const left = await this.queue.close({
          deadlineMs: budget,
          cancel: () => closeChannel(this.client),
        });
        if (left > 0) {
          this.settings.logger.warn({ dropped_points: left }, 'stopped with points the backend never took');
        }
      }
      // The library's shutdown first waits for its calls in flight; one close() gave up on must not
      // hold the agent (its channel is closed already).
      const client = this.client;
      if (client) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          client.shutdown(),
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
          }),
        ]).finally(() => clearTimeout(timer));
      }
    } finally {
      this.unobserve();
    }
  }

  /**
   * Sends one request; rejects with an ExportError that says whether to retry. When the server's last
   * answer carried a RetryInfo delay (at most `maxWaitMs`, the retry config's max_interval), the attempt
   * waits until it has passed: the send queue's own backoff may be shorter than what the server asked for,
   * and retrying sooner would only be refused again. Not while stopping (`deadline` set).
   */
  private async send(c: Chunk, maxWaitMs = Number.POSITIVE_INFINITY, deadline?: number): Promise<void> {
    const wait = this.retryAt - Date.now();
    if (wait > 0 && deadline === undefined && !this.stopped) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.wakeRetry = undefined;
          resolve();
        };
        const timer = setTimeout(done, wait);
        this.wakeRetry = done;
      });
    }
    const client = this.client as OTLPMetricExporter;
    try {
      await new Promise<void>((resolve, reject) => {
        client.export(toResourceMetrics(c), (result) => {
          if (result.code === SUCCESS) resolve();
          else reject(exportError(result.error));
        });
      });
    } catch (err) {
      if (err instanceof ExportError && err.retryAfterMs !== undefined) {
        const ms = Math.min(err.retryAfterMs, maxWaitMs);
        this.retryAt = Date.now() + ms;
        this.retryAfter = { ms, at: new Date().toISOString() };
      }
      throw err;
    }
  }

  /** The resource, made again only when the node facts or the config changed it. */
  private currentResource(): Resource {
    const facts = getExtension(this.settings, K8S_METADATA);
    const attrs = resourceAttributes(NETMON_VERSION, facts, this.config.resource);
    const key = JSON.stringify(attrs);
    if (this.resource?.key !== key) this.resource = { key, resource: resourceFromAttributes(attrs) };
    return this.resource.resource;
  }

  /**
   * Series counts are summed over the signals (`max_series` applies to each); with more than one signal,
   * `signals` has each one's own.
   */
  private facts(): Record<string, unknown> {
    const each = [...this.bySignal.values()];
    const sum = (f: (s: SignalSeries) => number) => each.reduce((n, s) => n + f(s), 0);
    const flows = this.bySignal.get('flows')?.aggregate;
    const dns = this.bySignal.get('dns')?.aggregate;
    return {
      endpoint: this.config.endpoint,
      temporality: this.config.temporality,
      series: sum((s) => s.aggregate.table.size),
      max_series: this.config.max_series,
      overflow_items: sum((s) => s.aggregate.table.overflowRows),
      expired_series: sum((s) => s.expired),
      last_export: this.last,
      last_retry_after: this.retryAfter ?? null,
      queue: this.queue?.statistics(),
      ...(flows instanceof FlowAggregate ? { flow_labels: labelFacts(flows.labels) } : {}),
      ...(dns instanceof DnsAggregate ? { dns_labels: dns.series.facts(dns.keys) } : {}),
      ...(each.length > 1
        ? {
            signals: Object.fromEntries(
              each.map((s) => [
                s.signal,
                {
                  series: s.aggregate.table.size,
                  overflow_items: s.aggregate.table.overflowRows,
                  expired_series: s.expired,
                },
              ]),
            ),
          }
        : {}),
    };
  }
}
