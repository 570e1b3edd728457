// Cilium's conntrack entries, decoded: the key (`struct ipv4_ct_tuple`, 14 bytes, and `ipv6_ct_tuple`,
// 38 bytes: daddr, saddr, dport, sport, nexthdr, flags — addresses and ports in network byte order) and
// the 56-byte value (`struct ct_entry`), from Cilium's bpf/lib/common.h and conntrack.h
// (https://github.com/cilium/cilium).
//
// A connection's entry stores its tuple reversed: daddr:sport is the side that opened it, saddr:dport the
// side that answered, whether the entry is OUT (first seen leaving a local endpoint) or IN (arriving at
// one). RELATED entries (ICMP errors of a connection) and SERVICE entries (a load balancer's frontend →
// backend choice; their key is VIP, client, client port, service port, and they count nothing) are not
// connections. A connection between two endpoints of this node has an OUT and an IN entry with the same
// key bytes but the flag: it is reported once, from the OUT entry.
import { type FlowBatch, FlowFlags } from '@netmon/core';

export const TUPLE_F_IN = 1;
export const TUPLE_F_RELATED = 2;
export const TUPLE_F_SERVICE = 4;

export const KEY_SIZE = { 4: 14, 6: 38 } as const;
export const VALUE_SIZE = 56;

/** Byte offsets of the value's fields (host byte order but rev_nat_index). */
export const VALUE = {
  /** split layout: rx packets, rx bytes; total layout (1.16+): unused / backend id / NAT address. */
  rxPackets: 0,
  rxBytes: 8,
  /** split: tx packets and bytes; total: packets and bytes of both directions. */
  txPackets: 16,
  txBytes: 24,
  lifetime: 32,
  flags: 36,
} as const;

/** Bits of the value's u16 flags. */
export const ENTRY_RX_CLOSING = 0x1;
export const ENTRY_TX_CLOSING = 0x2;
const ENTRY_CLOSED = ENTRY_RX_CLOSING | ENTRY_TX_CLOSING;

/**
 * split (Cilium ≤ 1.15): rx_packets, rx_bytes, tx_packets, tx_bytes, each direction relative to the local
 * endpoint (tx: what it sent). total (1.16+): one packets/bytes pair of both directions.
 */
export type ValueLayout = 'split' | 'total';

export interface DecodeCounts {
  entries: number;
  connections: number;
  service: number;
  related: number;
  /** IN entries whose OUT twin (a connection between two endpoints of this node) was reported instead. */
  pairs: number;
  /** Entries whose lifetime has passed (not yet removed by Cilium's garbage collector). */
  expired: number;
  /** The lowest lifetime among them, in the entries' unit (Infinity when none). */
  oldestExpired: number;
}

export function newCounts(): DecodeCounts {
  return {
    entries: 0,
    connections: 0,
    service: 0,
    related: 0,
    pairs: 0,
    expired: 0,
    oldestExpired: Infinity,
  };
}

const u64 = (v: DataView, o: number) => v.getUint32(o + 4, true) * 2 ** 32 + v.getUint32(o, true);

/** What a look at one map's entries says about the value layout, and on how many entries it rests. */
export interface LayoutEvidence {
  /** Decided only by a clear majority (four to one or more) of the entries that tell. */
  layout: ValueLayout | undefined;
  /** Connection entries whose first two u64 read as rx packets and bytes. */
  split: number;
  /** Connection entries whose first 16 bytes cannot be rx counters. */
  total: number;
}

/** Entries that tell looked at, at most: enough for a majority, a bounded look per read while undecided. */
const LAYOUT_EVIDENCE = 64;

/**
 * Bytes a packet at most in plausible rx counters. Cilium counts skbs, and GRO builds them up to a device's
 * gro_max_size: 64 KiB, or with BIG TCP (IPv6 since Linux 5.19, IPv4 since 6.3; Cilium sets 192 KiB) up
 * to GRO_MAX_SIZE = 8 × 65535 = 524,280 bytes (include/linux/netdevice.h); GSO_MAX_SIZE bounds what a pod
 * sends alike. Twice that leaves room for headers and is still far below what a NAT address reads as.
 */
const MAX_PACKET_BYTES = 2 ** 20;

/**
 * What the entries say about the value layout. An entry votes split when its first two u64 read as rx
 * packets and bytes (both set, 20 bytes an IP header to MAX_PACKET_BYTES a packet), total when they
 * cannot (bytes without packets, too few or too many bytes a packet: a 1.19+ NAT address, a backend id)
 * or when an IN entry has counters after zeros. SERVICE and RELATED entries, and entries whose first 16
 * bytes are 0, do not vote. A clear majority decides, so one odd entry — counters read while Cilium
 * updates them, a connection past 2^32 packets — cannot settle a node's layout for the process lifetime.
 */
