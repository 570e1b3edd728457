import { FlowBatch, FlowFlags } from '@netmon/core';
import { describe, expect, it } from 'vitest';
import {
  ClosedEntries,
  type DecodeCounts,
  decodeEntries,
  detectLayout,
  newCounts,
  type ValueLayout,
} from './layout.js';
import {
  CT,
  type CtEntry,
  connectionKey,
  ICMP,
  ICMPV6,
  mapRead,
  serviceKey,
  splitValue,
  TCP,
  TUPLE,
  totalValue,
  UDP,
} from './testdata/entries.js';

const KNOWN = FlowFlags.InitiatorKnown;
const CLOSED = FlowFlags.Closed;
const CLOSING = CT.RX_CLOSING | CT.TX_CLOSING;

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');

/** Decodes `entries` of one map into a fresh batch (or `into`), as the receiver does per map. */
function decode(
  family: 4 | 6,
  entries: readonly CtEntry[],
  layout: ValueLayout,
  expiredBefore = Number.NaN,
  into = new FlowBatch(4, 'cumulative'),
): { batch: FlowBatch; counts: DecodeCounts } {
  const r = mapRead(entries, { keySize: family === 4 ? 14 : 38 });
  const counts = newCounts();
  decodeEntries(family, r.keys, r.values, r.count, layout, expiredBefore, into, counts);
  return { batch: into, counts };
}

const endpoint = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

/** A batch's rows as plain values. */
function view(b: FlowBatch) {
  return [...b].map((r) => ({
    family: r.family,
    protocol: r.protocol,
    src: endpoint(r.srcIp, r.srcPort),
    dst: endpoint(r.dstIp, r.dstPort),
    tx: r.txBytes,
    rx: r.rxBytes,
    txp: r.txPackets,
    rxp: r.rxPackets,
    flags: r.flags,
  }));
}

/** What detectLayout finds in `entries`: the layout it decides on (if any) and the entries for each. */
const evidence = (family: 4 | 6, entries: readonly CtEntry[]) => {
  const r = mapRead(entries, { keySize: family === 4 ? 14 : 38 });
  return detectLayout(r.values, r.keys, family === 4 ? 14 : 38, r.count);
};
const detect = (family: 4 | 6, entries: readonly CtEntry[]) => evidence(family, entries).layout;

/** A pod on this node (10.0.1.5) opened a connection to 10.0.2.7:443. */
const podToServer = { opener: '10.0.1.5', openerPort: 40000, responder: '10.0.2.7', responderPort: 443 };

describe('cilium test entries: Cilium’s own bytes', () => {
  it('a connection key is the reversed tuple: opener, responder, responder port, opener port (network order), protocol, flags', () => {
    expect(hex(connectionKey(podToServer))).toBe('0a 00 01 05 0a 00 02 07 01 bb 9c 40 06 00');
    expect(hex(connectionKey({ ...podToServer, tuple: TUPLE.IN }))).toBe(
      '0a 00 01 05 0a 00 02 07 01 bb 9c 40 06 01',
    );
    expect(connectionKey({ ...podToServer, opener: 'fd00::5', responder: 'fd00::7' })).toHaveLength(38);
  });

  it('a service key keeps the packet order with the ports swapped: VIP, client, client port, service port', () => {
    expect(
      hex(serviceKey({ vip: '10.96.0.10', servicePort: 443, client: '10.0.1.5', clientPort: 40000 })),
    ).toBe('0a 60 00 0a 0a 00 01 05 9c 40 01 bb 06 04');
  });

  it('values: little-endian u64 counters at 0, 8, 16, 24; lifetime u32 at 32; flags u16 at 36', () => {
    const v = splitValue({
      rxPackets: 3,
      rxBytes: 0x0102,
      txPackets: 5,
      txBytes: 2 ** 32 + 1,
      lifetime: 0x01020304,
      flags: CLOSING,
    });
    expect(v).toHaveLength(56);
    expect(hex(v.subarray(0, 32))).toBe(
      '03 00 00 00 00 00 00 00 02 01 00 00 00 00 00 00 05 00 00 00 00 00 00 00 01 00 00 00 01 00 00 00',
    );
    expect(hex(v.subarray(32, 38))).toBe('04 03 02 01 03 00');
    const t = totalValue({ packets: 7, bytes: 900, natAddress: '192.0.2.1' });
    expect(hex(t.subarray(0, 32))).toBe(
      'c0 00 02 01 00 00 00 00 00 00 00 00 00 00 00 00 07 00 00 00 00 00 00 00 84 03 00 00 00 00 00 00',
    );
  });
});

