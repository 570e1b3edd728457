import { dnsName, FlowBatch, type FlowInit } from '@netmon/core';
import { describe, expect, it } from 'vitest';
import {
  COST_ROWS,
  COST_USD,
  type FlowLabel,
  FlowSeries,
  flowLabels,
  RX_BYTES,
  TX_BYTES,
} from './flow-series.js';
import { flowLabelSelection } from './selection-config.js';
import { SeriesTable, UNKNOWN } from './series-table.js';

/** The granularity's labels without protocol, which every row here has (6): the mechanics, not the labels. */
const kube = (g: 'pod' | 'workload' | 'namespace') =>
  flowLabels(g, flowLabelSelection.parse({ exclude: ['protocol'] }));

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
  it('drops pod, then workload labels as granularity coarsens; zones, prefix and protocol on by default', () => {
    const names = (g: 'pod' | 'workload' | 'namespace') => flowLabels(g).map((l) => l.name);
    expect(names('pod')).toEqual([
      'src_namespace',
      'src_workload_kind',
      'src_workload',
      'src_pod',
      'src_zone',
      'dst_namespace',
      'dst_workload_kind',
      'dst_workload',
      'dst_pod',
      'dst_zone',
      'dst_kind',
      'dst_service',
      'dst_domain',
      'dst_prefix',
      'protocol',
      'traffic_class',
    ]);
    expect(names('workload')).not.toContain('src_pod');
    expect(names('namespace')).toEqual([
      'src_namespace',
      'src_zone',
      'dst_namespace',
      'dst_zone',
      'dst_kind',
      'dst_service',
      'dst_domain',
      'dst_prefix',
      'protocol',
      'traffic_class',
    ]);
    expect(flowLabels('pod').map((l) => l.key)).toContain('dst.cloud.availability_zone');
  });
});