export function detectLayout(
  values: Uint8Array,
  keys: Uint8Array,
  keySize: number,
  count: number,
): LayoutEvidence {
  const v = new DataView(values.buffer, values.byteOffset, values.byteLength);
  let split = 0;
  let total = 0;
  // While nothing tells (accounting off), every read asks again: a bounded look, not the whole map.
  for (let i = 0; i < Math.min(count, 65536) && split + total < LAYOUT_EVIDENCE; i++) {
    if ((keys[keySize * i + keySize - 1] & (TUPLE_F_SERVICE | TUPLE_F_RELATED)) !== 0) continue;
    const o = VALUE_SIZE * i;
    const a = u64(v, o + VALUE.rxPackets);
    const b = u64(v, o + VALUE.rxBytes);
    if (a === 0 && b === 0) {
      // The split layout counts the packet that created an IN entry in its rx: an IN entry with counters
      // after zeros is the total layout's.
      const inbound = (keys[keySize * i + keySize - 1] & TUPLE_F_IN) !== 0;
      if (inbound && u64(v, o + VALUE.txPackets) > 0) total++;
      continue;
    }
    // Below 2^32 packets and 2^48 bytes too: an IPv6 NAT address in those bytes reads as two large numbers.
    if (a > 0 && a < 2 ** 32 && b < 2 ** 48 && b >= 20 * a && b <= MAX_PACKET_BYTES * a) split++;
    else total++;
  }
  const layout =
    split > 0 && split >= 4 * total ? 'split' : total > 0 && total >= 4 * split ? 'total' : undefined;
  return { layout, split, total };
}

/**
 * How many of the entries are connections (not SERVICE or RELATED), and how many of those have a
 * counter that is not 0: with Cilium's conntrack accounting off, none has.
 */
export function countedConnections(
  keys: Uint8Array,
  values: Uint8Array,
  keySize: number,
  count: number,
): { connections: number; counted: number } {
  const v = new DataView(values.buffer, values.byteOffset, values.byteLength);
  let connections = 0;
  let counted = 0;
  for (let i = 0; i < count; i++) {
    if ((keys[keySize * i + keySize - 1] & (TUPLE_F_SERVICE | TUPLE_F_RELATED)) !== 0) continue;
    connections++;
    const o = VALUE_SIZE * i;
    // Every counter of either layout lies in the first 32 bytes (a 1.19+ NAT address too: harmless,
    // an entry that has one has its counters as well when accounting is on).
    for (let b = o; b < o + 32; b += 4) {
      if (v.getUint32(b, true) !== 0) {
        counted++;
        break;
      }
    }
  }
  return { connections, counted };
}

/**
 * Appends the connections of one map's entries to `batch` (cumulative counters, src = the opener).
 * `expiredBefore`: lifetimes below it have passed (NaN: unknown); `closed`: the ended entries reported
 * Closed by earlier reads of this map, left out while they stay in it.
 */
export function decodeEntries(
  family: 4 | 6,
  keys: Uint8Array,
  values: Uint8Array,
  count: number,
  layout: ValueLayout,
  expiredBefore: number,
  batch: FlowBatch,
  counts: DecodeCounts,
  closed?: ClosedEntries,
): void {
  const keySize = KEY_SIZE[family];
  const addr = family === 4 ? 4 : 16;
  const v = new DataView(values.buffer, values.byteOffset, values.byteLength);
  const outs = new OutEntries(keys, keySize, count);
  batch.reserve(batch.length + count);
  for (let i = 0; i < count; i++) {
    counts.entries++;
    const k = keySize * i;
    const flags = keys[k + keySize - 1];
    if (flags & TUPLE_F_SERVICE) {
      counts.service++;
      continue;
    }
    if (flags & TUPLE_F_RELATED) {
      counts.related++;
      continue;
    }
    const o = VALUE_SIZE * i;
    if (flags & TUPLE_F_IN && outs.has(k)) {
      counts.pairs++;
      continue;
    }
    // Ended both ways and past its last timeout: its counters are final, reported once with Closed. Cilium's
    // garbage collector removes it minutes (up to hours) later; reported again meanwhile, a downstream
    // delta that already forgot it would count it again.
    const lifetime = v.getUint32(o + VALUE.lifetime, true);
    const expired = lifetime < expiredBefore;
    const ended = expired && (v.getUint16(o + VALUE.flags, true) & ENTRY_CLOSED) === ENTRY_CLOSED;
    if (expired) {
      counts.expired++;
      if (lifetime < counts.oldestExpired) counts.oldestExpired = lifetime;
    }
    if (ended && closed?.reported(keys, k, keySize)) continue;
    const row = batch.length++;
    counts.connections++;
    // daddr (offset 0) opened the connection from sport; saddr answered on dport.
    place(batch.srcAddr, 16 * row, keys, k, addr);
    place(batch.dstAddr, 16 * row, keys, k + addr, addr);
    batch.backendAddr.fill(0, 16 * row, 16 * row + 16);
    batch.dstPort[row] = (keys[k + 2 * addr] << 8) | keys[k + 2 * addr + 1];
    batch.srcPort[row] = (keys[k + 2 * addr + 2] << 8) | keys[k + 2 * addr + 3];
    batch.backendPort[row] = 0;
    batch.protocol[row] = keys[k + 2 * addr + 4];
    batch.family[row] = family;
    const txPackets = u64(v, o + VALUE.txPackets);
    const txBytes = u64(v, o + VALUE.txBytes);
    const rxPackets = layout === 'split' ? u64(v, o + VALUE.rxPackets) : 0;
    const rxBytes = layout === 'split' ? u64(v, o + VALUE.rxBytes) : 0;
    // split counters are the local endpoint's: an IN entry's endpoint answered, so its tx went back.
    const answered = layout === 'split' && (flags & TUPLE_F_IN) !== 0;
    batch.txPackets[row] = answered ? rxPackets : txPackets;
    batch.txBytes[row] = answered ? rxBytes : txBytes;
    batch.rxPackets[row] = answered ? txPackets : rxPackets;
    batch.rxBytes[row] = answered ? txBytes : rxBytes;
    batch.flags[row] = ended ? FlowFlags.InitiatorKnown | FlowFlags.Closed : FlowFlags.InitiatorKnown;
  }
}