describe('decodeEntries: split layout (Cilium 1.15 and earlier)', () => {
  it('an OUT entry: src is the opener (key daddr:sport), dst the responder (saddr:dport); its tx is what the opener sent', () => {
    const { batch, counts } = decode(
      4,
      [
        {
          key: connectionKey(podToServer),
          value: splitValue({ rxPackets: 30, rxBytes: 40_000, txPackets: 20, txBytes: 1500 }),
        },
      ],
      'split',
    );
    expect(view(batch)).toEqual([
      {
        family: 4,
        protocol: TCP,
        src: '10.0.1.5:40000',
        dst: '10.0.2.7:443',
        tx: 1500,
        rx: 40_000,
        txp: 20,
        rxp: 30,
        flags: KNOWN,
      },
    ]);
    expect(batch.temporality).toBe('cumulative');
    expect(batch.backendIp(0)).toBeUndefined();
    expect(counts).toEqual({
      entries: 1,
      connections: 1,
      service: 0,
      related: 0,
      pairs: 0,
      expired: 0,
      oldestExpired: Infinity,
    });
  });

  it('an IN entry (a remote host opened it to a local server): the endpoint’s rx is what the opener sent, so it becomes tx', () => {
    const { batch } = decode(
      4,
      [
        {
          key: connectionKey({
            opener: '203.0.113.9',
            openerPort: 51000,
            responder: '10.0.1.5',
            responderPort: 8080,
            tuple: TUPLE.IN,
          }),
          // The local server received 12 packets / 1200 bytes and answered 50 / 64000.
          value: splitValue({ rxPackets: 12, rxBytes: 1200, txPackets: 50, txBytes: 64_000 }),
        },
        {
          key: connectionKey({
            opener: '10.0.3.9',
            openerPort: 5353,
            responder: '10.0.1.5',
            responderPort: 53,
            protocol: UDP,
            tuple: TUPLE.IN,
          }),
          value: splitValue({ rxPackets: 1, rxBytes: 80, txPackets: 1, txBytes: 240 }),
        },
      ],
      'split',
    );
    expect(view(batch)).toEqual([
      {
        family: 4,
        protocol: TCP,
        src: '203.0.113.9:51000',
        dst: '10.0.1.5:8080',
        tx: 1200,
        rx: 64_000,
        txp: 12,
        rxp: 50,
        flags: KNOWN,
      },
      {
        family: 4,
        protocol: UDP,
        src: '10.0.3.9:5353',
        dst: '10.0.1.5:53',
        tx: 80,
        rx: 240,
        txp: 1,
        rxp: 1,
        flags: KNOWN,
      },
    ]);
  });

  it('counters past 2^32 are exact (u64 read as two halves)', () => {
    const big = 5 * 2 ** 32 + 123;
    const { batch } = decode(
      4,
      [
        {
          key: connectionKey(podToServer),
          value: splitValue({ rxPackets: 2 ** 33, rxBytes: big, txPackets: 1, txBytes: 2 ** 40 }),
        },
      ],
      'split',
    );
    expect(view(batch)[0]).toMatchObject({ tx: 2 ** 40, rx: big, txp: 1, rxp: 2 ** 33 });
  });
});

