// The ctnetlink parser on hand-built messages: every field lands in its column, and malformed input —
// wrong attribute sizes, lengths that overrun or leave bytes over, truncation, random corruption — is
// counted and skipped, never a crash and never a row built from part of a message.
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
  TIMESTAMP: 20,
  // Sent by the kernel, not read by the parser.
  PROTOINFO: 4,
  USE: 11,
};
const TUPLE = { IP: 1, PROTO: 2 };
const IP = { V4_SRC: 1, V4_DST: 2, V6_SRC: 3, V6_DST: 4 };
const PROTO = { NUM: 1, SRC_PORT: 2, DST_PORT: 3, ICMP_ID: 4, ICMP_TYPE: 5, ICMP_CODE: 6 };
const COUNTERS = { PACKETS: 1, BYTES: 2 };
const TIMESTAMP_START = 1;

// nlaLen, when given, is written instead of the true length: how the malformed cases lie about sizes.
type Attr = [type: number, payload: Buffer | Attr[], nlaLen?: number];

function attr([type, payload, nlaLen]: Attr): Buffer {
  const body = Array.isArray(payload) ? Buffer.concat(payload.map(attr)) : payload;
  const head = Buffer.alloc(4);
  head.writeUInt16LE(nlaLen ?? 4 + body.length, 0);
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

/** The first `n` bytes of a message, its nlmsg_len saying so: a message cut short, not a partial one. */
function truncated(msg: Buffer, n: number): Buffer {
  const b = Buffer.from(msg.subarray(0, n));
  b.writeUInt32LE(n, 0);
  return b;
}

const u8 = (v: number) => Buffer.from([v]);
const be16 = (v: number) => Buffer.from([v >> 8, v & 255]);
const be32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};
const be64 = (v: number | bigint) => {
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

/** tcpEntry() with its top-level attribute of `type` replaced by `by`, or dropped (null). */
function tcpEntryWith(type: number, by: Attr | null): Attr[] {
  return tcpEntry().flatMap(([t, p]): Attr[] => (t !== type ? [[t, p]] : by ? [by] : []));
}

const v6 = (last: number) => Buffer.from([0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), last]);
const v6Tuple = (src: Buffer, dst: Buffer): Attr[] => [
  [
    TUPLE.IP,
    [
      [IP.V6_SRC, src],
      [IP.V6_DST, dst],
    ],
  ],
  [TUPLE.PROTO, [[PROTO.NUM, u8(17)]]],
];

// What the parser reads, level by level: a nest maps to the schema of its children, a leaf to null.
// Attributes of any other type it steps over without looking inside.
type Schema = { [type: number]: Schema | null };
const LEAVES = (...types: number[]): Schema => Object.fromEntries(types.map((t) => [t, null]));
const TUPLE_SCHEMA: Schema = {
  [TUPLE.IP]: LEAVES(1, 2, 3, 4),
  [TUPLE.PROTO]: LEAVES(1, 2, 3, 4, 5, 6, 7, 8, 9),
};
const COUNTERS_SCHEMA = LEAVES(1, 2, 3, 4); // 64- and 32-bit packets, bytes
const SCHEMA: Schema = {
  ...LEAVES(CTA.STATUS, CTA.TIMEOUT, CTA.MARK, CTA.ID, CTA.ZONE),
  [CTA.TUPLE_ORIG]: TUPLE_SCHEMA,
  [CTA.TUPLE_REPLY]: TUPLE_SCHEMA,
  [CTA.COUNTERS_ORIG]: COUNTERS_SCHEMA,
  [CTA.COUNTERS_REPLY]: COUNTERS_SCHEMA,
  [CTA.TIMESTAMP]: LEAVES(TIMESTAMP_START),
};

/**
 * Walks the attributes in [start, end) and the nests the parser descends into, calling `visit` on each;
 * false when their declared lengths do not tile their parent: an nla_len below 4 or past the parent's end,
 * or 4 bytes or more left over (fewer are the last attribute's alignment padding).
 */
function tiles(
  buf: Buffer,
  start = 20,
  end = buf.readUInt32LE(0),
  schema = SCHEMA,
  visit?: (at: number, len: number, read: boolean) => void,
): boolean {
  for (let p = start; end - p >= 4; p += (buf.readUInt16LE(p) + 3) & ~3) {
    const len = buf.readUInt16LE(p);
    if (len < 4 || len > end - p) return false;
    const type = buf.readUInt16LE(p + 2) & 0x3fff; // without NLA_F_NESTED, NLA_F_NET_BYTEORDER
    visit?.(p, len, type in schema);
    const inner = schema[type];
    if (inner && !tiles(buf, p + 4, p + len, inner, visit)) return false;
  }
  return true;
}

