// The HTTP endpoint Prometheus scrapes: the exporter instance's families (every signal it serves, on the
// one address) and the agent's self-metrics, swept on a timer and at every scrape. Whatever scrapers do —
// many connections, pipelined requests, never reading — what they make the agent hold is bounded: at most
// max_connections connections (an idle one gives way to a new one), one response in progress on each (the
// rest wait, up to MAX_WAITING), and renderings shared between the scrapes that want the same bytes
// (./rendering.ts).
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { finished } from 'node:stream/promises';
import {
  type CollectedMetrics,
  type ComponentSettings,
  type ConnectionDropReason,
  createHttpServer,
  errorMessage,
  type HttpServer,
  type ObservedMetrics,
  observeMetrics,
  parseEndpoint,
  systemError,
} from '@netmon/core';
import type { PrometheusExporterConfig } from './config.js';
import {
  acceptsGzip,
  CONTENT_TYPE,
  Exposition,
  type Format,
  negotiateFormat,
  renderAll,
} from './exposition.js';
import { FAMILY_NAMES, type Families, type SeriesFamily } from './families.js';
import { PROMETHEUS_METRICS } from './metrics.js';
import type { DeletedPods } from './pods.js';
import { type Reader, Rendering, SHARED_MAX_BYTES, type Variant, variantKey } from './rendering.js';
import { renderSelfMetrics } from './self-metrics.js';

export const METRICS_PATH = '/metrics';

/**
 * Why a connection was closed by the exporter: max_connections (refused on arrival, every open one had a
 * response in progress), evicted_idle (idle longest, closed to admit a new one at max_connections),
 * pipelining (more than MAX_WAITING requests waited on it).
 */
export type DropReason = ConnectionDropReason | 'pipelining';

export interface ScrapeStats {
  /** Scrapes sent to the end. */
  scrapes: number;
  /** Scrapes that ended early: the scraper hung up, or the scrape's deadline passed. */
  aborted: number;
  /** Time the last completed scrape took, from the request to the last byte handed to the socket (ms). */
  lastDurationMs: number;
  /** Uncompressed size of the last completed scrape. */
  lastBytes: number;
  /** Renderings made: scrapes served from one count it once. */
  renderings: number;
  /** Connections refused or closed by the exporter, by reason. */
  dropped: Record<DropReason, number>;
}

/**
 * Requests one connection may have waiting for the responses before them (HTTP/1.1 pipelining, which no
 * Prometheus uses); one more closes the connection. Node parses every request that has arrived and
 * stops reading only while the socket cannot take more output, so a client that reads as fast as it
 * pipelines would otherwise queue requests without end.
 */
export const MAX_WAITING = 16;
/**
 * A finished shared rendering still serves scrapes this long after it was made, if no table changed
 * since it began: two scrapers (an HA pair) or a flood then cost one rendering.
 */
export const SHARE_WINDOW_MS = 1000;
/** Drops are logged at most this often (each one is counted). */
const DROP_LOG_MS = 60_000;

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
export const IDLE_TIMEOUT_MS = 30_000;
/** Time to send a request's headers, and the whole request (a GET has no body). */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 15_000;
/** Prometheus keeps its connection alive between scrapes (every 15–60 s, typically). */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;
/** Drop reasons in the order the self-metric lists them. */
const DROP_REASONS = [
  'max_connections',
  'evicted_idle',
  'pipelining',
] as const satisfies readonly DropReason[];

/** The deadline of a scrape: the scraper's own timeout when it sends one (Prometheus does), within bounds. */
export function scrapeDeadline(header: string | string[] | undefined): number {
  const seconds = Number(Array.isArray(header) ? header[0] : header);
  if (!header || !Number.isFinite(seconds) || seconds <= 0) return SCRAPE_DEADLINE_MS;
  return Math.min(SCRAPE_DEADLINE_MS, Math.max(MIN_DEADLINE_MS, seconds * 1000));
}

export interface EndpointOptions {
  /** A connection idle this long mid-response is closed (IDLE_TIMEOUT_MS); shorter in tests. */
  idleTimeoutMs?: number;
}