describe('decodeEntries: total layout (Cilium 1.16 and later)', () => {
  it('one packets/bytes pair of both directions, reported as tx with rx 0, for OUT and IN entries; the first 16 bytes are ignored', () => {
    const { batch } = decode(
      4,
      [
        { key: connectionKey(podToServer), value: totalValue({ packets: 50, bytes: 41_500 }) },
        {
          key: connectionKey({
            opener: '203.0.113.9',
            openerPort: 51000,
            responder: '10.0.1.5',
            responderPort: 8080,
            tuple: TUPLE.IN,
          }),
          // 1.19+: a NAT address in the first bytes.
          value: totalValue({ packets: 62, bytes: 65_200, natAddress: '192.0.2.1' }),
        },
      ],
      'total',
    );
    expect(view(batch)).toEqual([
      {
        family: 4,
        protocol: TCP,
        src: '10.0.1.5:40000',
        dst: '10.0.2.7:443',
        tx: 41_500,
        rx: 0,
        txp: 50,
        rxp: 0,
        flags: KNOWN,
      },
      {
        family: 4,
        protocol: TCP,
        src: '203.0.113.9:51000',
        dst: '10.0.1.5:8080',
        tx: 65_200,
        rx: 0,
        txp: 62,
        rxp: 0,
        flags: KNOWN,
      },
    ]);
  });

  it('what would be split counters in the first 16 bytes are not read in the total layout', () => {
    const { batch } = decode(
      4,
      [
        {
          key: connectionKey({ ...podToServer, tuple: TUPLE.IN }),
          value: splitValue({ rxPackets: 30, rxBytes: 40_000, txPackets: 20, txBytes: 1500 }),
        },
      ],
      'total',
    );
    expect(view(batch)[0]).toMatchObject({ tx: 1500, rx: 0, txp: 20, rxp: 0 });
  });
});

