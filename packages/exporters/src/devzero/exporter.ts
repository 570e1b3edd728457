import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import {
  backoffOf,
  type ComponentSettings,
  DEFAULT_CLOSE_DEADLINE_MS,
  type DnsBatch,
  type Exporter,
  errorMessage,
  FlowBatch,
  type GrpcTarget,
  getExtension,
  type ObservedMetrics,
  observeMetrics,
  readTlsMaterial,
  SendQueue,
} from '@netmon/core';
import { HEALTH_CHECK, K8S_METADATA } from '@netmon/extensions';
import { DakrClient, isRetryable } from './client.js';
import { type DevzeroExporterConfig, dakrTarget } from './config.js';
import { heartbeatRequest, type TransportState } from './heartbeat.js';
import { Interval, Ip2Domain, type LookupPods, type PodName } from './interval.js';
import { metricsDocument } from './json.js';
import { DEVZERO_METRICS } from './metrics.js';
import {
  buildPayloads,
  domainBytes,
  type Payload,
  payloadBytes,
  payloadItems,
  RECENT_DOMAINS_BYTES,
  REQUEST_BUDGET_BYTES,
  toRequest,
} from './requests.js';
import { readState, type StateDocument, StateWriter } from './state.js';

/** The environment variable the image build sets to the commit netmon was built from. */
export const COMMIT_ENV = 'NETMON_GIT_SHA';

/** The path the zxporter-compatible JSON is served at on the health_check port. */
export const METRICS_PATH = '/metrics';

/**
 * One devzero exporter id: the flows and the DNS lookups of every pipeline that lists it go into one
 * interval, one request and one send queue.
 */
export class DevzeroExporter implements Exporter {
  readonly nodeName: string;
  readonly target?: GrpcTarget;
  readonly stateFile?: string;
  /** What the control plane is told this agent's version is (client_version), not netmon's. */
  private readonly version: string;
  private readonly commit: string;
  private readonly client?: DakrClient;
  private readonly queue?: SendQueue<Payload>;
  private readonly writer?: StateWriter;
  private interval: Interval;
  private readonly ip2domain: Ip2Domain;
  /** A dns pipeline feeds it: GET /metrics then lists the interval's lookups (null otherwise, as zxporter). */
  private readonly dns: boolean;
  private started?: Promise<void>;
  private stopping?: Promise<void>;
  private flushTimer?: NodeJS.Timeout;
  private heartbeatTimer?: NodeJS.Timeout;
  private heartbeatCall?: Promise<void>;
  private unroute?: () => void;
  /** Set once the state file was read (or found absent): only then may it be written. */
  private restored = false;
  private readonly stats = {
    flushes: { queued: 0, empty: 0, local_only: 0 },
    earlyFlushes: 0,
    requests: 0,
    lastFlush: undefined as undefined | { time: number; items: number; lookups: number; requests: number },
    heartbeats: { success: 0, failure: 0 },
    lastHeartbeat: undefined as undefined | { time: number; ok: boolean; error?: string },
    restored: { requests: 0, items: 0 },
  };
  private readonly metrics: ObservedMetrics<typeof DEVZERO_METRICS>;