/** A message with every kind of attribute the parser reads and two it skips, for the fuzz tests. */
function fuzzMessage(): Buffer {
  return message([
    ...tcpEntry(),
    [CTA.TIMESTAMP, [[TIMESTAMP_START, be64(1_700_000_000_123_456_789n)]]],
    [
      CTA.PROTOINFO,
      [
        [
          1, // CTA_PROTOINFO_TCP
          [
            [1, u8(3)], // state ESTABLISHED
            [2, u8(7)], // wscale original
            [4, be16(0x0303)], // flags original
          ],
        ],
      ],
    ],
    [CTA.USE, be32(1)],
  ]);
}

/** mulberry32: seeded, so every run mutates the same bytes; uniform in its low bits, unlike an LCG. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
}

// Each of these would have been a row built from the part of the message before the fault.
const malformedCases: [string, Buffer][] = (() => {
  const good = message(tcpEntry());
  const replyCounters: Attr = [
    CTA.COUNTERS_REPLY,
    [
      [COUNTERS.PACKETS, be64(800)],
      [COUNTERS.BYTES, be64(5_000_000_000)],
    ],
  ];
  const countersLast = message([...tcpEntryWith(CTA.COUNTERS_REPLY, null), replyCounters]);
  const origWith = (ip: Attr[], proto: Attr[]): Attr[] =>
    tcpEntryWith(CTA.TUPLE_ORIG, [
      CTA.TUPLE_ORIG,
      [
        [TUPLE.IP, ip],
        [TUPLE.PROTO, proto],
      ],
    ]);
  const origIp: Attr[] = [
    [IP.V4_SRC, v4('10.0.0.1')],
    [IP.V4_DST, v4('10.96.0.10')],
  ];
  return [
    // CTA_ZONE, last, declares 6 bytes; 4 are left.
    ['a top-level attribute cut short', truncated(good, good.length - 4)],
    ['CTA_COUNTERS_REPLY cut short', truncated(countersLast, countersLast.length - 6)],
    [
      'a counter longer than its CTA_COUNTERS_REPLY',
      message(
        tcpEntryWith(CTA.COUNTERS_REPLY, [
          CTA.COUNTERS_REPLY,
          [
            [COUNTERS.PACKETS, be64(800)],
            [COUNTERS.BYTES, be64(5_000_000_000), 16],
          ],
        ]),
      ),
    ],
    [
      'an attribute header left over in CTA_COUNTERS_REPLY',
      message(
        tcpEntryWith(CTA.COUNTERS_REPLY, [
          CTA.COUNTERS_REPLY,
          Buffer.concat([attr([COUNTERS.PACKETS, be64(800)]), Buffer.alloc(4)]),
        ]),
      ),
    ],
    ['a top-level nla_len below 4', message(tcpEntryWith(CTA.MARK, [CTA.MARK, be32(0x4000), 3]))],
    [
      'an nla_len below 4 in a tuple',
      message(
        origWith(origIp, [
          [PROTO.NUM, u8(6)],
          [PROTO.SRC_PORT, be16(40000)],
          [PROTO.DST_PORT, be16(80), 0],
        ]),
      ),
    ],
    [
      'a 32-bit CTA_COUNTERS_BYTES',
      message(
        tcpEntryWith(CTA.COUNTERS_REPLY, [
          CTA.COUNTERS_REPLY,
          [
            [COUNTERS.PACKETS, be64(800)],
            [COUNTERS.BYTES, be32(5)],
          ],
        ]),
      ),
    ],
    ['a 2-byte CTA_STATUS', message(tcpEntryWith(CTA.STATUS, [CTA.STATUS, be16(1)]))],
    [
      'a 15-byte IPv6 address',
      message([
        [CTA.TUPLE_ORIG, v6Tuple(v6(1), v6(2).subarray(1))],
        [CTA.TUPLE_REPLY, v6Tuple(v6(2), v6(1))],
      ]),
    ],
    [
      'an IPv4 source with an IPv6 destination',
      message(
        origWith(
          [
            [IP.V4_SRC, v4('10.0.0.1')],
            [IP.V6_DST, v6(1)],
          ],
          [[PROTO.NUM, u8(6)]],
        ),
      ),
    ],
    ['a tuple without its destination', message(origWith(origIp.slice(0, 1), [[PROTO.NUM, u8(6)]]))],
  ];
})();

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

  it.each(malformedCases)('counts and skips a message with %s', (_name, msg) => {
    expect(parseConntrackMessages(msg)).toMatchObject({ length: 0, messages: 1, malformed: 1 });
  });

  it('keeps a message whose attributes end in alignment padding, counted in their length or not', () => {
    const good = message(tcpEntry()); // ends in CTA_ZONE: 6 bytes and 2 of padding
    const protoUnpadded: Attr = [
      TUPLE.PROTO,
      [
        [PROTO.SRC_PORT, be16(40000)],
        [PROTO.DST_PORT, be16(80)],
        [PROTO.NUM, u8(6)],
      ],
      4 + 8 + 8 + 5, // without the 3 bytes that pad CTA_PROTO_NUM
    ];
    const ip: Attr = [
      TUPLE.IP,
      [
        [IP.V4_SRC, v4('10.0.0.1')],
        [IP.V4_DST, v4('10.96.0.10')],
      ],
    ];
    const msgs = [
      good,
      truncated(good, good.length - 2), // nlmsg_len without the padding
      message(tcpEntryWith(CTA.TUPLE_ORIG, [CTA.TUPLE_ORIG, [protoUnpadded, ip]])),
    ];
    for (const msg of msgs) {
      const r = parseConntrackMessages(msg);
      expect(r).toMatchObject({ length: 1, malformed: 0 });
      expect([r.protocol[0], r.srcPort[0], r.dstPort[0], r.zone[0], r.rxBytes[0]]).toEqual([
        6, 40000, 80, 7, 5_000_000_000,
      ]);
      expect([...r.dst.subarray(12, 16)]).toEqual([10, 96, 0, 10]);
    }
  });

  it('cut at any byte, a message is a row only when the cut leaves whole attributes and both tuples', () => {
    const good = fuzzMessage();
    const orig = 20;
    const reply = orig + ((good.readUInt16LE(orig) + 3) & ~3);
    const afterTuples = reply + good.readUInt16LE(reply);
    let rows = 0;
    for (let n = 20; n <= good.length; n++) {
      const msg = truncated(good, n);
      const r = parseConntrackMessages(msg);
      const whole = tiles(msg) && n >= afterTuples;
      expect(r, `cut at ${n}`).toMatchObject({ length: whole ? 1 : 0, malformed: whole ? 0 : 1 });
      rows += r.length;
    }
    // Cuts between top-level attributes, or fewer than 4 bytes into one, which pass for padding.
    expect(rows).toBeGreaterThan(20);
  });

  it('gives exactly the same row when only bytes it does not read change', () => {
    const good = fuzzMessage();
    const want = parseConntrackMessages(good);
    expect(want).toMatchObject({ length: 1, malformed: 0 });
    expect(want.startMs[0]).toBe(1_700_000_000_123);
    // Alignment padding, the flag bits of nla_type, and the payload of attributes the parser skips —
    // including the nla_len of what is nested in them.
    const ignored: [at: number, mask: number][] = [];
    tiles(good, 20, good.length, SCHEMA, (at, len, read) => {
      ignored.push([at + 3, 0xc0]);
      for (let i = at + len; i < Math.min(at + ((len + 3) & ~3), good.length); i++) ignored.push([i, 0xff]);
      if (!read) for (let i = at + 4; i < at + len; i++) ignored.push([i, 0xff]);
    });
    expect(ignored.length).toBeGreaterThan(40);
    const rand = prng(7);
    let changed = 0;
    for (let round = 0; round < 1000; round++) {
      const buf = Buffer.from(good);
      for (let f = 1 + (rand() % 8); f > 0; f--) {
        const [at, mask] = ignored[rand() % ignored.length];
        buf[at] = (buf[at] & ~mask) | (rand() & mask);
      }
      if (!buf.equals(good)) changed++;
      expect(parseConntrackMessages(buf), `round ${round}`).toEqual(want);
    }
    expect(changed).toBeGreaterThan(900);
  });

  it('survives random corruption, and counts as malformed every message whose lengths do not tile', () => {
    const good = fuzzMessage();
    expect(tiles(good)).toBe(true);
    const lengths: number[] = [];
    tiles(good, 20, good.length, SCHEMA, (at) => lengths.push(at, at + 1));
    const rand = prng(42);
    let inconsistent = 0;
    for (let round = 0; round < 4000; round++) {
      const buf = Buffer.from(good);
      // Keep the netlink header's length and type (so the message is still handed to the parser);
      // corrupt anything in the conntrack payload, half the time an nla_len.
      for (let f = 1 + (rand() % 6); f > 0; f--) {
        const at = rand() % 2 ? lengths[rand() % lengths.length] : 16 + (rand() % (buf.length - 16));
        buf[at] = rand() & 255;
      }
      const r = parseConntrackMessages(buf);
      expect(r.length + r.malformed, `round ${round}`).toBe(1);
      if (!tiles(buf)) {
        inconsistent++;
        expect(r.malformed, `round ${round}: lengths do not tile, yet a row`).toBe(1);
      }
    }
    expect(inconsistent).toBeGreaterThan(1000);
  });
});