describe('decodeEntries: a connection between two endpoints of this node', () => {
  const out = connectionKey(podToServer);
  const inTwin = connectionKey({ ...podToServer, tuple: TUPLE.IN });

  it('its OUT and IN entries (same key bytes but the flag) are one connection, reported from the OUT entry in either order', () => {
    // The client's endpoint sent 1500 bytes and got 40000 back; the server's endpoint saw the same.
    const outValue = splitValue({ rxPackets: 30, rxBytes: 40_000, txPackets: 20, txBytes: 1500 });
    const inValue = splitValue({ rxPackets: 20, rxBytes: 1500, txPackets: 30, txBytes: 40_000 });
    for (const entries of [
      [
        { key: out, value: outValue },
        { key: inTwin, value: inValue },
      ],
      [
        { key: inTwin, value: inValue },
        { key: out, value: outValue },
      ],
    ]) {
      const { batch, counts } = decode(4, entries, 'split');
      expect(view(batch)).toEqual([
        {
          family: 4,
          protocol: TCP,
          src: '10.0.1.5:40000',
          dst: '10.0.2.7:443',
          tx: 1500,
          rx: 40_000,
          txp: 20,
          rxp: 30,
          flags: KNOWN,
        },
      ]);
      expect(counts).toEqual({
        entries: 2,
        connections: 1,
        service: 0,
        related: 0,
        pairs: 1,
        expired: 0,
        oldestExpired: Infinity,
      });
    }
  });

  it('in the total layout both entries count the same packets: reported once, not summed', () => {
    const { batch, counts } = decode(
      4,
      [
        { key: out, value: totalValue({ packets: 50, bytes: 41_500 }) },
        { key: inTwin, value: totalValue({ packets: 50, bytes: 41_500 }) },
      ],
      'total',
    );
    expect(view(batch)).toEqual([expect.objectContaining({ tx: 41_500, rx: 0, txp: 50 })]);
    expect(counts.pairs).toBe(1);
  });

  it('among thousands of entries (IPv4 and IPv6), every IN twin is found and no other IN entry is taken for one', () => {
    for (const family of [4, 6] as const) {
      const entries: CtEntry[] = [];
      const key = (i: number, tuple: number, protocol = TCP) =>
        connectionKey({
          opener: family === 4 ? `10.1.${i >> 8}.${i & 255}` : `fd00::${i.toString(16)}`,
          openerPort: 30000 + (i % 1000),
          responder: family === 4 ? '10.0.2.7' : 'fd00::7',
          responderPort: 443,
          protocol,
          tuple,
        });
      for (let i = 0; i < 3000; i++) {
        entries.push({ key: key(i, TUPLE.OUT), value: splitValue({ txPackets: 1, txBytes: i }) });
        // Every third connection is local (an IN twin); the others have an IN entry of another protocol.
        if (i % 3 === 0)
          entries.push({ key: key(i, TUPLE.IN), value: splitValue({ rxPackets: 1, rxBytes: i }) });
        else entries.push({ key: key(i, TUPLE.IN, UDP), value: splitValue({ rxPackets: 1, rxBytes: i }) });
      }
      const { batch, counts } = decode(family, entries, 'split');
      expect(counts).toMatchObject({ entries: 6000, connections: 5000, pairs: 1000 });
      expect(batch.length).toBe(5000);
      let udp = 0;
      for (let r = 0; r < batch.length; r++) if (batch.protocol[r] === UDP) udp++;
      expect(udp).toBe(2000);
    }
  });

  it('an IN entry whose tuple differs from every OUT entry (another port, another protocol) is its own connection', () => {
    const { batch, counts } = decode(
      4,
      [
        { key: out, value: splitValue({ txPackets: 1, txBytes: 60 }) },
        {
          key: connectionKey({ ...podToServer, openerPort: 40001, tuple: TUPLE.IN }),
          value: splitValue({ rxPackets: 1, rxBytes: 60 }),
        },
        {
          key: connectionKey({ ...podToServer, protocol: UDP, tuple: TUPLE.IN }),
          value: splitValue({ rxPackets: 1, rxBytes: 70 }),
        },
      ],
      'split',
    );
    expect(view(batch).map((r) => [r.protocol, r.src, r.tx])).toEqual([
      [TCP, '10.0.1.5:40000', 60],
      [TCP, '10.0.1.5:40001', 60],
      [UDP, '10.0.1.5:40000', 70],
    ]);
    expect(counts.pairs).toBe(0);
  });
});

describe('decodeEntries: entries that are not connections', () => {
  it('SERVICE entries (a frontend → backend choice) and RELATED entries (ICMP errors of a connection, OUT or IN) are counted, never reported', () => {
    const { batch, counts } = decode(
      4,
      [
        {
          key: serviceKey({ vip: '10.96.0.10', servicePort: 443, client: '10.0.1.5', clientPort: 40000 }),
          // A service entry's backend id sits where rx_bytes was: never a counter.
          value: totalValue({ backendId: 17 }),
        },
        { key: connectionKey(podToServer), value: splitValue({ txPackets: 4, txBytes: 400 }) },
        {
          key: connectionKey({
            opener: '10.0.1.5',
            responder: '10.0.2.7',
            protocol: ICMP,
            tuple: TUPLE.OUT | TUPLE.RELATED,
          }),
          value: splitValue({ txPackets: 1, txBytes: 90 }),
        },
        {
          key: connectionKey({
            opener: '10.0.1.5',
            responder: '10.0.2.7',
            protocol: ICMP,
            tuple: TUPLE.IN | TUPLE.RELATED,
          }),
          value: splitValue({ rxPackets: 1, rxBytes: 90 }),
        },
      ],
      'split',
    );
    expect(view(batch).map((r) => [r.src, r.dst, r.tx])).toEqual([['10.0.1.5:40000', '10.0.2.7:443', 400]]);
    expect(counts).toEqual({
      entries: 4,
      connections: 1,
      service: 1,
      related: 2,
      pairs: 0,
      expired: 0,
      oldestExpired: Infinity,
    });
  });
});

