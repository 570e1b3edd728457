// The exporter's own metric families: cumulative counters built by summing the pipeline's deltas into
// series tables (../series), with their label text cached per series for fast scrapes.
import { type DnsBatch, type FlowBatch, type Granularity, StringColumn } from '@netmon/core';
import {
  COST_ROWS,
  COST_USD,
  FlowSeries,
  flowLabels,
  RX_BYTES,
  RX_PACKETS,
  TX_BYTES,
  TX_PACKETS,
} from '../series/flow-series.js';
import { SeriesTable } from '../series/series-table.js';
import { type Exposition, formatValue } from './exposition.js';
import { LabelCache, sample } from './labels.js';
import { type PodDirectory, type PodOwner, podKey } from './pods.js';

export const FLOW_BYTES = 'netmon_flow_bytes';
export const FLOW_PACKETS = 'netmon_flow_packets';
export const FLOW_COST = 'netmon_flow_cost_usd';
export const DNS_LOOKUPS = 'netmon_dns_lookups';
/** polarsignals/kubezonnet's metric, with its labels, so its dashboards and queries work unchanged. */
export const CROSS_ZONE = 'pod_cross_zone_network_traffic_bytes';

/** Every family name this exporter writes (counters: without `_total`). */
export const FAMILY_NAMES: ReadonlySet<string> = new Set([
  FLOW_BYTES,
  FLOW_PACKETS,
  FLOW_COST,
  DNS_LOOKUPS,
  CROSS_ZONE,
]);

/** Counts of series removed, by reason. */
export interface Removed {
  expired: number;
  pod_deleted: number;
}

/** One table of series: what a sweep and the self-metrics see. */
export interface SeriesFamily {
  /** `flows`, `cross_zone` or `dns`. */
  readonly family: string;
  readonly table: SeriesTable;
  readonly removed: Removed;
}

/** A set of families one exporter instance (one signal) keeps. */
export interface Families {
  readonly tables: readonly SeriesFamily[];
  /** Removes series not updated since `cutoff` (ms since the epoch) and those of pods in `gone`. */
  sweep(cutoff: number, gone: ReadonlySet<string> | undefined): void;
  /**
   * Writes the families to `out`, yielding whenever `out.full` so the caller can send a chunk. Between
   * yields rows may be added (series appended, values grown) but never removed: the endpoint does not
   * sweep while a scrape is being sent.
   */
  render(out: Exposition): Generator<void>;
}

/** A table with cached label text, and which of its labels name a pod (namespace, pod) for deletions. */
class Table implements SeriesFamily {
  readonly removed: Removed = { expired: 0, pod_deleted: 0 };
  readonly labels: LabelCache;
  private readonly podLabels: [number, number][] = [];

  constructor(
    readonly family: string,
    readonly table: SeriesTable,
    names: readonly string[],
  ) {
    this.labels = new LabelCache(table, names);
    for (const prefix of ['src_', 'dst_', '']) {
      const ns = names.indexOf(`${prefix}namespace`);
      const pod = names.indexOf(`${prefix}pod`);
      if (ns >= 0 && pod >= 0) this.podLabels.push([ns, pod]);
    }
  }

  sweep(cutoff: number, gone: ReadonlySet<string> | undefined): void {
    const t = this.table;
    const last = t.lastSeen;
    const pods = gone && this.podLabels.length > 0 ? gone : undefined;
    // A scan of a Float64Array is cheap; the compaction that removes series is not: only when needed.
    let stale = false;
    for (let s = 0; s < t.size; s++) {
      if (last[s] < cutoff) {
        stale = true;
        break;
      }
    }
    if (!stale && !pods) return;
    this.labels.retain((s) => {
      if (last[s] < cutoff) {
        this.removed.expired++;
        return false;
      }
      if (pods) {
        for (const [ns, pod] of this.podLabels) {
          const name = t.label(s, pod);
          if (name !== '' && pods.has(podKey(t.label(s, ns), name))) {
            this.removed.pod_deleted++;
            return false;
          }
        }
      }
      return true;
    });
  }
}

const HELP = {
  bytes:
    'Bytes between the two ends of connections, by direction: tx = sent by the source (the side that opened the connection), rx = sent back.',
  packets: 'Packets between the two ends of connections, by direction (tx: from the source, rx: back to it).',
  cost: 'What the traffic cost in USD by the cloud’s billing rules (only series whose flows had a price).',
  crossZone:
    'Bytes a pod sent to another availability zone (polarsignals/kubezonnet’s metric): the source pod’s tx and the destination pod’s rx of cross_zone flows.',
  dns: 'DNS lookups answered, by the question’s domain and the client.',
};

