// From the tracer's raw records to lookups: each record's message is parsed, TCP segments are put back
// into length-prefixed messages, answers are paired with the queries they answer (latency), and every
// answer that is a lookup becomes a row of a DnsBatch. Everything that is not used is counted, by reason.
import type { DnsBatch } from '@netmon/core';
import { DNS_EVENT } from '@netmon/native';
import { DnsMessage, type DnsReject, parseDns } from './parse.js';

const TCP = 6;
const TCP_FIN = 0x01;
const TCP_SYN = 0x02;
const TCP_RST = 0x04;
/** Queries waiting for an answer, at most; past it the oldest is dropped (counted as unanswered). */
export const MAX_PENDING = 16384;
/** TCP streams followed at once, at most; past it the least recently active is dropped. */
export const MAX_STREAMS = 1024;
/**
 * Segments a stream holds past a hole while it waits for the hole's segment (reordered on the way, or
 * to be retransmitted), at most, and their bytes (records' 64-byte headers included); one more makes the
 * hole a gap. Reordering seldom runs deeper than a few segments.
 */
export const MAX_HELD_SEGMENTS = 4;
export const MAX_HELD_BYTES = 16 * 1024;
/**
 * Bytes all TCP streams hold at most: messages being put together (each a buffer of its announced length,
 * up to 64 KiB) and held segments. Past it the least recently active stream is dropped.
 */
export const MAX_TCP_BYTES = 8 * 1024 * 1024;
/** How long a hole waits for its segment, on the records' clock, before it is a gap. */
export const REORDER_NS = 1e9;
/** A TCP stream with no segment for this long is forgotten (its connection was closed unseen). */
export const STREAM_IDLE_NS = 60e9;

const EMPTY = new Uint8Array(0);

/** Why a message was not used: the parser's reasons, and the tracer's own. */
export type MalformedReason = DnsReject | 'unreadable' | 'bad_record' | 'tcp_gap' | 'tcp_unframed';
/** Why a well-formed message is not a lookup. */
export type SkipReason = 'truncated' | 'opcode' | 'direction' | 'duplicate' | 'unsolicited';

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
  /** CLOCK_MONOTONIC ns of the query's first sending: the client has waited since. */
  at: number;
  /** CLOCK_MONOTONIC ns of its last sending (a retry): it waits query_timeout from there. */
  last: number;
  /** Its key by socket (`socketKey`), to find it from an answer whose addresses NAT changed. */
  socket: string;
}

/** A segment past a hole: a copy of its record (header and captured bytes). */
interface Held {
  /** Sequence number of its first payload byte. */
  seq: number;
  record: Uint8Array;
  view: DataView;
  captured: number;
  /** Payload bytes in the packet (more than `captured` when the tracer cut it). */
  len: number;
  ktime: number;
}

/**
 * One direction of one TCP connection, followed from its SYN (or SYN-ACK): the only place where a
 * message is known to start. A stream whose framing is lost is dropped; its later segments, like those
 * of any stream whose start was not seen, are read past and counted.
 */
interface Stream {
  key: string;
  /** The SYN's sequence number: a SYN seen again with it is a retransmission, not a new connection. */
  isn: number;
  /** Sequence number of the next byte expected. */
  next: number;
  /**
   * The bytes before `skipTo` belong to a message already given up (cut by the capture length, or cut by
   * a gap after its length was seen): they are passed over, and framing goes on at `skipTo`.
   */
  skipping: boolean;
  skipTo: number;
  /** The message being put together (its 2-byte length first); `buf` is sized to it once that is known. */
  buf: Uint8Array;
  used: number;
  /** Segments past a hole, by sequence number. */
  held: Held[];
  heldBytes: number;
  /** Where the FIN is, once seen (-1 before): the stream ends when `next` reaches it. */
  finAt: number;
  /** The records' ktime since a hole has waited (Infinity: no hole). */
  holeSince: number;
  lastNs: number;
  dead: boolean;
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
   * Waiting queries by socket: cgroup, message id and transport (`socketKey`) → their key. The egress hook
   * runs after netfilter's POSTROUTING, so a query masqueraded on its way out (a hostNetwork pod's query to
   * the cluster DNS Service, source rewritten by kube-proxy's masquerade rule) is recorded with the address
   * and port it left with, while its answer, de-NATed before it reaches the socket, shows the socket's own.
   */
  private readonly pendingBySocket = new Map<string, string>();
  /**
   * Queries answered within query_timeout, by key, with the time of their answer: a later answer to one is
   * no new lookup (musl sends a query to every nameserver with one id from one socket; packets get
   * duplicated). Insertion order is age order, as in `pending`.
   */
  private readonly answered = new Map<string, number>();
  /** Insertion order is recency: a stream is moved to the end by each of its segments. */
  private readonly streams = new Map<string, Stream>();
  private heldTcpBytes = 0;
  /** The newest record's ktime: the clock holes are judged by while the ring is not drained to its end. */
  private lastKtime = 0;
  /** When tracing began (CLOCK_MONOTONIC ns); +Infinity until `tracingSince` says. */
  private since = Number.POSITIVE_INFINITY;