describe('decodeEntries: addresses, ports and protocols', () => {
  it('IPv6 entries (38-byte keys): 16-byte addresses, ports and protocol at 32..36, family 6', () => {
    const { batch } = decode(
      6,
      [
        {
          key: connectionKey({
            opener: 'fd00:10:244:1::5',
            openerPort: 40000,
            responder: '2001:db8::80',
            responderPort: 443,
          }),
          value: splitValue({ rxPackets: 8, rxBytes: 9000, txPackets: 6, txBytes: 700 }),
        },
        {
          key: connectionKey({
            opener: 'fd00:10:244:2::9',
            openerPort: 33000,
            responder: 'fd00:10:244:1::5',
            responderPort: 53,
            protocol: UDP,
            tuple: TUPLE.IN,
          }),
          value: splitValue({ rxPackets: 1, rxBytes: 90, txPackets: 1, txBytes: 200 }),
        },
      ],
      'split',
    );
    expect(view(batch)).toEqual([
      {
        family: 6,
        protocol: TCP,
        src: '[fd00:10:244:1::5]:40000',
        dst: '[2001:db8::80]:443',
        tx: 700,
        rx: 9000,
        txp: 6,
        rxp: 8,
        flags: KNOWN,
      },
      {
        family: 6,
        protocol: UDP,
        src: '[fd00:10:244:2::9]:33000',
        dst: '[fd00:10:244:1::5]:53',
        tx: 90,
        rx: 200,
        txp: 1,
        rxp: 1,
        flags: KNOWN,
      },
    ]);
  });

  it('IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d) in the batch', () => {
    const { batch } = decode(4, [{ key: connectionKey(podToServer), value: splitValue({}) }], 'split');
    expect(hex(batch.srcAddr.subarray(0, 16))).toBe('00 00 00 00 00 00 00 00 00 00 ff ff 0a 00 01 05');
    expect(hex(batch.dstAddr.subarray(0, 16))).toBe('00 00 00 00 00 00 00 00 00 00 ff ff 0a 00 02 07');
  });

  it('ports are read in network byte order (258 and 65534, not 513 and 65279)', () => {
    const { batch } = decode(
      4,
      [
        {
          key: connectionKey({ ...podToServer, openerPort: 258, responderPort: 65534, protocol: UDP }),
          value: splitValue({}),
        },
      ],
      'split',
    );
    expect([batch.srcPort[0], batch.dstPort[0]]).toEqual([258, 65534]);
  });

  it('ICMP echo: the identifier Cilium keeps in sport is the src port, dst port 0; ICMPv6 alike', () => {
    const v4 = decode(
      4,
      [
        {
          key: connectionKey({
            opener: '10.0.1.5',
            openerPort: 0x1234,
            responder: '1.1.1.1',
            protocol: ICMP,
          }),
          value: splitValue({ rxPackets: 3, rxBytes: 252, txPackets: 3, txBytes: 252 }),
        },
      ],
      'split',
    );
    expect(view(v4.batch)).toEqual([
      {
        family: 4,
        protocol: ICMP,
        src: '10.0.1.5:4660',
        dst: '1.1.1.1:0',
        tx: 252,
        rx: 252,
        txp: 3,
        rxp: 3,
        flags: KNOWN,
      },
    ]);
    const v6 = decode(
      6,
      [
        {
          key: connectionKey({
            opener: 'fd00::5',
            openerPort: 7,
            responder: '2001:db8::1',
            protocol: ICMPV6,
          }),
          value: totalValue({ packets: 2, bytes: 208 }),
        },
      ],
      'total',
    );
    expect(view(v6.batch)[0]).toMatchObject({ protocol: ICMPV6, src: '[fd00::5]:7', dst: '[2001:db8::1]:0' });
  });

  it('rows are appended after what the batch holds, growing it past its capacity', () => {
    const batch = new FlowBatch(1, 'cumulative');
    decode(4, [{ key: connectionKey(podToServer), value: splitValue({ txBytes: 1 }) }], 'split', NaN, batch);
    const more = [1, 2, 3].map((i) => ({
      key: connectionKey({ opener: `fd00::${i}`, openerPort: i, responder: 'fd00::80', responderPort: 80 }),
      value: splitValue({ txBytes: 10 * i }),
    }));
    decode(6, more, 'split', NaN, batch);
    expect(batch.length).toBe(4);
    expect(view(batch).map((r) => [r.family, r.src, r.tx])).toEqual([
      [4, '10.0.1.5:40000', 1],
      [6, '[fd00::1]:1', 10],
      [6, '[fd00::2]:2', 20],
      [6, '[fd00::3]:3', 30],
    ]);
  });
});