/**
 * netmon_flow_bytes_total, netmon_flow_packets_total, netmon_flow_cost_usd_total (one table of flow label
 * sets) and pod_cross_zone_network_traffic_bytes_total (a table of namespace and pod).
 */
export class FlowFamilies implements Families {
  readonly series: FlowSeries;
  readonly flows: Table;
  readonly crossZone: Table;
  readonly tables: readonly SeriesFamily[];
  private readonly zoneIds = new Int32Array(2);
  private readonly zoneColumn: number;

  constructor(granularity: Granularity, maxSeries: number) {
    const labels = flowLabels(granularity);
    this.series = new FlowSeries(labels, maxSeries);
    this.flows = new Table(
      'flows',
      this.series.table,
      labels.map((l) => l.name),
    );
    const zone = new SeriesTable(2, maxSeries);
    this.zoneColumn = zone.addColumn();
    this.crossZone = new Table('cross_zone', zone, ['namespace', 'pod']);
    this.tables = [this.flows, this.crossZone];
  }

  /** Adds a batch of deltas. */
  add(batch: FlowBatch, now: number): void {
    this.series.add(batch, now);
    this.addCrossZone(batch, now);
  }

  /** The source pod's tx and the destination pod's rx of every cross_zone row, per pod. */
  private addCrossZone(batch: FlowBatch, now: number): void {
    const cls = batch.column('traffic.class');
    if (!(cls instanceof StringColumn)) return;
    const cross = new Uint8Array(cls.dict.length);
    let any = false;
    for (let c = 1; c < cls.dict.length; c++) {
      if (cls.dict[c] === 'cross_zone') cross[c] = 1;
      any ||= cross[c] === 1;
    }
    if (!any) return;
    const ends = [
      [batch.column('src.k8s.namespace.name'), batch.column('src.k8s.pod.name'), batch.txBytes],
      [batch.column('dst.k8s.namespace.name'), batch.column('dst.k8s.pod.name'), batch.rxBytes],
    ] as const;
    const t = this.crossZone.table;
    const ids = this.zoneIds;
    for (const [nsCol, podCol, bytes] of ends) {
      if (!(podCol instanceof StringColumn)) continue;
      const ns = nsCol instanceof StringColumn ? nsCol : undefined;
      // Per dictionary code, the interned id (-1: not looked up yet); rebuilt per batch.
      const podIds = new Int32Array(podCol.dict.length).fill(-1);
      const nsIds = new Int32Array(ns ? ns.dict.length : 1).fill(-1);
      const codes = cls.codes;
      for (let i = 0; i < batch.length; i++) {
        if (cross[codes[i]] === 0) continue;
        const p = podCol.codes[i];
        if (p === 0 || bytes[i] === 0) continue;
        let pid = podIds[p];
        if (pid < 0) pid = podIds[p] = t.strings.id(podCol.dict[p]);
        const n = ns ? ns.codes[i] : 0;
        let nid = nsIds[n];
        if (nid < 0) nid = nsIds[n] = ns ? t.strings.id(ns.dict[n]) : 0;
        ids[0] = nid;
        ids[1] = pid;
        const s = t.findOrAdd(ids, now);
        // Read after findOrAdd: growing the table replaces its value columns.
        t.values[this.zoneColumn][s] += bytes[i];
      }
    }
  }

  sweep(cutoff: number, gone: ReadonlySet<string> | undefined): void {
    this.flows.sweep(cutoff, gone);
    this.crossZone.sweep(cutoff, gone);
  }

  *render(out: Exposition): Generator<void> {
    const t = this.series.table;
    const labels = this.flows.labels;
    // Value columns are read again after every yield: a table that grows replaces them.
    if (t.size > 0) {
      out.family(FLOW_BYTES, 'counter', HELP.bytes);
      const name = `${FLOW_BYTES}_total`;
      for (let s = 0; s < t.size; s++) {
        const l = labels.get(s);
        out.write(
          `${sample(name, l, 'direction="tx"')}${formatValue(t.values[TX_BYTES][s])}\n${sample(name, l, 'direction="rx"')}${formatValue(t.values[RX_BYTES][s])}\n`,
        );
        if (out.full) yield;
      }
      out.family(FLOW_PACKETS, 'counter', HELP.packets);
      const packets = `${FLOW_PACKETS}_total`;
      for (let s = 0; s < t.size; s++) {
        const l = labels.get(s);
        out.write(
          `${sample(packets, l, 'direction="tx"')}${formatValue(t.values[TX_PACKETS][s])}\n${sample(packets, l, 'direction="rx"')}${formatValue(t.values[RX_PACKETS][s])}\n`,
        );
        if (out.full) yield;
      }
      let first = true;
      const cost = `${FLOW_COST}_total`;
      for (let s = 0; s < t.size; s++) {
        if (t.values[COST_ROWS][s] === 0) continue;
        if (first) out.family(FLOW_COST, 'counter', HELP.cost);
        first = false;
        out.write(`${sample(cost, labels.get(s))}${formatValue(t.values[COST_USD][s])}\n`);
        if (out.full) yield;
      }
    }
    const z = this.crossZone.table;
    if (z.size > 0) {
      out.family(CROSS_ZONE, 'counter', HELP.crossZone);
      const name = `${CROSS_ZONE}_total`;
      for (let s = 0; s < z.size; s++) {
        out.write(
          `${sample(name, this.crossZone.labels.get(s))}${formatValue(z.values[this.zoneColumn][s])}\n`,
        );
        if (out.full) yield;
      }
    }
  }
}

