import { describe, expect, it } from 'vitest';
import { FlowBatch, type FlowColumns, FlowFlags } from './flow-batch.js';
import { type FixedArray, FLOW_COLUMN_LIST } from './flow-columns.js';
import { encodeFlowRecords } from './flow-record.js';

const t0 = Date.parse('2026-01-01T00:00:00.000Z');

/** Rows whose every fixed column differs from row to row, so a copy that drops or shifts a column shows. */
function distinctRows(n: number): FlowBatch {
  const b = new FlowBatch(n, 'cumulative');
  for (let i = 0; i < n; i++) {
    b.push({
      timeStart: t0 + i,
      timeEnd: t0 + 10_000 + 2 * i,
      family: i % 2 === 0 ? 4 : 6,
      protocol: 6 + i,
      srcIp: i % 2 === 0 ? `10.0.0.${i + 1}` : `fd00::${i + 1}`,
      srcPort: 1000 + i,
      dstIp: i % 2 === 0 ? `10.9.0.${i + 1}` : `fd00::9:${i + 1}`,
      dstPort: 2000 + i,
      ...(i % 3 === 0
        ? { backendIp: i % 2 === 0 ? `10.7.0.${i + 1}` : `fd00::7:${i + 1}`, backendPort: 3000 + i }
        : {}),
      txBytes: 100 * i + 1,
      rxBytes: 200 * i + 2,
      txPackets: 3 * i + 3,
      rxPackets: 4 * i + 4,
      flags: i % 2 === 0 ? FlowFlags.InitiatorKnown : FlowFlags.LocalRemote | FlowFlags.Closed,
    });
  }
  return b;
}

/** Row i of every fixed column, `width` values each. */
function rowValues(b: FlowBatch, i: number): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const c of FLOW_COLUMN_LIST) out[c.name] = [...b[c.name].subarray(c.width * i, c.width * (i + 1))];
  return out;
}