describe('decodeEntries: expired entries', () => {
  // "now" in the entries' unit is 1000: Cilium's GC deletes an entry iff its lifetime < now.
  const entries = [
    // Both sides closed, past its close timeout: ended, counters final.
    { port: 1, lifetime: 999, flags: CLOSING | CT.SEEN_NON_SYN },
    // Past its lifetime but not closed both ways (an idle UDP flow, a half-closed TCP one).
    { port: 2, lifetime: 400, flags: CT.SEEN_NON_SYN },
    { port: 3, lifetime: 999, flags: CT.RX_CLOSING | CT.SEEN_NON_SYN },
    // Lifetime == now: not expired yet.
    { port: 4, lifetime: 1000, flags: CLOSING | CT.SEEN_NON_SYN },
    // Closed both ways, within its close timeout: still live.
    { port: 5, lifetime: 1010, flags: CLOSING | CT.SEEN_NON_SYN },
  ].map((e) => ({
    key: connectionKey({ ...podToServer, openerPort: e.port }),
    value: splitValue({ txPackets: 2, txBytes: 100 * e.port, lifetime: e.lifetime, flags: e.flags }),
  }));

  it('Closed only for an expired entry both sides closed; expired entries are counted and still reported', () => {
    const { batch, counts } = decode(4, entries, 'split', 1000);
    expect(view(batch).map((r) => [r.src, r.tx, r.flags])).toEqual([
      ['10.0.1.5:1', 100, KNOWN | CLOSED],
      ['10.0.1.5:2', 200, KNOWN],
      ['10.0.1.5:3', 300, KNOWN],
      ['10.0.1.5:4', 400, KNOWN],
      ['10.0.1.5:5', 500, KNOWN],
    ]);
    expect(counts.expired).toBe(3);
  });

  it('with the clock unknown (NaN) nothing is expired or Closed', () => {
    const { batch, counts } = decode(4, entries, 'split', Number.NaN);
    expect([...batch].every((r) => r.flags === KNOWN)).toBe(true);
    expect(counts.expired).toBe(0);
  });
});

