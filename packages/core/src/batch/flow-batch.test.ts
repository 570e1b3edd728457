import { describe, expect, it } from 'vitest';
import { FlowBatch, FlowFlags } from './flow-batch.js';
import { decodeFlowRecord, encodeFlowRecords } from './flow-record.js';

const t0 = Date.parse('2026-01-01T00:00:00.000Z');
const flow = (i: number) => ({
  timeStart: t0,
  timeEnd: t0 + 10_000,
  protocol: 6,
  srcIp: `10.0.${i >> 8}.${i & 255}`,
  srcPort: 1000 + i,
  dstIp: '10.9.0.1',
  dstPort: 443,
  txBytes: i * 10,
  rxBytes: i * 20,
  txPackets: i,
  rxPackets: 2 * i,
  attributes: {
    'src.k8s.pod.name': `pod-${i % 3}`,
    'cost.usd': i / 100,
    'flow.initiator_known': i % 2 === 0,
  },
});

describe('FlowBatch', () => {
  it('grows past its capacity and keeps every column and attribute', () => {
    const b = new FlowBatch(2);
    for (let i = 0; i < 1000; i++) b.push(flow(i));
    expect(b.length).toBe(1000);
    expect(b.capacity).toBeGreaterThanOrEqual(1000);
    const r = b.row(777);
    expect([r.srcIp, r.srcPort, r.dstIp, r.txBytes, r.rxPackets, r.family]).toEqual([
      '10.0.3.9',
      1777,
      '10.9.0.1',
      7770,
      1554,
      4,
    ]);
    expect(r.attributes).toEqual({
      'cost.usd': 7.77,
      'flow.initiator_known': false,
      'src.k8s.pod.name': 'pod-0',
    });
    // Dictionary encoding: three distinct pod names, one entry each (+ the absent slot).
    const col = b.column('src.k8s.pod.name');
    expect(col?.kind === 'string' && col.dict.length).toBe(4);
  });

  it('rejects rows whose addresses are not IP literals', () => {
    const b = new FlowBatch();
    expect(b.push({ ...flow(1), dstIp: 'example.com' })).toBe(-1);
    expect(b.length).toBe(0);
  });

  it('seals: the mutating methods throw, clone gives a writable copy', () => {
    const b = FlowBatch.from([flow(1), flow(2)]).seal();
    expect(b.readonly).toBe(true);
    expect(() => b.setAttribute(0, 'x', 'y')).toThrow(/read-only/);
    expect(() => b.push(flow(3))).toThrow(/read-only/);
    const c = b.clone();
    c.setAttribute(0, 'src.k8s.pod.name', 'changed');
    expect(c.getAttribute(0, 'src.k8s.pod.name')).toBe('changed');
    expect(b.getAttribute(0, 'src.k8s.pod.name')).toBe('pod-1');
  });

  it('a sealed batch refuses writes through an existing column too', () => {
    const b = FlowBatch.from([flow(1)]).seal();
    const col = b.ensureColumn('src.k8s.pod.name', 'string');
    expect(() => col.set(0, 'MUTATED')).toThrow(/read-only/);
    expect(b.getAttribute(0, 'src.k8s.pod.name')).toBe('pod-1');
  });

  it('a row whose attribute kind conflicts is refused whole, not half-written', () => {
    const b = FlowBatch.from([flow(1)]);
    expect(() => b.push({ ...flow(2), attributes: { 'cost.usd': 'cheap' } })).toThrow(/holds number values/);
    expect(b.length).toBe(1);
    b.push(flow(3));
    expect(b.row(1).srcPort).toBe(1003);
  });

  it('keeps the IPv4-mapped form for IPv6 flows, and refuses IPv6 ends on IPv4 flows', () => {
    const b = FlowBatch.from([{ ...flow(1), family: 6, srcIp: '::ffff:10.0.0.1', dstIp: '2001:db8::1' }]);
    expect([b.srcIp(0), b.dstIp(0)]).toEqual(['::ffff:10.0.0.1', '2001:db8::1']);
    expect(b.push({ ...flow(2), family: 4, dstIp: '2001:db8::1' })).toBe(-1);
  });

  it('selects rows in the order given, with their attributes', () => {
    const b = FlowBatch.from([flow(1), flow(2), flow(3)]);
    const s = b.select([2, 0]);
    expect([...s].map((r) => [r.srcPort, r.get('src.k8s.pod.name')])).toEqual([
      [1003, 'pod-0'],
      [1001, 'pod-1'],
    ]);
  });

  it('refuses to mix value kinds in one attribute column', () => {
    const b = FlowBatch.from([flow(1)]);
    expect(() => b.setAttribute(0, 'cost.usd', 'cheap')).toThrow(/holds number values/);
  });

  it('keeps flags', () => {
    const b = FlowBatch.from([{ ...flow(1), flags: FlowFlags.InitiatorKnown | FlowFlags.Closed }]);
    expect(b.flags[0] & FlowFlags.Closed).toBeTruthy();
  });
});

