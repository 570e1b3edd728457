// The HTTP endpoint Prometheus scrapes. One per exporter id and agent: the framework makes one exporter
// instance per signal (flows, dns), and both must be served on the one address, so the instances share
// it — the first to start listens, the last to shut down closes it.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { setImmediate as turn } from 'node:timers/promises';
import { getSystemErrorMessage } from 'node:util';
import { constants, createGzip } from 'node:zlib';
import {
  type CollectedMetrics,
  type ComponentSettings,
  errorMessage,
  type Host,
  parseEndpoint,
} from '@netmon/core';
import type { BatchObservableCallback, Observable } from '@opentelemetry/api';
import type { PrometheusExporterConfig } from './config.js';
import {
  acceptsGzip,
  CHUNK_CHARS,
  CONTENT_TYPE,
  Exposition,
  type Format,
  negotiateFormat,
  renderAll,
} from './exposition.js';
import { FAMILY_NAMES, type Families } from './families.js';
import type { DeletedPods } from './pods.js';
import { renderSelfMetrics } from './self-metrics.js';

export const METRICS_PATH = '/metrics';

export interface ScrapeStats {
  scrapes: number;
  /** Time the last scrape took, from the request to the last byte handed to the socket (ms). */
  lastDurationMs: number;
  /** Uncompressed size of the last scrape. */
  lastBytes: number;
}

/** Bytes of one output buffer: a chunk of CHUNK_CHARS characters fits even if most are multi-byte. */
const BUFFER_BYTES = 4 * CHUNK_CHARS;
/** Buffers per scrape in flight: one being filled while others are with the socket or gzip. */
const BUFFERS = 4;
/**
 * Longest the renderer runs before letting the event loop take a turn. A fast local socket completes
 * writes synchronously and 'drain' comes on the next tick, so without this a scrape would hold the loop
 * (and the pipeline) for its whole duration.
 */
const SLICE_MS = 5;

const endpoints = new WeakMap<Host, Map<string, MetricsEndpoint>>();

export class MetricsEndpoint {
  readonly stats: ScrapeStats = { scrapes: 0, lastDurationMs: 0, lastBytes: 0 };
  private readonly families = new Set<Families>();
  private readonly deletions = new Set<DeletedPods>();
  private users = 0;
  private server?: Server;
  private listening?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private unobserve?: () => void;
  /** Scrapes being sent: series are not removed meanwhile, so their renderers' indices stay valid. */
  private sending = 0;
  private readonly expirationMs: number;
  private readonly listen: { host: string; port: number };

  private constructor(
    private readonly settings: ComponentSettings,
    private readonly config: PrometheusExporterConfig,
  ) {
    this.expirationMs = config.expiration;
    this.listen = parseEndpoint(config.endpoint);
  }

  /** The endpoint of this exporter id in this agent, made by the first instance that asks. */
  static of(settings: ComponentSettings, config: PrometheusExporterConfig): MetricsEndpoint {
    let byId = endpoints.get(settings.host);
    if (!byId) {
      byId = new Map();
      endpoints.set(settings.host, byId);
    }
    let e = byId.get(settings.id);
    if (!e) {
      e = new MetricsEndpoint(settings, config);
      byId.set(settings.id, e);
    }
    return e;
  }