describe('fixed columns', () => {
  it('the constructor and reserve give every column capacity × width values, keeping what was there', () => {
    const b = distinctRows(3);
    const before = [0, 1, 2].map((i) => rowValues(b, i));
    b.reserve(40);
    for (const c of FLOW_COLUMN_LIST)
      expect([c.name, b[c.name].length]).toEqual([c.name, c.width * b.capacity]);
    expect([0, 1, 2].map((i) => rowValues(b, i))).toEqual(before);
  });

  it('clone and select copy every column of the rows asked for, addresses word by word', () => {
    const b = distinctRows(7);
    const rows = [6, 0, 3, 3, 5];
    const picked = b.select(rows);
    expect(rows.map((_, j) => rowValues(picked, j))).toEqual(rows.map((i) => rowValues(b, i)));
    const copy = b.clone();
    expect([...Array(7).keys()].map((i) => rowValues(copy, i))).toEqual(
      [...Array(7).keys()].map((i) => rowValues(b, i)),
    );
    for (const c of FLOW_COLUMN_LIST) expect(copy[c.name]).not.toBe(b[c.name]);
  });

  it('select copies addresses from columns that do not start on a 4-byte boundary', () => {
    const b = distinctRows(4);
    const shifted = (a: Uint8Array): Uint8Array => {
      const buf = new Uint8Array(a.length + 1);
      buf.set(a, 1);
      return buf.subarray(1);
    };
    const wrapped = FlowBatch.wrap(
      { ...b, srcAddr: shifted(b.srcAddr), dstAddr: shifted(b.dstAddr), backendAddr: shifted(b.backendAddr) },
      'cumulative',
    );
    expect(wrapped.srcAddr.byteOffset % 4).toBe(1);
    const picked = wrapped.select([3, 0]);
    expect([picked.srcIp(0), picked.dstIp(0), picked.backendIp(1)]).toEqual([
      'fd00::4',
      'fd00::9:4',
      '10.7.0.1',
    ]);
  });

  it('grows columns adopted longer than their rows (an addon that over-allocates) without losing a row', () => {
    const b = distinctRows(2);
    const long: Record<string, FixedArray> = {};
    for (const c of FLOW_COLUMN_LIST) {
      const a = new c.array(c.width * 8);
      a.set(b[c.name].subarray(0, c.width * 2));
      long[c.name] = a;
    }
    const wrapped = FlowBatch.wrap({ ...(long as unknown as FlowColumns), length: 2 }, 'cumulative');
    wrapped.adoptNumberColumn('conntrack.id', new Float64Array([7, 8, 0, 0, 0, 0, 0, 0]));
    const before = [0, 1].map((i) => rowValues(wrapped, i));
    expect(
      wrapped.push({ timeStart: t0, timeEnd: t0, protocol: 17, srcIp: '10.0.0.9', dstIp: '10.0.0.8' }),
    ).toBe(2);
    expect(wrapped.capacity).toBe(4);
    expect([0, 1].map((i) => rowValues(wrapped, i))).toEqual(before);
    expect([0, 1, 2].map((i) => wrapped.getAttribute(i, 'conntrack.id'))).toEqual([7, 8, undefined]);
  });

  it('wrap names the first column that is too short, counting 16 values a row for addresses', () => {
    const b = distinctRows(2);
    expect(() => FlowBatch.wrap({ ...b, length: 2, srcAddr: new Uint8Array(31) }, 'delta')).toThrow(
      'FlowBatch.wrap: srcAddr has 31 values, not 32',
    );
    expect(() => FlowBatch.wrap({ ...b, length: 2, timeEnd: new Float64Array(1) }, 'delta')).toThrow(
      'FlowBatch.wrap: timeEnd has 1 values, not 2',
    );
  });

  it('the row view reads every column: addresses as text, backend fields only on translated rows', () => {
    const b = distinctRows(4);
    const rows = [...b];
    expect(rows.map((r) => [r.family, r.protocol, r.srcIp, r.srcPort, r.dstIp, r.dstPort])).toEqual([
      [4, 6, '10.0.0.1', 1000, '10.9.0.1', 2000],
      [6, 7, 'fd00::2', 1001, 'fd00::9:2', 2001],
      [4, 8, '10.0.0.3', 1002, '10.9.0.3', 2002],
      [6, 9, 'fd00::4', 1003, 'fd00::9:4', 2003],
    ]);
    expect(rows.map((r) => [r.backendIp, r.backendPort])).toEqual([
      ['10.7.0.1', 3000],
      [undefined, undefined],
      [undefined, undefined],
      ['fd00::7:4', 3003],
    ]);
    const last = rows[3];
    expect([
      last.txBytes,
      last.rxBytes,
      last.txPackets,
      last.rxPackets,
      last.timeStart,
      last.timeEnd,
    ]).toEqual([301, 602, 12, 16, t0 + 3, t0 + 10_006]);
    expect(last.flags).toBe(FlowFlags.LocalRemote | FlowFlags.Closed | FlowFlags.Dnat);
    // Reads are live: a write to the column shows through an existing view.
    b.txBytes[3] = 42;
    expect(last.txBytes).toBe(42);
  });

  it('records keep their field order, and each time column its own values', () => {
    const b = distinctRows(2);
    expect(encodeFlowRecords(b)).toEqual([
      '{"time_start":"2026-01-01T00:00:00.000Z","time_end":"2026-01-01T00:00:10.000Z","family":4,"protocol":6,' +
        '"src_ip":"10.0.0.1","src_port":1000,"dst_ip":"10.9.0.1","dst_port":2000,' +
        '"backend_ip":"10.7.0.1","backend_port":3000,"tx_bytes":1,"rx_bytes":2,"tx_packets":3,"rx_packets":4,' +
        '"attributes":{"flow.initiator_known":true}}\n',
      '{"time_start":"2026-01-01T00:00:00.001Z","time_end":"2026-01-01T00:00:10.002Z","family":6,"protocol":7,' +
        '"src_ip":"fd00::2","src_port":1001,"dst_ip":"fd00::9:2","dst_port":2001,' +
        '"tx_bytes":101,"rx_bytes":202,"tx_packets":6,"rx_packets":8,"attributes":{"flow.initiator_known":false}}\n',
    ]);
  });
});