  // The record a message came in (its header names the client, server and cgroup), when it reached the
  // client, and where lookups go: set for each record, and for held segments when they are read.
  private hdr: Uint8Array = EMPTY;
  private hdrView: DataView = new DataView(new ArrayBuffer(0));
  private hdrAt = 0;
  private ktime = 0;
  private batch?: DnsBatch;
  private clock: TrackerClock = { monoNs: 0, wallMs: 0 };

  constructor(
    private readonly queryTimeoutNs: number,
    /** The pod UID of a cgroup id, '' or undefined when it is not a pod's. */
    private readonly podUid: (cgroupId: number) => string | undefined = () => undefined,
  ) {}

  get pendingQueries(): number {
    return this.pending.size;
  }

  /**
   * Tracing began at `monoNs` (CLOCK_MONOTONIC ns, the records' clock). From query_timeout after it, every
   * query an answer can still answer was sent while tracing, so an answer whose query was not seen is
   * skipped as unsolicited instead of handed on. Until this is called, every such answer is handed on.
   */
  tracingSince(monoNs: number): void {
    this.since = monoNs;
  }

  /** TCP streams followed. */
  get tcpStreams(): number {
    return this.streams.size;
  }

  /** Bytes the TCP streams hold (at most MAX_TCP_BYTES). */
  get tcpBytes(): number {
    return this.heldTcpBytes;
  }

  /**
   * Decodes `records` (the tracer's records back to back), appending a row to `batch` for every answer
   * that is a lookup.
   */
  add(records: Uint8Array, batch: DnsBatch, clock: TrackerClock): void {
    this.batch = batch;
    this.clock = clock;
    const view = new DataView(records.buffer, records.byteOffset, records.byteLength);
    for (let o = 0; o + DNS_EVENT.size <= records.length; ) {
      const captured = view.getUint16(o + DNS_EVENT.captured, true);
      const end = o + DNS_EVENT.size + captured;
      if (end > records.length) break; // the addon hands whole records only
      if (records[o + DNS_EVENT.egress] === 1) this.counters.queryPackets++;
      else this.counters.answerPackets++;
      const ktime = ktimeOf(view, o);
      if (ktime > this.lastKtime) this.lastKtime = ktime;
      this.setRecord(records, view, o, ktime);
      if (records[o + DNS_EVENT.protocol] === TCP) this.segment(records, view, o, ktime);
      else this.messageAt(records, o + DNS_EVENT.size, captured);
      o = end;
    }
    this.batch = undefined;
  }

  /**
   * Forgets queries older than the timeout (unanswered), answered queries as old, and idle TCP streams;
   * a hole that has waited REORDER_NS becomes a gap, and the messages held past it that can still be
   * framed are read (rows appended to `batch`). `drained`: the ring was read to its end, so a record not
   * read yet is newer than `clock` and holes are judged by it; otherwise by the newest record read.
   */
  expire(batch: DnsBatch, clock: TrackerClock, drained = true): void {
    const monoNs = clock.monoNs;
    // A ring not read to its end may still hold answers sent before now: judge by the newest record read.
    const waitedNs = drained ? monoNs : this.lastKtime;
    for (const [key, p] of this.pending) {
      if (waitedNs - p.last < this.queryTimeoutNs) break;
      this.forget(key, p);
      this.counters.unanswered++;
    }
    for (const [key, at] of this.answered) {
      if (monoNs - at < this.queryTimeoutNs) break;
      this.answered.delete(key);
    }
    this.batch = batch;
    this.clock = clock;
    const holeNs = drained ? Math.max(monoNs, this.lastKtime) : this.lastKtime;
    for (const s of this.streams.values()) {
      if (holeNs - s.holeSince >= REORDER_NS) {
        this.giveUp(s, 0);
        if (!s.dead) this.settle(s, holeNs);
      }
      if (!s.dead && monoNs - s.lastNs > STREAM_IDLE_NS) this.end(s);
    }
    this.batch = undefined;
  }