  constructor(
    private readonly settings: ComponentSettings,
    private readonly config: DevzeroExporterConfig,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.nodeName = config.node_name || env.NODE_NAME || hostname();
    this.version = config.client_version;
    this.commit = env[COMMIT_ENV] ?? '';
    this.ip2domain = new Ip2Domain(config.ip2domain_max_entries);
    this.interval = new Interval(Date.now(), config.max_items_per_interval);
    this.dns = settings.signals.includes('dns');
    settings.status.describe(() => this.facts());
    if (config.endpoint !== '') {
      const target = dakrTarget(config);
      if (typeof target === 'string') throw new Error(`devzero exporter ${settings.id}: ${target}`);
      this.target = target;
    }
    // As zxporter-netmon: a client only with both an endpoint and a token. A token-less install would
    // otherwise send unauthenticated requests (to production, with zxporter's default DAKR_URL) and sit
    // in recoverable_error on UNAUTHENTICATED.
    if (this.target && config.token !== '') {
      const target = this.target;
      this.client = new DakrClient({
        target,
        tls: target.tls
          ? readTlsMaterial(config.tls, settings.configDir, `devzero exporter ${settings.id}`)
          : undefined,
        compression: config.compression,
        headers: config.headers,
        token: config.token,
        version: this.version,
        commit: this.commit,
        timeoutMs: config.timeout,
      });
      const directory = config.sending_queue.directory;
      if (directory) {
        this.stateFile = join(
          resolve(settings.configDir, directory),
          `${settings.id.replace(/[^A-Za-z0-9_.-]/g, '_')}.queue.json`,
        );
        this.writer = new StateWriter(
          this.stateFile,
          () => this.stateText(),
          (err) =>
            settings.logger.warn(
              { path: this.stateFile, err: errorMessage(err) },
              'cannot write the devzero state file; after a restart, intervals not yet sent would be lost',
            ),
        );
      }
      this.queue = new SendQueue<Payload>({
        send: (p) => this.send(p),
        items: payloadItems,
        retryable: isRetryable,
        capacity: config.sending_queue,
        backoff: backoffOf(config.retry_on_failure),
        logger: settings.logger,
        status: settings.status,
        meter: settings.meter,
        attributes: { component: settings.id },
        onChange: () => {
          if (this.restored) void this.writer?.save();
        },
      });
    }

    const attrs = { component: settings.id };
    this.metrics = observeMetrics(settings.meter, DEVZERO_METRICS, (r) => {
      for (const [outcome, n] of Object.entries(this.stats.flushes)) r.flushes(n, { ...attrs, outcome });
      r.requests(this.stats.requests, attrs);
      for (const [outcome, n] of Object.entries(this.stats.heartbeats))
        r.heartbeats(n, { ...attrs, outcome });
      r.ip2domainEntries(this.ip2domain.size, attrs);
      r.earlyFlushes(this.stats.earlyFlushes, attrs);
      r.stateWriteFailures(this.writer?.failures ?? 0, attrs);
    });
  }

  start(): Promise<void> {
    this.started ??= this.doStart();
    return this.started;
  }

  private async doStart(): Promise<void> {
    const { logger } = this.settings;
    const ext = getExtension(this.settings, HEALTH_CHECK);
    if (ext) {
      try {
        this.unroute = ext.route(
          METRICS_PATH,
          (_req, res) => {
            res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
            res.end(this.metricsJson());
          },
          `exporter ${this.settings.id}`,
        );
      } catch (err) {
        throw new Error(`cannot serve GET ${METRICS_PATH} on the health_check port: ${errorMessage(err)}`);
      }
    }
    if (this.queue) await this.restore();
    this.restored = true;
    this.flushTimer = setInterval(() => this.flush(), this.config.flush_interval);
    if (this.client) {
      this.heartbeatTimer = setTimeout(() => this.beat(), 0);
      logger.info(
        {
          endpoint: this.config.endpoint,
          tls: this.target?.tls,
          node_name: this.nodeName,
          flush_interval_ms: this.config.flush_interval,
          state_file: this.stateFile ?? null,
          metrics_path: this.unroute ? METRICS_PATH : null,
        },
        'sending flows and DNS lookups to the DevZero control plane',
      );
    } else {
      const why = this.target ? 'an endpoint but no token' : 'no endpoint';
      const fields = {
        endpoint: this.config.endpoint || null,
        node_name: this.nodeName,
        metrics_path: this.unroute ? METRICS_PATH : null,
      };
      const what = this.unroute
        ? `nothing is sent; GET ${METRICS_PATH} on the health_check port shows the current interval`
        : 'nothing is sent, and without the health_check extension nothing is served';
      if (this.target) {
        // Most likely CLUSTER_TOKEN is missing from an install that means to send.
        logger.warn(fields, `local only (${why}: set token, CLUSTER_TOKEN, to send): ${what}`);
      } else {
        logger.info(fields, `local only (${why}: set endpoint, DAKR_URL, and token to send): ${what}`);
      }
    }
  }

