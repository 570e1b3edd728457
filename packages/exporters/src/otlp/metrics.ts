// What the otlp exporter keeps and sends: series aggregated from batches (FlowSeries for flows, DnsSeries
// by question and response code for DNS), turned every interval into a snapshot of the points to send, cut
// into requests that stay under the gRPC message limit, and each request into the SDK's ResourceMetrics on
// the way out.
// The SDK's instruments are bypassed on purpose: a `Counter.add` per flow costs microseconds, and the SDK
// keeps every attribute set it ever saw for the life of the process.
import type { DnsBatch, FlowBatch, Granularity } from '@netmon/core';
import { type Attributes, ValueType } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  DataPointType,
  type MetricData,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import {
  DNS_COLUMNS,
  DnsSeries,
  DURATION_BOUNDS,
  DURATION_BUCKETS,
  DURATION_COUNT,
  DURATION_SUM,
  LOOKUPS,
} from '../series/dns-series.js';
import {
  COST_USD,
  type FlowLabel,
  FlowSeries,
  flowLabels,
  RX_BYTES,
  RX_PACKETS,
  TX_BYTES,
  TX_PACKETS,
} from '../series/flow-series.js';
import type { FlowLabelSelection } from '../series/selection-config.js';
import type { SeriesTable } from '../series/series-table.js';

/** Requests stay at or below this many bytes before compression: gRPC servers refuse > 4 MiB by default. */
export const MAX_REQUEST_BYTES = 4_000_000;

/** The attribute the SDK (and the Collector) put on the series that took what exceeded the cardinality cap. */
export const OVERFLOW_ATTRIBUTE = 'otel.metric.overflow';

/** One metric of an aggregate: its descriptor, and which value column and attribute variant each point uses. */
export interface MetricSpec {
  name: string;
  description: string;
  unit: string;
  valueType: ValueType;
  /** A monotonic Sum: one point per entry. A histogram: one point, whose column is the count. */
  points: readonly { column: number; variant: number }[];
  /** An explicit-bucket histogram instead of a Sum. */
  histogram?: HistogramSpec;
}

/**
 * The columns of an explicit-bucket histogram: per series its count (the point's column), the sum, and
 * bounds.length + 1 bucket counts from `buckets` on, not cumulative (as OTLP's bucket_counts).
 */
export interface HistogramSpec {
  bounds: readonly number[];
  buckets: number;
  sum: number;
  /**
   * A column, kept across delta resets, set once the series had a value: from then on its histogram is
   * sent with each of its points, even with count 0, so its stream stays contiguous (each delta starting
   * where the previous one ended) as a Collector's delta→cumulative conversion needs; before, a series
   * with nothing measured sends none.
   */
  seen: number;
}

const TRANSMIT = { 'network.io.direction': 'transmit' };
const RECEIVE = { 'network.io.direction': 'receive' };

/**
 * Flow metrics. Names follow the OpenTelemetry semantic conventions' style under the netmon namespace: UCUM
 * units, `.count` for counts, `network.io.direction` as in the conventions' `*.network.io` metrics
 * (https://opentelemetry.io/docs/specs/semconv/general/metrics/).
 */
export const FLOW_METRICS: readonly MetricSpec[] = [
  {
    name: 'netmon.flow.io',
    description:
      'Bytes sent by the source of a flow (network.io.direction=transmit) and back to it (receive).',
    unit: 'By',
    valueType: ValueType.INT,
    points: [
      { column: TX_BYTES, variant: 1 },
      { column: RX_BYTES, variant: 2 },
    ],
  },
  {
    name: 'netmon.flow.packet.count',
    description: 'Packets sent by the source of a flow (transmit) and back to it (receive).',
    unit: '{packet}',
    valueType: ValueType.INT,
    points: [
      { column: TX_PACKETS, variant: 1 },
      { column: RX_PACKETS, variant: 2 },
    ],
  },
  {
    name: 'netmon.flow.cost',
    description: 'What the traffic of the flows costs, both directions, as priced by the cost processor.',
    unit: 'USD',
    valueType: ValueType.DOUBLE,
    points: [{ column: COST_USD, variant: 0 }],
  },
];
const COST_METRIC = 2;

