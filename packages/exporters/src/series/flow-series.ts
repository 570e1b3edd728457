// Flow deltas summed into series by their labels: what the prometheus and otlp exporters both keep.
// Which labels identify a series (flow-labels.ts: the granularity and a per-exporter selection) bounds the
// cardinality; so do the top N of the unbounded ones and the series cap.
import { type FlowBatch, StringColumn } from '@netmon/core';
import type { FlowLabel } from './flow-labels.js';
import { DictionaryIds, SeriesTable, UNKNOWN } from './series-table.js';

export { type FlowLabel, type FlowLabelOptions, flowLabels } from './flow-labels.js';

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
    const codes: (Uint8Array | Uint16Array | Uint32Array | undefined)[] = [];
    const other: ((i: number) => string)[] = [];
    for (let l = 0; l < width; l++) {
      const label = this.labels[l];
      if (label.reader) {
        const computed = label.reader.read(batch, now);
        if (computed) {
          codes[l] = computed.codes;
          this.dictionaries[l].reset(t, computed.dict);
        }
        continue;
      }
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