  /** Loads what the previous run left unsent and queues it first. */
  private async restore(): Promise<void> {
    if (!this.stateFile || !this.queue) return;
    const { state, problem, blocked } = await readState(this.stateFile);
    if (blocked && this.writer) this.writer.blocked = true;
    if (problem) this.settings.logger[blocked ? 'error' : 'warn']({ path: this.stateFile }, problem);
    if (!state) return;
    this.ip2domain.restore(state.ip2domain, Date.now());
    let items = 0;
    for (const p of state.pending) {
      this.queue.push(p);
      items += payloadItems(p);
    }
    this.stats.restored = { requests: state.pending.length, items };
    if (state.pending.length > 0) {
      this.settings.logger.info(
        { path: this.stateFile, requests: state.pending.length, items, saved_at: state.saved_at },
        'restored intervals a previous run had not delivered; sending them first',
      );
    }
  }

  export(batch: FlowBatch | DnsBatch): Promise<void> {
    if (this.stopping) {
      return Promise.reject(
        new Error(`devzero exporter ${this.settings.id} is stopped (export after shutdown)`),
      );
    }
    try {
      if (batch instanceof FlowBatch) this.exportFlows(batch);
      else this.exportDns(batch);
    } catch (err) {
      return Promise.reject(err);
    }
    return Promise.resolve();
  }

  private exportFlows(batch: FlowBatch): void {
    if (batch.temporality === 'cumulative') {
      throw new Error(
        `devzero exporter ${this.settings.id} received cumulative counters${batch.origin ? ` from ${batch.origin}` : ''}: it sums per-interval deltas, so put the delta processor before it (processors: [delta, …])`,
      );
    }
    for (let i = this.interval.addFlows(batch); i < batch.length; ) {
      this.flushEarly();
      i = this.interval.addFlows(batch, i);
    }
  }

  private exportDns(batch: DnsBatch): void {
    const now = Date.now();
    const pods = this.lookupPods();
    for (let i = this.interval.addDns(batch, this.ip2domain, now, 0, pods); i < batch.length; ) {
      this.flushEarly();
      i = this.interval.addDns(batch, this.ip2domain, now, i, pods);
    }
  }

  /**
   * The k8s_metadata store as lookups' clients are found in it, as zxporter-netmon finds them in its pod
   * cache; undefined without the extension or standalone (then only the interval's flows name them).
   */
  private lookupPods(): LookupPods | undefined {
    const k8s = getExtension(this.settings, K8S_METADATA);
    if (!k8s || k8s.standalone) return undefined;
    const store = k8s.store;
    const named = (e: { kind: string; namespace?: string; pod?: string } | null | undefined) =>
      e?.kind === 'pod' && e.pod
        ? ({ name: e.pod, namespace: e.namespace ?? '' } satisfies PodName)
        : undefined;
    return {
      byPodUid: (uid) => named(store.podByUid(uid)),
      byAddress: (addr, offset) => named(store.lookup(addr, offset)),
    };
  }

  /** The interval is full (max_items_per_interval): it is closed now and the batch goes on in the next. */
  private flushEarly(): void {
    this.stats.earlyFlushes++;
    if (this.stats.earlyFlushes === 1 || this.stats.earlyFlushes % 100 === 0) {
      this.settings.logger.info(
        {
          max_items_per_interval: this.config.max_items_per_interval,
          early_flushes: this.stats.earlyFlushes,
        },
        'interval full: closed early and queued (nothing dropped)',
      );
    }
    this.flush();
  }

