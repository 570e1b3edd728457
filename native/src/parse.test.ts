// The ctnetlink parser on hand-built messages: every field lands in its column, and malformed input —
// wrong attribute sizes, truncation, random corruption — is counted and skipped, never a crash.
// Needs no kernel access: the messages are built here, as the kernel lays them out.
import { describe, expect, it } from 'vitest';
import { parseConntrackMessages } from './index.js';

const NLA_F_NESTED = 0x8000;
// linux/netfilter/nfnetlink_conntrack.h
const CTA = {
  TUPLE_ORIG: 1,
  TUPLE_REPLY: 2,
  STATUS: 3,
  TIMEOUT: 7,
  MARK: 8,
  COUNTERS_ORIG: 9,
  COUNTERS_REPLY: 10,
  ID: 12,
  ZONE: 18,
};
const TUPLE = { IP: 1, PROTO: 2 };
const IP = { V4_SRC: 1, V4_DST: 2, V6_SRC: 3, V6_DST: 4 };
const PROTO = { NUM: 1, SRC_PORT: 2, DST_PORT: 3, ICMP_ID: 4, ICMP_TYPE: 5, ICMP_CODE: 6 };
const COUNTERS = { PACKETS: 1, BYTES: 2 };

type Attr = [type: number, payload: Buffer | Attr[]];

function attr([type, payload]: Attr): Buffer {
  const body = Array.isArray(payload) ? Buffer.concat(payload.map(attr)) : payload;
  const head = Buffer.alloc(4);
  head.writeUInt16LE(4 + body.length, 0);
  head.writeUInt16LE(type | (Array.isArray(payload) ? NLA_F_NESTED : 0), 2);
  const pad = Buffer.alloc((4 - ((4 + body.length) % 4)) % 4);
  return Buffer.concat([head, body, pad]);
}

function message(attrs: Attr[], msgType = 0 /* IPCTNL_MSG_CT_NEW */, family = 2): Buffer {
  const body = Buffer.concat(attrs.map(attr));
  const header = Buffer.alloc(16 + 4);
  header.writeUInt32LE(header.length + body.length, 0);
  header.writeUInt16LE((1 << 8) | msgType, 4); // NFNL_SUBSYS_CTNETLINK
  header[16] = family;
  return Buffer.concat([header, body]);
}

const u8 = (v: number) => Buffer.from([v]);
const be16 = (v: number) => Buffer.from([v >> 8, v & 255]);
const be32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};
const be64 = (v: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v));
  return b;
};
const v4 = (s: string) => Buffer.from(s.split('.').map(Number));

function tuple(src: string, dst: string, proto: number, sport: number, dport: number): Attr[] {
  return [
    [
      TUPLE.IP,
      [
        [IP.V4_SRC, v4(src)],
        [IP.V4_DST, v4(dst)],
      ],
    ],
    [
      TUPLE.PROTO,
      [
        [PROTO.NUM, u8(proto)],
        [PROTO.SRC_PORT, be16(sport)],
        [PROTO.DST_PORT, be16(dport)],
      ],
    ],
  ];
}

function tcpEntry(opts: { dnat?: boolean; id?: number } = {}): Attr[] {
  return [
    [CTA.TUPLE_ORIG, tuple('10.0.0.1', '10.96.0.10', 6, 40000, 80)],
    [
      CTA.TUPLE_REPLY,
      tuple(opts.dnat ? '10.0.3.7' : '10.96.0.10', '10.0.0.1', 6, opts.dnat ? 8080 : 80, 40000),
    ],
    [
      CTA.COUNTERS_ORIG,
      [
        [COUNTERS.PACKETS, be64(12)],
        [COUNTERS.BYTES, be64(2_000)],
      ],
    ],
    [
      CTA.COUNTERS_REPLY,
      [
        [COUNTERS.PACKETS, be64(800)],
        [COUNTERS.BYTES, be64(5_000_000_000)],
      ],
    ],
    [CTA.STATUS, be32(0x18e)],
    [CTA.TIMEOUT, be32(431999)],
    [CTA.MARK, be32(0x4000)],
    [CTA.ID, be32(opts.id ?? 3_000_000_001)],
    [CTA.ZONE, be16(7)],
  ];
}

