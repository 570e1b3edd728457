// The HTTP endpoint Prometheus scrapes: the exporter instance's families (every signal it serves, on the
// one address) and the agent's self-metrics, swept on a timer and at every scrape.
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
  type ObservedMetrics,
  observeMetrics,
  parseEndpoint,
} from '@netmon/core';
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
import { FAMILY_NAMES, type Families, type SeriesFamily } from './families.js';
import { PROMETHEUS_METRICS } from './metrics.js';
import type { DeletedPods } from './pods.js';
import { renderSelfMetrics } from './self-metrics.js';

export const METRICS_PATH = '/metrics';

export interface ScrapeStats {
  /** Scrapes sent to the end. */
  scrapes: number;
  /** Scrapes that ended early: the scraper hung up, or the scrape's deadline passed. */
  aborted: number;
  /** Time the last completed scrape took, from the request to the last byte handed to the socket (ms). */
  lastDurationMs: number;
  /** Uncompressed size of the last completed scrape. */
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

/**
 * Longest a scrape may take to be sent. Prometheus gives up after its scrape_timeout (at most its
 * scrape_interval, typically 10 s) and says so in the header below, which shortens it; nothing waits longer
 * than this. A response still being sent then is cut off: a scraper that stopped reading holds nothing for
 * long.
 */
export const SCRAPE_DEADLINE_MS = 120_000;
/** The shortest deadline a scraper's header can ask for. */
const MIN_DEADLINE_MS = 1000;
const SCRAPE_TIMEOUT_HEADER = 'x-prometheus-scrape-timeout-seconds';
/** A connection that neither sends nor takes a byte for this long is closed (idle keep-alive aside). */
const IDLE_TIMEOUT_MS = 30_000;
/** Time to send a request's headers, and the whole request (a GET has no body). */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 15_000;

/** The deadline of a scrape: the scraper's own timeout when it sends one (Prometheus does), within bounds. */
export function scrapeDeadline(header: string | string[] | undefined): number {
  const seconds = Number(Array.isArray(header) ? header[0] : header);
  if (!header || !Number.isFinite(seconds) || seconds <= 0) return SCRAPE_DEADLINE_MS;
  return Math.min(SCRAPE_DEADLINE_MS, Math.max(MIN_DEADLINE_MS, seconds * 1000));
}

export class MetricsEndpoint {
  readonly stats: ScrapeStats = { scrapes: 0, aborted: 0, lastDurationMs: 0, lastBytes: 0 };
  private server?: Server;
  private timer?: NodeJS.Timeout;
  private observed?: ObservedMetrics<typeof PROMETHEUS_METRICS>;
  /** Scrapes being sent. Sweeps do not wait for them: renderers walk the tables with cursors. */
  private sending = 0;
  private readonly expirationMs: number;
  private readonly listen: { host: string; port: number };

  /**
   * Serves `families` in this order (the order of the signals' pipelines) and sweeps the pods `deletions`
   * reports gone from all of them.
   */
  constructor(
    private readonly settings: ComponentSettings,
    private readonly config: PrometheusExporterConfig,
    private readonly families: readonly Families[],
    private readonly deletions?: DeletedPods,
  ) {
    this.expirationMs = config.expiration;
    this.listen = parseEndpoint(config.endpoint);
  }

  /** Scrapes being sent now. */
  get inFlight(): number {
    return this.sending;
  }