  /**
   * Closes the interval: its non-zero flows and its lookups become requests in the send queue (nothing is
   * dropped here: a request leaves the queue when the backend acknowledged it), and a new interval begins.
   * Nothing is sent for an interval with no flows and no lookups.
   */
  flush(now = Date.now()): void {
    const closed = this.interval;
    this.interval = new Interval(now, this.config.max_items_per_interval);
    if (!this.queue) {
      this.metrics.histograms.flushItems.record(closed.items, { component: this.settings.id });
      this.stats.flushes.local_only++;
      this.ip2domain.nextInterval(now);
      return;
    }
    const payloads = closed.empty
      ? []
      : buildPayloads(closed, this.ip2domain, {
          nodeName: this.nodeName,
          maxItemsPerRequest: this.config.max_items_per_request,
          now,
        });
    this.ip2domain.nextInterval(now);
    let items = 0;
    let lookups = 0;
    for (const p of payloads) {
      items += p.items.length;
      lookups += p.dns_lookups.length;
    }
    this.metrics.histograms.flushItems.record(items + lookups, { component: this.settings.id });
    if (payloads.length === 0) {
      this.stats.flushes.empty++;
      this.settings.logger.debug('nothing to send for this interval');
      return;
    }
    this.stats.flushes.queued++;
    this.stats.requests += payloads.length;
    this.stats.lastFlush = { time: now, items, lookups, requests: payloads.length };
    this.settings.logger.debug({ items, lookups, requests: payloads.length }, 'interval queued');
    for (const p of payloads) this.queue.push(p);
  }

  /** One request; while stopping, its deadline is the send queue's (what is left of the shutdown budget). */
  private async send(p: Payload, deadline?: number): Promise<void> {
    const client = this.client as DakrClient;
    const now = Date.now();
    const timeoutMs =
      deadline === undefined ? this.config.timeout : Math.min(this.config.timeout, deadline - now);
    const room = Math.min(RECENT_DOMAINS_BYTES, REQUEST_BUDGET_BYTES - payloadBytes(p));
    const recent = this.ip2domain.recent(now, room, domainBytes, p.domains);
    await client.sendTraffic(toRequest(p, recent, this.version, this.commit), timeoutMs);
  }

  /** One ReportHealth, then the next one a heartbeat_interval later. Failures are logged, not retried. */
  private beat(): void {
    this.heartbeatTimer = undefined;
    const client = this.client;
    if (!client || this.stopping) return;
    // The first beat waits (briefly) for the receivers to start, so it reports a running agent.
    if (this.settings.host.phase() === 'starting' && this.stats.lastHeartbeat === undefined) {
      const waited = Date.now() - this.settings.host.startedAt();
      if (waited < 5000) {
        this.heartbeatTimer = setTimeout(() => this.beat(), 100);
        return;
      }
    }
    const k8s = getExtension(this.settings, K8S_METADATA);
    const request = heartbeatRequest(this.settings.host, {
      clusterId: this.config.cluster_id,
      version: this.version,
      commit: this.commit,
      transport: this.transportState(),
      components: this.config.heartbeat_components,
      self: this.settings.id,
      podCache: k8s ? { standalone: k8s.standalone === true } : undefined,
    });
    this.heartbeatCall = client.reportHealth(request, this.config.timeout).then(
      () => {
        this.stats.heartbeats.success++;
        if (this.stats.lastHeartbeat && !this.stats.lastHeartbeat.ok) {
          this.settings.logger.info('heartbeat delivered again');
        }
        this.stats.lastHeartbeat = { time: Date.now(), ok: true };
      },
      (err) => {
        this.stats.heartbeats.failure++;
        this.stats.lastHeartbeat = { time: Date.now(), ok: false, error: errorMessage(err) };
        if (!this.stopping)
          this.settings.logger.warn({ err: errorMessage(err) }, 'heartbeat (ReportHealth) failed');
      },
    );
    void this.heartbeatCall.finally(() => {
      this.heartbeatCall = undefined;
      if (!this.stopping) this.heartbeatTimer = setTimeout(() => this.beat(), this.config.heartbeat_interval);
    });
  }

  /** The send queue's view of the channel to the control plane, for the heartbeat's dakr_transport. */
  private transportState(): TransportState {
    const q = this.queue?.statistics();
    const f = this.stats.flushes;
    return {
      failing: q?.failingSince !== undefined,
      lastError: q?.lastError,
      flushed: f.queued + f.empty > 0,
      metadata: {
        endpoint: this.config.endpoint,
        pending_requests: String(q?.queuedPayloads ?? 0),
        pending_items: String(q?.queuedItems ?? 0),
        sent_requests: String(q?.sentPayloads ?? 0),
        failed_attempts: String(q?.failedAttempts ?? 0),
      },
    };
  }