export class MetricsEndpoint {
  readonly stats: ScrapeStats = {
    scrapes: 0,
    aborted: 0,
    lastDurationMs: 0,
    lastBytes: 0,
    renderings: 0,
    dropped: { max_connections: 0, evicted_idle: 0, pipelining: 0 },
  };
  private server?: Server;
  /** The server as made, with its scheme and TLS counters. */
  private http?: HttpServer;
  private timer?: NodeJS.Timeout;
  private observed?: ObservedMetrics<typeof PROMETHEUS_METRICS>;
  /** Responses to scrapes in progress (rendering, or being sent). */
  private sending = 0;
  /** The shared rendering of each variant (at most one), while it may be joined or is still read. */
  private readonly shared = new Map<string, Rendering>();
  /** Renderings being produced: stopping wakes them so they end. */
  private readonly producing = new Set<Rendering>();
  /** The output size of each variant's last rendering: one larger than SHARED_MAX_BYTES is not shared. */
  private readonly sizes = new Map<string, number>();
  /** Requests waiting on each connection for the responses before them. */
  private readonly waiting = new WeakMap<Socket, { count: number }>();
  private stopped = false;
  private lastDropLog = Number.NEGATIVE_INFINITY;
  private readonly expirationMs: number;
  private readonly listen: { host: string; port: number };
  private readonly idleTimeoutMs: number;

  /**
   * Serves `families` in this order (the order of the signals' pipelines) and sweeps the pods `deletions`
   * reports gone from all of them.
   */
  constructor(
    private readonly settings: ComponentSettings,
    private readonly config: PrometheusExporterConfig,
    private readonly families: readonly Families[],
    private readonly deletions?: DeletedPods,
    options: EndpointOptions = {},
  ) {
    this.expirationMs = config.expiration;
    this.listen = parseEndpoint(config.endpoint);
    this.idleTimeoutMs = options.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  }

  /** Scrapes being answered now. */
  get inFlight(): number {
    return this.sending;
  }

  /** Connections open now (for tests and benchmarks). */
  connections(): Promise<number> {
    const server = this.server;
    if (!server) return Promise.resolve(0);
    return new Promise((resolve, reject) =>
      server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
    );
  }

  /** `http(s)://host:port/metrics` once listening (the real port when 0 was asked for). */
  url(): string | undefined {
    const a = this.server?.address() as AddressInfo | null | undefined;
    if (!a || !this.http) return undefined;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `${this.http.scheme}://${host}:${a.port}${METRICS_PATH}`;
  }

