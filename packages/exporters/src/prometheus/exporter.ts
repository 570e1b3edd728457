import {
  type Batch,
  type ComponentSettings,
  DnsBatch,
  type Exporter,
  FlowBatch,
  getExtension,
} from '@netmon/core';
import { K8S_METADATA } from '@netmon/extensions';
import { labelFacts } from '../series/flow-labels.js';
import type { PrometheusExporterConfig } from './config.js';
import { MetricsEndpoint } from './endpoint.js';
import { DnsFamilies, type Families, FlowFamilies, type SeriesFamily } from './families.js';
import { DeletedPods } from './pods.js';

/**
 * Sums the pipeline's deltas into cumulative counters and serves them, with the agent's self-metrics,
 * for Prometheus to scrape. One instance per exporter id serves every signal its pipelines carry, on one
 * endpoint.
 */
export class PrometheusExporter implements Exporter<Batch> {
  /** The flow families, when a flows pipeline lists this exporter. */
  readonly flows?: FlowFamilies;
  /** The DNS families, when a dns pipeline lists this exporter. */
  readonly dns?: DnsFamilies;
  /** The families of each signal in `settings.signals`, in that order: the order a scrape shows them. */
  readonly families: readonly Families[];
  readonly endpoint: MetricsEndpoint;
  private readonly deletions?: DeletedPods;
  private state: 'new' | 'starting' | 'started' | 'stopped' = 'new';
  private starting?: Promise<void>;

  constructor(
    private readonly settings: ComponentSettings,
    config: PrometheusExporterConfig,
  ) {
    const directory = getExtension(settings, K8S_METADATA);
    const families: Families[] = [];
    for (const signal of settings.signals) {
      if (signal === 'flows') {
        this.flows = new FlowFamilies(
          config.granularity,
          config.max_series,
          config.labels,
          config.expiration,
        );
        families.push(this.flows);
      } else {
        this.dns = new DnsFamilies(config.granularity, config.max_series, directory, {
          top: config.labels.dns_question.top,
          expirationMs: config.expiration,
        });
        families.push(this.dns);
      }
    }
    this.families = families;
    if (directory && !directory.standalone) this.deletions = new DeletedPods(directory, config.expiration);
    this.endpoint = new MetricsEndpoint(settings, config, families, this.deletions);
    settings.status.describe(() => this.facts());
  }

  /** Every series table of every signal served, in scrape order. */
  get tables(): SeriesFamily[] {
    return this.families.flatMap((f) => f.tables);
  }

  async start(): Promise<void> {
    if (this.state !== 'new') return;
    this.state = 'starting';
    this.deletions?.start();
    this.starting = this.endpoint.start();
    try {
      await this.starting;
    } catch (err) {
      this.deletions?.stop();
      this.state = 'stopped';
      throw err;
    }
    // A shutdown that came while listening has already waited for this start and closed the endpoint.
    if (this.state === 'starting') this.state = 'started';
  }

  export(batch: Batch): void {
    const now = Date.now();
    if (batch instanceof FlowBatch) {
      if (batch.temporality === 'cumulative') {
        throw new Error(
          'prometheus exporter: got cumulative counters (conntrack or Cilium totals); put the `delta` processor before this exporter in the pipeline, so each flow is counted once',
        );
      }
      this.served('flows', this.flows).add(batch, now);
    } else if (batch instanceof DnsBatch) {
      this.served('dns', this.dns).add(batch, now);
    }
  }

  async shutdown(): Promise<void> {
    const was = this.state;
    this.state = 'stopped';
    if (was === 'new' || was === 'stopped') return;
    // Stopping during a start: once it listens (or fails to), close what it opened.
    if (was === 'starting') await this.starting?.catch(() => undefined);
    this.deletions?.stop();
    await this.endpoint.stop();
  }

  /** `http://host:port/metrics` while serving. */
  url(): string | undefined {
    return this.endpoint.url();
  }

  /** The families of `signal`; a batch of a signal no pipeline of this exporter carries is refused. */
  private served<F>(signal: string, families: F | undefined): F {
    if (families) return families;
    throw new Error(
      `prometheus exporter: a ${signal} batch, but this instance serves ${this.settings.signals.join(', ') || 'no signal'}`,
    );
  }

  private facts(): Record<string, unknown> {
    const series: Record<string, number> = {};
    const overflowRows: Record<string, number> = {};
    for (const t of this.tables) {
      series[t.family] = t.table.size;
      overflowRows[t.family] = t.table.overflowRows;
    }
    const s = this.endpoint.stats;
    return {
      signals: this.settings.signals,
      url: this.url() ?? null,
      series,
      overflow_rows: overflowRows,
      scrapes: s.scrapes,
      aborted_scrapes: s.aborted,
      last_scrape_ms: Math.round(s.lastDurationMs * 10) / 10,
      last_scrape_bytes: s.lastBytes,
      renderings: s.renderings,
      dropped_connections: { ...s.dropped },
      ...(this.flows ? { flow_labels: labelFacts(this.flows.series.labels) } : {}),
      ...(this.dns ? { dns_labels: this.dns.series.facts(this.dns.labelNames) } : {}),
    };
  }
}