  private setRecord(bytes: Uint8Array, view: DataView, at: number, ktime: number): void {
    this.hdr = bytes;
    this.hdrView = view;
    this.hdrAt = at;
    this.ktime = ktime;
  }

  /** One TCP record: a SYN starts a stream, a RST ends it, payload goes into it in sequence order. */
  private segment(records: Uint8Array, view: DataView, o: number, ktime: number): void {
    const flags = records[o + DNS_EVENT.tcpFlags];
    const key = streamKey(records, o);
    let seq = view.getUint32(o + DNS_EVENT.tcpSeq, true);
    const captured = view.getUint16(o + DNS_EVENT.captured, true);
    const len = Math.max(captured, view.getUint16(o + DNS_EVENT.payloadLen, true));
    let s = this.streams.get(key);
    if ((flags & TCP_RST) !== 0) {
      // Bytes a RST carries are a diagnostic, not DNS; nothing of the connection follows.
      if (s) this.end(s);
      return;
    }
    if ((flags & TCP_SYN) !== 0) {
      if (!s || s.isn !== seq) {
        // A new connection; one reusing a stream's ports ends it (its FIN was not seen).
        if (s) this.end(s);
        s = this.open(key, seq, ktime);
      }
      // The SYN takes one sequence number: data it carries (TCP Fast Open) starts after it.
      seq = (seq + 1) >>> 0;
    } else if (!s) {
      // Where a message starts in a stream seen from its middle is unknown: never guessed.
      if (len > 0) this.malformed('tcp_unframed');
      return;
    }
    this.touch(s, ktime);
    if ((flags & TCP_FIN) !== 0 && s.finAt < 0) s.finAt = (seq + len) >>> 0;
    if (len > 0) {
      if (((seq - s.next) | 0) > 0) this.hold(s, records, o, seq, captured, len, ktime);
      else {
        this.apply(s, records, o + DNS_EVENT.size, seq, captured, len);
        this.drainHeld(s, ktime);
      }
    }
    // Judged after the segment is placed: a late retransmission still fills its hole.
    if (!s.dead && ktime - s.holeSince >= REORDER_NS) this.giveUp(s, ktime);
    if (s.dead) return;
    this.settle(s, ktime);
    this.fitMemory();
  }

  /** Starts following a stream whose SYN was seen; makes room when MAX_STREAMS are followed. */
  private open(key: string, isn: number, ktime: number): Stream {
    if (this.streams.size >= MAX_STREAMS) {
      const oldest = this.streams.values().next().value;
      if (oldest) this.end(oldest);
    }
    const s: Stream = {
      key,
      isn,
      next: (isn + 1) >>> 0,
      skipping: false,
      skipTo: 0,
      buf: EMPTY,
      used: 0,
      held: [],
      heldBytes: 0,
      finAt: -1,
      holeSince: Number.POSITIVE_INFINITY,
      lastNs: ktime,
      dead: false,
    };
    this.streams.set(key, s);
    return s;
  }

  private touch(s: Stream, ktime: number): void {
    s.lastNs = ktime;
    this.streams.delete(s.key);
    this.streams.set(s.key, s);
  }

  /**
   * The payload of a segment at or behind `s.next` (`bytes` from `at`; `captured` of its `len` bytes
   * copied): what is new goes into the stream, what the tracer did not copy is lost.
   */
  private apply(s: Stream, bytes: Uint8Array, at: number, seq: number, captured: number, len: number): void {
    const behind = (s.next - seq) | 0;
    if (behind >= len) return; // a retransmission of bytes already read
    if (behind < captured) this.feed(s, bytes, at + behind, captured - behind);
    if (captured < len && !s.dead) this.lose(s, (seq + len) >>> 0, true);
  }