  /** `http://host:port/metrics` once listening (the real port when 0 was asked for). */
  url(): string | undefined {
    const a = this.server?.address() as AddressInfo | null | undefined;
    if (!a) return undefined;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}${METRICS_PATH}`;
  }

  /** Listens, then sweeps on a timer. Rejects, holding nothing open, when the address cannot be bound. */
  async start(): Promise<void> {
    const server = createServer(
      {
        // Prometheus keeps its connection alive between scrapes (every 15–60 s, typically).
        keepAliveTimeout: 65_000,
        headersTimeout: HEADERS_TIMEOUT_MS,
        requestTimeout: REQUEST_TIMEOUT_MS,
        connectionsCheckingInterval: 5000,
      },
      (req, res) => {
        this.handle(req, res).catch((err) => {
          this.settings.logger.warn({ err: errorMessage(err) }, 'scrape failed');
          if (!res.headersSent) {
            res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
            res.end(`netmon prometheus exporter: scrape failed: ${errorMessage(err)}\n`);
          } else res.destroy();
        });
      },
    );
    // Set on every request's socket (between requests keepAliveTimeout applies); without a 'timeout'
    // listener, a socket idle this long — a scraper that stopped reading — is destroyed.
    server.setTimeout(IDLE_TIMEOUT_MS);
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
    // Sweeps run every quarter of the expiration (at most a minute) and at every scrape: series expire
    // that late at most, and a deleted pod's go at the first sweep after a scrape showed their last bytes.
    const every = Math.min(60_000, Math.max(1000, this.expirationMs / 4));
    this.timer = setInterval(() => this.sweep(Date.now()), every);
    this.timer.unref();
    this.observeSelf();
    this.settings.logger.info({ url: this.url() }, 'serving Prometheus metrics');
  }

  /** Closes the server and any kept-alive scrape connection; stops the sweeps and the self-metrics. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.observed?.close();
    this.observed = undefined;
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      // Prometheus keeps its connection alive between scrapes: close it rather than wait for it.
      server.closeAllConnections();
    });
  }

  /**
   * Removes expired series, and those of deleted pods that a scrape has shown since their last update,
   * from every family. Scrapes being sent meanwhile carry on (their renderers hold cursors).
   */
  sweep(now: number): void {
    const gone = this.deletions?.current(now);
    const cutoff = now - this.expirationMs;
    for (const f of this.families) f.sweep(cutoff, gone);
  }

  /** The exposition now, as Buffer chunks: for tests and benchmarks (scrapes stream it). */
  async render(format: Format, now = Date.now()): Promise<Buffer[]> {
    this.sweep(now);
    const marks = this.marks();
    const out = new Exposition(format);
    const self = await this.collectSelfMetrics();
    const chunks = renderAll(out, this.renderers(out, self));
    this.served(marks);
    return chunks;
  }

  /** Every table's update count now: what a scrape that begins now will have shown once sent. */
  private marks(): [SeriesFamily, number][] {
    const marks: [SeriesFamily, number][] = [];
    for (const f of this.families) for (const t of f.tables) marks.push([t, t.table.updates]);
    return marks;
  }

  /** A scrape that began at `marks` was sent to the end. */
  private served(marks: [SeriesFamily, number][]): void {
    for (const [t, updates] of marks) if (updates > t.served) t.served = updates;
  }

  private async collectSelfMetrics() {
    return this.config.self_metrics ? await this.settings.host.selfMetrics?.() : undefined;
  }

  /** Every family, then the self-metrics. */
  private *renderers(out: Exposition, self: CollectedMetrics | undefined): Generator<void> {
    for (const f of this.families) yield* f.render(out);
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
    const deadline = scrapeDeadline(req.headers[SCRAPE_TIMEOUT_HEADER]);
    const timer = setTimeout(() => {
      if (res.writableFinished) return;
      this.settings.logger.warn(
        { remote: req.socket.remoteAddress, deadline_ms: deadline },
        'scrape cut off: not sent within its deadline (a scraper that stopped reading?)',
      );
      res.destroy();
    }, deadline);
    this.sending++;
    let bytes = 0;
    let sent = false;
    try {
      this.sweep(Date.now());
      const marks = this.marks();
      const self = await this.collectSelfMetrics();
      const gzip = acceptsGzip(req.headers['accept-encoding']);
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
        sent = await finished(res).then(
          () => true,
          () => false,
        );
        res.off('close', hangUp);
      } else {
        // The length is not known before the end: chunked transfer encoding.
        res.writeHead(200, headers);
        bytes = await this.send(res, format, self, res);
        res.end();
        sent = await finished(res).then(
          () => true,
          () => false,
        );
      }
      // Only a scrape the scraper got whole counts as having shown the series' values.
      if (sent) this.served(marks);
    } finally {
      clearTimeout(timer);
      this.sending--;
    }
    if (!sent) {
      this.stats.aborted++;
      return;
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
      // Stopped early (the scraper left): close the renderers, which releases their table cursors.
      renderers.return(undefined);
    }
    return bytes;
  }

  /** The exporter's own metrics, observed from every family this endpoint serves. */
  private observeSelf(): void {
    this.observed = observeMetrics(this.settings.meter, PROMETHEUS_METRICS, (r) => {
      for (const f of this.families) {
        for (const t of f.tables) {
          r.series(t.table.size, { table: t.family });
          r.overflowRows(t.table.overflowRows, { table: t.family });
          r.removedSeries(t.removed.expired, { table: t.family, reason: 'expired' });
          r.removedSeries(t.removed.pod_deleted, { table: t.family, reason: 'pod_deleted' });
        }
      }
      r.scrapes(this.stats.scrapes);
      r.abortedScrapes(this.stats.aborted);
      r.scrapeDuration(this.stats.lastDurationMs / 1000);
      r.scrapeSize(this.stats.lastBytes);
    });
  }
}