  /** Listens, then sweeps on a timer. Rejects, holding nothing open, when the address cannot be bound. */
  async start(): Promise<void> {
    this.stopped = false;
    const server = this.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        const why = systemError(err);
        reject(
          new Error(
            `prometheus exporter: cannot listen on ${this.config.endpoint}: ${why}${err.code === 'EADDRINUSE' ? `; another process or component (a second agent?) serves this port: set exporters::${this.settings.id}::endpoint` : ''}`,
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

  /** The HTTP server, its timeouts and its connection cap: the one place it is made. */
  private createServer(): Server {
    // Reads the TLS files: one gone since validate fails the start, naming the key and the path.
    this.http = createHttpServer({
      tls: this.config.tls,
      configDir: this.settings.configDir,
      who: 'prometheus exporter',
      logger: this.settings.logger,
      limits: {
        headersTimeoutMs: HEADERS_TIMEOUT_MS,
        requestTimeoutMs: REQUEST_TIMEOUT_MS,
        // A scraper that stopped reading is cut off after this; idle between scrapes, keep-alive applies.
        idleTimeoutMs: this.idleTimeoutMs,
        keepAliveTimeoutMs: KEEP_ALIVE_TIMEOUT_MS,
        // Past it the connection idle longest is closed for the new one (a scraper's kept-alive one
        // reconnects at its next scrape); only when every one has a response in progress is the new one
        // refused.
        maxConnections: this.config.max_connections,
      },
      onDrop: (reason) => this.drop(reason),
      handler: (req, res) => this.onRequest(req, res),
    });
    return this.http.server;
  }

  /**
   * Closes the server and every connection, kept alive or with requests waiting; ends the renderings
   * being made, the sweeps and the self-metrics.
   */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.observed?.close();
    this.observed = undefined;
    this.stopped = true;
    for (const r of this.producing) r.took();
    this.shared.clear();
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

  /**
   * The tables' state: it changes whenever a series is added to or removed (every count in it only
   * grows). Equal versions render the same series and values.
   */
  private version(): number {
    let v = 0;
    for (const f of this.families) {
      for (const t of f.tables) v += t.table.updates + t.removed.expired + t.removed.pod_deleted;
    }
    return v;
  }

  /** A scrape that began at `marks` was sent to the end. */
  private served(marks: readonly [SeriesFamily, number][]): void {
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

  /** Counts a dropped connection; says so in the log at most once a minute. */
  private drop(reason: DropReason): void {
    this.stats.dropped[reason]++;
    const now = Date.now();
    if (now - this.lastDropLog < DROP_LOG_MS) return;
    this.lastDropLog = now;
    const why = {
      max_connections: `connection refused: ${this.config.max_connections} connections are open (max_connections), each with a response in progress`,
      evicted_idle: `idle connection closed to admit a new one: ${this.config.max_connections} connections are open (max_connections)`,
      pipelining: `connection closed: more than ${MAX_WAITING} requests waited on it (pipelining)`,
    }[reason];
    this.settings.logger.warn(
      { reason, max_connections: this.config.max_connections, dropped: { ...this.stats.dropped } },
      `${why}; more are counted in netmon_prometheus_dropped_connections_total and logged at most once a minute`,
    );
  }

  /**
   * Node parses the requests pipelined on a connection at once and calls this for each, queueing their
   * responses: a queued response is attached to the socket when the one before it has finished. It is
   * answered only then, so a connection renders one response at a time and a queued one holds no
   * output; and while the response in progress cannot be sent, Node stops reading the connection.
   */
  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    // Parsed from data that came with the request that closed the connection.
    if (socket.destroyed) return;
    const begin = performance.now();
    if (res.socket) {
      this.respond(req, res, begin);
      return;
    }
    let waiting = this.waiting.get(socket);
    if (!waiting) {
      waiting = { count: 0 };
      this.waiting.set(socket, waiting);
    }
    if (waiting.count >= MAX_WAITING) {
      this.drop('pipelining');
      socket.destroy();
      return;
    }
    const w = waiting;
    w.count++;
    const settle = (attached: boolean) => {
      res.off('socket', onSocket);
      res.off('close', onClose);
      w.count--;
      // On the next tick: Node flushes a response right after attaching it, which must not find it
      // already ended.
      if (attached) process.nextTick(() => this.respond(req, res, begin));
    };
    const onSocket = () => settle(true);
    const onClose = () => settle(false);
    res.once('socket', onSocket);
    res.once('close', onClose);
  }

  private respond(req: IncomingMessage, res: ServerResponse, begin: number): void {
    this.handle(req, res, begin).catch((err) => {
      this.settings.logger.warn({ err: errorMessage(err) }, 'scrape failed');
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(`netmon prometheus exporter: scrape failed: ${errorMessage(err)}\n`);
      } else res.destroy();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse, begin: number): Promise<void> {
    if (res.destroyed) return;
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
    const variant: Variant = {
      format: negotiateFormat(req.headers.accept),
      gzip: acceptsGzip(req.headers['accept-encoding']),
    };
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-type': CONTENT_TYPE[variant.format] });
      res.end();
      return;
    }
    const deadline = scrapeDeadline(req.headers[SCRAPE_TIMEOUT_HEADER]);
    const socket = req.socket;
    const timer = setTimeout(() => {
      if (res.writableFinished) return;
      this.settings.logger.warn(
        { remote: socket.remoteAddress, deadline_ms: deadline },
        'scrape cut off: not sent within its deadline (a scraper that stopped reading?)',
      );
      // The connection goes with it: requests waiting behind this one would wait on a dead response.
      socket.destroy();
    }, deadline);
    this.sending++;
    let sent = false;
    let bytes = 0;
    try {
      const { rendering: r, reader } = this.acquire(variant);
      sent = await this.read(r, reader, res);
      // Only a scrape the scraper got whole counts as having shown the series' values.
      if (sent) this.served(r.marks);
      bytes = r.textBytes;
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
   * The rendering a scrape of `variant` reads: the variant's shared one if it shows what a new one would
   * (no table changed since it began) and is being made or was made within SHARE_WINDOW_MS; otherwise a
   * new one, shared unless the variant's last was larger than SHARED_MAX_BYTES or the previous shared one
   * is still being read (one per variant: a slow scraper holds one, not one per scrape).
   */
  private acquire(variant: Variant): { rendering: Rendering; reader: Reader } {
    const now = Date.now();
    this.sweep(now);
    const version = this.version();
    const key = variantKey(variant);
    let current = this.shared.get(key);
    if (current?.whole && current.version === version) {
      const fresh =
        current.state === 'producing' ||
        (current.state === 'done' && now - current.finishedAt <= SHARE_WINDOW_MS);
      if (fresh) return { rendering: current, reader: current.join() };
    }
    if (current && current.state !== 'producing' && current.readers.size === 0) {
      this.shared.delete(key);
      current = undefined;
    }
    const shared = current === undefined && (this.sizes.get(key) ?? 0) <= SHARED_MAX_BYTES;
    const r = new Rendering(variant, this.marks(), version, shared);
    if (shared) this.shared.set(key, r);
    const reader = r.join();
    this.stats.renderings++;
    void this.produce(r, key);
    return { rendering: r, reader };
  }

  private async produce(r: Rendering, key: string): Promise<void> {
    this.producing.add(r);
    try {
      const self = await this.collectSelfMetrics();
      const out = new Exposition(r.variant.format);
      await r.produce(out, this.renderers(out, self), () => this.stopped);
    } catch (err) {
      r.fail(err);
    } finally {
      this.producing.delete(r);
    }
    if (r.state === 'done') this.sizes.set(key, r.size);
    else if (r.state === 'failed') {
      this.settings.logger.warn({ err: errorMessage(r.error) }, 'scrape failed: rendering the metrics');
    }
  }

  /**
   * Sends the rendering to `res` as it is produced, waiting for the socket to drain between chunks.
   * True once the response was sent whole.
   */
  private async read(r: Rendering, reader: Reader, res: ServerResponse): Promise<boolean> {
    const wake = () => r.wake();
    res.on('close', wake);
    try {
      for (;;) {
        if (res.destroyed) return false;
        if (reader.next < r.end) {
          if (!res.headersSent) writeHead(res, r.variant);
          const chunk = r.chunk(reader.next++);
          r.took();
          if (!res.write(chunk, () => r.written(chunk))) await writable(res);
          continue;
        }
        if (r.state === 'done') break;
        if (r.state === 'failed' && !res.headersSent) {
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
          res.end(`netmon prometheus exporter: scrape failed: ${errorMessage(r.error)}\n`);
          return false;
        }
        if (r.state !== 'producing') {
          res.destroy();
          return false;
        }
        await r.changed();
      }
      if (!res.headersSent) writeHead(res, r.variant);
      res.end();
      return await finished(res).then(
        () => true,
        () => false,
      );
    } finally {
      res.off('close', wake);
      r.leave(reader);
    }
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
      for (const reason of DROP_REASONS) r.droppedConnections(this.stats.dropped[reason], { reason });
      const tls = this.config.tls && this.http?.tlsStats;
      if (tls) {
        r.tlsHandshakeFailures(tls.handshakeFailures);
        r.tlsReloads(tls.reloaded, { outcome: 'reloaded' });
        r.tlsReloads(tls.reloadFailed, { outcome: 'failed' });
      }
    });
  }
}

function writeHead(res: ServerResponse, variant: Variant): void {
  const headers: Record<string, string> = { 'content-type': CONTENT_TYPE[variant.format] };
  // The length is not known before the end: chunked transfer encoding.
  if (variant.gzip) res.writeHead(200, { ...headers, 'content-encoding': 'gzip', vary: 'Accept-Encoding' });
  else res.writeHead(200, headers);
}

/** Resolves once `res` has drained, or closed. */
function writable(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
