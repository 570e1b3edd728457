// Flow deltas summed into series by their labels: what the prometheus and otlp exporters both keep.
// The granularity knob decides which Kubernetes labels identify a series, so it bounds cardinality.
import { type FlowBatch, type Granularity, StringColumn } from '@netmon/core';
import { dnsName } from './dns-series.js';
import { DictionaryIds, SeriesTable, UNKNOWN } from './series-table.js';

/** One label of a flow series: its Prometheus name and the flow attribute (DESIGN.md) it comes from. */
export interface FlowLabel {
  name: string;
  key: string;
  /** Applied to each value before it is summed on (one series per DNS name, not per spelling). */
  normalize?: (value: string) => string;
}

const ends = (granularity: Granularity): FlowLabel[] =>
  (['src', 'dst'] as const).flatMap((end) => [
    { name: `${end}_namespace`, key: `${end}.k8s.namespace.name` },
    ...(granularity === 'namespace'
      ? []
      : [
          { name: `${end}_workload_kind`, key: `${end}.k8s.workload.kind` },
          { name: `${end}_workload`, key: `${end}.k8s.workload.name` },
        ]),
    ...(granularity === 'pod' ? [{ name: `${end}_pod`, key: `${end}.k8s.pod.name` }] : []),
  ]);

/**
 * The labels of flow series at a granularity (DESIGN.md "Names users see"): both ends' namespace, then
 * workload (kind and name) unless `namespace`, then pod at `pod`; always destination kind, service,
 * domain (as `dnsName` spells it, like the DNS lookup series) and traffic class. Every one of them is a
 * function of the ends, so coarser means fewer series.
 */
export function flowLabels(granularity: Granularity): FlowLabel[] {
  return [
    ...ends(granularity),
    { name: 'dst_kind', key: 'dst.kind' },
    { name: 'dst_service', key: 'dst.k8s.service.name' },
    { name: 'dst_domain', key: 'dst.domain', normalize: dnsName },
    { name: 'traffic_class', key: 'traffic.class' },
  ];
}

/** Index of the value columns of a FlowSeries in `table.values`. */
export const TX_BYTES = 0;
export const RX_BYTES = 1;
export const TX_PACKETS = 2;
export const RX_PACKETS = 3;
export const COST_USD = 4;
/** Rows that had a cost (`cost.usd` present), so a sum of 0 USD can be told apart from no price known. */
export const COST_ROWS = 5;

/**
 * Sums of tx/rx bytes and packets and cost per series. `add` takes a batch of deltas; what is summed
 * stays until `resetValues` (delta export) or forever, minus what `table.retain` removes (expiry).
 */
export class FlowSeries {
  readonly table: SeriesTable;
  private readonly ids: Int32Array;
  /** A row's label values that are not interned (where `ids` says UNKNOWN). */
  private readonly values: (string | undefined)[];
  /** Per label, the batch's dictionary codes → interned ids. */
  private readonly dictionaries: DictionaryIds[];

  constructor(
    readonly labels: readonly FlowLabel[],
    maxSeries: number,
  ) {
    this.table = new SeriesTable(labels.length, maxSeries);
    for (let c = TX_BYTES; c <= COST_ROWS; c++) this.table.addColumn();
    this.ids = new Int32Array(labels.length);
    this.values = new Array(labels.length).fill(undefined);
    this.dictionaries = labels.map((l) => new DictionaryIds(l.normalize));
  }

  /** Adds every row of a delta batch to its series. */
  add(batch: FlowBatch, now = Date.now()): void {
    const n = batch.length;
    if (n === 0) return;
    const t = this.table;
    const width = this.labels.length;
    const codes: (Uint32Array | undefined)[] = [];
    const other: ((i: number) => string)[] = [];
    for (let l = 0; l < width; l++) {
      const label = this.labels[l];
      const column = batch.column(label.key);
      if (column instanceof StringColumn) {
        codes[l] = column.codes;
        this.dictionaries[l].reset(t, column.dict);
      } else if (column) {
        // A plugin may write a label as a number or bool: rare, so the slow path is fine.
        const normalize = label.normalize ?? String;
        other[l] = (i) => {
          const v = column.get(i);
          return v === undefined ? '' : normalize(String(v));
        };
      }
    }
    const cost = batch.column('cost.usd');
    const costs = cost && cost.kind === 'number' ? cost.values : undefined;
    const [tx, rx, txp, rxp, usd, priced] = [TX_BYTES, RX_BYTES, TX_PACKETS, RX_PACKETS, COST_USD, COST_ROWS];
    const { ids, values, dictionaries } = this;
    for (let i = 0; i < n; i++) {
      for (let l = 0; l < width; l++) {
        const c = codes[l];
        if (c) dictionaries[l].put(c[i], ids, values, l);
        else {
          const f = other[l];
          if (f) {
            ids[l] = UNKNOWN;
            values[l] = f(i);
          } else ids[l] = 0;
        }
      }
      const s = t.findOrAdd(ids, now, values);
      const v = t.values;
      v[tx][s] += batch.txBytes[i];
      v[rx][s] += batch.rxBytes[i];
      v[txp][s] += batch.txPackets[i];
      v[rxp][s] += batch.rxPackets[i];
      if (costs) {
        const c = costs[i];
        // NaN: no cost known for the row
        if (!Number.isNaN(c)) {
          v[usd][s] += c;
          v[priced][s]++;
        }
      }
    }
  }

  /** Zeroes every sum (after a delta export); the series themselves stay until retained away. */
  resetValues(): void {
    for (const col of this.table.values) col.fill(0, 0, this.table.size);
  }
}
