// The exporter's own metric families: cumulative counters built by summing the pipeline's deltas into
// series tables (../series), with their label text cached per series for fast scrapes.
import { type DnsBatch, type FlowBatch, type Granularity, StringColumn } from '@netmon/core';
import {
  type DnsClients,
  DnsSeries,
  DURATION_BOUNDS,
  DURATION_BUCKETS,
  DURATION_COUNT,
  DURATION_SUM,
  dnsClientLabels,
  LOOKUPS,
} from '../series/dns-series.js';
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
import type { FlowLabelSelection } from '../series/selection-config.js';
import { type Cursor, DictionaryIds, SeriesTable } from '../series/series-table.js';
import { type Exposition, formatValue } from './exposition.js';
import { LabelCache, sample } from './labels.js';
import { type PodDirectory, splitPodKey } from './pods.js';

export const FLOW_BYTES = 'netmon_flow_bytes';
export const FLOW_PACKETS = 'netmon_flow_packets';
export const FLOW_COST = 'netmon_flow_cost_usd';
export const DNS_LOOKUPS = 'netmon_dns_lookups';
export const DNS_DURATION = 'netmon_dns_lookup_duration_seconds';
/** polarsignals/kubezonnet's metric, with its labels, so its dashboards and queries work unchanged. */
export const CROSS_ZONE = 'pod_cross_zone_network_traffic_bytes';

/** Every family name this exporter writes (counters: without `_total`). */
export const FAMILY_NAMES: ReadonlySet<string> = new Set([
  FLOW_BYTES,
  FLOW_PACKETS,
  FLOW_COST,
  DNS_LOOKUPS,
  DNS_DURATION,
  CROSS_ZONE,
]);

/** Counts of series removed, by reason. */
export interface Removed {
  expired: number;
  pod_deleted: number;
}

/** One table of series: what a sweep, a scrape and the self-metrics see. */
export interface SeriesFamily {
  /** `flows`, `cross_zone` or `dns`. */
  readonly family: string;
  readonly table: SeriesTable;
  readonly removed: Removed;
  /**
   * `table.updates` when the latest scrape that was sent to the end began: every series whose
   * `lastUpdate` is at most this has been shown with all it ever counted.
   */
  served: number;
}

/** The families of one signal (flows or dns) that an exporter instance keeps. */
export interface Families {
  readonly tables: readonly SeriesFamily[];
  /**
   * Removes series not updated since `cutoff` (ms since the epoch), and those of pods in `gone` (keys of
   * `podKey`) once a scrape has shown them since they were last updated (their last bytes are not lost).
   */
  sweep(cutoff: number, gone: ReadonlySet<string> | undefined): void;
  /**
   * Writes the families to `out`, yielding whenever `out.full` so the caller can send a chunk. Between
   * yields series may be added, and removed by a sweep: renderers walk tables with cursors, so a series
   * is never written twice, and none that stays is skipped. Closing the generator (`return()`) releases
   * the cursors.
   */
  render(out: Exposition): Generator<void>;
}

/**
 * Visits every series of `table` once while the caller yields between them, whatever `retain` removes
 * meanwhile. Values must be read through `table.values` after each step (growing replaces the columns).
 */
function* rows(table: SeriesTable): Generator<number> {
  const c: Cursor = table.cursor();
  try {
    while (c.next < table.size) yield c.next++;
  } finally {
    c.close();
  }
}