describe('ctnetlink parser', () => {
  it('puts every field of a message in its column', () => {
    const r = parseConntrackMessages(
      Buffer.concat([message(tcpEntry()), message(tcpEntry({ dnat: true, id: 5 }))]),
    );
    expect(r).toMatchObject({ length: 2, messages: 2, malformed: 0 });
    expect([...r.family]).toEqual([4, 4]);
    expect([...r.protocol]).toEqual([6, 6]);
    expect([...r.src.subarray(0, 16)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 10, 0, 0, 1]);
    expect([...r.srcPort]).toEqual([40000, 40000]);
    expect([...r.dstPort]).toEqual([80, 80]);
    expect([...r.txBytes]).toEqual([2000, 2000]);
    expect([...r.rxBytes]).toEqual([5_000_000_000, 5_000_000_000]); // above 2^32: 64-bit counters
    expect([...r.txPackets]).toEqual([12, 12]);
    expect([...r.rxPackets]).toEqual([800, 800]);
    expect([...r.id]).toEqual([3_000_000_001, 5]);
    expect([...r.zone]).toEqual([7, 7]);
    expect([...r.mark]).toEqual([0x4000, 0x4000]);
    expect([...r.status]).toEqual([0x18e, 0x18e]);
    expect([...r.timeout]).toEqual([431999, 431999]);
    // DNAT: the reply comes from 10.0.3.7:8080, not from the dialled 10.96.0.10:80.
    expect([...r.flags]).toEqual([1, 1 | (1 << 4)]); // InitiatorKnown, + Dnat
    expect([...r.replySrc.subarray(28, 32)]).toEqual([10, 0, 3, 7]);
    expect(r.replySrcPort[1]).toBe(8080);
  });

  it('ICMP: the echo id is the source port and type << 8 | code the destination port; no DNAT for the reply type', () => {
    const icmpTuple = (src: string, dst: string, type: number): Attr[] => [
      [
        TUPLE.IP,
        [
          [IP.V4_SRC, v4(src)],
          [IP.V4_DST, v4(dst)],
        ],
      ],
      [
        TUPLE.PROTO,
        [
          [PROTO.NUM, u8(1)],
          [PROTO.ICMP_ID, be16(4242)],
          [PROTO.ICMP_TYPE, u8(type)],
          [PROTO.ICMP_CODE, u8(0)],
        ],
      ],
    ];
    const r = parseConntrackMessages(
      message([
        [CTA.TUPLE_ORIG, icmpTuple('10.0.0.1', '10.0.0.2', 8)],
        [CTA.TUPLE_REPLY, icmpTuple('10.0.0.2', '10.0.0.1', 0)],
      ]),
    );
    expect(r).toMatchObject({ length: 1, malformed: 0 });
    expect([r.srcPort[0], r.dstPort[0], r.flags[0]]).toEqual([4242, 8 << 8, 1]);
  });

  it('a DESTROY message is a closed row', () => {
    const r = parseConntrackMessages(message(tcpEntry(), 2 /* IPCTNL_MSG_CT_DELETE */));
    expect([r.event[0], r.flags[0]]).toEqual([2, 1 | (1 << 2)]);
  });

  it('counts and skips an attribute of the wrong size, a message without a tuple, and a truncated tail', () => {
    const badId = tcpEntry().map(([t, p]): Attr => (t === CTA.ID ? [t, Buffer.alloc(3)] : [t, p]));
    const noReply = tcpEntry().filter(([t]) => t !== CTA.TUPLE_REPLY);
    const badPort = tcpEntry().map(
      ([t, p]): Attr =>
        t === CTA.TUPLE_ORIG
          ? [
              t,
              [
                [
                  TUPLE.IP,
                  [
                    [IP.V4_SRC, v4('1.2.3.4')],
                    [IP.V4_DST, v4('5.6.7.8')],
                  ],
                ],
                [
                  TUPLE.PROTO,
                  [
                    [PROTO.NUM, u8(6)],
                    [PROTO.SRC_PORT, be32(1)],
                  ],
                ],
              ],
            ]
          : [t, p],
    );
    const good = message(tcpEntry());
    const r = parseConntrackMessages(
      Buffer.concat([
        message(badId),
        good,
        message(noReply),
        message(badPort),
        good.subarray(0, good.length - 9),
      ]),
    );
    expect(r.length).toBe(1);
    expect(r.malformed).toBe(4);
  });

  it('survives random corruption: every message is either parsed or counted as malformed', () => {
    const good = message(tcpEntry());
    let seed = 42;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let round = 0; round < 2000; round++) {
      const buf = Buffer.from(good);
      const flips = 1 + (rand() % 6);
      // Keep the netlink header's length and type (so the message is still handed to the parser);
      // corrupt anything in the conntrack payload.
      for (let f = 0; f < flips; f++) buf[20 + (rand() % (buf.length - 20))] = rand() & 255;
      const r = parseConntrackMessages(buf);
      expect(r.length + r.malformed, `round ${round}`).toBe(1);
    }
  });
});
