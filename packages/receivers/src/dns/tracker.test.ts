import { DnsBatch, type DnsLookupInit, DnsRcode, DnsType } from '@netmon/core';
import { describe, expect, it, vi } from 'vitest';
import {
  type AnswerInit,
  answer,
  concat,
  Opcode,
  type QueryInit,
  query,
  RA,
  RD,
  type RecordInit,
  record,
  stream,
  TC,
  TCP,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  UDP,
} from './testdata/records.js';
import { DnsTracker, MAX_PENDING, MAX_STREAMS } from './tracker.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const MS = 1e6;
/** CLOCK_MONOTONIC at T0: an hour of uptime. */
const K0 = 3_600_000 * MS;
/** The monotonic ns of T0 + `ms`. */
const kt = (ms: number) => K0 + ms * MS;
/** The clock as the receiver reads it at T0 + `ms`. */
const clockAt = (ms: number) => ({ monoNs: kt(ms), wallMs: T0 + ms });
const TIMEOUT_NS = 5000 * MS;

const CLIENT = '10.0.0.5';
const SERVER = '10.96.0.10';
const PORT = 40000;

/** A record of the client's socket at T0 + `ms`: leaving (a query) or arriving (an answer). */
function at(ms: number, egress: boolean, payload: Uint8Array, over: Partial<RecordInit> = {}): Uint8Array {
  return record({
    ktimeNs: kt(ms),
    local: CLIENT,
    remote: SERVER,
    localPort: PORT,
    egress,
    payload,
    ...over,
  });
}
const sent = (ms: number, q: QueryInit, over: Partial<RecordInit> = {}) => at(ms, true, query(q), over);
const received = (ms: number, a: AnswerInit, over: Partial<RecordInit> = {}) =>
  at(ms, false, answer(a), over);

/** Hands `records` to the tracker as one drain read at T0 + `nowMs`; returns the rows it made. */
function feed(tracker: DnsTracker, nowMs: number, ...records: Uint8Array[]): DnsLookupInit[] {
  const batch = new DnsBatch();
  tracker.add(concat(...records), batch, clockAt(nowMs));
  return rows(batch);
}

function rows(batch: DnsBatch): DnsLookupInit[] {
  return Array.from({ length: batch.length }, (_, i) => batch.lookup(i));
}

const counts = (m: Map<string, number>) => Object.fromEntries(m);

/** The CNAME chain a CDN-hosted name resolves through. */
const SHOP: AnswerInit = {
  id: 0x4100,
  name: 'www.shop.example',
  answers: [
    { name: 'www.shop.example', type: 'CNAME', ttl: 300, target: 'www.shop.example.edgekey.net' },
    { name: 'www.shop.example.edgekey.net', type: 'CNAME', ttl: 60, target: 'e1234.a.akamaiedge.net' },
    { name: 'e1234.a.akamaiedge.net', type: 'A', ttl: 20, ip: '23.45.67.89' },
  ],
};
const SHOP_ANSWERS = [
  { name: 'www.shop.example', type: DnsType.CNAME, ttl: 300, target: 'www.shop.example.edgekey.net' },
  {
    name: 'www.shop.example.edgekey.net',
    type: DnsType.CNAME,
    ttl: 60,
    target: 'e1234.a.akamaiedge.net',
  },
  { name: 'e1234.a.akamaiedge.net', type: DnsType.A, ttl: 20, ip: '23.45.67.89' },
];
const SHOP_LOOKUP = {
  clientIp: CLIENT,
  clientPort: PORT,
  serverIp: SERVER,
  question: 'www.shop.example',
  questionType: DnsType.A,
  cgroupId: 4242,
  canonical: 'e1234.a.akamaiedge.net',
  answers: SHOP_ANSWERS,
};

