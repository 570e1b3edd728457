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
  TCP_SYN,
  UDP,
} from './testdata/records.js';
import {
  DnsTracker,
  MAX_HELD_BYTES,
  MAX_HELD_SEGMENTS,
  MAX_PENDING,
  MAX_STREAMS,
  MAX_TCP_BYTES,
  REORDER_NS,
} from './tracker.js';

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

/** Runs the expiry the receiver runs after a read at T0 + `nowMs`; returns the rows it made. */
function expire(tracker: DnsTracker, nowMs: number, drained = true): DnsLookupInit[] {
  const batch = new DnsBatch();
  tracker.expire(batch, clockAt(nowMs), drained);
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

  it('once tracing has run query_timeout, an answer whose query was not seen is unsolicited: skipped and counted, not a lookup', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    t.tracingSince(kt(0));
    const got = feed(
      t,
      6000,
      // A query sent before tracing began may still be waiting for this one.
      received(4999, { id: 1, name: 'before.example' }),
      // None can wait for these: stray or spoofed packets from port 53.
      received(5000, { id: 2, name: 'spoofed.example' }),
      received(5500, { ...SHOP, id: 3 }, { remote: '198.51.100.53' }),
      // An answer to a query seen is a lookup whenever it comes.
      sent(5990, { id: 4, name: SHOP.name }),
      received(5995, { ...SHOP, id: 4 }),
    );
    expect(got.map((r) => [r.question, r.latencyMs])).toEqual([
      ['before.example', undefined],
      ['www.shop.example', 5],
    ]);
    expect(counts(t.counters.skipped)).toEqual({ unsolicited: 2 });
    expect(t.counters).toMatchObject({ answers: 4, lookups: 2, unmatched: 1 });
    // An answer later than query_timeout finds its query forgotten (counted unanswered): unsolicited too.
    feed(t, 7000, sent(6000, { id: 5, name: 'slow.example' }));
    expire(t, 11_000);
    expect(feed(t, 12_000, received(11_500, { id: 5, name: 'slow.example' }))).toEqual([]);
    expect(counts(t.counters.skipped)).toEqual({ unsolicited: 3 });
    expect(t.counters).toMatchObject({ unanswered: 1, lookups: 2, unmatched: 1 });
  });

  it('before it is told when tracing began, every answer whose query was not seen is handed on', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    expect(
      feed(t, 100_000, received(90_000, { id: 1, name: 'late.example' })).map((r) => r.question),
    ).toEqual(['late.example']);
    expect(t.counters).toMatchObject({ unmatched: 1, skipped: new Map() });
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
    // Latency counts from the first sending, but a retry waits query_timeout from itself (a resolver retries
    // after 5 s, as long as query_timeout: timed from the first, the retry's answer would find nothing).
    feed(
      t,
      7000,
      sent(2000, { id: 10, name: 'slower.example' }),
      sent(6000, { id: 10, name: 'slower.example' }),
    );
    expire(t, 2000 + 5000);
    expect([t.pendingQueries, t.counters.unanswered]).toEqual([1, 0]);
    const late = feed(t, 8000, received(7500, { id: 10, name: 'slower.example' }));
    expect(late.map((r) => r.latencyMs)).toEqual([5500]);
    expect(t.counters.skipped.get('unsolicited')).toBeUndefined();
    feed(
      t,
      9000,
      sent(8000, { id: 11, name: 'never.example' }),
      sent(9000, { id: 11, name: 'never.example' }),
    );
    expire(t, 9000 + 5000);
    expect([t.pendingQueries, t.counters.unanswered]).toEqual([0, 1]);
  });

  it('a query whose source NAT rewrote on the way out (masqueraded) is found by its socket: its answer is its lookup, with latency', () => {
    // The egress hook runs after POSTROUTING: the query's record shows the address and port it left with;
    // the answer, de-NATed before the socket, shows the socket's own.
    const t = new DnsTracker(TIMEOUT_NS);
    t.tracingSince(kt(0));
    const got = feed(
      t,
      11_000,
      sent(10_000, { id: 77, name: SHOP.name }, { local: '10.244.0.1', localPort: 61234 }),
      received(10_003, { ...SHOP, id: 77 }),
      // Another socket (cgroup) with the same id is not it.
      sent(10_100, { id: 78, name: 'other.example' }, { local: '10.244.0.1', localPort: 61235, cgroupId: 1 }),
      received(10_103, { id: 78, name: 'other.example' }, { cgroupId: 2 }),
    );
    expect(got.map((r) => [r.question, r.latencyMs])).toEqual([[SHOP.name, 3]]);
    expect(counts(t.counters.skipped)).toEqual({ unsolicited: 1 });
    expect(t.pendingQueries).toBe(1);
  });

  it("a read that did not reach the ring's end expires queries by the newest record read, not the clock", () => {
    const t = new DnsTracker(TIMEOUT_NS);
    t.tracingSince(kt(0));
    feed(t, 20_000, sent(10_000, { id: 5, name: SHOP.name }));
    // The reader is 12 s behind: its answer may be in the part of the ring not read yet.
    expire(t, 22_000, false);
    expect([t.pendingQueries, t.counters.unanswered]).toEqual([1, 0]);
    expect(feed(t, 22_500, received(10_010, { ...SHOP, id: 5 })).map((r) => r.latencyMs)).toEqual([10]);
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
    expire(t, 26 + 4999);
    expect(feed(t, 6000, a(5020, '192.0.2.8', '10.96.0.10'))).toEqual([]);
    expire(t, 26 + 5000);
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
    expire(t, 100 + 4999);
    expect([t.pendingQueries, t.counters.unanswered]).toEqual([2, 0]);
    expire(t, 100 + 5000);
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
    expire(t, 60_000);
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

/**
 * What starts a direction's stream, as the tracer records it (no payload, the packet's ISN): the client's
 * SYN leaving (its queries), or the server's SYN-ACK arriving (its answers).
 */
const syn = (ms: number, egress: boolean, isn: number, over: Partial<RecordInit> = {}) =>
  segment(ms, egress, new Uint8Array(0), isn, { tcpFlags: egress ? TCP_SYN : TCP_SYN | TCP_ACK, ...over });

/** The server's ISN: its first answer byte is ISN + 1. */
const ISN = 1_000_000;
/** The client's. */
const CISN = 555;

/** The bytes of answer stream `s` in [from, to), received as one segment of the stream begun at `isn`. */
const part = (ms: number, s: Uint8Array, isn: number, from: number, to = s.length, over = {}) =>
  segment(ms, false, s.subarray(from, to), isn + 1 + from, over);

/** An answer with `n` A records: a message of 12 + 17 + 27·n bytes (dns-packet writes names whole). */
function bigAnswer(id: number, n: number): Uint8Array {
  return answer({
    id,
    name: 'big.example',
    answers: Array.from({ length: n }, (_, i) => ({
      name: 'big.example',
      type: 'A' as const,
      ttl: 60,
      ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    })),
  });
}

const A2 = answer({
  id: 2,
  name: 'two.example',
  answers: [{ name: 'two.example', type: 'A', ttl: 9, ip: '192.0.2.2' }],
});
const A3 = answer({ id: 3, name: 'three.example', rcode: DnsRcode.NXDOMAIN });

describe('dns tracker: TCP streams', () => {
  it('a query and its answer, one segment each, on streams begun by the SYN and the SYN-ACK: a lookup with its latency', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const got = feed(
      t,
      1000,
      syn(9, true, CISN),
      syn(9.5, false, ISN),
      segment(10, true, stream(query({ id: SHOP.id, name: SHOP.name })), CISN + 1),
      segment(17, false, stream(answer(SHOP)), ISN + 1),
    );
    expect(got).toEqual([{ ...SHOP_LOOKUP, time: T0 + 17, protocol: TCP, latencyMs: 7 }]);
    expect(t.counters).toMatchObject({ queries: 1, answers: 1, lookups: 1, unmatched: 0 });
    expect(t.counters.malformed.size).toBe(0);
    expect(t.tcpStreams).toBe(2);
  });

  it('a segment of a stream whose start was not seen (started mid-connection, SYN lost) is read past, counted tcp_unframed per segment, never parsed', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const s = stream(answer(SHOP), A2);
    const first = stream(answer(SHOP)).length;
    // Both segments start exactly at a message: framing them would work here, by luck, and misparse elsewhere.
    const got = feed(
      t,
      1000,
      part(1, s, ISN, 0, first),
      part(2, s, ISN, first),
      segment(3, true, stream(query({ id: 9, name: 'q.example' })), CISN + 1),
      // A bare FIN carries nothing to read past.
      segment(4, false, new Uint8Array(0), ISN + 1 + s.length, { tcpFlags: TCP_FIN | TCP_ACK }),
    );
    expect(got).toEqual([]);
    expect(counts(t.counters.malformed)).toEqual({ tcp_unframed: 3 });
    expect(t.counters).toMatchObject({ answerPackets: 3, queryPackets: 1, answers: 0, queries: 0 });
    expect(t.tcpStreams).toBe(0);
    // The port's next connection is followed from its SYN-ACK.
    const next = feed(t, 2000, syn(1500, false, 7_000_000), part(1501, stream(A2), 7_000_000, 0));
    expect(next.map((r) => r.question)).toEqual(['two.example']);
    expect(counts(t.counters.malformed)).toEqual({ tcp_unframed: 3 });
  });

  it('a message split over two segments, in two drains, is one lookup when its last byte arrives', () => {
    const s = stream(answer(SHOP));
    // Split inside the 2-byte length, and inside the message.
    for (const cut of [1, 30]) {
      const u = new DnsTracker(TIMEOUT_NS);
      expect(feed(u, 1000, syn(4, false, ISN), part(5, s, ISN, 0, cut))).toEqual([]);
      expect(u.tcpBytes).toBeGreaterThan(0);
      expect(feed(u, 2000, part(1500, s, ISN, cut)).map((r) => [r.question, r.time, r.answers])).toEqual([
        ['www.shop.example', T0 + 1500, SHOP_ANSWERS],
      ]);
      // Nothing held once the message is out.
      expect(u.tcpBytes).toBe(0);
    }
    // Three segments, the length alone in the first.
    const t = new DnsTracker(TIMEOUT_NS);
    const got = feed(
      t,
      1000,
      syn(0, false, ISN),
      part(1, s, ISN, 0, 2),
      part(2, s, ISN, 2, 50),
      part(3, s, ISN, 50),
    );
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
      syn(0, true, 76),
      syn(0, false, ISN),
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
      queryPackets: 3,
      answerPackets: 3,
      queries: 3,
      answers: 3,
      lookups: 3,
    });
  });

  it('a TCP Fast Open SYN carrying the query: its bytes start at ISN + 1', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const got = feed(
      t,
      1000,
      segment(0, true, stream(query({ id: 4, name: 'tfo.example' })), CISN, { tcpFlags: TCP_SYN }),
      syn(2, false, ISN),
      segment(5, false, stream(answer({ id: 4, name: 'tfo.example' })), ISN + 1),
    );
    expect(got.map((r) => [r.question, r.latencyMs])).toEqual([['tfo.example', 5]]);
    expect(t.counters.malformed.size).toBe(0);
  });

  it('a SYN-ACK seen again (same ISN) changes nothing; a new connection on the same ports (another ISN) starts over, counting what the old one left half read (tcp_gap)', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const s = stream(answer(SHOP));
    const got = feed(
      t,
      1000,
      syn(0, false, ISN),
      part(1, s, ISN, 0, 30),
      syn(2, false, ISN),
      part(3, s, ISN, 30),
      // The next connection from the same port: 30 bytes in when it is replaced.
      syn(10, false, 5_000_000),
      part(11, s, 5_000_000, 0, 30),
      syn(12, false, 7_000_000),
      part(13, stream(A2), 7_000_000, 0),
    );
    expect(got.map((r) => [r.question, r.time])).toEqual([
      ['www.shop.example', T0 + 3],
      ['two.example', T0 + 13],
    ]);
    expect(counts(t.counters.malformed)).toEqual({ tcp_gap: 1 });
  });

  it('a retransmitted segment (same sequence number) is read once', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const s = stream(answer(SHOP), answer({ ...SHOP, id: 2 }));
    const half = 40;
    const got = feed(
      t,
      1000,
      syn(0, false, ISN),
      part(1, s, ISN, 0, half),
      part(2, s, ISN, 0, half),
      part(3, s, ISN, half),
      // The whole segment again after the message it completed.
      part(4, s, ISN, half),
    );
    expect(got.map((r) => r.time)).toEqual([T0 + 3, T0 + 3]);
    expect(t.counters).toMatchObject({ answerPackets: 5, answers: 2, lookups: 2 });
    expect(t.counters.malformed.size).toBe(0);
  });

  it('an overlapping retransmission (part old, part new) adds only its new bytes', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const s = stream(answer(SHOP), answer({ ...SHOP, id: 2, name: 'www.shop.example' }));
    const first = stream(answer(SHOP)).length;
    const got = feed(
      t,
      1000,
      syn(0, false, ISN),
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
    const isn = 2 ** 32 - 21;
    const got = feed(
      t,
      1000,
      syn(0, false, isn),
      segment(1, false, s.subarray(0, 35), isn + 1),
      segment(2, false, s.subarray(35), 15),
    );
    expect(got).toHaveLength(1);
    expect(t.counters.malformed.size).toBe(0);
  });

  it('segments arriving out of order (ingress sees them in wire order, before TCP reorders) are put back in order: no loss', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const s = stream(answer(SHOP), A2, A3);
    const got = feed(
      t,
      1000,
      syn(0, false, ISN),
      part(1, s, ISN, 0, 30),
      part(2, s, ISN, 60, 100),
      part(3, s, ISN, 100, s.length - 10),
      // The hole's segment comes: the two held behind it follow.
      part(4, s, ISN, 30, 60),
      part(5, s, ISN, s.length - 10),
    );
    // The messages the filler completed reached the client with it.
    expect(got.map((r) => [r.question, r.time])).toEqual([
      ['www.shop.example', T0 + 4],
      ['two.example', T0 + 4],
      ['three.example', T0 + 5],
    ]);
    expect(t.counters.malformed.size).toBe(0);
    expect(t.tcpBytes).toBe(0);
  });

  it('a hole filled by a retransmission cut at other boundaries, and a segment held twice, are read once', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const s = stream(answer(SHOP), A2);
    const got = feed(
      t,
      1000,
      syn(0, false, ISN),
      part(1, s, ISN, 0, 30),
      part(2, s, ISN, 60),
      part(3, s, ISN, 60),
      part(4, s, ISN, 20, 70),
    );
    expect(got.map((r) => [r.question, r.time])).toEqual([
      ['www.shop.example', T0 + 4],
      ['two.example', T0 + 4],
    ]);
    expect(t.counters.malformed.size).toBe(0);
  });

  it('a FIN arriving before the last data ends the stream once the data is in', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const s = stream(A2);
    const got = feed(
      t,
      1000,
      syn(0, false, ISN),
      part(1, s, ISN, 0, 10),
      segment(2, false, new Uint8Array(0), ISN + 1 + s.length, { tcpFlags: TCP_FIN | TCP_ACK }),
      part(3, s, ISN, 10),
    );
    expect(got.map((r) => [r.question, r.time])).toEqual([['two.example', T0 + 3]]);
    expect(t.tcpStreams).toBe(0);
    expect(t.counters.malformed.size).toBe(0);
  });

  for (const by of ['segment', 'expire'] as const) {
    it(`a hole not filled within REORDER_NS (${REORDER_NS / MS} ms of the records' clock) is a gap, found by the next ${by}: the message it cut is dropped (tcp_gap), framing goes on after it`, () => {
      const t = new DnsTracker(TIMEOUT_NS);
      const s = stream(answer(SHOP), A2, A3, answer({ id: 4, name: 'four.example' }));
      const first = stream(answer(SHOP)).length;
      const third = stream(answer(SHOP), A2, A3).length;
      // [30, 40) never comes; the first message's length was seen, so where it ends is known.
      expect(
        feed(t, 1000, syn(0, false, ISN), part(1, s, ISN, 0, 30), part(2, s, ISN, 40, first + 5)),
      ).toEqual([]);
      expect(feed(t, 1000, part(500, s, ISN, first + 5, third))).toEqual([]);
      expect(expire(t, 1001.9)).toEqual([]);
      expect(t.counters.malformed.size).toBe(0);
      const got =
        by === 'segment'
          ? feed(t, 1003, part(1002, s, ISN, third))
          : [...expire(t, 1002), ...feed(t, 1003, part(1002, s, ISN, third))];
      expect(got.map((r) => [r.question, r.time])).toEqual([
        ['two.example', T0 + (by === 'segment' ? 1002 : 500)],
        ['three.example', T0 + (by === 'segment' ? 1002 : 500)],
        ['four.example', T0 + 1002],
      ]);
      expect(counts(t.counters.malformed)).toEqual({ tcp_gap: 1 });
      expect(t.tcpBytes).toBe(0);
    });
  }

  it('a retransmission filling a hole after more than REORDER_NS still fills it (placed before the hole is judged)', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const s = stream(answer(SHOP), A2);
    feed(t, 1000, syn(0, false, ISN), part(1, s, ISN, 0, 30), part(2, s, ISN, 40));
    // No read ended in between (the ring was never emptied), so nothing judged the hole until now.
    const got = feed(t, 2000, part(1500, s, ISN, 30, 40));
    expect(got.map((r) => [r.question, r.time])).toEqual([
      ['www.shop.example', T0 + 1500],
      ['two.example', T0 + 1500],
    ]);
    expect(t.counters.malformed.size).toBe(0);
  });

  it("expire judges a hole by the records' clock while the ring was not drained to the end (the hole's segment may still be in it)", () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const s = stream(answer(SHOP), A2);
    feed(t, 1000, syn(0, false, ISN), part(1, s, ISN, 0, 30), part(2, s, ISN, 40));
    // Read much later, the ring still holding more: the newest record seen is from T0 + 2 ms.
    expect(expire(t, 5000, false)).toEqual([]);
    expect(t.counters.malformed.size).toBe(0);
    expect(feed(t, 5000, part(3, s, ISN, 30, 40)).map((r) => r.question)).toEqual([
      'www.shop.example',
      'two.example',
    ]);
    expect(t.counters.malformed.size).toBe(0);
  });

  it(`at most MAX_HELD_SEGMENTS (${MAX_HELD_SEGMENTS}) segments wait behind a hole: one more makes it a gap; framing goes on when the cut message's length was seen`, () => {
    const msgs = Array.from({ length: 8 }, (_, i) => answer({ id: 10 + i, name: `m${i}.example` }));
    const s = stream(...msgs);
    const bounds = msgs.map((_, i) => stream(...msgs.slice(0, i + 1)).length);
    // The hole is [2, 10): the first message's length came before it. Then one segment per message.
    const t = new DnsTracker(TIMEOUT_NS);
    feed(t, 1000, syn(0, false, ISN), part(1, s, ISN, 0, 2), part(2, s, ISN, 10, bounds[0]));
    for (let i = 1; i < MAX_HELD_SEGMENTS; i++) {
      expect(feed(t, 1000, part(2 + i, s, ISN, bounds[i - 1], bounds[i]))).toEqual([]);
    }
    expect(t.counters.malformed.size).toBe(0);
    const got = feed(t, 1000, part(10, s, ISN, bounds[MAX_HELD_SEGMENTS - 1], bounds[MAX_HELD_SEGMENTS]));
    expect(got.map((r) => r.question)).toEqual(
      Array.from({ length: MAX_HELD_SEGMENTS }, (_, i) => `m${i + 1}.example`),
    );
    expect(counts(t.counters.malformed)).toEqual({ tcp_gap: 1 });

    // The hole is [0, 10): the first message's length is in it, so no message start is known after it.
    const u = new DnsTracker(TIMEOUT_NS);
    feed(u, 1000, syn(0, false, ISN), part(2, s, ISN, 10, bounds[0]));
    for (let i = 1; i <= MAX_HELD_SEGMENTS; i++) feed(u, 1000, part(2 + i, s, ISN, bounds[i - 1], bounds[i]));
    // The held segments are read past (each counted), as is everything after them on this connection.
    expect(counts(u.counters.malformed)).toEqual({ tcp_gap: 1, tcp_unframed: MAX_HELD_SEGMENTS + 1 });
    expect(feed(u, 1000, part(20, s, ISN, bounds[MAX_HELD_SEGMENTS]))).toEqual([]);
    expect(counts(u.counters.malformed)).toEqual({ tcp_gap: 1, tcp_unframed: MAX_HELD_SEGMENTS + 2 });
    expect([u.tcpStreams, u.tcpBytes]).toEqual([0, 0]);
  });

  it(`at most MAX_HELD_BYTES (${MAX_HELD_BYTES}) wait behind a hole, records' headers included`, () => {
    const big = bigAnswer(1, 1000);
    const s = stream(big, A2);
    const t = new DnsTracker(TIMEOUT_NS);
    feed(t, 1000, syn(0, false, ISN), part(1, s, ISN, 0, 100));
    // Segments of 4096 bytes after the hole [100, 200): three fit, the fourth does not.
    const seg = (k: number) => part(2 + k, s, ISN, 200 + 4096 * k, Math.min(200 + 4096 * (k + 1), s.length));
    feed(t, 1000, seg(0), seg(1), seg(2));
    expect(t.counters.malformed.size).toBe(0);
    expect(t.tcpBytes).toBe(3 * (64 + 4096) + stream(big).length);
    feed(t, 1000, seg(3));
    expect(counts(t.counters.malformed)).toEqual({ tcp_gap: 1 });
    // The big message is skipped to its end; the next one is read.
    const rest = Array.from({ length: Math.ceil((s.length - 200) / 4096) - 4 }, (_, k) => seg(4 + k));
    expect(feed(t, 1000, ...rest).map((r) => r.question)).toEqual(['two.example']);
    expect(t.tcpBytes).toBe(0);
  });

  it('a segment cut inside a message whose length was captured: the records before the cut are kept, the rest of that message skipped in later segments, and framing goes on after it', () => {
    const shop2 = answer({ ...SHOP, id: 2 });
    const s = stream(answer(SHOP), shop2, A3);
    const first = stream(answer(SHOP)).length;
    const second = stream(answer(SHOP), shop2).length;
    // Where the cut segment ends: before the second message does (3 bytes of it in the next segment), or
    // exactly where it does.
    for (const over of [3, 0]) {
      const t = new DnsTracker(TIMEOUT_NS);
      const got = feed(
        t,
        1000,
        syn(0, false, ISN),
        // The tracer copied all but the last 8 bytes of the second message (inside its A record).
        part(1, s, ISN, 0, second - over, { captured: second - 8 }),
        part(2, s, ISN, second - over, second + 10),
        part(3, s, ISN, second + 10),
      );
      const where = `the cut segment ends ${over} bytes before the message`;
      expect(
        got.map((r) => [r.question, r.answers.length, r.rcode]),
        where,
      ).toEqual([
        ['www.shop.example', 3, undefined],
        ['www.shop.example', 2, undefined],
        ['three.example', 0, DnsRcode.NXDOMAIN],
      ]);
      expect(t.counters.malformed.size, where).toBe(0);
    }
    // The cut message goes on over several segments, all skipped.
    const t = new DnsTracker(TIMEOUT_NS);
    const got = feed(
      t,
      1000,
      syn(0, false, ISN),
      part(1, s, ISN, 0, first + 50, { captured: first + 2 + 40 }),
      part(2, s, ISN, first + 50, first + 70),
      part(3, s, ISN, first + 70, second + 5),
      part(4, s, ISN, second + 5),
    );
    // 40 bytes of the second message: its header and question, none of its records.
    expect(got.map((r) => [r.question, r.answers.length])).toEqual([
      ['www.shop.example', 3],
      ['www.shop.example', 0],
      ['three.example', 0],
    ]);
    expect(t.counters.malformed.size).toBe(0);
  });

  it("a segment cut where the next message's length was not captured breaks the stream: never misframed, every later segment counted tcp_unframed", () => {
    // The segment holds the first answer and the start of the second; capture_bytes ends at the first's last
    // byte, one byte into the second's length, or before the first's end (so the second starts in the cut).
    // Where the stream's next message starts is unknown: reading on from the next segment would take the
    // middle of the second answer for a length prefix.
    const a2 = answer({ id: 2, name: 'two.example' });
    const a3 = answer({ id: 3, name: 'three.example' });
    const s = stream(answer(SHOP), a2, a3);
    const first = stream(answer(SHOP)).length;
    for (const captured of [first, first + 1, first - 5]) {
      const t = new DnsTracker(TIMEOUT_NS);
      const got = feed(
        t,
        1000,
        syn(0, false, ISN),
        part(1, s, ISN, 0, first + 20, { captured }),
        part(2, s, ISN, first + 20, first + 40),
        part(3, s, ISN, first + 40),
      );
      const where = `captured ${captured - first} bytes from the first message's end`;
      expect(
        got.map((r) => [r.question, r.answers.length]),
        where,
      ).toEqual([['www.shop.example', captured < first ? 2 : 3]]);
      // The second message, whose length was not copied, is counted once (as a message cut inside its
      // header is); the segments after it, read past.
      expect(counts(t.counters.malformed), where).toEqual({ short_header: 1, tcp_unframed: 2 });
      expect(t.tcpStreams, where).toBe(0);
    }
  });

  for (const end of ['fin', 'rst', 'idle'] as const) {
    it(`a broken stream counts every segment it reads past, and ends by ${end} without being counted again`, () => {
      const t = new DnsTracker(TIMEOUT_NS);
      const s = stream(answer(SHOP), A2, A3);
      const first = stream(answer(SHOP)).length;
      feed(
        t,
        1000,
        syn(0, false, ISN),
        part(1, s, ISN, 0, first + 20, { captured: first }),
        part(2, s, ISN, first + 20, first + 30),
        part(3, s, ISN, first + 30, first + 40),
      );
      expect(counts(t.counters.malformed)).toEqual({ short_header: 1, tcp_unframed: 2 });
      if (end === 'idle') {
        expect(expire(t, 61_000)).toEqual([]);
      } else {
        const flags = end === 'fin' ? TCP_FIN | TCP_ACK : TCP_RST | TCP_ACK;
        feed(t, 1000, segment(4, false, new Uint8Array(0), ISN + 1 + s.length, { tcpFlags: flags }));
      }
      expect(counts(t.counters.malformed)).toEqual({ short_header: 1, tcp_unframed: 2 });
      expect(
        feed(t, 200_000, syn(150_000, false, 9_000_000), part(150_001, stream(A2), 9_000_000, 0)).map(
          (r) => r.question,
        ),
      ).toEqual(['two.example']);
    });
  }

  it('a stream that idles out (a minute without segments) or is reset holding part of a message counts it (tcp_gap); one holding nothing is forgotten silently', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const s = stream(A2, A3);
    const first = stream(A2).length;
    const port = (p: number) => ({ localPort: PORT + p });
    feed(
      t,
      1000,
      syn(0, false, ISN, port(0)),
      part(1, s, ISN, 0, first + 5, port(0)),
      syn(0, false, ISN, port(1)),
      part(1, s, ISN, 0, first, port(1)),
      syn(0, false, ISN, port(2)),
      part(1, s, ISN, 0, first + 5, port(2)),
      segment(2, false, new Uint8Array(0), ISN + 1 + first + 5, { tcpFlags: TCP_RST | TCP_ACK, ...port(2) }),
    );
    expect(counts(t.counters.malformed)).toEqual({ tcp_gap: 1 });
    expect(t.tcpStreams).toBe(2);
    expect(expire(t, 60_001)).toEqual([]);
    expect(t.tcpStreams).toBe(2);
    expect(expire(t, 60_002)).toEqual([]);
    expect([t.tcpStreams, t.tcpBytes]).toEqual([0, 0]);
    expect(counts(t.counters.malformed)).toEqual({ tcp_gap: 2 });
  });

  it('an IPv6 TCP lookup', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const v6 = { local: '2001:db8:1::5', remote: '2001:db8:53::1', localPort: 43210 };
    const got = feed(
      t,
      1000,
      syn(99, true, 0, v6),
      syn(99.5, false, ISN, v6),
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
        ISN + 1,
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
    const tcp = { localPort: 45000 };
    const got = feed(
      t,
      1000,
      sent(0, { id: 4, name: 'big.example' }),
      received(2, { id: 4, name: 'big.example', flags: RD | RA | TC }),
      syn(2.5, true, 0, tcp),
      syn(2.8, false, ISN, tcp),
      segment(3, true, stream(query({ id: 5, name: 'big.example' })), 1, tcp),
      segment(9, false, stream(answer({ id: 5, name: 'big.example' })), ISN + 1, tcp),
    );
    expect(got.map((r) => [r.question, r.protocol, r.clientPort, r.latencyMs])).toEqual([
      ['big.example', TCP, 45000, 6],
    ]);
    expect(counts(t.counters.skipped)).toEqual({ truncated: 1 });
    expect(t.pendingQueries).toBe(0);
  });

  it('a query a local NAT redirected (to 127.0.0.1:15053, from a socket connected to port 53) pairs with its answer from port 53', () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const got = feed(
      t,
      1000,
      sent(0, { id: 6, name: 'mesh.example' }, { remote: '127.0.0.1', remotePort: 15053 }),
      received(2, { id: 6, name: 'mesh.example' }),
    );
    expect(got.map((r) => [r.question, r.serverIp, r.latencyMs])).toEqual([['mesh.example', SERVER, 2]]);
  });

  it(`follows at most MAX_STREAMS (${MAX_STREAMS}) streams: past it the least recently active one is dropped, its half-read message counted (tcp_gap)`, () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const s = stream(answer(SHOP));
    // Stream p is the answer stream of client port 20000 + p, each with its first 10 bytes in.
    const open = (p: number, ms: number) => [
      syn(ms, false, ISN, { localPort: 20000 + p }),
      part(ms, s, ISN, 0, 10, { localPort: 20000 + p }),
    ];
    const rest = (p: number, ms: number, from = 10) =>
      part(ms, s, ISN, from, s.length, { localPort: 20000 + p });
    feed(t, 1000, ...Array.from({ length: MAX_STREAMS }, (_, p) => open(p, 1)).flat());
    expect(t.tcpStreams).toBe(MAX_STREAMS);
    // Stream 0 gets another segment: now stream 1 is the least recently active.
    feed(t, 1000, part(2, s, ISN, 10, 20, { localPort: 20000 }));
    // One stream more: stream 1 is dropped, the others complete their messages.
    feed(t, 1000, ...open(MAX_STREAMS, 3));
    expect(t.tcpStreams).toBe(MAX_STREAMS);
    expect(counts(t.counters.malformed)).toEqual({ tcp_gap: 1 });
    const got = feed(t, 1000, rest(0, 4, 20), rest(2, 4), rest(MAX_STREAMS, 4), rest(1, 4));
    expect(got.map((r) => r.clientPort)).toEqual([20000, 20002, 20000 + MAX_STREAMS]);
    expect(got.every((r) => r.question === 'www.shop.example')).toBe(true);
    // Stream 1's rest is read past.
    expect(counts(t.counters.malformed)).toEqual({ tcp_gap: 1, tcp_unframed: 1 });
  });

  it(`holds at most MAX_TCP_BYTES (${MAX_TCP_BYTES / 2 ** 20} MiB) over all streams: past it the least recently active is dropped, its half-read message counted (tcp_gap)`, () => {
    const t = new DnsTracker(TIMEOUT_NS);
    const big = stream(bigAnswer(1, 1100));
    // A stream holding the start of its message holds room for all of it.
    const fit = Math.floor(MAX_TCP_BYTES / big.length);
    const port = (p: number) => ({ localPort: 20000 + p });
    const open = (p: number) => [syn(1, false, ISN, port(p)), part(1, big, ISN, 0, 4000, port(p))];
    feed(t, 1000, ...Array.from({ length: fit }, (_, p) => open(p)).flat());
    expect(t.counters.malformed.size).toBe(0);
    expect(t.tcpBytes).toBe(fit * big.length);
    // Stream 0 moves on: streams 1 and 2 are now the least recently active.
    feed(t, 1000, part(2, big, ISN, 4000, 8000, port(0)));
    feed(t, 1000, ...open(fit), ...open(fit + 1));
    expect(counts(t.counters.malformed)).toEqual({ tcp_gap: 2 });
    expect(t.tcpBytes).toBe(fit * big.length);
    expect(t.tcpBytes).toBeLessThanOrEqual(MAX_TCP_BYTES);
    const finish = (p: number, from: number) => {
      const segs: Uint8Array[] = [];
      for (let at = from; at < big.length; at += 4000)
        segs.push(part(3, big, ISN, at, Math.min(at + 4000, big.length), port(p)));
      return segs;
    };
    const got = feed(t, 1000, ...finish(0, 8000), ...finish(fit + 1, 4000), ...finish(1, 4000));
    expect(got.map((r) => [r.clientPort, r.question])).toEqual([
      [20000, 'big.example'],
      [20000 + fit + 1, 'big.example'],
    ]);
    expect(counts(t.counters.malformed)).toEqual({
      tcp_gap: 2,
      tcp_unframed: Math.ceil((big.length - 4000) / 4000),
    });
  });
});

