import { FlowBatch, type FlowInit } from '@netmon/core';
import { describe, expect, it } from 'vitest';
import { COST_ROWS, COST_USD, FlowSeries, flowLabels, RX_BYTES, TX_BYTES } from './flow-series.js';
import { SeriesTable } from './series-table.js';

const flow = (
  src: string,
  dst: string,
  tx: number,
  rx: number,
  attrs: Record<string, string | number> = {},
): FlowInit => ({
  timeStart: 0,
  timeEnd: 1000,
  protocol: 6,
  srcIp: '10.0.0.1',
  dstIp: '10.0.0.2',
  dstPort: 443,
  txBytes: tx,
  rxBytes: rx,
  txPackets: 1,
  rxPackets: 1,
  attributes: {
    'src.k8s.namespace.name': 'shop',
    'src.k8s.pod.name': src,
    'dst.k8s.pod.name': dst,
    ...attrs,
  },
});

/** Sum of a column per label tuple, read back through the table. */
function sums(series: FlowSeries, column: number): Record<string, number> {
  const t = series.table;
  const out: Record<string, number> = {};
  for (let s = 0; s < t.size; s++) {
    const key = t.isOverflow(s)
      ? '(overflow)'
      : series.labels
          .map((l, i) => `${l.name}=${t.label(s, i)}`)
          .filter((x) => !x.endsWith('='))
          .join(',');
    out[key] = t.values[column][s];
  }
  return out;
}

describe('flowLabels', () => {
  it('drops pod, then workload labels as granularity coarsens', () => {
    const names = (g: 'pod' | 'workload' | 'namespace') => flowLabels(g).map((l) => l.name);
    expect(names('pod')).toEqual([
      'src_namespace',
      'src_workload_kind',
      'src_workload',
      'src_pod',
      'dst_namespace',
      'dst_workload_kind',
      'dst_workload',
      'dst_pod',
      'dst_kind',
      'dst_service',
      'dst_domain',
      'traffic_class',
    ]);
    expect(names('workload')).not.toContain('src_pod');
    expect(names('namespace')).toEqual([
      'src_namespace',
      'dst_namespace',
      'dst_kind',
      'dst_service',
      'dst_domain',
      'traffic_class',
    ]);
  });
});

describe('FlowSeries', () => {
  it('sums rows with the same labels across batches, whatever their dictionary codes', () => {
    const series = new FlowSeries(flowLabels('pod'), 100);
    series.add(
      FlowBatch.from([
        flow('a', 'b', 10, 1),
        flow('a', 'c', 20, 2),
        flow('a', 'b', 5, 0, { 'cost.usd': 0.5 }),
      ]),
    );
    // A second batch whose dictionary lists the values in another order.
    series.add(FlowBatch.from([flow('a', 'c', 1, 1), flow('a', 'b', 100, 7, { 'cost.usd': 0.25 })]));
    expect(sums(series, TX_BYTES)).toEqual({
      'src_namespace=shop,src_pod=a,dst_pod=b': 115,
      'src_namespace=shop,src_pod=a,dst_pod=c': 21,
    });
    expect(sums(series, RX_BYTES)).toEqual({
      'src_namespace=shop,src_pod=a,dst_pod=b': 8,
      'src_namespace=shop,src_pod=a,dst_pod=c': 3,
    });
    expect(sums(series, COST_USD)).toEqual({
      'src_namespace=shop,src_pod=a,dst_pod=b': 0.75,
      'src_namespace=shop,src_pod=a,dst_pod=c': 0,
    });
    // Rows with a price: a series without any has no cost, which is not the same as a cost of 0.
    expect(sums(series, COST_ROWS)).toEqual({
      'src_namespace=shop,src_pod=a,dst_pod=b': 2,
      'src_namespace=shop,src_pod=a,dst_pod=c': 0,
    });
  });

  it('rolls pods up at workload granularity', () => {
    const series = new FlowSeries(flowLabels('workload'), 100);
    series.add(
      FlowBatch.from([
        flow('a-1', 'x', 1, 0, { 'src.k8s.workload.name': 'a' }),
        flow('a-2', 'y', 2, 0, { 'src.k8s.workload.name': 'a' }),
      ]),
    );
    expect(sums(series, TX_BYTES)).toEqual({ 'src_namespace=shop,src_workload=a': 3 });
  });

  it('caps series: past max_series rows go to one overflow series and totals stay exact', () => {
    const series = new FlowSeries(flowLabels('pod'), 10);
    const rows = Array.from({ length: 50 }, (_, i) => flow(`p${i}`, 'd', 1, 0));
    series.add(FlowBatch.from(rows));
    const t = series.table;
    expect(t.size).toBe(10);
    expect(t.isOverflow(t.overflow)).toBe(true);
    expect(t.values[TX_BYTES][t.overflow]).toBe(41);
    expect(t.overflowRows).toBe(41);
    let total = 0;
    for (let s = 0; s < t.size; s++) total += t.values[TX_BYTES][s];
    expect(total).toBe(50);
  });

  it('keeps finding series after growth and after retain compacts them', () => {
    const series = new FlowSeries(flowLabels('pod'), 100_000);
    const batch = FlowBatch.from(Array.from({ length: 5000 }, (_, i) => flow(`p${i}`, `d${i % 7}`, i, 1)));
    series.add(batch, 1);
    series.add(batch, 2);
    const t = series.table;
    expect(t.size).toBe(5000);
    // Drop the even pods, then add everything once more: odd ones sum to 3×, even ones start again.
    const removed = t.retain((s) => Number(t.label(s, 3).slice(1)) % 2 === 1);
    expect(removed).toBe(2500);
    series.add(batch, 3);
    expect(t.size).toBe(5000);
    const bySrc = new Map<string, number>();
    for (let s = 0; s < t.size; s++) bySrc.set(t.label(s, 3), t.values[TX_BYTES][s]);
    expect(bySrc.get('p1')).toBe(3);
    expect(bySrc.get('p2')).toBe(2);
    expect(bySrc.get('p4999')).toBe(3 * 4999);
    expect(t.strings.size).toBeLessThan(5000 + 20);
  });

  it('resetValues zeroes sums but keeps series', () => {
    const series = new FlowSeries(flowLabels('namespace'), 100);
    series.add(FlowBatch.from([flow('a', 'b', 10, 1)]));
    series.resetValues();
    expect(series.table.size).toBe(1);
    expect(series.table.values[TX_BYTES][0]).toBe(0);
  });
});

describe('SeriesTable', () => {
  it('refuses a cap that leaves no room for the overflow series', () => {
    expect(() => new SeriesTable(2, 1)).toThrow(/overflow/);
  });
});