  /** `http://host:port/metrics` once listening (the real port when 0 was asked for). */
  url(): string | undefined {
    const a = this.server?.address() as AddressInfo | null | undefined;
    if (!a) return undefined;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}${METRICS_PATH}`;
  }

  /** Serves `families` (and sweeps `deletions`) from now on; listens if nobody did yet. */
  async acquire(families: Families, deletions: DeletedPods | undefined): Promise<void> {
    this.families.add(families);
    if (deletions) this.deletions.add(deletions);
    this.users++;
    this.listening ??= this.start();
    try {
      await this.listening;
    } catch (err) {
      await this.release(families, deletions);
      throw err;
    }
  }

  /** Stops serving `families`; the last user closes the server. */
  async release(families: Families, deletions: DeletedPods | undefined): Promise<void> {
    this.families.delete(families);
    if (deletions) this.deletions.delete(deletions);
    if (--this.users > 0) return;
    endpoints.get(this.settings.host)?.delete(this.settings.id);
    clearInterval(this.timer);
    this.timer = undefined;
    this.unobserve?.();
    this.unobserve = undefined;
    const server = this.server;
    this.server = undefined;
    this.listening = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      // Prometheus keeps its connection alive between scrapes: close it rather than wait for it.
      server.closeAllConnections();
    });
  }

  private async start(): Promise<void> {
    const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
      this.handle(req, res).catch((err) => {
        this.settings.logger.warn({ err: errorMessage(err) }, 'scrape failed');
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
          res.end(`netmon prometheus exporter: scrape failed: ${errorMessage(err)}\n`);
        } else res.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        const why = err.code && err.errno ? `${err.code} (${getSystemErrorMessage(err.errno)})` : err.message;
        reject(
          new Error(
            `prometheus exporter: cannot listen on ${this.config.endpoint}: ${why}${err.code === 'EADDRINUSE' ? '; another process (a second agent?) serves this port: set exporters::prometheus::endpoint' : ''}`,
          ),
        );
      });
      server.listen(this.listen.port, this.listen.host, () => resolve());
    });
    server.on('error', (err) =>
      this.settings.logger.warn({ err: errorMessage(err) }, 'metrics server error'),
    );
    this.server = server;
    // Deleted pods' series go within a quarter of the expiration (at most a minute), and at every scrape.
    const every = Math.min(60_000, Math.max(1000, this.expirationMs / 4));
    this.timer = setInterval(() => this.sweep(Date.now()), every);
    this.timer.unref();
    this.registerMetrics();
    this.settings.logger.info({ url: this.url() }, 'serving Prometheus metrics');
  }

  /**
   * Removes expired series and those of deleted pods from every family — unless a scrape is being sent;
   * the next sweep (timer or scrape) does it then.
   */
  sweep(now: number): void {
    if (this.sending > 0) return;
    let gone: Set<string> | undefined;
    for (const d of this.deletions) {
      const g = d.take();
      if (!g) continue;
      gone ??= new Set();
      for (const k of g) gone.add(k);
    }
    const cutoff = now - this.expirationMs;
    for (const f of this.families) f.sweep(cutoff, gone);
  }

  /** The exposition now, as Buffer chunks: for tests and benchmarks (scrapes stream it). */
  async render(format: Format, now = Date.now()): Promise<Buffer[]> {
    this.sweep(now);
    const out = new Exposition(format);
    const self = await this.collectSelfMetrics();
    return renderAll(out, this.renderers(out, self));
  }

  private async collectSelfMetrics() {
    return this.config.self_metrics ? await this.settings.host.selfMetrics?.() : undefined;
  }

  /** Every family, then the self-metrics. */
  private *renderers(out: Exposition, self: CollectedMetrics | undefined): Generator<void> {
    for (const f of [...this.families]) yield* f.render(out);
    if (self) renderSelfMetrics(self, out, FAMILY_NAMES);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== METRICS_PATH) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`404 page not found: netmon serves its Prometheus metrics at ${METRICS_PATH}\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
      res.end(`405 method not allowed: use GET ${METRICS_PATH}\n`);
      return;
    }
    const begin = performance.now();
    const format = negotiateFormat(req.headers.accept);
    const headers: Record<string, string> = { 'content-type': CONTENT_TYPE[format] };
    if (req.method === 'HEAD') {
      res.writeHead(200, headers);
      res.end();
      return;
    }
    this.sweep(Date.now());
    const self = await this.collectSelfMetrics();
    const gzip = acceptsGzip(req.headers['accept-encoding']);
    this.sending++;
    let bytes = 0;
    try {
      if (gzip) {
        res.writeHead(200, { ...headers, 'content-encoding': 'gzip', vary: 'Accept-Encoding' });
        // Level 1: repetitive label text still compresses ~10×, at a fraction of the default's CPU. zlib
        // runs on the thread pool, so compressing never blocks the pipeline.
        const z = createGzip({ level: constants.Z_BEST_SPEED, chunkSize: 1 << 16 });
        z.pipe(res);
        // A scraper that hangs up (a timeout) leaves gzip with nowhere to write: end it too.
        const hangUp = () => z.destroy();
        res.once('close', hangUp);
        bytes = await this.send(z, format, self, res);
        z.end();
        await finished(res).catch(() => undefined);
        res.off('close', hangUp);
      } else {
        // The length is not known before the end: chunked transfer encoding.
        res.writeHead(200, headers);
        bytes = await this.send(res, format, self, res);
        res.end();
      }
    } finally {
      this.sending--;
    }
    this.stats.scrapes++;
    this.stats.lastDurationMs = performance.now() - begin;
    this.stats.lastBytes = bytes;
  }

  /**
   * Renders into a few reused buffers and writes them to `sink` as they fill, waiting for the sink to
   * drain: memory stays at BUFFERS × BUFFER_BYTES however many series there are, and the event loop
   * gets a turn between chunks. Stops early when `res` closes. Returns the bytes written.
   */
  private async send(
    sink: Writable,
    format: Format,
    self: CollectedMetrics | undefined,
    res: ServerResponse,
  ): Promise<number> {
    const out = new Exposition(format);
    const renderers = this.renderers(out, self);
    const free: Buffer[] = [];
    for (let i = 0; i < BUFFERS; i++) free.push(Buffer.allocUnsafe(BUFFER_BYTES));
    // One waiter at a time, woken by a buffer coming back, the sink draining, or the scraper leaving.
    let wake: (() => void) | undefined;
    const poke = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const sleep = () => new Promise<void>((r) => (wake = r));
    const events = ['drain', 'close', 'error'] as const;
    for (const e of events) sink.on(e, poke);
    res.on('close', poke);
    const gone = () => res.destroyed || sink.destroyed;
    let bytes = 0;
    let slice = performance.now();
    try {
      let done = false;
      while (!done && !gone()) {
        if (performance.now() - slice > SLICE_MS) {
          await turn();
          slice = performance.now();
        }
        while (!out.full) {
          if (renderers.next().done) {
            out.end();
            done = true;
            break;
          }
        }
        const text = out.take();
        if (text.length === 0) break;
        while (free.length === 0 && !gone()) await sleep();
        if (gone()) break;
        const buffer = free.pop() as Buffer;
        let chunk: Buffer;
        let pooled = true;
        if (text.length * 3 <= buffer.length) chunk = buffer.subarray(0, buffer.write(text, 0));
        else {
          chunk = Buffer.from(text); // one outsized series (a huge label value): not worth a bigger pool
          pooled = false;
          free.push(buffer);
        }
        bytes += chunk.length;
        // The callback runs once the sink is done with the chunk (sent, or taken by zlib): reuse it then.
        const more = sink.write(chunk, () => {
          if (pooled) free.push(buffer);
          poke();
        });
        while (!more && sink.writableNeedDrain && !gone()) await sleep();
      }
    } finally {
      for (const e of events) sink.off(e, poke);
      res.off('close', poke);
    }
    return bytes;
  }

  /** The exporter's own metrics, observed from every family this endpoint serves. */
  private registerMetrics(): void {
    const meter = this.settings.meter;
    const series = meter.createObservableGauge('netmon_prometheus_series', {
      description:
        'Series the prometheus exporter holds, by table: flows (label sets of netmon_flow_*), cross_zone, dns.',
      unit: '{series}',
    });
    const overflow = meter.createObservableCounter('netmon_prometheus_overflow_rows', {
      description:
        'Rows summed into the overflow series (otel_metric_overflow="true") because max_series was reached, by table.',
      unit: '{row}',
    });
    const removed = meter.createObservableCounter('netmon_prometheus_removed_series', {
      description:
        'Series removed, by table and reason: expired (not updated within expiration), pod_deleted.',
      unit: '{series}',
    });
    const scrapes = meter.createObservableCounter('netmon_prometheus_scrapes', {
      description: 'Scrapes of /metrics served.',
      unit: '{scrape}',
    });
    const duration = meter.createObservableGauge('netmon_prometheus_scrape_duration_seconds', {
      description: 'Time the last scrape took to sweep and render, before sending.',
      unit: 's',
    });
    const size = meter.createObservableGauge('netmon_prometheus_scrape_size_bytes', {
      description: 'Uncompressed size of the last scrape.',
      unit: 'By',
    });
    const instruments: Observable[] = [series, overflow, removed, scrapes, duration, size];
    const observe: BatchObservableCallback = (r) => {
      for (const f of this.families) {
        for (const t of f.tables) {
          r.observe(series, t.table.size, { table: t.family });
          r.observe(overflow, t.table.overflowRows, { table: t.family });
          r.observe(removed, t.removed.expired, { table: t.family, reason: 'expired' });
          r.observe(removed, t.removed.pod_deleted, { table: t.family, reason: 'pod_deleted' });
        }
      }
      r.observe(scrapes, this.stats.scrapes);
      r.observe(duration, this.stats.lastDurationMs / 1000);
      r.observe(size, this.stats.lastBytes);
    };
    meter.addBatchObservableCallback(observe, instruments);
    this.unobserve = () => meter.removeBatchObservableCallback(observe, instruments);
  }
}