describe('detectLayout', () => {
  const conn = (i: number, tuple: number = TUPLE.OUT) =>
    connectionKey({
      opener: '10.0.1.5',
      openerPort: 40000 + i,
      responder: '10.0.2.7',
      responderPort: 443,
      tuple,
    });

  it('split: entries whose first two u64 read as rx packets and bytes (at least 20 bytes a packet)', () => {
    expect(
      detect(4, [
        { key: conn(0), value: splitValue({ rxPackets: 3, rxBytes: 60, txPackets: 1, txBytes: 60 }) },
      ]),
    ).toBe('split');
    expect(
      detect(6, [
        {
          key: connectionKey({ opener: 'fd00::5', openerPort: 1, responder: 'fd00::7', responderPort: 80 }),
          value: splitValue({ rxPackets: 10, rxBytes: 14_000 }),
        },
      ]),
    ).toBe('split');
  });

  it('total: bytes without packets, or fewer than 20 bytes a packet (a 1.19+ NAT address where rx counters were)', () => {
    expect(detect(4, [{ key: conn(0), value: splitValue({ rxPackets: 0, rxBytes: 1500 }) }])).toBe('total');
    expect(
      detect(4, [{ key: conn(0), value: totalValue({ natAddress: '192.0.2.1', packets: 4, bytes: 400 }) }]),
    ).toBe('total');
    expect(detect(4, [{ key: conn(0), value: splitValue({ rxPackets: 10, rxBytes: 199 }) }])).toBe('total');
  });

  it('undecided: no entries, zero first halves (accounting off, or nothing received yet), only service and related entries', () => {
    expect(detect(4, [])).toBeUndefined();
    expect(detect(4, [{ key: conn(0), value: splitValue({ txPackets: 1, txBytes: 74 }) }])).toBeUndefined();
    expect(
      detect(4, [
        {
          // A backend id where rx_bytes was would read as "bytes without packets": service entries are skipped.
          key: serviceKey({ vip: '10.96.0.10', servicePort: 443, client: '10.0.1.5', clientPort: 40000 }),
          value: totalValue({ backendId: 17 }),
        },
        {
          key: connectionKey({
            opener: '10.0.1.5',
            responder: '10.0.2.7',
            protocol: ICMP,
            tuple: TUPLE.RELATED,
          }),
          value: splitValue({ rxPackets: 0, rxBytes: 90 }),
        },
      ]),
    ).toBeUndefined();
  });

  it('a clear majority of the entries that tell decides, not the first one: one odd entry among split ones changes nothing', () => {
    const split = Array.from({ length: 8 }, (_, i) => ({
      key: conn(i),
      value: splitValue({ rxPackets: 2, rxBytes: 120 }),
    }));
    // Fewer than 20 bytes a packet: no IP packet is that small.
    const contrary = { key: conn(9), value: splitValue({ rxPackets: 10, rxBytes: 5 }) };
    expect(detect(4, [...split, contrary])).toBe('split');
    expect(detect(4, [contrary, ...split])).toBe('split');
    expect(evidence(4, [contrary, ...split])).toEqual({ layout: 'split', split: 8, total: 1 });
    // Entries without counters in between do not count.
    expect(detect(4, [{ key: conn(20), value: splitValue({}) }, ...split.slice(0, 1)])).toBe('split');
    // And the other way round: total entries outvote a stray one that reads as rx counters.
    const nat = Array.from({ length: 8 }, (_, i) => ({
      key: conn(30 + i),
      value: totalValue({ natAddress: `192.0.2.${i + 1}`, packets: 4, bytes: 400 }),
    }));
    expect(detect(4, [split[0], ...nat])).toBe('total');
  });

  it('no clear majority (under four to one): undecided, asked again with the next read', () => {
    const split = (i: number) => ({ key: conn(i), value: splitValue({ rxPackets: 2, rxBytes: 120 }) });
    const odd = (i: number) => ({ key: conn(i), value: splitValue({ rxPackets: 10, rxBytes: 5 }) });
    expect(evidence(4, [split(0), odd(1)])).toEqual({ layout: undefined, split: 1, total: 1 });
    expect(evidence(4, [split(0), split(1), split(2), odd(3)])).toEqual({
      layout: undefined,
      split: 3,
      total: 1,
    });
    expect(evidence(4, [split(0), split(1), split(2), split(3), odd(4)])).toEqual({
      layout: 'split',
      split: 4,
      total: 1,
    });
  });

  it('BIG TCP: rx of up to 512 KiB a packet (GRO_MAX_SIZE, 8 × 65535 bytes) is split, whatever comes first', () => {
    // Cilium ≤ 1.15 counts skbs; with BIG TCP (IPv6 since Linux 5.19, IPv4 since 6.3) GRO builds packets
    // of up to gro_max_size, at most 524,280 bytes; Cilium sets 192 KiB by default.
    const big = (i: number, perPacket: number) => ({
      key: conn(i),
      value: splitValue({ rxPackets: 1000, rxBytes: 1000 * perPacket, txPackets: 400, txBytes: 26_000 }),
    });
    expect(detect(4, [big(0, 196_608)])).toBe('split');
    expect(detect(4, [big(0, 524_280)])).toBe('split');
    expect(detect(4, [big(0, 70_000), big(1, 300_000), big(2, 1500)])).toBe('split');
    expect(
      detect(6, [
        {
          key: connectionKey({ opener: 'fd00::5', openerPort: 1, responder: 'fd00::7', responderPort: 80 }),
          value: splitValue({ rxPackets: 50, rxBytes: 50 * 400_000 }),
        },
      ]),
    ).toBe('split');
    // Past any packet the kernel can build (1 MiB a packet and more) is not an rx counter pair.
    expect(detect(4, [big(0, 2 ** 20 + 1)])).toBe('total');
  });

  it('looks at a bounded number of entries: past 64 that tell, the rest are not read', () => {
    const split = Array.from({ length: 64 }, (_, i) => ({
      key: conn(i),
      value: splitValue({ rxPackets: 2, rxBytes: 120 }),
    }));
    const odd = Array.from({ length: 64 }, (_, i) => ({
      key: conn(100 + i),
      value: splitValue({ rxPackets: 10, rxBytes: 5 }),
    }));
    expect(evidence(4, [...split, ...odd])).toEqual({ layout: 'split', split: 64, total: 0 });
  });

  it('total (Cilium 1.16–1.18): an IN entry with its counters at 16/24 and zeros before, which the split layout never has (it counts the packet that created an IN entry in rx)', () => {
    // ct_create4/6 (bpf/lib/conntrack.h) sets rx_packets = 1 for a CT_INGRESS entry in the split layout; in
    // 1.16+ it sets packets = 1 at offset 16, and the 16 bytes before stay zero (reserved, backend id).
    expect(detect(4, [{ key: conn(0, TUPLE.IN), value: totalValue({ packets: 12, bytes: 9_400 }) }])).toBe(
      'total',
    );
  });
});