describe('FlowBatch.wrap', () => {
  it('adopts filled columns without copying, and refuses columns of the wrong length', () => {
    const filled = FlowBatch.from([
      { timeStart: 1, timeEnd: 2, protocol: 6, srcIp: '10.0.0.1', dstIp: '10.0.0.2', txBytes: 5 },
      { timeStart: 1, timeEnd: 2, protocol: 17, srcIp: 'fd00::1', dstIp: 'fd00::2', rxBytes: 7 },
    ]);
    const wrapped = FlowBatch.wrap(filled, 'cumulative');
    expect(wrapped.txBytes).toBe(filled.txBytes);
    expect(wrapped.temporality).toBe('cumulative');
    expect(wrapped.row(1).dstIp).toBe('fd00::2');
    wrapped.reserve(10);
    expect(wrapped.row(1).rxBytes).toBe(7);
    expect(() => FlowBatch.wrap({ ...filled, length: 3 }, 'delta')).toThrow(/family has 2 values, not 3/);
    expect(FlowBatch.wrap(new FlowBatch(0), 'delta').length).toBe(0);
  });

  it('adopts a filled number column as an attribute, NaN meaning absent', () => {
    const b = FlowBatch.from([
      { timeStart: 1, timeEnd: 2, protocol: 6, srcIp: '10.0.0.1', dstIp: '10.0.0.2' },
      { timeStart: 1, timeEnd: 2, protocol: 6, srcIp: '10.0.0.3', dstIp: '10.0.0.4' },
    ]);
    const ids = new Float64Array([42, Number.NaN]);
    expect(b.adoptNumberColumn('conntrack.id', ids).values).toBe(ids);
    expect(b.row(0).get('conntrack.id')).toBe(42);
    expect(b.row(1).attributes).toEqual({});
    expect(() => b.adoptNumberColumn('conntrack.id', ids)).toThrow(/already exists/);
    expect(() => b.adoptNumberColumn('short', new Float64Array(1))).toThrow(/capacity is 2/);
    expect(() => b.seal().adoptNumberColumn('x', ids)).toThrow(/read-only/);
  });
});

describe('DNAT backend', () => {
  const dialled = {
    timeStart: 0,
    timeEnd: 1000,
    protocol: 6,
    srcIp: '10.0.0.1',
    srcPort: 40000,
    dstIp: '10.96.0.10',
    dstPort: 53,
    backendIp: '10.0.3.7',
    backendPort: 5353,
  };

  it('keeps the real backend beside the dialled destination and sets the Dnat flag', () => {
    const b = FlowBatch.from([dialled, { ...dialled, backendIp: undefined, backendPort: undefined }]);
    expect(b.row(0).dstIp).toBe('10.96.0.10');
    expect(b.row(0).backendIp).toBe('10.0.3.7');
    expect(b.row(0).backendPort).toBe(5353);
    expect(b.flags[0] & FlowFlags.Dnat).toBe(FlowFlags.Dnat);
    expect(b.row(1).backendIp).toBeUndefined();
    expect(b.flags[1] & FlowFlags.Dnat).toBe(0);
    const picked = b.select([1, 0]);
    expect(picked.row(1).backendIp).toBe('10.0.3.7');
    expect(picked.snapshot).toBe(false);
  });

  it('survives the flow record round trip, and only translated rows carry backend fields', () => {
    const b = FlowBatch.from([dialled, { ...dialled, backendIp: undefined }]);
    const lines = encodeFlowRecords(b);
    expect(lines[0]).toContain('"backend_ip":"10.0.3.7","backend_port":5353');
    expect(lines[1]).not.toContain('backend');
    const back = FlowBatch.from(lines.map((l) => (decodeFlowRecord(l) as { ok: true; flow: never }).flow));
    expect(encodeFlowRecords(back)).toEqual(lines);
    expect(decodeFlowRecord(lines[1].replace('"attributes"', '"backend_port":1,"attributes"'))).toMatchObject(
      {
        ok: false,
        error: 'backend_port: given without backend_ip',
      },
    );
  });

  it('refuses an IPv6 backend on an IPv4 flow', () => {
    expect(new FlowBatch().push({ ...dialled, family: 4, backendIp: 'fd00::1' })).toBe(-1);
  });
});