  /** `n` bytes at `s.next`, framed: every message they complete is handled; a partial one is kept. */
  private feed(s: Stream, bytes: Uint8Array, at: number, n: number): void {
    const from = s.next;
    s.next = (s.next + n) >>> 0;
    let p = at;
    const end = at + n;
    if (s.skipping) {
      const skip = (s.skipTo - from) | 0;
      if (skip >= n) {
        s.skipping = skip > n;
        return;
      }
      p += skip;
      s.skipping = false;
    }
    if (s.used > 0) {
      if (s.used === 1) {
        this.reserve(s, 2);
        s.buf[1] = bytes[p++];
        s.used = 2;
      }
      const total = 2 + ((s.buf[0] << 8) | s.buf[1]);
      this.reserve(s, total);
      const take = Math.min(total - s.used, end - p);
      s.buf.set(bytes.subarray(p, p + take), s.used);
      s.used += take;
      p += take;
      if (s.used < total) return;
      this.messageAt(s.buf, 2, total - 2);
      this.release(s);
    }
    // Messages whole in this segment are read where they are, without a copy.
    while (end - p >= 2) {
      const size = (bytes[p] << 8) | bytes[p + 1];
      if (end - p < 2 + size) break;
      this.messageAt(bytes, p + 2, size);
      p += 2 + size;
    }
    if (p < end) {
      this.reserve(s, end - p >= 2 ? 2 + ((bytes[p] << 8) | bytes[p + 1]) : 2);
      s.buf.set(bytes.subarray(p, end), 0);
      s.used = end - p;
    }
  }

  /**
   * The bytes from `s.next` to `holeEnd` will never be seen: `cut` by the tracer's capture length, or a
   * gap (a segment that never came). Framing goes on after them when the message they cut had its length
   * seen and does not end inside them; otherwise where the next message starts is unknown, and the stream
   * is dropped.
   */
  private lose(s: Stream, holeEnd: number, cut: boolean): void {
    if (((holeEnd - s.next) | 0) <= 0) return;
    if (s.skipping) {
      if (((s.skipTo - holeEnd) | 0) >= 0) {
        // Inside a message already given up: nothing more is lost.
        s.skipping = s.skipTo !== holeEnd;
        s.next = holeEnd;
        return;
      }
    } else if (s.used >= 2) {
      const size = (s.buf[0] << 8) | s.buf[1];
      const end = (s.next - s.used + 2 + size) >>> 0;
      // A cut message keeps its records complete before the cut (as a cut UDP message does); one with a
      // gap inside is dropped.
      if (cut) this.messageAt(s.buf, 2, Math.min(size, s.used - 2));
      else this.malformed('tcp_gap');
      this.release(s);
      if (((end - holeEnd) | 0) >= 0) {
        s.skipping = end !== holeEnd;
        s.skipTo = end;
        s.next = holeEnd;
        return;
      }
    }
    // A message starts in the lost bytes: its length was not seen, so neither is where any later one
    // starts. A cut one is counted as a message cut inside its header is.
    this.malformed(cut ? 'short_header' : 'tcp_gap');
    for (let i = 0; i < s.held.length; i++) this.malformed('tcp_unframed');
    this.drop(s);
  }

  /** A segment past a hole waits for it, as long as there is room; past that the hole is a gap. */
  private hold(
    s: Stream,
    records: Uint8Array,
    o: number,
    seq: number,
    captured: number,
    len: number,
    ktime: number,
  ): void {
    const ahead = (seq - s.next) | 0;
    let i = 0;
    while (i < s.held.length && ((s.held[i].seq - s.next) | 0) < ahead) i++;
    const same = s.held[i];
    if (same && same.seq === seq) {
      if (same.len >= len && same.captured >= captured) return; // held already
      this.unhold(s, i);
    }
    const record = records.slice(o, o + DNS_EVENT.size + captured);
    const h: Held = { seq, record, view: new DataView(record.buffer), captured, len, ktime };
    s.held.splice(i, 0, h);
    s.heldBytes += record.length;
    this.heldTcpBytes += record.length;
    if (s.holeSince === Number.POSITIVE_INFINITY) s.holeSince = ktime;
    while (!s.dead && (s.held.length > MAX_HELD_SEGMENTS || s.heldBytes > MAX_HELD_BYTES)) {
      this.giveUp(s, ktime);
    }
  }

  private unhold(s: Stream, i: number): Held {
    const [h] = s.held.splice(i, 1);
    s.heldBytes -= h.record.length;
    this.heldTcpBytes -= h.record.length;
    return h;
  }

  /** The hole before the first held segment (or the FIN) is a gap: what follows it is read, if it can be. */
  private giveUp(s: Stream, ktime: number): void {
    const holeEnd = s.held.length > 0 ? s.held[0].seq : s.finAt;
    if (holeEnd >= 0) this.lose(s, holeEnd, false);
    if (!s.dead) this.drainHeld(s, ktime);
  }

