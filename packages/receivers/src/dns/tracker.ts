// From the tracer's raw records to lookups: each record's message is parsed, TCP segments are put back
// into length-prefixed messages, answers are paired with the queries they answer (latency), and every
// answer that is a lookup becomes a row of a DnsBatch. Everything that is not used is counted, by reason.
import type { DnsBatch } from '@netmon/core';
import { DNS_EVENT } from '@netmon/native';
import { DnsMessage, type DnsReject, parseDns } from './parse.js';

const TCP = 6;
const TCP_FIN = 0x01;
const TCP_RST = 0x04;
/** Queries waiting for an answer, at most; past it the oldest is dropped (counted as unanswered). */
export const MAX_PENDING = 16384;
/** TCP streams followed at once, at most; past it the least recently active is dropped. */
export const MAX_STREAMS = 1024;
/** A TCP stream with no segment for this long is forgotten (its connection was closed unseen). */
const STREAM_IDLE_NS = 60e9;
/** A DNS message over TCP is at most 65535 bytes after its 2-byte length. */
const MAX_TCP_MESSAGE = 2 + 65535;

const EMPTY = new Uint8Array(0);

/** Why a message was not used: the parser's reasons, and the tracer's own. */
export type MalformedReason = DnsReject | 'unreadable' | 'tcp_gap';
/** Why a well-formed message is not a lookup. */
export type SkipReason = 'truncated' | 'opcode' | 'direction' | 'duplicate';

export interface TrackerCounters {
  /** Records read, by direction. */
  queryPackets: number;
  answerPackets: number;
  /** Messages parsed, by direction. */
  queries: number;
  answers: number;
  lookups: number;
  unmatched: number;
  unanswered: number;
  malformed: Map<MalformedReason, number>;
  skipped: Map<SkipReason, number>;
}

interface Pending {
  /** CLOCK_MONOTONIC ns of the query. */
  at: number;
}

interface Stream {
  /** Sequence number of the next byte expected. */
  next: number;
  /**
   * A segment was lost or cut: where the next message starts is unknown, so the rest of the connection
   * is read past (until it closes or idles out).
   */
  broken: boolean;
  /** Bytes of the message being put together (its 2-byte length first). */
  buf: Uint8Array;
  used: number;
  lastNs: number;
}

/** What the tracker needs to place a record in time and name its client's pod. */
export interface TrackerClock {
  /** CLOCK_MONOTONIC ns and wall ms, read together. */
  monoNs: number;
  wallMs: number;
}

export class DnsTracker {
  readonly counters: TrackerCounters = {
    queryPackets: 0,
    answerPackets: 0,
    queries: 0,
    answers: 0,
    lookups: 0,
    unmatched: 0,
    unanswered: 0,
    malformed: new Map(),
    skipped: new Map(),
  };
  private readonly message = new DnsMessage();
  /** Insertion order is age order: expiry walks from the front. */
  private readonly pending = new Map<string, Pending>();
  /**
   * Queries answered within query_timeout, by key, with the time of their answer: a later answer to one is
   * no new lookup (musl sends a query to every nameserver with one id from one socket; packets get
   * duplicated). Insertion order is age order, as in `pending`.
   */
  private readonly answered = new Map<string, number>();
  private readonly streams = new Map<string, Stream>();

  constructor(
    private readonly queryTimeoutNs: number,
    /** The pod UID of a cgroup id, '' or undefined when it is not a pod's. */
    private readonly podUid: (cgroupId: number) => string | undefined = () => undefined,
  ) {}

  get pendingQueries(): number {
    return this.pending.size;
  }

  /**
   * Decodes `records` (the tracer's records back to back), appending a row to `batch` for every answer
   * that is a lookup.
   */
  add(records: Uint8Array, batch: DnsBatch, clock: TrackerClock): void {
    const view = new DataView(records.buffer, records.byteOffset, records.byteLength);
    for (let o = 0; o + DNS_EVENT.size <= records.length; ) {
      const captured = view.getUint16(o + DNS_EVENT.captured, true);
      const end = o + DNS_EVENT.size + captured;
      if (end > records.length) break; // the addon hands whole records only
      if (records[o + DNS_EVENT.egress] === 1) this.counters.queryPackets++;
      else this.counters.answerPackets++;
      this.record(records, view, o, batch, clock);
      o = end;
    }
  }

  /** Forgets queries older than the timeout (unanswered) and idle TCP streams. */
  expire(monoNs: number): void {
    for (const [key, p] of this.pending) {
      if (monoNs - p.at < this.queryTimeoutNs) break;
      this.pending.delete(key);
      this.counters.unanswered++;
    }
    for (const [key, at] of this.answered) {
      if (monoNs - at < this.queryTimeoutNs) break;
      this.answered.delete(key);
    }
    for (const [key, s] of this.streams) if (monoNs - s.lastNs > STREAM_IDLE_NS) this.streams.delete(key);
  }