/** A table with cached label text, and which of its labels name a pod (namespace, pod) for deletions. */
class Table implements SeriesFamily {
  readonly removed: Removed = { expired: 0, pod_deleted: 0 };
  readonly labels: LabelCache;
  served = 0;
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
    const pods = gone && this.podLabels.length > 0 ? this.goneIds(gone) : undefined;
    const served = this.served;
    const deleted = (s: number): boolean => {
      // Not yet shown by a scrape since its last bytes: it stays until one did (or it expires).
      if (!pods || t.lastUpdate[s] > served) return false;
      for (const [ns, pod] of this.podLabels) {
        if (pods.get(t.labelId(s, pod))?.has(t.labelId(s, ns))) return true;
      }
      return false;
    };
    // A scan of the table is cheap; the compaction that removes series is not: only when needed.
    let stale = false;
    for (let s = 0; s < t.size && !stale; s++) stale = last[s] < cutoff || deleted(s);
    if (!stale) return;
    this.labels.retain((s) => {
      if (last[s] < cutoff) {
        this.removed.expired++;
        return false;
      }
      if (deleted(s)) {
        this.removed.pod_deleted++;
        return false;
      }
      return true;
    });
  }

  /** Gone pods as this table's ids: pod id → namespace ids. A name never interned is in no series here. */
  private goneIds(gone: ReadonlySet<string>): Map<number, Set<number>> | undefined {
    const strings = this.table.strings;
    let ids: Map<number, Set<number>> | undefined;
    for (const key of gone) {
      const [namespace, pod] = splitPodKey(key);
      const p = strings.find(pod);
      const n = strings.find(namespace);
      if (p <= 0 || n < 0) continue;
      ids ??= new Map();
      const namespaces = ids.get(p);
      if (namespaces) namespaces.add(n);
      else ids.set(p, new Set([n]));
    }
    return ids;
  }
}

const HELP = {
  bytes:
    'Bytes between the two ends of connections, by direction: tx = sent by the source (the side that opened the connection), rx = sent back.',
  packets: 'Packets between the two ends of connections, by direction (tx: from the source, rx: back to it).',
  cost: 'What the traffic cost in USD by the cloud’s billing rules (only series whose flows had a price).',
  crossZone:
    'Bytes a pod sent to another availability zone (polarsignals/kubezonnet’s metric): the source pod’s tx and the destination pod’s rx of cross_zone flows.',
  dns: 'DNS lookups answered, by the question’s domain (the most looked up; the rest "other"), the response code and the client.',
  dnsDuration:
    'Time from a DNS query leaving the client to its answer reaching it, seconds, for the lookups whose query was seen; labels as netmon_dns_lookups_total.',
};