describe('flow records', () => {
  it('encode → decode → encode is the identity', () => {
    const b = FlowBatch.from([flow(1), flow(2), { ...flow(3), attributes: {} }]);
    const lines = encodeFlowRecords(b);
    expect(lines[0]).toBe(
      '{"time_start":"2026-01-01T00:00:00.000Z","time_end":"2026-01-01T00:00:10.000Z","family":4,"protocol":6,' +
        '"src_ip":"10.0.0.1","src_port":1001,"dst_ip":"10.9.0.1","dst_port":443,"tx_bytes":10,"rx_bytes":20,' +
        '"tx_packets":1,"rx_packets":2,"attributes":{"cost.usd":0.01,"flow.initiator_known":false,"src.k8s.pod.name":"pod-1"}}\n',
    );
    const again = new FlowBatch();
    for (const line of lines) {
      const d = decodeFlowRecord(line);
      if (!d.ok) throw new Error(d.error);
      again.push(d.flow);
    }
    expect(encodeFlowRecords(again)).toEqual(lines);
  });

  it('accepts offsets, converting to UTC, and keeps an attribute called __proto__', () => {
    const d = decodeFlowRecord(
      '{"time_start":"2026-01-01T01:00:00+01:00","time_end":"2026-01-01T00:00:10.5Z","family":4,"protocol":6,"src_ip":"1.1.1.1","dst_ip":"1.1.1.2","attributes":{"__proto__":"x"}}',
    );
    if (!d.ok) throw new Error(d.error);
    const b = FlowBatch.from([d.flow]);
    const line = encodeFlowRecords(b)[0];
    expect(line).toContain('"time_start":"2026-01-01T00:00:00.000Z","time_end":"2026-01-01T00:00:10.500Z"');
    expect(line).toContain('"attributes":{"__proto__":"x"}');
  });

  it.each([
    ['{', /not JSON/],
    ['[]', /not a JSON object/],
    ['{"time_start":"x"}', /time_start/],
    [
      '{"time_start":"2026-01-01T00:00:00Z","time_end":"2026-01-01T00:00:00Z","family":5,"protocol":6,"src_ip":"1.1.1.1","dst_ip":"1.1.1.1"}',
      /family/,
    ],
    [
      '{"time_start":"2026-01-01T00:00:00Z","time_end":"2026-01-01T00:00:00Z","family":4,"protocol":6,"src_ip":"1.1.1.1","dst_ip":"1.1.1.1","tx_bytes":-1}',
      /tx_bytes/,
    ],
    [
      '{"time_start":"2026-01-01T00:00:00Z","time_end":"2026-01-01T00:00:00Z","family":4,"protocol":6,"src_ip":"1.1.1.1","dst_ip":"1.1.1.1","bytes":1}',
      /^unknown field: key 7 of the object is not a flow record field$/,
    ],
    [
      '{"time_start":"2026-01-01T00:00:00Z","time_end":"2026-01-01T00:00:00Z","family":4,"protocol":6,"src_ip":"1.1.1.1","dst_ip":"1.1.1.1","attributes":{"a":[1]}}',
      /^attributes: key 1 holds neither a string, a number nor a boolean$/,
    ],
    [
      '{"time_start":"Jan 2 2026","time_end":"2026-01-01T00:00:00Z","family":4,"protocol":6,"src_ip":"1.1.1.1","dst_ip":"1.1.1.1"}',
      /^time_start: not an RFC 3339 time such as 2026-01-01T00:00:00.000Z$/,
    ],
    [
      '{"time_start":"2026-01-01T00:00:00","time_end":"2026-01-01T00:00:00Z","family":4,"protocol":6,"src_ip":"1.1.1.1","dst_ip":"1.1.1.1"}',
      /not an RFC 3339 time/,
    ],
    [
      '{"time_start":"2026-01-01T00:00:00Z","time_end":"2026-01-01T00:00:00Z","family":4,"protocol":6,"src_ip":"1.1.1.1","dst_ip":"2001:db8::1"}',
      /^dst_ip: an IPv6 address in a family 4 record$/,
    ],
    [
      '{"time_start":"2026-01-01T00:00:00Z","time_end":"2026-01-01T00:00:00Z","family":4,"protocol":6,"src_ip":"example.com","dst_ip":"1.1.1.1"}',
      /^src_ip: not an IP address$/,
    ],
  ])('names what is wrong in %s, never what the line holds', (line, message) => {
    const d = decodeFlowRecord(line);
    expect(d.ok).toBe(false);
    if (!d.ok) {
      expect(d.error).toMatch(message);
      // A line may be anything (a mistyped path: /etc/shadow); the error goes to logs.
      expect(d.error).not.toMatch(/Jan 2|example\.com|2001:db8|bytes"|"a"|\{/);
    }
  });
});

describe('StringColumn.append', () => {
  it('select() copies dictionaries verbatim, so codes stay right even when a value appears twice', () => {
    const b = FlowBatch.from([
      { timeStart: 0, timeEnd: 1, protocol: 6, srcIp: '10.0.0.1', dstIp: '10.0.0.2' },
      { timeStart: 0, timeEnd: 1, protocol: 6, srcIp: '10.0.0.1', dstIp: '10.0.0.3' },
      { timeStart: 0, timeEnd: 1, protocol: 6, srcIp: '10.0.0.1', dstIp: '10.0.0.4' },
    ]);
    const col = b.ensureColumn('dst.k8s.pod.name', 'string');
    col.codes[0] = col.append('db-0');
    col.codes[1] = col.append('brand-new');
    col.codes[2] = col.append('db-0');
    const copy = b.select(null);
    expect([0, 1, 2].map((i) => copy.getAttribute(i, 'dst.k8s.pod.name'))).toEqual([
      'db-0',
      'brand-new',
      'db-0',
    ]);
    // The index is built when first needed, and a later code() finds appended values.
    expect(
      copy.column('dst.k8s.pod.name')?.kind === 'string' &&
        (copy.column('dst.k8s.pod.name') as never as { code(v: string): number }).code('brand-new'),
    ).toBe(2);
  });
});

describe('StringColumn.share', () => {
  const rows = (n: number) =>
    FlowBatch.from(
      Array.from({ length: n }, (_, i) => ({
        timeStart: 0,
        timeEnd: 1,
        protocol: 6,
        srcIp: '10.0.0.1',
        dstIp: `10.0.0.${i + 2}`,
      })),
    );

  it('batches read one dictionary their writer keeps appending to; copies share it too', () => {
    const dict = ['', 'db-0'];
    const a = rows(2);
    const col = a.ensureColumn('dst.k8s.pod.name', 'string');
    col.share(dict);
    col.codes[0] = 1;
    dict.push('web-1');
    col.codes[1] = 2;
    const copy = a.select([1, 0]);
    const copied = copy.column('dst.k8s.pod.name') as typeof col;
    expect(copied.shared).toBe(true);
    expect(copied.dict).toBe(dict);
    expect([0, 1].map((i) => copy.getAttribute(i, 'dst.k8s.pod.name'))).toEqual(['web-1', 'db-0']);
  });

  it('the first write of the batch’s own copies the dictionary: its owner and other batches never see it', () => {
    const dict = ['', 'db-0'];
    const a = rows(1);
    const b = rows(1);
    for (const batch of [a, b]) {
      const c = batch.ensureColumn('dst.k8s.pod.name', 'string');
      c.share(dict);
      c.codes[0] = 1;
    }
    a.setAttribute(0, 'dst.k8s.pod.name', 'mine');
    expect(dict).toEqual(['', 'db-0']);
    expect((a.column('dst.k8s.pod.name') as { shared: boolean }).shared).toBe(false);
    expect(a.getAttribute(0, 'dst.k8s.pod.name')).toBe('mine');
    expect(b.getAttribute(0, 'dst.k8s.pod.name')).toBe('db-0');
    // Existing values are found by the index built over the copy.
    expect((a.column('dst.k8s.pod.name') as { code(v: string): number }).code('db-0')).toBe(1);
  });

  it('refuses a column that already has values, and a sealed batch', () => {
    const a = rows(1);
    a.setAttribute(0, 'dst.k8s.pod.name', 'x');
    expect(() => (a.column('dst.k8s.pod.name') as { share(d: string[]): void }).share([''])).toThrow(
      /already has values/,
    );
    const b = rows(1);
    const col = b.ensureColumn('dst.k8s.pod.name', 'string');
    b.seal();
    expect(() => col.share([''])).toThrow(/read-only/);
  });
});