/** An address of `len` bytes at `from` of `src` into 16 bytes at `to` (IPv4 as ::ffff:a.b.c.d). */
function place(dst: Uint8Array, to: number, src: Uint8Array, from: number, len: number): void {
  if (len === 16) {
    dst.set(src.subarray(from, from + 16), to);
    return;
  }
  dst.fill(0, to, to + 10);
  dst[to + 10] = 0xff;
  dst[to + 11] = 0xff;
  dst.set(src.subarray(from, from + 4), to + 12);
}

/**
 * The ended entries (closed both ways, expired) of one map already reported Closed, by key: a later read
 * leaves them out while Cilium's garbage collector has not removed them. An entry used again by a new
 * connection on the same tuple is live, not ended, until that one ends too. Holds only what the latest
 * read saw: `next()` starts a read.
 */
export class ClosedEntries {
  private previous = new Set<string>();
  private current = new Set<string>();
  private reads = 0;

  /** Starts a read: what the previous one saw is what may be left out now. */
  next(): void {
    this.reads++;
    this.previous = this.current;
    this.current = new Set();
  }

  /**
   * True when the ended entry at `k` was reported Closed by an earlier read — or is found by the first
   * read, when the agent may have reported it before a restart (the delta processor's state survives
   * one; reported again, it would count the connection twice); remembered either way. The key's flags
   * byte is left out: a local connection's IN twin, outliving its OUT entry by a second, is the same one.
   */
  reported(keys: Uint8Array, k: number, keySize: number): boolean {
    let id = '';
    for (let b = k; b < k + keySize - 1; b++) id += String.fromCharCode(keys[b]);
    const seen = this.reads <= 1 || this.previous.has(id) || this.current.has(id);
    this.current.add(id);
    return seen;
  }

  get size(): number {
    return this.current.size;
  }
}

/**
 * The OUT entries of one map, found by their key bytes but the flags byte: an open-addressing table of
 * entry indexes over the keys themselves, so a map of a million entries costs two typed arrays, not a
 * string per entry.
 */
class OutEntries {
  private readonly slots: Int32Array;
  private readonly mask: number;

  constructor(
    private readonly keys: Uint8Array,
    private readonly keySize: number,
    count: number,
  ) {
    let size = 16;
    while (size < 2 * count) size *= 2;
    this.slots = new Int32Array(size).fill(-1);
    this.mask = size - 1;
    for (let i = 0; i < count; i++) {
      const k = keySize * i;
      if (keys[k + keySize - 1] !== 0) continue;
      let s = this.hash(k) & this.mask;
      while (this.slots[s] !== -1) s = (s + 1) & this.mask;
      this.slots[s] = k;
    }
  }

  /** Whether an OUT entry has the key at `k` (its flags byte aside). */
  has(k: number): boolean {
    for (let s = this.hash(k) & this.mask; this.slots[s] !== -1; s = (s + 1) & this.mask) {
      if (this.same(this.slots[s], k)) return true;
    }
    return false;
  }

  private hash(k: number): number {
    let h = 0x811c9dc5;
    for (let b = k; b < k + this.keySize - 1; b++) h = Math.imul(h ^ this.keys[b], 0x01000193);
    return h >>> 0;
  }

  private same(a: number, b: number): boolean {
    for (let j = 0; j < this.keySize - 1; j++) if (this.keys[a + j] !== this.keys[b + j]) return false;
    return true;
  }
}