/** The labels of DNS lookup series at a granularity: the client (as `src_`) and the question's domain. */
export function dnsLabels(granularity: Granularity): string[] {
  return [
    'src_namespace',
    ...(granularity === 'namespace' ? [] : ['src_workload_kind', 'src_workload']),
    ...(granularity === 'pod' ? ['src_pod'] : []),
    'dst_domain',
  ];
}

/**
 * netmon_dns_lookups_total: lookups by question domain (lower case, without the trailing dot) and, with
 * the k8s_metadata extension, the client pod's namespace, workload and pod as the granularity keeps them.
 */
export class DnsFamilies implements Families {
  readonly lookups: Table;
  readonly tables: readonly SeriesFamily[];
  private readonly column: number;
  private readonly names: string[];
  private readonly ids: Int32Array;

  constructor(
    granularity: Granularity,
    maxSeries: number,
    private readonly directory: PodDirectory | undefined,
  ) {
    this.names = dnsLabels(granularity);
    const table = new SeriesTable(this.names.length, maxSeries);
    this.column = table.addColumn();
    this.lookups = new Table('dns', table, this.names);
    this.tables = [this.lookups];
    this.ids = new Int32Array(this.names.length);
  }

  add(batch: DnsBatch, now: number): void {
    const t = this.lookups.table;
    const width = this.names.length;
    const domainIds = new Int32Array(batch.names.length).fill(-1);
    const store = this.directory && !this.directory.standalone ? this.directory.store : undefined;
    const clients = new Map<PodOwner, Int32Array>();
    const none = new Int32Array(width - 1);
    const ids = this.ids;
    for (let i = 0; i < batch.length; i++) {
      const q = batch.question[i];
      let d = domainIds[q];
      if (d < 0) d = domainIds[q] = t.strings.id(normalizeDomain(batch.names[q]));
      let client: Int32Array = none;
      const owner = store?.lookup(batch.clientAddr, 16 * i);
      if (owner) {
        let cached = clients.get(owner);
        if (!cached) {
          cached = new Int32Array(width - 1);
          for (let l = 0; l < width - 1; l++) cached[l] = t.strings.id(ownerLabel(owner, this.names[l]));
          clients.set(owner, cached);
        }
        client = cached;
      }
      ids.set(client);
      ids[width - 1] = d;
      const s = t.findOrAdd(ids, now);
      t.values[this.column][s] += 1;
    }
  }

  sweep(cutoff: number, gone: ReadonlySet<string> | undefined): void {
    this.lookups.sweep(cutoff, gone);
  }

  *render(out: Exposition): Generator<void> {
    const t = this.lookups.table;
    if (t.size === 0) return;
    out.family(DNS_LOOKUPS, 'counter', HELP.dns);
    const name = `${DNS_LOOKUPS}_total`;
    for (let s = 0; s < t.size; s++) {
      out.write(`${sample(name, this.lookups.labels.get(s))}${formatValue(t.values[this.column][s])}\n`);
      if (out.full) yield;
    }
  }
}

function ownerLabel(owner: PodOwner, label: string): string {
  switch (label) {
    case 'src_namespace':
      return owner.namespace ?? '';
    case 'src_workload_kind':
      return owner.workloadKind ?? '';
    case 'src_workload':
      return owner.workloadName ?? '';
    case 'src_pod':
      return owner.kind === 'pod' ? (owner.pod ?? '') : '';
    default:
      return '';
  }
}

/** DNS names are case-insensitive, and resolvers randomize case (0x20): one series per name, not per spelling. */
function normalizeDomain(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') && lower.length > 1 ? lower.slice(0, -1) : lower;
}