  private record(records: Uint8Array, view: DataView, o: number, batch: DnsBatch, clock: TrackerClock): void {
    const protocol = records[o + DNS_EVENT.protocol];
    const payload = o + DNS_EVENT.size;
    const captured = view.getUint16(o + DNS_EVENT.captured, true);
    const whole = captured === view.getUint16(o + DNS_EVENT.payloadLen, true);
    if (protocol !== TCP) {
      this.messageAt(records, view, o, payload, captured, batch, clock);
      return;
    }
    this.segment(records, view, o, payload, captured, whole, batch, clock);
  }

  /** One TCP segment: appended to its stream, every message it completes handled. */
  private segment(
    records: Uint8Array,
    view: DataView,
    o: number,
    payload: number,
    captured: number,
    whole: boolean,
    batch: DnsBatch,
    clock: TrackerClock,
  ): void {
    const seq = view.getUint32(o + DNS_EVENT.tcpSeq, true);
    const flags = records[o + DNS_EVENT.tcpFlags];
    const ktime = ktimeOf(view, o);
    const key = streamKey(records, o);
    if (captured === 0 && whole) {
      // A bare FIN or RST (the tracer records those without payload): this direction is over.
      if ((flags & (TCP_FIN | TCP_RST)) !== 0) this.streams.delete(key);
      return;
    }
    let s = this.streams.get(key);
    let from = payload;
    let length = captured;
    if (s?.broken) {
      s.lastNs = ktime;
      if ((flags & (TCP_FIN | TCP_RST)) !== 0) this.streams.delete(key);
      return;
    }
    if (s) {
      // Ahead of what was expected: a segment was lost (a full ring buffer): the message being built
      // cannot be completed, and where the next one starts is unknown.
      const ahead = (seq - s.next) | 0;
      if (ahead > 0) {
        this.malformed('tcp_gap');
        this.breakStream(key, s, ktime, flags);
        return;
      }
      // A retransmission: only the bytes past what was already taken are new.
      const behind = -ahead;
      if (behind >= length) {
        s.lastNs = ktime;
        return;
      }
      from += behind;
      length -= behind;
      this.streams.delete(key); // re-inserted below: the map's order is recency
    } else {
      if (this.streams.size >= MAX_STREAMS) {
        const oldest = this.streams.keys().next().value;
        if (oldest !== undefined) {
          // A message half put together is lost with it: counted like a lost segment.
          const old = this.streams.get(oldest);
          if (old && !old.broken && old.used > 0) this.malformed('tcp_gap');
          this.streams.delete(oldest);
        }
      }
      s = { next: seq, broken: false, buf: new Uint8Array(512), used: 0, lastNs: ktime };
    }
    s.next = (s.next + (whole ? length : view.getUint16(o + DNS_EVENT.payloadLen, true))) >>> 0;
    s.lastNs = ktime;
    s.buf = append(s.buf, s.used, records, from, length);
    s.used += length;
    // Every complete message in the stream.
    let start = 0;
    while (s.used - start >= 2) {
      const size = (s.buf[start] << 8) | s.buf[start + 1];
      if (s.used - start < 2 + size) break;
      this.messageAt(s.buf, view, o, start + 2, size, batch, clock, records);
      start += 2 + size;
    }
    if (!whole) {
      // The segment was cut at capture_bytes: the message it carries is kept as far as it goes, and the
      // stream cannot be followed past it (where the next message starts is in the bytes not copied).
      const left = s.used - start;
      if (left >= 2) {
        const size = (s.buf[start] << 8) | s.buf[start + 1];
        this.messageAt(s.buf, view, o, start + 2, Math.min(size, left - 2), batch, clock, records);
      } else {
        // The next message begins in (or right after) the cut: its length prefix was not copied.
        this.malformed('short_header');
      }
      this.breakStream(key, s, ktime, flags);
      return;
    }
    if (start > 0) {
      s.buf.copyWithin(0, start, s.used);
      s.used -= start;
    }
    if (s.used > MAX_TCP_MESSAGE || (flags & (TCP_FIN | TCP_RST)) !== 0) return;
    this.streams.set(key, s);
  }

  /** Keeps the stream only as a marker that its segments are to be read past, until it closes. */
  private breakStream(key: string, s: Stream, ktime: number, flags: number): void {
    this.streams.delete(key);
    if ((flags & (TCP_FIN | TCP_RST)) !== 0) return;
    s.broken = true;
    s.buf = EMPTY;
    s.used = 0;
    s.lastNs = ktime;
    this.streams.set(key, s);
  }