/** The `le` label of each bucket of the lookup duration histogram, then +Inf. */
const DURATION_LE = [...DURATION_BOUNDS.map((b) => `le="${formatValue(b)}"`), 'le="+Inf"'];

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
  private readonly zoneValues: (string | undefined)[] = [undefined, undefined];
  /** Namespace and pod, per end: one per column, so a shared dictionary's ids last across batches. */
  private readonly zoneDicts = [
    [new DictionaryIds(), new DictionaryIds()],
    [new DictionaryIds(), new DictionaryIds()],
  ];
  private readonly zoneColumn: number;

  /**
   * `expirationMs`: the exporter's; a top-N label value (dst_domain, dst_prefix) stays at least twice that,
   * so a replaced value's series are gone before its slot can change again.
   */
  constructor(
    granularity: Granularity,
    maxSeries: number,
    selection?: FlowLabelSelection,
    expirationMs?: number,
  ) {
    const labels = flowLabels(granularity, selection, { expirationMs });
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
    const { zoneIds: ids, zoneValues: values } = this;
    const codes = cls.codes;
    for (let e = 0; e < ends.length; e++) {
      const [nsCol, podCol, bytes] = ends[e];
      const dicts = this.zoneDicts[e];
      if (!(podCol instanceof StringColumn)) continue;
      const ns = nsCol instanceof StringColumn ? nsCol : undefined;
      if (ns) dicts[0].reset(t, ns.dict);
      dicts[1].reset(t, podCol.dict);
      for (let i = 0; i < batch.length; i++) {
        if (cross[codes[i]] === 0) continue;
        const p = podCol.codes[i];
        if (p === 0 || bytes[i] === 0) continue;
        if (ns) dicts[0].put(ns.codes[i], ids, values, 0);
        else ids[0] = 0;
        dicts[1].put(p, ids, values, 1);
        const s = t.findOrAdd(ids, now, values);
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
      for (const s of rows(t)) {
        const l = labels.get(s);
        out.write(
          `${sample(name, l, 'direction="tx"')}${formatValue(t.values[TX_BYTES][s])}\n${sample(name, l, 'direction="rx"')}${formatValue(t.values[RX_BYTES][s])}\n`,
        );
        if (out.full) yield;
      }
      out.family(FLOW_PACKETS, 'counter', HELP.packets);
      const packets = `${FLOW_PACKETS}_total`;
      for (const s of rows(t)) {
        const l = labels.get(s);
        out.write(
          `${sample(packets, l, 'direction="tx"')}${formatValue(t.values[TX_PACKETS][s])}\n${sample(packets, l, 'direction="rx"')}${formatValue(t.values[RX_PACKETS][s])}\n`,
        );
        if (out.full) yield;
      }
      let first = true;
      const cost = `${FLOW_COST}_total`;
      for (const s of rows(t)) {
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
      for (const s of rows(z)) {
        out.write(
          `${sample(name, this.crossZone.labels.get(s))}${formatValue(z.values[this.zoneColumn][s])}\n`,
        );
        if (out.full) yield;
      }
    }
  }
}

/**
 * The labels of DNS lookup series at a granularity: the client (as `src_`), the question's domain and the
 * response code.
 */
export function dnsLabels(granularity: Granularity): string[] {
  return [...dnsClientLabels(granularity).map((l) => `src_${l}`), 'dst_domain', 'dns_response_code'];
}

/**
 * netmon_dns_lookups_total and netmon_dns_lookup_duration_seconds (one table): lookups by question domain
 * (`dnsName`: lower case, without the trailing dot; the top N by lookups, the rest "other"), response code
 * (NOERROR, NXDOMAIN, …) and, with the k8s_metadata extension, the client pod's namespace, workload and pod
 * as the granularity keeps them: the pod the lookup's cgroup names, else the owner of its address.
 */
export class DnsFamilies implements Families {
  readonly series: DnsSeries;
  readonly lookups: Table;
  readonly tables: readonly SeriesFamily[];
  readonly labelNames: readonly string[];

  /**
   * `top`: question names named (labels::dns_question::top); `expirationMs`: the exporter's, which paces
   * that top N as the flows' dst_domain.
   */
  constructor(
    granularity: Granularity,
    maxSeries: number,
    private readonly directory: PodDirectory | undefined,
    options: { top: number; expirationMs: number },
  ) {
    this.series = new DnsSeries(dnsClientLabels(granularity), maxSeries, options);
    this.labelNames = dnsLabels(granularity);
    this.lookups = new Table('dns', this.series.table, this.labelNames);
    this.tables = [this.lookups];
  }

  add(batch: DnsBatch, now: number): void {
    const store = this.directory && !this.directory.standalone ? this.directory.store : undefined;
    const clients: DnsClients | undefined = store && {
      byAddress: (addr, offset) => store.lookup(addr, offset),
      byPodUid: (uid) => store.podByUid(uid),
    };
    this.series.add(batch, now, clients);
  }

  sweep(cutoff: number, gone: ReadonlySet<string> | undefined): void {
    this.lookups.sweep(cutoff, gone);
  }

  *render(out: Exposition): Generator<void> {
    const t = this.lookups.table;
    if (t.size === 0) return;
    const labels = this.lookups.labels;
    out.family(DNS_LOOKUPS, 'counter', HELP.dns);
    const name = `${DNS_LOOKUPS}_total`;
    for (const s of rows(t)) {
      out.write(`${sample(name, labels.get(s))}${formatValue(t.values[LOOKUPS][s])}\n`);
      if (out.full) yield;
    }
    // Only series with a lookup of known latency have a histogram; a count never goes back to 0.
    let first = true;
    const bucket = `${DNS_DURATION}_bucket`;
    for (const s of rows(t)) {
      const count = t.values[DURATION_COUNT][s];
      if (count === 0) continue;
      if (first) out.family(DNS_DURATION, 'histogram', HELP.dnsDuration);
      first = false;
      const l = labels.get(s);
      let text = '';
      let cumulative = 0;
      for (let b = 0; b < DURATION_LE.length; b++) {
        cumulative += t.values[DURATION_BUCKETS + b][s];
        text += `${sample(bucket, l, DURATION_LE[b])}${formatValue(cumulative)}\n`;
      }
      text += `${sample(`${DNS_DURATION}_sum`, l)}${formatValue(t.values[DURATION_SUM][s])}\n`;
      text += `${sample(`${DNS_DURATION}_count`, l)}${formatValue(count)}\n`;
      out.write(text);
      if (out.full) yield;
    }
  }
}