/** xorshift32: failures reproduce from the seed in the test's name. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

describe('dns tracker: TCP streams, randomised', () => {
  it('any segmentation, reordered within the hold, with retransmissions, gives every message once and nothing else (200 seeds)', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const r = rng(seed);
      const int = (n: number) => Math.floor(r() * n);
      const names = Array.from({ length: 1 + int(12) }, (_, i) => `n${i}.s${seed}.example`);
      const s = stream(
        ...names.map((name, i) =>
          answer({
            id: i + 1,
            name,
            answers: Array.from({ length: int(4) }, (_, k) => ({
              name,
              type: 'A' as const,
              ttl: 30,
              ip: `192.0.2.${k + 1}`,
            })),
          }),
        ),
      );
      // Segments of 1 to 300 bytes.
      const cuts: [number, number][] = [];
      for (let from = 0; from < s.length; ) {
        const to = Math.min(s.length, from + 1 + int(300));
        cuts.push([from, to]);
        from = to;
      }
      // Each segment may come up to 3 places late (so at most 3 are ever held), and may come again.
      const order = cuts.map((c, i) => ({ c, key: i + (r() < 0.25 ? 1 + int(3) : 0) + r() / 2 }));
      order.sort((a, b) => a.key - b.key);
      const sentOnce = order.map((o) => o.c);
      const delivered: [number, number][] = [];
      for (const c of sentOnce) {
        delivered.push(c);
        if (r() < 0.15) delivered.push(delivered[int(delivered.length)]);
      }
      const t = new DnsTracker(TIMEOUT_NS);
      const records = [
        syn(0, false, ISN),
        ...delivered.map(([from, to], i) => part(1 + i / 10, s, ISN, from, to)),
        segment(100, false, new Uint8Array(0), ISN + 1 + s.length, { tcpFlags: TCP_FIN | TCP_ACK }),
      ];
      // Over a few drains.
      const got: DnsLookupInit[] = [];
      for (let i = 0; i < records.length; ) {
        const n = 1 + int(10);
        got.push(...feed(t, 1000, ...records.slice(i, i + n)));
        i += n;
      }
      const where = `seed ${seed}`;
      expect(
        got.map((l) => l.question),
        where,
      ).toEqual(names);
      expect(counts(t.counters.malformed), where).toEqual({});
      expect([t.tcpStreams, t.tcpBytes], where).toEqual([0, 0]);
    }
  });

  it('hostile records (any flags, sequence numbers, lengths, cuts, times) never throw, stay within the bounds, and leave nothing held once their streams end (50 seeds)', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const r = rng(seed * 7919);
      const int = (n: number) => Math.floor(r() * n);
      const t = new DnsTracker(TIMEOUT_NS);
      const flagsOf = [TCP_SYN, TCP_SYN | TCP_ACK, TCP_FIN | TCP_ACK, TCP_RST, TCP_PSH | TCP_ACK, TCP_ACK];
      let ms = 0;
      for (let drain = 0; drain < 40; drain++) {
        const records: Uint8Array[] = [];
        for (let k = 0; k < 50; k++) {
          ms += r() * 60;
          const payload = new Uint8Array(int(5) === 0 ? 0 : 1 + int(1200));
          for (let b = 0; b < payload.length; b++) payload[b] = int(256);
          // Lengths that announce anything from nothing to 64 KiB.
          if (payload.length >= 2 && r() < 0.5) payload[0] = int(4) === 0 ? 0xff : int(3);
          const base = [ISN, ISN + 1 + int(70_000), 2 ** 32 - 1 - int(500), int(2 ** 32)][int(4)];
          records.push(
            segment(ms, r() < 0.5, payload, base >>> 0, {
              localPort: PORT + int(6),
              tcpFlags: flagsOf[int(flagsOf.length)],
              captured: int(4) === 0 ? int(payload.length + 1) : payload.length,
            }),
          );
        }
        feed(t, ms, ...records);
        expect(t.tcpBytes, `seed ${seed}`).toBeGreaterThanOrEqual(0);
        expect(t.tcpBytes, `seed ${seed}`).toBeLessThanOrEqual(MAX_TCP_BYTES);
        expect(t.tcpStreams, `seed ${seed}`).toBeLessThanOrEqual(12);
        if (r() < 0.3) expire(t, ms, r() < 0.5);
      }
      expire(t, ms + 61_000);
      expect([t.tcpStreams, t.tcpBytes], `seed ${seed}`).toEqual([0, 0]);
    }
  });
});