  /**
   * One DNS message at `[at, at + length)` of `bytes` (a UDP payload in the records, or a message of a TCP
   * stream), described by the record header at `o` of `records` (default: `bytes` itself).
   */
  private messageAt(
    bytes: Uint8Array,
    view: DataView,
    o: number,
    at: number,
    length: number,
    batch: DnsBatch,
    clock: TrackerClock,
    records: Uint8Array = bytes,
  ): void {
    const m = this.message;
    const rejected = parseDns(bytes, at, length, m);
    if (rejected !== null) {
      this.malformed(rejected);
      return;
    }
    const egress = records[o + DNS_EVENT.egress] === 1;
    if (egress !== !m.response) {
      this.skip('direction');
      return;
    }
    if (m.opcode !== 0) {
      this.skip('opcode');
      return;
    }
    const ktime = ktimeOf(view, o);
    const key = queryKey(records, o, m.id);
    if (egress) {
      this.counters.queries++;
      // A new query with this key: its answer is a lookup again.
      this.answered.delete(key);
      // Sent again while waiting (a retry, or the same query to the next nameserver): the client has been
      // waiting since the first one.
      if (this.pending.has(key)) return;
      if (this.pending.size >= MAX_PENDING) {
        const oldest = this.pending.keys().next().value;
        if (oldest !== undefined) this.pending.delete(oldest);
        this.counters.unanswered++;
      }
      this.pending.set(key, { at: ktime });
      return;
    }
    this.counters.answers++;
    if (m.truncated) {
      // Its client asks again over TCP, where the whole answer comes: that one is the lookup.
      this.pending.delete(key);
      this.skip('truncated');
      return;
    }
    const query = this.pending.get(key);
    if (query) this.pending.delete(key);
    else if (this.answered.has(key)) {
      this.skip('duplicate');
      return;
    } else this.counters.unmatched++;
    if (this.answered.size >= MAX_PENDING) {
      const oldest = this.answered.keys().next().value;
      if (oldest !== undefined) this.answered.delete(oldest);
    }
    this.answered.set(key, ktime);
    this.lookup(records, view, o, m, ktime, query, batch, clock);
  }

  private lookup(
    records: Uint8Array,
    view: DataView,
    o: number,
    m: DnsMessage,
    ktime: number,
    query: Pending | undefined,
    batch: DnsBatch,
    clock: TrackerClock,
  ): void {
    const cgroupId = cgroupOf(view, o);
    batch.pushWire(
      {
        time: clock.wallMs - (clock.monoNs - ktime) / 1e6,
        addr: records,
        clientAt: o + DNS_EVENT.local,
        serverAt: o + DNS_EVENT.remote,
        clientPort: view.getUint16(o + DNS_EVENT.localPort, true),
        protocol: records[o + DNS_EVENT.protocol],
        question: m.question,
        questionType: m.questionType,
        rcode: m.rcode,
        latencyMs: query ? (ktime - query.at) / 1e6 : Number.NaN,
        cgroupId,
        podUid: this.podUid(cgroupId) ?? '',
        canonical: m.canonical,
      },
      m,
    );
    this.counters.lookups++;
  }

  private malformed(reason: MalformedReason): void {
    const c = this.counters.malformed;
    c.set(reason, (c.get(reason) ?? 0) + 1);
  }

  private skip(reason: SkipReason): void {
    const c = this.counters.skipped;
    c.set(reason, (c.get(reason) ?? 0) + 1);
  }
}

/** The record's u64 ktime as a number of ns (exact below 2^53 ns, 104 days of uptime; ms-exact long after). */
function ktimeOf(view: DataView, o: number): number {
  return view.getUint32(o + DNS_EVENT.ktime + 4, true) * 2 ** 32 + view.getUint32(o + DNS_EVENT.ktime, true);
}

function cgroupOf(view: DataView, o: number): number {
  return (
    view.getUint32(o + DNS_EVENT.cgroup + 4, true) * 2 ** 32 + view.getUint32(o + DNS_EVENT.cgroup, true)
  );
}

/**
 * A query and its answer share the client's address and port, the transport and the message id. The
 * server's address is left out: a query DNATed on its way out (a Service's address, rewritten for a
 * hostNetwork socket) is answered from the address the client dialled.
 */
function queryKey(records: Uint8Array, o: number, id: number): string {
  let key = String.fromCharCode(id, records[o + DNS_EVENT.protocol]);
  for (let b = o + DNS_EVENT.local; b < o + DNS_EVENT.local + 16; b++) key += String.fromCharCode(records[b]);
  return key + String.fromCharCode(records[o + DNS_EVENT.localPort], records[o + DNS_EVENT.localPort + 1]);
}

/** One direction of one TCP connection. */
function streamKey(records: Uint8Array, o: number): string {
  let key = String.fromCharCode(records[o + DNS_EVENT.egress]);
  for (let b = o + DNS_EVENT.local; b < o + DNS_EVENT.remotePort + 2; b++)
    key += String.fromCharCode(records[b]);
  return key;
}

function append(buf: Uint8Array, used: number, from: Uint8Array, at: number, length: number): Uint8Array {
  let out = buf;
  if (used + length > buf.length) {
    out = new Uint8Array(Math.max(used + length, 2 * buf.length));
    out.set(buf.subarray(0, used));
  }
  out.set(from.subarray(at, at + length), used);
  return out;
}