describe('dns tracker: UDP lookups', () => {
  it('pairs an answer with its query: latency from the two ktimes, time from the clock, both ends, the records and the canonical name', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    expect(feed(t, 1000, sent(100, { id: SHOP.id, name: SHOP.name }))).toEqual([]);
    expect(t.pendingQueries).toBe(1);
    // The answer comes in the next drain, read 2 s later: its time is still when it arrived.
    const got = feed(t, 3000, received(112.5, SHOP, { cgroupId: 9001 }));
    expect(got).toEqual([
      { ...SHOP_LOOKUP, time: T0 + 112.5, protocol: UDP, latencyMs: 12.5, cgroupId: 9001 },
    ]);
    expect(t.pendingQueries).toBe(0);
    expect(t.counters).toEqual({
      queryPackets: 1,
      answerPackets: 1,
      queries: 1,
      answers: 1,
      lookups: 1,
      unmatched: 0,
      unanswered: 0,
      malformed: new Map(),
      skipped: new Map(),
    });
  });

  it('keeps the response code and an empty answer section: NXDOMAIN, SERVFAIL, and a NOERROR with no records of the type', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const got = feed(
      t,
      1000,
      sent(0, { id: 1, name: 'nope.shop.example' }),
      sent(1, { id: 2, name: 'broken.example' }),
      sent(2, { id: 3, name: 'v4only.example', type: 'AAAA' }),
      received(3, { id: 1, name: 'nope.shop.example', rcode: DnsRcode.NXDOMAIN }),
      received(40, { id: 2, name: 'broken.example', rcode: DnsRcode.SERVFAIL }),
      received(5, { id: 3, name: 'v4only.example', type: 'AAAA' }),
    );
    expect(got.map((r) => [r.question, r.questionType, r.rcode, r.latencyMs, r.answers])).toEqual([
      ['nope.shop.example', DnsType.A, DnsRcode.NXDOMAIN, 3, []],
      ['broken.example', DnsType.A, DnsRcode.SERVFAIL, 39, []],
      // NOERROR is the batch's default: lookup() leaves it out.
      ['v4only.example', DnsType.AAAA, undefined, 3, []],
    ]);
    expect(t.counters.lookups).toBe(3);
  });

  it('pairs by client address, port, transport and id, not by the server that answered (a DNATed Service address)', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const got = feed(
      t,
      1000,
      sent(0, { id: 7, name: 'a.example' }),
      sent(1, { id: 7, name: 'b.example' }, { localPort: PORT + 1 }),
      // The query went to the Service's address; the answer came from the one the client dialled too, or
      // from the pod behind it when nothing rewrote it back.
      received(10, { id: 7, name: 'b.example' }, { localPort: PORT + 1, remote: '10.244.1.9' }),
      received(20, { id: 7, name: 'a.example' }),
      // Same id from another client address: no query of its own was seen.
      received(30, { id: 7, name: 'a.example' }, { local: '10.0.0.6' }),
    );
    expect(got.map((r) => [r.question, r.clientIp, r.clientPort, r.serverIp, r.latencyMs])).toEqual([
      ['b.example', CLIENT, PORT + 1, '10.244.1.9', 9],
      ['a.example', CLIENT, PORT, SERVER, 20],
      ['a.example', '10.0.0.6', PORT, SERVER, undefined],
    ]);
    expect(t.counters.unmatched).toBe(1);
  });

  it('an answer whose query was not seen is handed on, unmatched, without latency', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const batch = new DnsBatch();
    t.add(received(50, SHOP), batch, clockAt(1000));
    expect(rows(batch)).toEqual([{ ...SHOP_LOOKUP, time: T0 + 50, protocol: UDP }]);
    expect(batch.latency[0]).toBeNaN();
    expect(t.counters).toMatchObject({ answers: 1, lookups: 1, unmatched: 1, queries: 0 });
  });

  it("a query sent again with the same id and port keeps the first sending's time: the latency is what the client waited", () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const got = feed(
      t,
      3000,
      sent(0, { id: 9, name: 'slow.example' }),
      sent(1000, { id: 9, name: 'slow.example' }),
      received(1004, { id: 9, name: 'slow.example' }),
    );
    expect(got.map((r) => r.latencyMs)).toEqual([1004]);
    expect(t.counters).toMatchObject({ queries: 2, unanswered: 0, unmatched: 0 });
    expect(t.pendingQueries).toBe(0);
    // Still waiting since the first sending: it times out query_timeout after that one.
    feed(
      t,
      4000,
      sent(2000, { id: 10, name: 'slower.example' }),
      sent(6000, { id: 10, name: 'slower.example' }),
    );
    t.expire(kt(2000 + 5000));
    expect([t.pendingQueries, t.counters.unanswered]).toEqual([0, 1]);
  });

  it('a second answer to one query (musl asks every nameserver with one id; a duplicated packet) is no second lookup: skipped as duplicate', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const musl = { id: 0x2a2a, name: 'api.example' };
    const a = (ms: number, ip: string, remote: string) =>
      received(ms, { ...musl, answers: [{ name: 'api.example', type: 'A', ttl: 30, ip }] }, { remote });
    const got = feed(
      t,
      1000,
      // One socket, one id, to both nameservers.
      sent(0, musl, { remote: '10.96.0.10' }),
      sent(0.2, musl, { remote: '10.96.0.11' }),
      a(3, '192.0.2.7', '10.96.0.11'),
      a(5, '192.0.2.7', '10.96.0.10'),
      // The same packet twice.
      a(5, '192.0.2.7', '10.96.0.10'),
    );
    expect(got.map((r) => [r.question, r.serverIp, r.latencyMs])).toEqual([['api.example', '10.96.0.11', 3]]);
    expect(counts(t.counters.skipped)).toEqual({ duplicate: 2 });
    expect(t.counters).toMatchObject({ queries: 2, answers: 3, lookups: 1, unmatched: 0, unanswered: 0 });
    // An answer whose query was not seen is a lookup once, too.
    const late = { id: 0x3b3b, name: 'late.example' };
    expect(feed(t, 1000, received(10, late), received(11, late)).map((r) => r.latencyMs)).toEqual([
      undefined,
    ]);
    expect(counts(t.counters.skipped)).toEqual({ duplicate: 3 });
    expect(t.counters.unmatched).toBe(1);
    // A new query with that id and port is a new lookup, answered again.
    expect(feed(t, 1000, sent(20, musl), a(26, '192.0.2.8', '10.96.0.10')).map((r) => r.latencyMs)).toEqual([
      6,
    ]);
    // Remembered until query_timeout: after it, an answer is an unmatched lookup again.
    t.expire(kt(26 + 4999));
    expect(feed(t, 6000, a(5020, '192.0.2.8', '10.96.0.10'))).toEqual([]);
    t.expire(kt(26 + 5000));
    expect(feed(t, 6000, a(5030, '192.0.2.8', '10.96.0.10')).map((r) => r.latencyMs)).toEqual([undefined]);
    expect(counts(t.counters.skipped)).toEqual({ duplicate: 4 });
    expect(t.counters).toMatchObject({ lookups: 4, unmatched: 2 });
  });

  it(`remembers at most MAX_PENDING (${MAX_PENDING}) answered queries: past it the oldest is forgotten`, () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const answers = Array.from({ length: MAX_PENDING + 2 }, (_, i) =>
      received(i / 1000, { id: i & 0xffff, name: 'flood.example' }, { localPort: 20000 + (i >> 16) }),
    );
    feed(t, 1000, ...answers);
    expect(t.counters).toMatchObject({ lookups: MAX_PENDING + 2, unmatched: MAX_PENDING + 2 });
    // The two oldest were forgotten: their duplicates are lookups; the third oldest's and the newest's are not.
    const again = [2, MAX_PENDING + 1, 0, 1].map((i) => answers[i]);
    expect(feed(t, 1000, ...again).map((r) => r.time)).toEqual([T0, T0 + 0.001]);
    expect(counts(t.counters.skipped)).toEqual({ duplicate: 2 });
  });

  it('a query never answered is counted unanswered once query_timeout has passed, and forgotten', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    feed(t, 1000, sent(100, { id: 1, name: 'lost.example' }), sent(900, { id: 2, name: 'late.example' }));
    t.expire(kt(100 + 4999));
    expect([t.pendingQueries, t.counters.unanswered]).toEqual([2, 0]);
    t.expire(kt(100 + 5000));
    expect([t.pendingQueries, t.counters.unanswered]).toEqual([1, 1]);
    // Its answer, arriving after all, pairs with nothing.
    const got = feed(
      t,
      7000,
      received(5200, { id: 1, name: 'lost.example' }),
      received(5300, { id: 2, name: 'late.example' }),
    );
    expect(got.map((r) => [r.question, r.latencyMs])).toEqual([
      ['lost.example', undefined],
      ['late.example', 4400],
    ]);
    expect(t.counters).toMatchObject({ unanswered: 1, unmatched: 1, lookups: 2 });
    t.expire(kt(60_000));
    expect(t.counters.unanswered).toBe(1);
  });

  it(`keeps at most MAX_PENDING (${MAX_PENDING}) queries waiting: past it the oldest is dropped and counted unanswered`, () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const queries = Array.from({ length: MAX_PENDING + 3 }, (_, i) =>
      sent(i / 1000, { id: i, name: 'flood.example' }),
    );
    feed(t, 1000, ...queries);
    expect(t.pendingQueries).toBe(MAX_PENDING);
    expect(t.counters).toMatchObject({ queries: MAX_PENDING + 3, unanswered: 3 });
    const got = feed(
      t,
      1000,
      ...[0, 1, 2, 3, MAX_PENDING + 2].map((id) => received(100, { id, name: 'flood.example' })),
    );
    // The three oldest were dropped; the fourth and the newest still wait for their answers.
    expect(got.map((r) => r.latencyMs?.toFixed(3))).toEqual([
      undefined,
      undefined,
      undefined,
      '99.997',
      '83.614',
    ]);
    expect(t.counters).toMatchObject({ unmatched: 3, unanswered: 3 });
    expect(t.pendingQueries).toBe(MAX_PENDING - 2);
  });

  it('skips an answer with the TC bit (the client asks again over TCP), forgetting its query', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const got = feed(
      t,
      1000,
      sent(0, { id: 5, name: 'big.example' }),
      received(3, { id: 5, name: 'big.example', flags: RD | RA | TC }),
    );
    expect(got).toEqual([]);
    expect(t.pendingQueries).toBe(0);
    expect(counts(t.counters.skipped)).toEqual({ truncated: 1 });
    expect(t.counters).toMatchObject({ answers: 1, lookups: 0, unmatched: 0, unanswered: 0 });
  });

  it("skips a query arriving and an answer leaving (a resolver's side of port 53), counted as direction", () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const got = feed(
      t,
      1000,
      at(0, false, query({ id: 1, name: 'in.example' })),
      at(1, true, answer({ id: 1, name: 'in.example', answers: [] })),
    );
    expect(got).toEqual([]);
    expect(counts(t.counters.skipped)).toEqual({ direction: 2 });
    expect(t.pendingQueries).toBe(0);
    // The records were read (by the direction the tracer saw), the messages used for nothing.
    expect(t.counters).toMatchObject({ queryPackets: 1, answerPackets: 1, queries: 0, answers: 0 });
  });

  it('skips messages that are not lookups: NOTIFY and UPDATE, counted as opcode', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const got = feed(
      t,
      1000,
      sent(0, { id: 1, name: 'zone.example', opcode: Opcode.NOTIFY }),
      received(1, { id: 1, name: 'zone.example', opcode: Opcode.NOTIFY }),
      sent(2, { id: 2, name: 'zone.example', opcode: Opcode.UPDATE }),
      received(3, { id: 2, name: 'zone.example', opcode: Opcode.UPDATE }),
    );
    expect(got).toEqual([]);
    expect(counts(t.counters.skipped)).toEqual({ opcode: 4 });
    expect(t.pendingQueries).toBe(0);
  });

  it("counts a malformed message by the parser's reason and goes on with the next record", () => {
    const t = new DnsTracker(TIMEOUT_NS);
    // QDCOUNT 2: no resolver asks two questions in one message.
    const two = answer({ id: 3, name: 'two.example' });
    two[5] = 2;
    const got = feed(
      t,
      1000,
      at(0, false, Uint8Array.of(0x12, 0x34, 0x81, 0x80, 0, 1)),
      at(1, false, two),
      // A label type 0x40 (reserved) in the question.
      at(2, false, Uint8Array.of(0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, 0, 0, 1, 0, 1)),
      received(3, SHOP),
    );
    expect(got.map((r) => r.question)).toEqual(['www.shop.example']);
    expect(counts(t.counters.malformed)).toEqual({ short_header: 1, question_count: 1, bad_name: 1 });
    expect(t.counters).toMatchObject({ answerPackets: 4, answers: 1, lookups: 1 });
  });

  it('an answer cut at capture_bytes keeps the records complete before the cut', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const whole = answer(SHOP);
    // Cut inside the A record, the last one.
    const got = feed(t, 1000, received(5, SHOP, { captured: whole.length - 3 }));
    expect(got).toHaveLength(1);
    expect(got[0].answers).toEqual(SHOP_ANSWERS.slice(0, 2));
    expect(got[0].canonical).toBe('e1234.a.akamaiedge.net');
    expect(t.counters.malformed.size).toBe(0);
  });

  it('IPv6: a query and its AAAA answer between IPv6 addresses', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const v6 = { local: 'fd00:10::5', remote: 'fd00:96::a', localPort: 51234 };
    const got = feed(
      t,
      1000,
      sent(10, { id: 0xbeef, name: 'ipv6.example', type: 'AAAA' }, v6),
      received(
        12,
        {
          id: 0xbeef,
          name: 'ipv6.example',
          type: 'AAAA',
          answers: [
            { name: 'ipv6.example', type: 'AAAA', ttl: 3600, ip: '2001:db8::1' },
            { name: 'ipv6.example', type: 'AAAA', ttl: 3600, ip: '2001:db8:0:1::2' },
          ],
        },
        v6,
      ),
    );
    expect(got).toEqual([
      {
        time: T0 + 12,
        clientIp: 'fd00:10::5',
        clientPort: 51234,
        serverIp: 'fd00:96::a',
        protocol: UDP,
        question: 'ipv6.example',
        questionType: DnsType.AAAA,
        latencyMs: 2,
        cgroupId: 4242,
        answers: [
          { name: 'ipv6.example', type: DnsType.AAAA, ttl: 3600, ip: '2001:db8::1' },
          { name: 'ipv6.example', type: DnsType.AAAA, ttl: 3600, ip: '2001:db8:0:1::2' },
        ],
      },
    ]);
  });

  it("names the client's pod with the podUid callback: a UID, '' and undefined (no pod) alike leave it unknown", () => {
    const podUid = vi.fn((id: number) =>
      id === 7001 ? '0f6b2c1e-6a1d-4f1e-9a52-3c7f0c1d2e3a' : id === 7002 ? '' : undefined,
    );
    const t = new DnsTracker(TIMEOUT_NS, podUid);
    const got = feed(
      t,
      1000,
      received(1, { ...SHOP, id: 1 }, { cgroupId: 7001 }),
      received(2, { ...SHOP, id: 2 }, { cgroupId: 7002 }),
      received(3, { ...SHOP, id: 3 }, { cgroupId: 7003 }),
      // cgroup ids are u64: one above 2^32 keeps its value.
      received(4, { ...SHOP, id: 4 }, { cgroupId: 2 ** 40 + 7 }),
    );
    expect(got.map((r) => [r.cgroupId, r.podUid])).toEqual([
      [7001, '0f6b2c1e-6a1d-4f1e-9a52-3c7f0c1d2e3a'],
      [7002, undefined],
      [7003, undefined],
      [2 ** 40 + 7, undefined],
    ]);
    // Asked once per lookup, never for queries.
    expect(podUid.mock.calls.map((c) => c[0])).toEqual([7001, 7002, 7003, 2 ** 40 + 7]);
  });
});

