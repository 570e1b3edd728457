import { describe, expect, it } from 'vitest';
import { FlowBatch, FlowFlags, type FlowInit } from './flow-batch.js';
import { decodeFlowRecord, encodeFlowRecords, INITIATOR_KNOWN_ATTRIBUTE } from './flow-record.js';

const t0 = Date.parse('2026-01-01T00:00:00.000Z');
const ORIENTATION = FlowFlags.InitiatorKnown | FlowFlags.LocalRemote;

/** A flow as a receiver hands it on: orientation in the flags, no attribute saying it. */
const flow = (i: number, flags: number, attributes?: FlowInit['attributes']): FlowInit => ({
  timeStart: t0,
  timeEnd: t0 + 5_000,
  protocol: 6,
  srcIp: `10.0.0.${i}`,
  srcPort: 40000 + i,
  dstIp: '93.184.216.34',
  dstPort: 443,
  txBytes: 100 * i,
  rxBytes: 900 * i,
  txPackets: i,
  rxPackets: 2 * i,
  flags,
  ...(attributes ? { attributes } : {}),
});

const attributesOf = (line: string) =>
  (JSON.parse(line) as { attributes: Record<string, unknown> }).attributes;

function decodeAll(lines: string[]): FlowBatch {
  const b = new FlowBatch();
  for (const line of lines) {
    const d = decodeFlowRecord(line);
    if (!d.ok) throw new Error(d.error);
    b.push(d.flow);
  }
  return b;
}

describe('flow records: flow.initiator_known', () => {
  it("is written from the receiver's flags when no processor wrote the attribute: true, false or absent", () => {
    const b = FlowBatch.from(
      [
        flow(1, FlowFlags.InitiatorKnown),
        flow(2, FlowFlags.LocalRemote),
        flow(3, 0),
        // The flags beside orientation do not change it.
        flow(4, FlowFlags.InitiatorKnown | FlowFlags.Closed),
        flow(5, FlowFlags.LocalRemote | FlowFlags.Opened),
        flow(6, FlowFlags.Closed),
      ],
      'delta',
    );
    expect(b.column(INITIATOR_KNOWN_ATTRIBUTE)).toBeUndefined();
    const lines = encodeFlowRecords(b);
    expect(lines.map(attributesOf)).toEqual([
      { 'flow.initiator_known': true },
      { 'flow.initiator_known': false },
      {},
      { 'flow.initiator_known': true },
      { 'flow.initiator_known': false },
      {},
    ]);
    expect(lines[0]).toBe(
      '{"time_start":"2026-01-01T00:00:00.000Z","time_end":"2026-01-01T00:00:05.000Z","family":4,"protocol":6,' +
        '"src_ip":"10.0.0.1","src_port":40001,"dst_ip":"93.184.216.34","dst_port":443,"tx_bytes":100,"rx_bytes":900,' +
        '"tx_packets":1,"rx_packets":2,"attributes":{"flow.initiator_known":true}}\n',
    );
    // The writer reads the batch, never adds to it.
    expect(b.column(INITIATOR_KNOWN_ATTRIBUTE)).toBeUndefined();
    expect(b.attributeKeys()).toEqual([]);
  });

  it('stands in sorted order among the other attributes', () => {
    const attrs = { 'cost.usd': 0.5, 'src.k8s.pod.name': 'web-1', 'dst.domain': 'example.com' };
    const [known, neither] = encodeFlowRecords(
      FlowBatch.from([flow(1, FlowFlags.InitiatorKnown, attrs), flow(2, 0, attrs)]),
    );
    expect(known).toContain(
      '"attributes":{"cost.usd":0.5,"dst.domain":"example.com","flow.initiator_known":true,"src.k8s.pod.name":"web-1"}}',
    );
    expect(neither).toContain(
      '"attributes":{"cost.usd":0.5,"dst.domain":"example.com","src.k8s.pod.name":"web-1"}}',
    );
  });

  it('a column a processor wrote is what the record says, row by row, flags notwithstanding', () => {
    const b = FlowBatch.from([
      flow(1, FlowFlags.InitiatorKnown),
      flow(2, FlowFlags.InitiatorKnown),
      flow(3, FlowFlags.LocalRemote),
    ]);
    const col = b.ensureColumn(INITIATOR_KNOWN_ATTRIBUTE, 'bool');
    col.set(0, true);
    col.set(1, false);
    // Row 2 left absent by the processor: absent in the record, whatever the flags say.
    const lines = encodeFlowRecords(b);
    expect(lines.map(attributesOf)).toEqual([
      { 'flow.initiator_known': true },
      { 'flow.initiator_known': false },
      {},
    ]);
    // Written once, never twice (JSON.parse would keep the last of two keys silently).
    for (const line of lines) expect(line.split('flow.initiator_known').length).toBeLessThanOrEqual(2);
  });

  it('a replay restores the flags, and its records are the ones it read', () => {
    const flows = [
      flow(1, FlowFlags.InitiatorKnown),
      flow(2, FlowFlags.LocalRemote | FlowFlags.Closed),
      flow(3, 0, { 'src.k8s.pod.name': 'web-3' }),
      { ...flow(4, FlowFlags.InitiatorKnown), dstIp: '10.96.0.10', backendIp: '10.0.3.7', backendPort: 8443 },
    ];
    const b = FlowBatch.from(flows, 'delta');
    const lines = encodeFlowRecords(b);
    const back = decodeAll(lines);
    // Orientation comes back as the receiver set it; what the record does not carry (Closed) does not.
    expect([...back.flags.subarray(0, back.length)].map((f) => f & ORIENTATION)).toEqual([
      FlowFlags.InitiatorKnown,
      FlowFlags.LocalRemote,
      0,
      FlowFlags.InitiatorKnown,
    ]);
    expect(back.flags[3] & FlowFlags.Dnat).toBe(FlowFlags.Dnat);
    expect(encodeFlowRecords(back)).toEqual(lines);
    // And once more: a record written from a replay is the same again.
    expect(encodeFlowRecords(decodeAll(encodeFlowRecords(back)))).toEqual(lines);
  });

  it('an empty batch writes nothing', () => {
    expect(encodeFlowRecords(new FlowBatch())).toEqual([]);
  });
});