/** DNS metrics; `seen` is the DnsAggregate's column that marks series whose latency was ever known. */
function dnsMetrics(seen: number): MetricSpec[] {
  return [
    {
      name: 'netmon.dns.lookup.count',
      description: 'DNS answers seen on the node, by question and response code.',
      unit: '{lookup}',
      valueType: ValueType.INT,
      points: [{ column: LOOKUPS, variant: 0 }],
    },
    {
      name: 'netmon.dns.lookup.duration',
      description:
        'Time from a DNS query leaving the client to its answer reaching it, for the lookups whose query was seen; by question and response code.',
      unit: 's',
      valueType: ValueType.DOUBLE,
      points: [{ column: DURATION_COUNT, variant: 0 }],
      histogram: { bounds: DURATION_BOUNDS, buckets: DURATION_BUCKETS, sum: DURATION_SUM, seen },
    },
  ];
}

/**
 * Series and their sums, whatever the signal. `add` sums a batch in; the exporter reads `table`, the value
 * columns and `start` (the column holding each series' delta start, kept across resets).
 */
export interface Aggregate {
  readonly table: SeriesTable;
  /** The attribute key of each label of the table. */
  readonly keys: readonly string[];
  /** Per label, true when its values are integers (sent as int attributes). */
  readonly numeric?: readonly boolean[];
  /** Extra attributes per variant (variant 0 = none). */
  readonly variants: readonly Attributes[];
  readonly metrics: readonly MetricSpec[];
  /** The columns summed from batches (zeroed after a delta export). */
  readonly valueColumns: readonly number[];
  /** Column of the time (ms) a series' next delta point starts at; 0 = the previous export's end. */
  readonly start: number;
  add(batch: FlowBatch | DnsBatch, now: number): void;
  /** False for a metric that has nothing to say yet (cost before any flow was priced). */
  enabled(metric: number): boolean;
}

export class FlowAggregate implements Aggregate {
  readonly series: FlowSeries;
  readonly labels: readonly FlowLabel[];
  readonly keys: readonly string[];
  readonly numeric: readonly boolean[];
  readonly variants = [{}, TRANSMIT, RECEIVE];
  readonly metrics = FLOW_METRICS;
  /** Every column FlowSeries sums (what its resetValues zeroes), not the start column added here. */
  readonly valueColumns: readonly number[];
  readonly start: number;
  private priced = false;

  /**
   * `selection`: which attributes identify a series beyond the granularity (defaults when absent);
   * `expirationMs`: the exporter's, which paces the top N of dst.domain and dst.prefix.
   */
  constructor(
    granularity: Granularity,
    maxSeries: number,
    selection?: FlowLabelSelection,
    expirationMs?: number,
  ) {
    const labels = flowLabels(granularity, selection, { expirationMs });
    this.labels = labels;
    this.series = new FlowSeries(labels, maxSeries);
    this.keys = labels.map((l) => l.key);
    this.numeric = labels.map((l) => l.numeric === true);
    this.start = this.series.table.addColumn();
    this.valueColumns = Array.from({ length: this.start }, (_, c) => c);
  }

  get table(): SeriesTable {
    return this.series.table;
  }

  add(batch: FlowBatch, now: number): void {
    if (!this.priced && batch.length > 0 && batch.column('cost.usd')?.kind === 'number') this.priced = true;
    this.series.add(batch, now);
  }

  enabled(metric: number): boolean {
    return metric !== COST_METRIC || this.priced;
  }
}

/**
 * DNS lookups and their latency by question name (`dns.question.name`, spelt by `dnsName`: lower case, no
 * trailing dot; the top N by lookups, the rest "other") and response code (`dns.response_code`: NOERROR,
 * NXDOMAIN, …): the aggregation of the prometheus exporter's netmon_dns_lookups_total and
 * netmon_dns_lookup_duration_seconds, without client labels.
 */
export class DnsAggregate implements Aggregate {
  readonly series: DnsSeries;
  readonly keys = ['dns.question.name', 'dns.response_code'];
  readonly variants = [{}];
  readonly metrics: readonly MetricSpec[];
  /** Every column DnsSeries sums. */
  readonly valueColumns = Array.from({ length: DNS_COLUMNS }, (_, c) => c);
  readonly start: number;