describe('FlowSeries', () => {
  it('sums rows with the same labels across batches, whatever their dictionary codes', () => {
    const series = new FlowSeries(kube('pod'), 100);
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
    const series = new FlowSeries(kube('workload'), 100);
    series.add(
      FlowBatch.from([
        flow('a-1', 'x', 1, 0, { 'src.k8s.workload.name': 'a' }),
        flow('a-2', 'y', 2, 0, { 'src.k8s.workload.name': 'a' }),
      ]),
    );
    expect(sums(series, TX_BYTES)).toEqual({ 'src_namespace=shop,src_workload=a': 3 });
  });

  it('caps series: past max_series rows go to one overflow series and totals stay exact', () => {
    const series = new FlowSeries(kube('pod'), 10);
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
    const series = new FlowSeries(kube('pod'), 100_000);
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

  it('interns no label value of a row that goes to the overflow series (100k random subdomains)', () => {
    // dst.domain read as a plain attribute (no top N): the series cap alone must bound the strings.
    const labels: FlowLabel[] = [
      { name: 'src_namespace', key: 'src.k8s.namespace.name' },
      { name: 'src_pod', key: 'src.k8s.pod.name' },
      { name: 'dst_pod', key: 'dst.k8s.pod.name' },
      { name: 'dst_domain', key: 'dst.domain', normalize: dnsName },
    ];
    const series = new FlowSeries(labels, 10);
    const t = series.table;
    for (let b = 0; b < 10; b++) {
      series.add(
        FlowBatch.from(
          Array.from({ length: 10_000 }, (_, i) =>
            flow('a', 'b', 1, 0, { 'dst.domain': `x${b}-${i}.tunnel.example` }),
          ),
        ),
      );
    }
    expect(t.size).toBe(10);
    expect(t.overflowRows).toBe(100_000 - 9);
    // The strings of the 9 series (shop, a, b, and one domain each) and the empty string: no more.
    expect(t.strings.size).toBe(1 + 3 + 9);
    let total = 0;
    for (let s = 0; s < t.size; s++) total += t.values[TX_BYTES][s];
    expect(total).toBe(100_000);
    // A known label set still finds its series when the table is full, and a new one still overflows.
    series.add(FlowBatch.from([flow('a', 'b', 5, 0, { 'dst.domain': 'x0-0.tunnel.example' })]));
    series.add(FlowBatch.from([flow('a', 'c', 5, 0)]));
    const x00 = [...Array(t.size).keys()].find((s) => t.label(s, 3) === 'x0-0.tunnel.example') as number;
    expect(t.values[TX_BYTES][x00]).toBe(6);
    expect(t.overflowRows).toBe(100_000 - 9 + 1);
    expect(t.strings.size).toBe(1 + 3 + 9);
  });

  it('a value first seen in a batch is interned once its series is made, and later rows find it', () => {
    const series = new FlowSeries(kube('pod'), 3);
    // One room left after the first series: the second new pod makes it, its repeats find it.
    series.add(
      FlowBatch.from([
        flow('a', 'b', 1, 0),
        flow('c', 'b', 1, 0),
        flow('c', 'b', 2, 0),
        flow('d', 'b', 4, 0),
      ]),
    );
    const t = series.table;
    expect(sums(series, TX_BYTES)).toEqual({
      'src_namespace=shop,src_pod=a,dst_pod=b': 1,
      'src_namespace=shop,src_pod=c,dst_pod=b': 3,
      '(overflow)': 4,
    });
    expect(t.strings.find('d')).toBe(-1);
  });

  it('a dictionary shared across batches keeps its lookups, and stays right after retain', () => {
    const series = new FlowSeries(kube('pod'), 1000);
    const t = series.table;
    const shared = ['', 'p0', 'p1'];
    const batchOf = (codes: number[]) => {
      const b = FlowBatch.from(codes.map(() => flow('', 'd', 1, 0)));
      b.deleteColumn('src.k8s.pod.name');
      const col = b.ensureColumn('src.k8s.pod.name', 'string');
      col.share(shared);
      codes.forEach((c, i) => {
        col.codes[i] = c;
      });
      return b;
    };
    series.add(batchOf([1, 2]), 1);
    // Codes already looked up, a code added to the dictionary since, and one seen before but not interned.
    shared.push('p2');
    series.add(batchOf([1, 3, 2, 3]), 2);
    expect(sums(series, TX_BYTES)).toEqual({
      'src_namespace=shop,src_pod=p0,dst_pod=d': 2,
      'src_namespace=shop,src_pod=p1,dst_pod=d': 2,
      'src_namespace=shop,src_pod=p2,dst_pod=d': 2,
    });
    // retain renumbers the strings: ids remembered for the shared dictionary must not be used again.
    t.retain((s) => t.label(s, 3) !== 'p0');
    series.add(batchOf([3, 1]), 3);
    expect(sums(series, TX_BYTES)).toEqual({
      'src_namespace=shop,src_pod=p0,dst_pod=d': 1,
      'src_namespace=shop,src_pod=p1,dst_pod=d': 2,
      'src_namespace=shop,src_pod=p2,dst_pod=d': 3,
    });
  });

  it('spells dst_domain as dnsName does: lower case, no trailing dot', () => {
    const series = new FlowSeries(kube('namespace'), 100);
    series.add(
      FlowBatch.from([
        flow('a', 'b', 1, 0, { 'dst.domain': 'API.Stripe.com.' }),
        flow('a', 'b', 2, 0, { 'dst.domain': 'api.stripe.com' }),
      ]),
    );
    expect(sums(series, TX_BYTES)).toEqual({ 'src_namespace=shop,dst_domain=api.stripe.com': 3 });
  });

  it('resetValues zeroes sums but keeps series', () => {
    const series = new FlowSeries(kube('namespace'), 100);
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

  it('findOrAdd resolves UNKNOWN ids from values, interning only for a series it makes', () => {
    const t = new SeriesTable(2, 3);
    const ids = new Int32Array(2);
    const row = (a: string, b: string) => {
      ids[0] = UNKNOWN;
      ids[1] = UNKNOWN;
      return t.findOrAdd(ids, 0, [a, b]);
    };
    expect(row('x', 'y')).toBe(0);
    expect(row('x', 'y')).toBe(0);
    expect(row('x', 'z')).toBe(1);
    expect(t.full).toBe(true);
    expect(row('w', 'y')).toBe(t.overflow);
    expect(t.strings.find('w')).toBe(-1);
    expect(row('x', 'z')).toBe(1);
    expect(t.strings.size).toBe(4);
    ids[0] = UNKNOWN;
    expect(() => t.findOrAdd(ids, 0)).toThrow(/no id and no value/);
  });

  it('counts updates per series, a clock that retain keeps', () => {
    const t = new SeriesTable(1, 10);
    const ids = new Int32Array(1);
    const row = (v: string) => {
      ids[0] = UNKNOWN;
      return t.findOrAdd(ids, 0, [v]);
    };
    row('a');
    row('b');
    row('a');
    expect([t.updates, t.lastUpdate[0], t.lastUpdate[1]]).toEqual([3, 3, 2]);
    t.retain((s) => s === 1);
    expect([t.updates, t.lastUpdate[0]]).toEqual([3, 2]);
  });

  it('cursors keep their place across retain: nothing visited twice, no survivor skipped', () => {
    const t = new SeriesTable(1, 100);
    const ids = new Int32Array(1);
    for (let i = 0; i < 10; i++) {
      ids[0] = UNKNOWN;
      t.findOrAdd(ids, 0, [`s${i}`]);
    }
    const c = t.cursor();
    const seen: string[] = [];
    while (c.next < 4) seen.push(t.label(c.next++, 0));
    // Remove some visited (s1, s3) and some not yet (s4, s6, s9) series.
    t.retain((s) => ![1, 3, 4, 6, 9].includes(s));
    while (c.next < t.size) seen.push(t.label(c.next++, 0));
    expect(seen).toEqual(['s0', 's1', 's2', 's3', 's5', 's7', 's8']);
    // A cursor at the end stays at the end; a closed one is left alone.
    t.retain((s) => s !== 0);
    expect(c.next).toBe(t.size);
    c.close();
    c.next = 0;
    t.retain(() => false);
    expect(c.next).toBe(0);
  });
});