  /** The zxporter GET /metrics document: the interval being filled, as it is now. */
  metricsJson(now = Date.now()): string {
    return metricsDocument(this.nodeName, this.interval, this.dns, this.ip2domain.snapshot(now));
  }

  private stateText(): string {
    const doc: StateDocument = {
      version: 1,
      saved_at: new Date().toISOString(),
      pending: [...(this.queue?.contents() ?? [])],
      ip2domain: this.ip2domain.save(),
    };
    return JSON.stringify(doc);
  }

  /** For /status. */
  facts(): Record<string, unknown> {
    const iso = (ms?: number) => (ms === undefined ? null : new Date(ms).toISOString());
    const q = this.queue?.statistics();
    return {
      mode: this.client ? 'send' : 'local_only',
      client_version: this.version,
      local_only_reason: this.client ? null : this.target ? 'no token' : 'no endpoint',
      endpoint: this.config.endpoint || null,
      node_name: this.nodeName,
      interval: {
        started: iso(this.interval.started),
        flows: this.interval.flows.size,
        dns_lookups: this.interval.lookups.length,
        max_items: this.config.max_items_per_interval,
      },
      early_flushes: this.stats.earlyFlushes,
      last_flush: this.stats.lastFlush
        ? { ...this.stats.lastFlush, time: iso(this.stats.lastFlush.time) }
        : null,
      flushes: { ...this.stats.flushes },
      queue: q
        ? {
            pending_requests: q.queuedPayloads,
            pending_items: q.queuedItems,
            sent_requests: q.sentPayloads,
            sent_items: q.sentItems,
            failed_attempts: q.failedAttempts,
            dropped_items: q.dropped,
            failing_since: iso(q.failingSince),
            last_error: q.lastError ?? null,
          }
        : null,
      heartbeat: this.client
        ? {
            ...this.stats.heartbeats,
            last: this.stats.lastHeartbeat
              ? { ...this.stats.lastHeartbeat, time: iso(this.stats.lastHeartbeat.time) }
              : null,
          }
        : null,
      ip2domain_entries: this.ip2domain.size,
      state_file: this.stateFile
        ? {
            path: this.stateFile,
            writes: this.writer?.writes ?? 0,
            failures: this.writer?.failures ?? 0,
            blocked: this.writer?.blocked ?? false,
          }
        : null,
      restored: this.stats.restored,
    };
  }

  shutdown(): Promise<void> {
    this.stopping ??= this.doShutdown();
    return this.stopping;
  }

  /**
   * Flushes the partial interval, makes the last attempts (bounded), keeps what is left in the state file
   * when there is one (counts it as dropped otherwise), and closes the channel.
   */
  private async doShutdown(): Promise<void> {
    clearInterval(this.flushTimer);
    clearTimeout(this.heartbeatTimer);
    this.flushTimer = undefined;
    this.heartbeatTimer = undefined;
    this.unroute?.();
    this.unroute = undefined;
    const began = this.started !== undefined;
    if (began) await this.started?.catch(() => undefined);
    if (this.queue && this.restored) {
      this.flush();
      // On disk before the last attempts, which may outlast the agent's shutdown deadline.
      await this.writer?.save();
      // Bounded: a call still in flight when the budget is spent is cancelled and its request kept (it may
      // have reached the control plane: sent again by the next start, at least once).
      const left = await this.queue.close({
        keep: this.writer !== undefined && !this.writer.blocked,
        deadlineMs: Math.min(DEFAULT_CLOSE_DEADLINE_MS, this.config.timeout),
        cancel: () => this.client?.cancelAll(),
      });
      await this.writer?.save();
      await this.writer?.idle();
      if (left > 0 && this.writer && !this.writer.blocked) {
        this.settings.logger.info(
          { path: this.stateFile, items: left },
          'kept what the control plane has not acknowledged in the state file; the next start sends it',
        );
      }
    } else if (this.queue) {
      await this.queue.close({ keep: true, cancel: () => this.client?.cancelAll() });
    }
    this.client?.cancelAll();
    await this.heartbeatCall;
    this.client?.close();
    this.metrics.close();
  }
}
