import {
  type Batch,
  type ComponentSettings,
  DnsBatch,
  type Exporter,
  FlowBatch,
  getExtension,
  type Signal,
} from '@netmon/core';
import { K8S_METADATA } from '@netmon/extensions';
import { labelFacts } from '../series/flow-labels.js';
import type { PrometheusExporterConfig } from './config.js';
import { MetricsEndpoint } from './endpoint.js';
import { DnsFamilies, type Families, FlowFamilies } from './families.js';
import { DeletedPods } from './pods.js';

/**
 * Sums the pipeline's deltas into cumulative counters and serves them, with the agent's self-metrics,
 * for Prometheus to scrape. One instance per signal; the instances of one exporter id share the endpoint.
 */
export class PrometheusExporter implements Exporter<Batch> {
  readonly families: FlowFamilies | DnsFamilies;
  readonly endpoint: MetricsEndpoint;
  private readonly deletions?: DeletedPods;
  private state: 'new' | 'started' | 'stopped' = 'new';

  constructor(
    settings: ComponentSettings,
    config: PrometheusExporterConfig,
    private readonly signal: Signal,
  ) {
    const directory = getExtension(settings, K8S_METADATA);
    this.families =
      signal === 'dns'
        ? new DnsFamilies(config.granularity, config.max_series, directory)
        : new FlowFamilies(config.granularity, config.max_series, config.labels, config.expiration);
    if (directory && !directory.standalone) this.deletions = new DeletedPods(directory, config.expiration);
    this.endpoint = MetricsEndpoint.of(settings, config);
    settings.status.describe(() => this.facts());
  }

  async start(): Promise<void> {
    if (this.state !== 'new') return;
    this.deletions?.start();
    try {
      await this.endpoint.acquire(this.families as Families, this.deletions);
    } catch (err) {
      this.deletions?.stop();
      this.state = 'stopped';
      throw err;
    }
    this.state = 'started';
  }

  export(batch: Batch): void {
    const now = Date.now();
    if (batch instanceof FlowBatch) {
      if (batch.temporality === 'cumulative') {
        throw new Error(
          'prometheus exporter: got cumulative counters (conntrack or Cilium totals); put the `delta` processor before this exporter in the pipeline, so each flow is counted once',
        );
      }
      if (this.families instanceof FlowFamilies) this.families.add(batch, now);
    } else if (batch instanceof DnsBatch && this.families instanceof DnsFamilies) {
      this.families.add(batch, now);
    }
  }

  async shutdown(): Promise<void> {
    const was = this.state;
    this.state = 'stopped';
    if (was !== 'started') return;
    this.deletions?.stop();
    await this.endpoint.release(this.families, this.deletions);
  }

  /** `http://host:port/metrics` while serving. */
  url(): string | undefined {
    return this.endpoint.url();
  }

  private facts(): Record<string, unknown> {
    const series: Record<string, number> = {};
    const overflowRows: Record<string, number> = {};
    for (const t of this.families.tables) {
      series[t.family] = t.table.size;
      overflowRows[t.family] = t.table.overflowRows;
    }
    const s = this.endpoint.stats;
    return {
      signal: this.signal,
      url: this.url() ?? null,
      series,
      overflow_rows: overflowRows,
      scrapes: s.scrapes,
      aborted_scrapes: s.aborted,
      last_scrape_ms: Math.round(s.lastDurationMs * 10) / 10,
      last_scrape_bytes: s.lastBytes,
      ...(this.families instanceof FlowFamilies
        ? { flow_labels: labelFacts(this.families.series.labels) }
        : {}),
    };
  }
}