  /**
   * Reads the held segments the stream has caught up with. Their messages reached the client when the
   * segment that filled the hole did (`ktime`; 0 when no segment did).
   */
  private drainHeld(s: Stream, ktime: number): void {
    if (s.held.length === 0 || ((s.held[0].seq - s.next) | 0) > 0) return;
    const { hdr, hdrView, hdrAt, ktime: was } = this;
    s.holeSince = Number.POSITIVE_INFINITY;
    while (!s.dead && s.held.length > 0 && ((s.held[0].seq - s.next) | 0) <= 0) {
      const h = this.unhold(s, 0);
      this.setRecord(h.record, h.view, 0, Math.max(ktime, h.ktime));
      this.apply(s, h.record, DNS_EVENT.size, h.seq, h.captured, h.len);
    }
    this.setRecord(hdr, hdrView, hdrAt, was);
  }

  /**
   * After a stream moved: ends it at its FIN; notes since when a hole, if one is left, has waited (`nowNs`
   * when it is new, or the one before it was read or given up).
   */
  private settle(s: Stream, nowNs: number): void {
    const finAhead = s.finAt >= 0 && ((s.finAt - s.next) | 0) > 0;
    if (s.finAt >= 0 && !finAhead) this.end(s);
    else if (s.held.length === 0 && !finAhead) s.holeSince = Number.POSITIVE_INFINITY;
    else if (s.holeSince === Number.POSITIVE_INFINITY) s.holeSince = nowNs;
  }

  /**
   * The stream is over (FIN, RST, a new connection on its ports, idle, or dropped for room): a message it
   * was putting together, or segments it held past a hole, will never be read.
   */
  private end(s: Stream): void {
    if (s.used > 0 || s.held.length > 0) this.malformed('tcp_gap');
    this.drop(s);
  }

  private drop(s: Stream): void {
    this.streams.delete(s.key);
    this.heldTcpBytes -= s.buf.length + s.heldBytes;
    s.buf = EMPTY;
    s.used = 0;
    s.held = [];
    s.heldBytes = 0;
    s.holeSince = Number.POSITIVE_INFINITY;
    s.dead = true;
  }

  /** Drops the least recently active streams while all of them hold more than MAX_TCP_BYTES. */
  private fitMemory(): void {
    while (this.heldTcpBytes > MAX_TCP_BYTES && this.streams.size > 1) {
      const oldest = this.streams.values().next().value;
      if (!oldest) return;
      this.end(oldest);
    }
  }

  /** Room in `s.buf` for `bytes` (the message's whole length once it is known), keeping what it holds. */
  private reserve(s: Stream, bytes: number): void {
    if (s.buf.length >= bytes) return;
    const buf = new Uint8Array(bytes);
    buf.set(s.buf.subarray(0, s.used));
    this.heldTcpBytes += bytes - s.buf.length;
    s.buf = buf;
  }

  private release(s: Stream): void {
    this.heldTcpBytes -= s.buf.length;
    s.buf = EMPTY;
    s.used = 0;
  }