/** A TCP segment of the client's connection carrying `bytes` at sequence number `seq`: sent, or received. */
function segment(
  ms: number,
  egress: boolean,
  bytes: Uint8Array,
  seq: number,
  over: Partial<RecordInit> = {},
): Uint8Array {
  return at(ms, egress, bytes, {
    protocol: TCP,
    tcpSeq: seq,
    tcpFlags: TCP_PSH | TCP_ACK,
    ...over,
  });
}

/** The bytes of answer stream `s` in [from, to), received as one segment at `isn + from`. */
const part = (ms: number, s: Uint8Array, isn: number, from: number, to = s.length, over = {}) =>
  segment(ms, false, s.subarray(from, to), isn + from, over);

const ISN = 1_000_000;

describe('dns tracker: TCP streams', () => {
  it('a query and its answer, one segment each: a lookup over TCP with its latency', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const got = feed(
      t,
      1000,
      segment(10, true, stream(query({ id: SHOP.id, name: SHOP.name })), 555),
      segment(17, false, stream(answer(SHOP)), ISN),
    );
    expect(got).toEqual([{ ...SHOP_LOOKUP, time: T0 + 17, protocol: TCP, latencyMs: 7 }]);
    expect(t.counters).toMatchObject({ queries: 1, answers: 1, lookups: 1, unmatched: 0 });
  });

  it('a message split over two segments, in two drains, is one lookup when its last byte arrives', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const s = stream(answer(SHOP));
    // Split inside the 2-byte length, and inside the message.
    for (const cut of [1, 30]) {
      const u = new DnsTracker(TIMEOUT_NS);
      expect(feed(u, 1000, part(5, s, ISN, 0, cut))).toEqual([]);
      expect(feed(u, 2000, part(1500, s, ISN, cut)).map((r) => [r.question, r.time, r.answers])).toEqual([
        ['www.shop.example', T0 + 1500, SHOP_ANSWERS],
      ]);
    }
    // Three segments, the length alone in the first.
    const got = feed(t, 1000, part(1, s, ISN, 0, 2), part(2, s, ISN, 2, 50), part(3, s, ISN, 50));
    expect(got).toHaveLength(1);
    expect(got[0].answers).toEqual(SHOP_ANSWERS);
  });

  it('two messages in one segment, and a message ending in the segment that starts the next', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const q1 = query({ id: 1, name: 'one.example' });
    const q2 = query({ id: 2, name: 'two.example', type: 'AAAA' });
    const a1 = answer({
      id: 1,
      name: 'one.example',
      answers: [{ name: 'one.example', type: 'A', ttl: 5, ip: '192.0.2.1' }],
    });
    const a2 = answer({
      id: 2,
      name: 'two.example',
      type: 'AAAA',
      answers: [{ name: 'two.example', type: 'AAAA', ttl: 6, ip: '2001:db8::2' }],
    });
    const a3 = answer({ id: 3, name: 'three.example', rcode: DnsRcode.NXDOMAIN });
    const answers = stream(a1, a2, a3);
    const mid = stream(a1, a2).length + 5;
    const got = feed(
      t,
      1000,
      // The client pipelines two queries in one segment (RFC 7766 §6.2.1.1).
      segment(0, true, stream(q1, q2), 77),
      segment(1, true, stream(query({ id: 3, name: 'three.example' })), 77 + stream(q1, q2).length),
      part(4, answers, ISN, 0, mid),
      part(6, answers, ISN, mid),
    );
    expect(got.map((r) => [r.question, r.rcode, r.latencyMs, r.answers.map((a) => a.ip)])).toEqual([
      ['one.example', undefined, 4, ['192.0.2.1']],
      ['two.example', undefined, 4, ['2001:db8::2']],
      ['three.example', DnsRcode.NXDOMAIN, 5, []],
    ]);
    expect(t.counters).toMatchObject({
      queryPackets: 2,
      answerPackets: 2,
      queries: 3,
      answers: 3,
      lookups: 3,
    });
  });

  it('a retransmitted segment (same sequence number) is read once', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const s = stream(answer(SHOP), answer({ ...SHOP, id: 2 }));
    const half = 40;
    const got = feed(
      t,
      1000,
      part(1, s, ISN, 0, half),
      part(2, s, ISN, 0, half),
      part(3, s, ISN, half),
      // The whole segment again after the message it completed.
      part(4, s, ISN, half),
    );
    expect(got.map((r) => r.time)).toEqual([T0 + 3, T0 + 3]);
    expect(t.counters).toMatchObject({ answerPackets: 4, answers: 2, lookups: 2 });
    expect(t.counters.malformed.size).toBe(0);
  });

  it('an overlapping retransmission (part old, part new) adds only its new bytes', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const s = stream(answer(SHOP), answer({ ...SHOP, id: 2, name: 'www.shop.example' }));
    const first = stream(answer(SHOP)).length;
    const got = feed(
      t,
      1000,
      part(1, s, ISN, 0, 30),
      // Resent with more bytes: [10, 60) of which [30, 60) are new.
      part(2, s, ISN, 10, 60),
      part(3, s, ISN, 60, first + 10),
      part(4, s, ISN, 40, s.length),
    );
    expect(got.map((r) => [r.time, r.answers])).toEqual([
      [T0 + 3, SHOP_ANSWERS],
      [T0 + 4, SHOP_ANSWERS],
    ]);
    expect(t.counters.malformed.size).toBe(0);
  });

  it('follows a stream across the wrap of the 32-bit sequence number', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const s = stream(answer(SHOP));
    const isn = 2 ** 32 - 20;
    const got = feed(
      t,
      1000,
      segment(1, false, s.subarray(0, 35), isn),
      segment(2, false, s.subarray(35), 15),
    );
    expect(got).toHaveLength(1);
    expect(t.counters.malformed.size).toBe(0);
  });

  it('a gap (a segment lost in a full ring) is counted tcp_gap once; the rest of the connection is read past until FIN', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const a2 = answer({
      id: 2,
      name: 'two.example',
      answers: [{ name: 'two.example', type: 'A', ttl: 9, ip: '192.0.2.2' }],
    });
    const s = stream(answer(SHOP), a2, a2, a2);
    const first = stream(answer(SHOP)).length;
    const got = feed(
      t,
      1000,
      part(1, s, ISN, 0, 20),
      // [20, 40) never came.
      part(2, s, ISN, 40, first),
      // Whole messages follow, but where they start is unknown to the tracker.
      part(3, s, ISN, first, s.length - 10),
      part(4, s, ISN, s.length - 10, s.length, { tcpFlags: TCP_FIN | TCP_PSH | TCP_ACK }),
    );
    expect(got).toEqual([]);
    expect(counts(t.counters.malformed)).toEqual({ tcp_gap: 1 });
    expect(t.counters).toMatchObject({ answerPackets: 4, answers: 0 });
    // The FIN ended it: the port's next connection is followed from its first segment.
    const next = stream(a2);
    const after = feed(t, 2000, part(1500, next, 7_000_000, 0));
    expect(after.map((r) => r.question)).toEqual(['two.example']);
    expect(counts(t.counters.malformed)).toEqual({ tcp_gap: 1 });
  });

  it('a broken stream ends with a segment carrying RST, or is forgotten after a minute without segments', () => {
    const a2 = answer({ id: 2, name: 'two.example' });
    const s = stream(answer(SHOP), a2);
    for (const end of ['rst', 'idle'] as const) {
      const t = new DnsTracker(TIMEOUT_NS);
      feed(t, 1000, part(1, s, ISN, 0, 10), part(2, s, ISN, 20, 30));
      expect(counts(t.counters.malformed)).toEqual({ tcp_gap: 1 });
      if (end === 'rst') feed(t, 1000, part(3, s, ISN, 30, 40, { tcpFlags: TCP_RST | TCP_ACK }));
      else {
        t.expire(kt(2 + 60_000));
        // Still within the minute: read past.
        expect(feed(t, 61_000, segment(60_000, false, stream(a2), 5))).toEqual([]);
        t.expire(kt(60_000 + 60_001));
      }
      expect(feed(t, 200_000, segment(150_000, false, stream(a2), 9_000_000)).map((r) => r.question)).toEqual(
        ['two.example'],
      );
      expect(counts(t.counters.malformed)).toEqual({ tcp_gap: 1 });
    }
  });

  it('a segment cut at capture_bytes: its message parsed as far as it goes, the stream read past after it', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const a2 = answer({ id: 2, name: 'two.example' });
    const s = stream(answer(SHOP), a2);
    const first = stream(answer(SHOP)).length;
    const got = feed(
      t,
      1000,
      // The first segment holds the whole first message, of which the tracer copied all but its last 3 bytes.
      part(1, s, ISN, 0, first, { captured: first - 3 }),
      part(2, s, ISN, first),
    );
    expect(got.map((r) => [r.question, r.answers])).toEqual([['www.shop.example', SHOP_ANSWERS.slice(0, 2)]]);
    expect(t.counters.malformed.size).toBe(0);
    expect(t.counters).toMatchObject({ answerPackets: 2, answers: 1 });
  });

  it('a segment cut within two bytes after a message boundary: the stream is read past after it, never misframed', () => {
    // The segment holds the first answer and the start of the second; capture_bytes ends at the first's last
    // byte (or one byte into the second's length). The bytes the tracer did not copy are gone, so where the
    // stream's next message starts is unknown: reading on from the next segment would take the middle of the
    // second answer for a length prefix.
    const a2 = answer({ id: 2, name: 'two.example' });
    const a3 = answer({ id: 3, name: 'three.example' });
    for (const extra of [0, 1]) {
      const t = new DnsTracker(TIMEOUT_NS);
      const s = stream(answer(SHOP), a2, a3);
      const first = stream(answer(SHOP)).length;
      const got = feed(
        t,
        1000,
        part(1, s, ISN, 0, first + 20, { captured: first + extra }),
        part(2, s, ISN, first + 20),
      );
      const where = `cut ${extra} byte(s) after the first message`;
      expect(
        got.map((r) => r.question),
        where,
      ).toEqual(['www.shop.example']);
      // The second message, of which nothing usable was copied, is counted once (as a message cut inside its
      // header is); the third, past the cut, is read past like the rest of a stream after a gap.
      expect(counts(t.counters.malformed), where).toEqual({ short_header: 1 });
    }
  });

  it('an IPv6 TCP lookup', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const v6 = { local: '2001:db8:1::5', remote: '2001:db8:53::1', localPort: 43210 };
    const got = feed(
      t,
      1000,
      segment(100, true, stream(query({ id: 1, name: 'v6.example', type: 'AAAA' })), 1, v6),
      segment(
        130,
        false,
        stream(
          answer({
            id: 1,
            name: 'v6.example',
            type: 'AAAA',
            answers: [{ name: 'v6.example', type: 'AAAA', ttl: 30, ip: '2001:db8::6' }],
          }),
        ),
        ISN,
        v6,
      ),
    );
    expect(
      got.map((r) => [r.clientIp, r.clientPort, r.serverIp, r.protocol, r.latencyMs, r.answers]),
    ).toEqual([
      [
        '2001:db8:1::5',
        43210,
        '2001:db8:53::1',
        TCP,
        30,
        [{ name: 'v6.example', type: DnsType.AAAA, ttl: 30, ip: '2001:db8::6' }],
      ],
    ]);
  });

  it('a UDP answer with TC, then the same question over TCP: one lookup, latency from the TCP query', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const got = feed(
      t,
      1000,
      sent(0, { id: 4, name: 'big.example' }),
      received(2, { id: 4, name: 'big.example', flags: RD | RA | TC }),
      segment(3, true, stream(query({ id: 5, name: 'big.example' })), 1, { localPort: 45000 }),
      segment(9, false, stream(answer({ id: 5, name: 'big.example' })), ISN, { localPort: 45000 }),
    );
    expect(got.map((r) => [r.question, r.protocol, r.clientPort, r.latencyMs])).toEqual([
      ['big.example', TCP, 45000, 6],
    ]);
    expect(counts(t.counters.skipped)).toEqual({ truncated: 1 });
    expect(t.pendingQueries).toBe(0);
  });

  it(`follows at most MAX_STREAMS (${MAX_STREAMS}) streams: past it the least recently active one is dropped`, () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const s = stream(answer(SHOP));
    // Stream p is the answer stream of client port 20000 + p, each with its first 10 bytes in.
    const open = (p: number, ms: number) => part(ms, s, ISN, 0, 10, { localPort: 20000 + p });
    const rest = (p: number, ms: number, from = 10) =>
      part(ms, s, ISN, from, s.length, { localPort: 20000 + p });
    feed(t, 1000, ...Array.from({ length: MAX_STREAMS }, (_, p) => open(p, 1)));
    // Stream 0 gets another segment: now stream 1 is the least recently active.
    feed(t, 1000, part(2, s, ISN, 10, 20, { localPort: 20000 }));
    // One stream more: stream 1 is dropped, the others complete their messages.
    feed(t, 1000, open(MAX_STREAMS, 3));
    const got = feed(t, 1000, rest(0, 4, 20), rest(2, 4), rest(MAX_STREAMS, 4));
    expect(got.map((r) => r.clientPort)).toEqual([20000, 20002, 20000 + MAX_STREAMS]);
    expect(got.every((r) => r.question === 'www.shop.example')).toBe(true);
    // Stream 1's half-read message went with it: counted.
    expect(counts(t.counters.malformed)).toEqual({ tcp_gap: 1 });
  });

  it('a stream dropped to make room with a message half read counts that message (tcp_gap), as the README promises', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const s = stream(answer(SHOP));
    feed(
      t,
      1000,
      ...Array.from({ length: MAX_STREAMS + 1 }, (_, p) => part(1, s, ISN, 0, 10, { localPort: 20000 + p })),
    );
    // Stream 0's answer will never be complete: it is lost, and the loss must be visible.
    expect(counts(t.counters.malformed)).toEqual({ tcp_gap: 1 });
  });
});
