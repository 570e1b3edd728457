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
  SendQueue,
  type Signal,
} from '@netmon/core';
import { K8S_METADATA } from '@netmon/extensions';
import type { BatchObservableCallback, Observable } from '@opentelemetry/api';
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

/** What the last interval sent, for /status. */
interface IntervalFacts {
  at: string;
  series: number;
  points: number;
  requests: number;
  largest_request_bytes: number;
}

/**
 * Sums flows (or DNS lookups) into series as batches arrive and, every `interval`, sends the series' points
 * to an OTLP/gRPC endpoint: requests cut below the gRPC size limit, queued in a bounded SendQueue that
 * retries what is retryable with backoff, one request in flight.
 */
export class OtlpExporter implements Exporter<FlowBatch | DnsBatch> {
  readonly aggregate: Aggregate;
  private readonly cache: AttributeCache;
  private queue?: SendQueue<Chunk>;
  private client?: OTLPMetricExporter;
  private timer?: NodeJS.Timeout;
  private started = false;
  private stopped = false;
  /** Something was added since the previous export (cumulative sends nothing otherwise). */
  private dirty = false;
  private previousEnd: number;
  private resource?: { key: string; resource: Resource };
  private last?: IntervalFacts;
  private expired = 0;
  private readonly observe: BatchObservableCallback;
  private readonly observables: Observable[];
  private readonly now: () => number;
  /** No attempt before this (ms since the epoch, real time): the delay the server last asked for. */
  private retryAt = 0;
  /** Ends the wait for `retryAt` early (shutdown). */
  private wakeRetry?: () => void;
  private retryAfter?: { ms: number; at: string };

  constructor(
    private readonly settings: ComponentSettings,
    private readonly config: OtlpExporterConfig,
    readonly signal: Signal = 'flows',
    private readonly options: OtlpExporterOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.aggregate =
      signal === 'dns'
        ? new DnsAggregate(config.max_series)
        : new FlowAggregate(config.granularity, config.max_series, config.labels, config.expiration);
    this.cache = new AttributeCache(this.aggregate);
    this.previousEnd = this.now();
    settings.status.describe(() => this.facts());

    const m = settings.meter;
    const attrs = { component: settings.id };
    const series = m.createObservableGauge('netmon_otlp_series', {
      description: 'Series the otlp exporter holds (each yields up to 5 data points per interval).',
      unit: '{series}',
    });
    const overflow = m.createObservableCounter('netmon_otlp_overflow_items', {
      description:
        'Flows or lookups summed into the overflow series (otel.metric.overflow=true) because max_series was reached.',
      unit: '{item}',
    });
    const expired = m.createObservableCounter('netmon_otlp_expired_series', {
      description: 'Series forgotten after receiving nothing for `expiration`.',
      unit: '{series}',
    });
    this.observables = [series, overflow, expired];
    this.observe = (r) => {
      r.observe(series, this.aggregate.table.size, attrs);
      r.observe(overflow, this.aggregate.table.overflowRows, attrs);
      r.observe(expired, this.expired, attrs);
    };
    m.addBatchObservableCallback(this.observe, this.observables);
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
      // flows and dns each have an instance (and a queue) of the same id.
      attributes: { component: settings.id, signal: this.signal },
    });
    this.started = true;
    this.previousEnd = this.now();
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
    if (batch.length === 0) return;
    this.aggregate.add(batch as FlowBatch & DnsBatch, this.now());
    this.dirty = true;
  }

  /**
   * Turns what was aggregated since the previous export into requests and queues them; expires idle series.
   * Runs every `interval` and once more at shutdown.
   */
  flush(): void {
    const queue = this.queue;
    if (!queue) return;
    const now = this.now();
    const { config } = this;
    const delta = config.temporality === 'delta';
    if (delta || this.dirty) {
      const snapshot = takeSnapshot(this.aggregate, this.cache, {
        temporality: config.temporality,
        resource: this.currentResource(),
        scope: SCOPE,
        now,
        previousEnd: this.previousEnd,
      });
      if (snapshot) {
        const chunks = chunk(snapshot, config.max_points_per_request);
        let points = 0;
        let largest = 0;
        for (const c of chunks) {
          points += c.points;
          largest = Math.max(largest, c.bytes);
          queue.push(c);
        }
        this.last = {
          at: new Date(now).toISOString(),
          series: snapshot.length,
          points,
          requests: chunks.length,
          largest_request_bytes: largest,
        };
      }
    }
    this.dirty = false;
    this.previousEnd = now;
    this.expired += expire(this.aggregate, this.cache, now, config.expiration);
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
      this.settings.meter.removeBatchObservableCallback(this.observe, this.observables);
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

  private facts(): Record<string, unknown> {
    const t = this.aggregate.table;
    return {
      endpoint: this.config.endpoint,
      temporality: this.config.temporality,
      series: t.size,
      max_series: t.maxSeries,
      overflow_items: t.overflowRows,
      expired_series: this.expired,
      last_export: this.last,
      last_retry_after: this.retryAfter ?? null,
      queue: this.queue?.statistics(),
      ...(this.aggregate instanceof FlowAggregate ? { flow_labels: labelFacts(this.aggregate.labels) } : {}),
    };
  }
}