  /**
   * One DNS message at `[at, at + length)` of `bytes` (a UDP payload in the records, or a message of a TCP
   * stream), from the current record (`hdr`).
   */
  private messageAt(bytes: Uint8Array, at: number, length: number): void {
    const m = this.message;
    const rejected = parseDns(bytes, at, length, m);
    if (rejected !== null) {
      this.malformed(rejected);
      return;
    }
    const records = this.hdr;
    const o = this.hdrAt;
    const egress = records[o + DNS_EVENT.egress] === 1;
    if (egress !== !m.response) {
      this.skip('direction');
      return;
    }
    if (m.opcode !== 0) {
      this.skip('opcode');
      return;
    }
    const ktime = this.ktime;
    const key = queryKey(records, o, m.id);
    if (egress) {
      this.counters.queries++;
      // A new query with this key: its answer is a lookup again.
      this.answered.delete(key);
      // Sent again while waiting (a retry, or the same query to the next nameserver): the client has been
      // waiting since the first one, and the query waits query_timeout from the last (moved to the end, so
      // the map stays in expiry order).
      const waiting = this.pending.get(key);
      if (waiting) {
        this.pending.delete(key);
        waiting.last = ktime;
        this.pending.set(key, waiting);
        return;
      }
      if (this.pending.size >= MAX_PENDING) {
        const [oldest, p] = this.pending.entries().next().value ?? [];
        if (oldest !== undefined && p !== undefined) this.forget(oldest, p);
        this.counters.unanswered++;
      }
      const socket = socketKey(this.hdrView, o, m.id);
      this.pending.set(key, { at: ktime, last: ktime, socket });
      this.pendingBySocket.set(socket, key);
      return;
    }
    this.counters.answers++;
    // The query by its addresses, else by its socket (its addresses NATed on the way out).
    let queryKeyFound: string | undefined = key;
    let query = this.pending.get(key);
    if (!query) {
      queryKeyFound = this.pendingBySocket.get(socketKey(this.hdrView, o, m.id));
      query = queryKeyFound === undefined ? undefined : this.pending.get(queryKeyFound);
    }
    if (m.truncated) {
      // Its client asks again over TCP, where the whole answer comes: that one is the lookup.
      if (query && queryKeyFound !== undefined) this.forget(queryKeyFound, query);
      this.skip('truncated');
      return;
    }
    if (query && queryKeyFound !== undefined) this.forget(queryKeyFound, query);
    else if (this.answered.has(key)) {
      this.skip('duplicate');
      return;
    } else if (ktime - this.since >= this.queryTimeoutNs) {
      // No query was seen, and none sent before tracing began can still be waiting: this answers nothing a
      // local client asked within query_timeout (a spoofed or stray packet from port 53, or an answer later
      // than query_timeout). Handed on, it would teach dns_cache a name for an address no client asked for.
      this.skip('unsolicited');
      return;
    } else this.counters.unmatched++;
    if (this.answered.size >= MAX_PENDING) {
      const oldest = this.answered.keys().next().value;
      if (oldest !== undefined) this.answered.delete(oldest);
    }
    this.answered.set(key, ktime);
    this.lookup(m, ktime, query);
  }

  /** Drops a waiting query from both indexes. */
  private forget(key: string, p: Pending): void {
    this.pending.delete(key);
    if (this.pendingBySocket.get(p.socket) === key) this.pendingBySocket.delete(p.socket);
  }

  private lookup(m: DnsMessage, ktime: number, query: Pending | undefined): void {
    const records = this.hdr;
    const view = this.hdrView;
    const o = this.hdrAt;
    const cgroupId = cgroupOf(view, o);
    const clock = this.clock;
    this.batch?.pushWire(
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
  const c = KEY;
  const l = o + DNS_EVENT.local;
  // Two bytes per UTF-16 unit: one flat 11-unit string, not a chain of 20 concatenations.
  for (let i = 0; i < 8; i++) c[i] = (records[l + 2 * i] << 8) | records[l + 2 * i + 1];
  c[8] = (records[o + DNS_EVENT.localPort] << 8) | records[o + DNS_EVENT.localPort + 1];
  c[9] = id;
  c[10] = records[o + DNS_EVENT.protocol];
  return String.fromCharCode(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10]);
}

/** Scratch for a key's UTF-16 units. */
const KEY = new Uint16Array(11);

/**
 * A query and its answer also share the socket: its cgroup, the message id and the transport. Addresses
 * left out, this finds a query whose source NAT rewrote (the query's record shows the address it left with,
 * the answer's the socket's own).
 */
function socketKey(view: DataView, o: number, id: number): string {
  const c = SOCKET_KEY;
  for (let i = 0; i < 4; i++) c[i] = view.getUint16(o + DNS_EVENT.cgroup + 2 * i, true);
  c[4] = id;
  c[5] = view.getUint8(o + DNS_EVENT.protocol);
  return String.fromCharCode(c[0], c[1], c[2], c[3], c[4], c[5]);
}

const SOCKET_KEY = new Uint16Array(6);

/** One direction of one TCP connection: its direction, both addresses and both ports, two bytes a unit. */
function streamKey(records: Uint8Array, o: number): string {
  const c = STREAM_KEY;
  c[0] = records[o + DNS_EVENT.egress];
  // local, remote, localPort and remotePort lie back to back in the header.
  for (let i = 1, b = o + DNS_EVENT.local; i < c.length; i++, b += 2)
    c[i] = (records[b] << 8) | records[b + 1];
  return String.fromCharCode(...c);
}

const STREAM_KEY = new Uint16Array(1 + (DNS_EVENT.remotePort + 2 - DNS_EVENT.local) / 2);