describe('ClosedEntries: an ended connection reported once', () => {
  // Keys of one IPv4 map: the same tuple as an OUT (flags 0) and an IN (flags 1) entry, and another.
  const key = (last: number, flags: number) =>
    Uint8Array.from([10, 0, 0, 1, 10, 0, 0, 2, 0, 80, 0x9c, last, 6, flags]);
  const keys = new Uint8Array([...key(0x40, 0), ...key(0x40, 1), ...key(0x41, 0)]);

  it('leaves out what the first read finds ended (reported before a restart, maybe), then reports each new one once', () => {
    const c = new ClosedEntries();
    c.next();
    expect(c.reported(keys, 0, 14)).toBe(true);
    c.next();
    // Still in the map: left out. A new ended entry: reported (false), then left out.
    expect(c.reported(keys, 0, 14)).toBe(true);
    expect(c.reported(keys, 28, 14)).toBe(false);
    c.next();
    expect(c.reported(keys, 28, 14)).toBe(true);
  });

  it("a local connection's IN twin, outliving its OUT entry, is the same connection: not reported again", () => {
    const c = new ClosedEntries();
    c.next();
    c.next();
    expect(c.reported(keys, 0, 14)).toBe(false); // the OUT entry, reported Closed
    c.next();
    // Cilium's GC removed the OUT entry; its IN twin (flags 1) is now the one left.
    expect(c.reported(keys, 14, 14)).toBe(true);
  });

  it('forgets what a read no longer finds: the tuple used again and ended again is reported again', () => {
    const c = new ClosedEntries();
    c.next();
    c.next();
    expect(c.reported(keys, 28, 14)).toBe(false);
    c.next(); // collected: not in this read
    c.next();
    expect(c.reported(keys, 28, 14)).toBe(false);
  });
});