  /** `options`: the top N of question names (labels::dns_question::top) and the exporter's expiration. */
  constructor(maxSeries: number, options: { top: number; expirationMs: number }) {
    this.series = new DnsSeries([], maxSeries, options);
    this.start = this.series.table.addColumn();
    this.metrics = dnsMetrics(this.series.table.addColumn());
  }

  get table(): SeriesTable {
    return this.series.table;
  }

  add(batch: DnsBatch, now: number): void {
    this.series.add(batch, now);
  }

  enabled(): boolean {
    return true;
  }
}

// --- Protobuf sizes ------------------------------------------------------------------------------
// The library writes minimal protobuf (otlp-transformer's ProtobufWriter: length prefixes as short
// varints), so the size of a request is known exactly before it is built. Requests are cut by it.

export function varintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  return 5;
}

/** A length-delimited field: tag, length, content. */
const field = (contentBytes: number) => 1 + varintSize(contentBytes) + contentBytes;

/**
 * UTF-8 length of a string, as TextEncoder writes it (a lone surrogate becomes U+FFFD, 3 bytes). A loop,
 * because Buffer.byteLength costs ~100 ns per call and a snapshot measures ten strings per new series.
 */
export function utf8(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** Bytes of one attribute (a KeyValue field in its parent), for string, boolean and number values. */
export function attributeSize(key: string, value: unknown): number {
  let any: number;
  if (typeof value === 'string') any = field(utf8(value));
  else if (typeof value === 'boolean') any = 2;
  else if (typeof value === 'number' && Number.isInteger(value)) any = 1 + varintSize64(value);
  else any = 9;
  return field(field(utf8(key)) + field(any));
}

/** attributeSize for a string value, with the key's field (tag, length, bytes) measured once. */
const stringAttributeSize = (keyField: number, value: string) => field(keyField + field(field(utf8(value))));

function varintSize64(n: number): number {
  if (n < 0) return 10;
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

export function attributesSize(attrs: Attributes): number {
  let n = 0;
  for (const key in attrs) n += attributeSize(key, attrs[key]);
  return n;
}

/** A packed repeated field of `n` 8-byte values (fixed64 or double): tag, length, values. */
const packed = (n: number) => (n === 0 ? 0 : field(8 * n));

/**
 * A point's bytes besides its attributes: a NumberDataPoint's start, end and value; a HistogramDataPoint's
 * start, end, count and sum (fixed 8 bytes each, with tags), its packed bucket counts and bounds (no
 * min, max or exemplars are sent).
 */
function pointFixed(spec: MetricSpec): number {
  const h = spec.histogram;
  return h ? 36 + packed(h.bounds.length + 1) + packed(h.bounds.length) : 27;
}

// --- Snapshots and requests ----------------------------------------------------------------------

/** The instrumentation scope of every request. */
export interface Scope {
  name: string;
  version: string;
}

/** Attributes of each variant of one series, with their encoded sizes. */
interface SeriesAttributes {
  attrs: Attributes[];
  bytes: number[];
}

/** One interval's points of one aggregate: what a request is cut from. Immutable once made. */
export interface Snapshot {
  readonly metrics: readonly MetricSpec[];
  readonly enabled: readonly boolean[];
  readonly temporality: 'delta' | 'cumulative';
  readonly resource: Resource;
  readonly scope: Scope;
  /** ms since the epoch: the end of every point. */
  readonly end: number;
  readonly length: number;
  readonly attrs: readonly SeriesAttributes[];
  /** Per series, the start of its points (ms). */
  readonly start: Float64Array;
  /** Per value column of the aggregate, the value of each series. */
  readonly values: readonly (Float64Array | undefined)[];
  /** Per metric, which series have its points: undefined for every series (Sums); set for histograms. */
  readonly present: readonly (Uint8Array | undefined)[];
}

/** A request: the series [from, to) of a snapshot. */
export interface Chunk {
  readonly snapshot: Snapshot;
  readonly from: number;
  readonly to: number;
  readonly points: number;
  /** Exact encoded size of the request. */
  readonly bytes: number;
}

/**
 * Attribute objects per series, made once per series and shared by every snapshot while the series lives:
 * a series' labels never change. `clear` after `table.retain` (series indexes move).
 */
export class AttributeCache {
  private entries: (SeriesAttributes | undefined)[] = [];
  private readonly keyFields: number[];

  constructor(private readonly aggregate: Aggregate) {
    this.keyFields = aggregate.keys.map((k) => field(utf8(k)));
  }

  get(s: number): SeriesAttributes {
    let e = this.entries[s];
    if (e === undefined) e = this.entries[s] = this.make(s);
    return e;
  }

  clear(): void {
    this.entries = [];
  }

  private make(s: number): SeriesAttributes {
    const { table, keys, variants, numeric } = this.aggregate;
    const base: Attributes = {};
    let baseBytes = 0;
    for (let l = 0; l < keys.length; l++) {
      const value = table.label(s, l);
      if (value === '') continue; // absent, never "": an attribute a flow lacks is unknown
      if (numeric?.[l]) {
        const v = Number(value);
        base[keys[l]] = v;
        baseBytes += attributeSize(keys[l], v);
        continue;
      }
      base[keys[l]] = value;
      baseBytes += stringAttributeSize(this.keyFields[l], value);
    }
    if (table.isOverflow(s)) {
      base[OVERFLOW_ATTRIBUTE] = true;
      baseBytes += attributeSize(OVERFLOW_ATTRIBUTE, true);
    }
    const attrs: Attributes[] = [];
    const bytes: number[] = [];
    for (const extra of variants) {
      if (Object.keys(extra).length === 0) {
        attrs.push(base);
        bytes.push(baseBytes);
      } else {
        attrs.push({ ...base, ...extra });
        bytes.push(baseBytes + attributesSize(extra));
      }
    }
    return { attrs, bytes };
  }
}

/** Bytes of everything in a request but its points, at most (every nested length counted at 5 bytes). */
export function envelopeBound(snapshot: Snapshot): number {
  const strings = (s: string) => (s === '' ? 0 : 6 + utf8(s));
  let metrics = 0;
  for (let m = 0; m < snapshot.metrics.length; m++) {
    const spec = snapshot.metrics[m];
    // Metric tag + length, name/description/unit, Sum (or Histogram) tag + length, temporality, monotonic.
    metrics += 6 + strings(spec.name) + strings(spec.description) + strings(spec.unit) + 6 + 2 + 2;
  }
  const scope = 6 + strings(snapshot.scope.name) + strings(snapshot.scope.version);
  const resource = 6 + attributesSize(snapshot.resource.attributes) + 2;
  // Request → ResourceMetrics tag + length, then ScopeMetrics tag + length.
  return 6 + resource + 6 + scope + metrics;
}

/** The exact encoded size of a request of series [from, to) of a snapshot. */
export function requestSize(snapshot: Snapshot, from: number, to: number): number {
  let metrics = 0;
  for (let m = 0; m < snapshot.metrics.length; m++) {
    if (!snapshot.enabled[m]) continue;
    const spec = snapshot.metrics[m];
    const fixed = pointFixed(spec);
    const present = snapshot.present[m];
    let points = 0;
    // aggregation_temporality, and a Sum's is_monotonic
    let data = spec.histogram ? 2 : 2 + 2;
    for (let s = from; s < to; s++) {
      if (present && present[s] === 0) continue;
      for (const p of spec.points) {
        const content = fixed + snapshot.attrs[s].bytes[p.variant];
        data += 1 + varintSize(content) + content;
        points++;
      }
    }
    // A metric with no point in this request is left out of it (toResourceMetrics does the same).
    if (points === 0) continue;
    let metric = field(utf8(spec.name)) + field(data);
    if (spec.description) metric += field(utf8(spec.description));
    if (spec.unit) metric += field(utf8(spec.unit));
    metrics += field(metric);
  }
  let scope = field(utf8(snapshot.scope.name));
  if (snapshot.scope.version) scope += field(utf8(snapshot.scope.version));
  const scopeMetrics = field(scope) + metrics;
  const resource = attributesSize(snapshot.resource.attributes) + 2;
  return field(field(resource) + field(scopeMetrics));
}

/** Points of series s in a snapshot, and their bytes. */
function seriesCost(snapshot: Snapshot, s: number): { points: number; bytes: number } {
  let points = 0;
  let bytes = 0;
  const sizes = snapshot.attrs[s].bytes;
  for (let m = 0; m < snapshot.metrics.length; m++) {
    if (!snapshot.enabled[m]) continue;
    const present = snapshot.present[m];
    if (present && present[s] === 0) continue;
    const spec = snapshot.metrics[m];
    const fixed = pointFixed(spec);
    for (const p of spec.points) {
      points++;
      bytes += field(fixed + sizes[p.variant]);
    }
  }
  return { points, bytes };
}

/**
 * Cuts a snapshot into requests of at most `maxPoints` points and `maxBytes` encoded bytes, keeping the
 * points of a series together. A single series larger than the byte limit still gets a request of its own
 * (the backend may refuse it; that is counted, not retried).
 */
export function chunk(snapshot: Snapshot, maxPoints: number, maxBytes = MAX_REQUEST_BYTES): Chunk[] {
  const chunks: Chunk[] = [];
  const envelope = envelopeBound(snapshot);
  let from = 0;
  let points = 0;
  let bytes = envelope;
  for (let s = 0; s < snapshot.length; s++) {
    const c = seriesCost(snapshot, s);
    if (s > from && (points + c.points > maxPoints || bytes + c.bytes > maxBytes)) {
      chunks.push({ snapshot, from, to: s, points, bytes: requestSize(snapshot, from, s) });
      from = s;
      points = 0;
      bytes = envelope;
    }
    points += c.points;
    bytes += c.bytes;
  }
  if (snapshot.length > from) {
    chunks.push({
      snapshot,
      from,
      to: snapshot.length,
      points,
      bytes: requestSize(snapshot, from, snapshot.length),
    });
  }
  return chunks;
}

/** ms since the epoch → [seconds, nanoseconds]. */
export function hrTime(ms: number): [number, number] {
  const seconds = Math.floor(ms / 1000);
  return [seconds, Math.round((ms - seconds * 1000) * 1e6)];
}

/** The SDK's ResourceMetrics for one request; the library serializes it as it is. */
export function toResourceMetrics(c: Chunk): ResourceMetrics {
  const snap = c.snapshot;
  const end = hrTime(snap.end);
  const temporality =
    snap.temporality === 'delta' ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE;
  const metrics: MetricData[] = [];
  for (let m = 0; m < snap.metrics.length; m++) {
    if (!snap.enabled[m]) continue;
    const spec = snap.metrics[m];
    const present = snap.present[m];
    const descriptor = {
      name: spec.name,
      description: spec.description,
      unit: spec.unit,
      valueType: spec.valueType,
    };
    const h = spec.histogram;
    if (h) {
      const dataPoints = [];
      const count = snap.values[spec.points[0].column] as Float64Array;
      const sum = snap.values[h.sum] as Float64Array;
      for (let s = c.from; s < c.to; s++) {
        if (present && present[s] === 0) continue;
        const counts: number[] = new Array(h.bounds.length + 1);
        for (let b = 0; b <= h.bounds.length; b++)
          counts[b] = (snap.values[h.buckets + b] as Float64Array)[s];
        dataPoints.push({
          startTime: hrTime(snap.start[s]),
          endTime: end,
          attributes: snap.attrs[s].attrs[spec.points[0].variant],
          value: {
            buckets: { boundaries: h.bounds as number[], counts },
            sum: sum[s],
            count: count[s],
          },
        });
      }
      if (dataPoints.length === 0) continue;
      metrics.push({
        descriptor,
        aggregationTemporality: temporality,
        dataPointType: DataPointType.HISTOGRAM,
        dataPoints,
      });
      continue;
    }
    const dataPoints = [];
    for (let s = c.from; s < c.to; s++) {
      if (present && present[s] === 0) continue;
      const startTime = hrTime(snap.start[s]);
      const attrs = snap.attrs[s].attrs;
      for (const p of spec.points) {
        dataPoints.push({
          startTime,
          endTime: end,
          attributes: attrs[p.variant],
          value: (snap.values[p.column] as Float64Array)[s],
        });
      }
    }
    if (dataPoints.length === 0) continue;
    metrics.push({
      descriptor,
      aggregationTemporality: temporality,
      dataPointType: DataPointType.SUM,
      isMonotonic: true,
      dataPoints,
    });
  }
  return { resource: snap.resource, scopeMetrics: [{ scope: snap.scope, metrics }] };
}

export interface SnapshotOptions {
  temporality: 'delta' | 'cumulative';
  resource: Resource;
  scope: Scope;
  /** ms since the epoch: the end of the points. */
  now: number;
  /** The previous export's end: where a series' first delta point starts. */
  previousEnd: number;
}

/**
 * The points of this interval, or undefined when there is nothing to send.
 *
 * Delta: the series that received anything since their previous point. Each point starts where the
 * series' previous point ended (its first at the previous export's end), so a series that was idle for a
 * few intervals stays contiguous: a Collector's delta→cumulative conversion (prometheus exporter,
 * deltatocumulative) only accumulates a point whose start equals the previous point's end, and would reset
 * the series otherwise. The sums are zeroed afterwards.
 *
 * Cumulative: every series, from its creation; nothing is zeroed.
 */
export function takeSnapshot(
  aggregate: Aggregate,
  cache: AttributeCache,
  o: SnapshotOptions,
): Snapshot | undefined {
  const t = aggregate.table;
  const n = t.size;
  const columns = aggregate.valueColumns;
  const delta = o.temporality === 'delta';
  const selected: number[] = [];
  for (let s = 0; s < n; s++) {
    if (!delta) {
      selected.push(s);
      continue;
    }
    for (const c of columns) {
      if (t.values[c][s] !== 0) {
        selected.push(s);
        break;
      }
    }
  }
  if (selected.length === 0) return undefined;
  const k = selected.length;
  const values: (Float64Array | undefined)[] = [];
  for (const c of columns) values[c] = new Float64Array(k);
  const start = new Float64Array(k);
  const attrs: SeriesAttributes[] = new Array(k);
  const starts = t.values[aggregate.start];
  for (let i = 0; i < k; i++) {
    const s = selected[i];
    attrs[i] = cache.get(s);
    for (const c of columns) (values[c] as Float64Array)[i] = t.values[c][s];
    if (delta) {
      start[i] = starts[s] || o.previousEnd;
      starts[s] = o.now;
    } else {
      start[i] = t.created[s];
    }
  }
  // A histogram's points: for the series that ever measured something (see HistogramSpec.seen).
  const present = aggregate.metrics.map((spec) => {
    const h = spec.histogram;
    if (!h) return undefined;
    const count = t.values[spec.points[0].column];
    const seen = t.values[h.seen];
    const out = new Uint8Array(k);
    for (let i = 0; i < k; i++) {
      const s = selected[i];
      if (count[s] > 0) seen[s] = 1;
      out[i] = seen[s];
    }
    return out;
  });
  if (delta) for (const c of columns) t.values[c].fill(0, 0, n);
  const enabled = aggregate.metrics.map((_, m) => aggregate.enabled(m));
  return {
    metrics: aggregate.metrics,
    enabled,
    temporality: o.temporality,
    resource: o.resource,
    scope: o.scope,
    end: o.now,
    length: k,
    attrs,
    start,
    values,
    present,
  };
}

/** Forgets series that received nothing for `expirationMs`; returns how many went. */
export function expire(
  aggregate: Aggregate,
  cache: AttributeCache,
  now: number,
  expirationMs: number,
): number {
  const t = aggregate.table;
  const cutoff = now - expirationMs;
  let stale = false;
  for (let s = 0; s < t.size && !stale; s++) stale = t.lastSeen[s] < cutoff;
  if (!stale) return 0;
  const removed = t.retain((s) => t.lastSeen[s] >= cutoff);
  cache.clear();
  return removed;
}
