// The delta processor's state: one entry per tracked flow, in typed arrays rather than a Map of objects.
//
// Layout: entries are dense 56-byte records in one ArrayBuffer (read through a Float64Array and a
// Uint32Array view of the same memory), so one flow's state sits in one or two cache lines. A separate
// open-addressing index (linear probing, load factor ≤ 0.75, a power of two in size) maps a key's
// fingerprint to its record. Deleting a flow shifts the probe run back (no tombstones in the index) and
// moves the last record into the hole, so records stay dense and a sweep is a plain loop.
//
// Record (56 bytes = 7 float64 = 14 uint32):
//   f64[0..3]  baseline tx bytes, rx bytes, tx packets, rx packets (the counters already passed on)
//   f64[4]     last read: ms since the epoch of the reading the baseline comes from
//   u32[10,11] fingerprint: two independent 32-bit hashes of the flow key
//   u32[12]    generation of the last snapshot that saw the flow (for a closed flow: when it closed)
//   u32[13]    state: LIVE, MISSING, CLOSED or REOPENED
// Two states give the float64 slots other meanings, as no baseline is needed there (a record must not
// grow: every byte is paid a million times over):
//   CLOSED (a tombstone): f64[0..3] the final counters; f64[4] the connection's start (conntrack's
//     timestamp, 0 when unknown), which tells a later connection with the same key from this one.
//   REOPENED (a NEW reused the key of a flow held here; the new connection's baseline is 0):
//     f64[0] an upper bound of the start of every earlier connection with this key (0 = unknown),
//     f64[1] the origin's dump count when the NEW was processed, f64[2,3] 0, f64[4] last read as for LIVE.

export const RECORD_BYTES = 56;
export const REC_F64 = 7;
export const REC_U32 = 14;
export const F_TX_BYTES = 0;
export const F_RX_BYTES = 1;
export const F_TX_PACKETS = 2;
export const F_RX_PACKETS = 3;
export const F_LAST_READ = 4;
export const U_FP_LO = 10;
export const U_FP_HI = 11;
export const U_GEN = 12;
export const U_STATE = 13;

export const STATE_LIVE = 1;
export const STATE_CLOSED = 2;
/** Live, but missing from the last snapshot: kept (with its baseline) until a grace period ends. */
export const STATE_MISSING = 3;
/**
 * Live, opened by a NEW that reused the key of a connection held here: until a dump is known to have been
 * taken after that NEW, a dump's row for the key may still show the old connection.
 */
export const STATE_REOPENED = 4;
/** CLOSED: the connection's start (ms since the epoch; 0 = unknown). */
export const F_CLOSED_START = 4;
/** REOPENED: an upper bound of the starts of the earlier connections with this key (0 = unknown). */
export const F_EARLIER_START = 0;
/** REOPENED: the origin's dump count when the NEW was processed. */
export const F_REOPENED_AT_READ = 1;

/** Index slots hold `entry + 1` in the low 26 bits and 6 bits of the fingerprint above them. */
const ENTRY_BITS = 26;
const ENTRY_MASK = (1 << ENTRY_BITS) - 1;
/** The most flows one table (one origin) can track: 67,108,862. */
export const MAX_ENTRIES = ENTRY_MASK - 1;
const MIN_RECORDS = 1024;
const MAX_LOAD = 0.75;

/**
 * Where `fingerprint` leaves its result: [lo, hi]. A shared scratch array keeps the hot path free of
 * allocations (JS is single-threaded; callers read it right after the call).
 */
export const FP = new Uint32Array(2);

const SEED1 = 0x9747b28c;
const SEED2 = 0x165667b1;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * A 64-bit fingerprint of a flow key, written to FP: two 32-bit hashes of different construction
 * (MurmurHash3's and xxHash32's round and finaliser) over the same 11 words, read straight from the
 * batch's address columns without building a key. Address words are little-endian (assembled byte by
 * byte, or read through `addressWords` on a little-endian machine: the same values), so fingerprints do
 * not depend on the arrays' alignment and a checkpoint stays valid.
 *
 * Key: family, protocol, source address and port, destination address and port, zone, conntrack id.
 * The origin is not hashed: each origin has its own table.
 */
export function fingerprint(
  src: Uint8Array,
  dst: Uint8Array,
  row: number,
  srcPort: number,
  dstPort: number,
  family: number,
  protocol: number,
  zone: number,
  id: number,
): void {
  let h1 = SEED1;
  let h2 = SEED2;
  const o = 16 * row;
  for (let w = 0; w < 8; w++) {
    const a = w < 4 ? src : dst;
    const p = o + 4 * (w & 3);
    const k = a[p] | (a[p + 1] << 8) | (a[p + 2] << 16) | (a[p + 3] << 24);
    h1 = mmix(h1, k);
    h2 = xmix(h2, k);
  }
  finish(h1, h2, srcPort, dstPort, family, protocol, zone, id);
}

/**
 * The address column as 32-bit words (4 per row), when reading it so gives the same words as
 * `fingerprint` assembles (a little-endian machine, 4-byte aligned data); else null.
 */
export function addressWords(a: Uint8Array): Uint32Array | null {
  if (!LITTLE_ENDIAN || a.byteOffset % 4 !== 0) return null;
  return new Uint32Array(a.buffer, a.byteOffset, a.length >>> 2);
}

/** `fingerprint` over address words from `addressWords`: the same result, faster. */
export function fingerprintWords(
  src: Uint32Array,
  dst: Uint32Array,
  row: number,
  srcPort: number,
  dstPort: number,
  family: number,
  protocol: number,
  zone: number,
  id: number,
): void {
  const o = 4 * row;
  let k = src[o];
  let h1 = mmix(SEED1, k);
  let h2 = xmix(SEED2, k);
  k = src[o + 1];
  h1 = mmix(h1, k);
  h2 = xmix(h2, k);
  k = src[o + 2];
  h1 = mmix(h1, k);
  h2 = xmix(h2, k);
  k = src[o + 3];
  h1 = mmix(h1, k);
  h2 = xmix(h2, k);
  k = dst[o];
  h1 = mmix(h1, k);
  h2 = xmix(h2, k);
  k = dst[o + 1];
  h1 = mmix(h1, k);
  h2 = xmix(h2, k);
  k = dst[o + 2];
  h1 = mmix(h1, k);
  h2 = xmix(h2, k);
  k = dst[o + 3];
  h1 = mmix(h1, k);
  h2 = xmix(h2, k);
  finish(h1, h2, srcPort, dstPort, family, protocol, zone, id);
}

function finish(
  h1: number,
  h2: number,
  srcPort: number,
  dstPort: number,
  family: number,
  protocol: number,
  zone: number,
  id: number,
): void {
  let k = (srcPort & 0xffff) | ((dstPort & 0xffff) << 16);
  h1 = mmix(h1, k);
  h2 = xmix(h2, k);
  k = (family & 0xff) | ((protocol & 0xff) << 8) | ((zone & 0xffff) << 16);
  h1 = mmix(h1, k);
  h2 = xmix(h2, k);
  h1 = mmix(h1, id | 0);
  h2 = xmix(h2, id | 0);
  // MurmurHash3 fmix32.
  h1 ^= 44;
  h1 ^= h1 >>> 16;
  h1 = Math.imul(h1, 0x85ebca6b);
  h1 ^= h1 >>> 13;
  h1 = Math.imul(h1, 0xc2b2ae35);
  h1 ^= h1 >>> 16;
  // xxHash32 avalanche.
  h2 = (h2 + 44) | 0;
  h2 ^= h2 >>> 15;
  h2 = Math.imul(h2, 0x85ebca77);
  h2 ^= h2 >>> 13;
  h2 = Math.imul(h2, 0xc2b2ae3d);
  h2 ^= h2 >>> 16;
  FP[0] = h1;
  FP[1] = h2;
}

/** One MurmurHash3 block step. */
function mmix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** One xxHash32 round (with the single-lane tail step's rotate and multiply). */
function xmix(h: number, k: number): number {
  h = (h + Math.imul(k, 0xc2b2ae3d)) | 0;
  h = (h << 17) | (h >>> 15);
  return Math.imul(h, 0x27d4eb2f);
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** Index size for a record capacity: a power of two that keeps the load factor ≤ 0.75. */
function indexSizeFor(records: number): number {
  return nextPow2(Math.ceil(records / MAX_LOAD));
}

/**
 * One origin's baselines: per flow key, the cumulative counters already passed on and when they were read
 * (a closed flow's final counters, as a tombstone), the next reading's deltas being taken against them.
 * An open-addressing hash table from flow fingerprint to a 56-byte record. About 65 bytes per tracked
 * flow at 1M flows (56 for the record plus the index and spare capacity); records grow by 1.5×, the
 * index doubles.
 */
export class BaselineTable {
  /** Entries in use: records [0, count). */
  count = 0;
  /** The records; replaced when the table grows, so re-read after `insert`. */
  f64: Float64Array;
  u32: Uint32Array;
  private capacity: number;
  private index: Uint32Array;
  private mask: number;

  constructor(capacity = MIN_RECORDS) {
    this.capacity = Math.max(MIN_RECORDS, Math.ceil(capacity));
    const buf = new ArrayBuffer(this.capacity * RECORD_BYTES);
    this.f64 = new Float64Array(buf);
    this.u32 = new Uint32Array(buf);
    this.index = new Uint32Array(indexSizeFor(this.capacity));
    this.mask = this.index.length - 1;
  }

  /** Bytes of typed arrays this table holds (records with their spare capacity, and the index). */
  get byteSize(): number {
    return this.f64.byteLength + this.index.byteLength;
  }

  /** The entry with this fingerprint, or -1. */
  find(lo: number, hi: number): number {
    const index = this.index;
    const mask = this.mask;
    const u32 = this.u32;
    const tag = hi >>> ENTRY_BITS;
    for (let s = lo & mask; ; s = (s + 1) & mask) {
      const v = index[s];
      if (v === 0) return -1;
      if (v >>> ENTRY_BITS === tag) {
        const e = (v & ENTRY_MASK) - 1;
        const r = REC_U32 * e;
        if (u32[r + U_FP_LO] === lo && u32[r + U_FP_HI] === hi) return e;
      }
    }
  }

  /**
   * Adds an entry for a fingerprint not in the table; returns it. The record is zero but for the
   * fingerprint. May reallocate `f64`/`u32`.
   */
  insert(lo: number, hi: number): number {
    if (this.count === this.capacity) {
      if (this.capacity >= MAX_ENTRIES) {
        throw new RangeError(`delta: more than ${MAX_ENTRIES} flows in one origin; cannot track more`);
      }
      this.resize(Math.min(MAX_ENTRIES, Math.ceil(this.capacity * 1.5)));
    }
    const e = this.count++;
    const r = REC_U32 * e;
    this.u32.fill(0, r, r + REC_U32);
    this.u32[r + U_FP_LO] = lo;
    this.u32[r + U_FP_HI] = hi;
    this.place(e, lo, hi);
    return e;
  }

  /** Deletes an entry: the last record moves into its place (so entries above `e` are renumbered). */
  remove(e: number): void {
    this.unlink(this.slotOf(e));
    const last = this.count - 1;
    if (e !== last) {
      const s = this.slotOf(last);
      this.index[s] = ((this.index[s] & ~ENTRY_MASK) | (e + 1)) >>> 0;
      this.u32.copyWithin(REC_U32 * e, REC_U32 * last, REC_U32 * last + REC_U32);
    }
    this.count = last;
  }

  /** Gives back memory after many deletions: when less than half is used, to 1.25× what is. */
  shrinkToFit(): void {
    if (this.capacity > MIN_RECORDS && this.count * 2 < this.capacity) {
      this.resize(Math.max(MIN_RECORDS, Math.ceil(this.count * 1.25)));
    }
  }

  /** The records in use, as raw bytes (a view: copy it before the table changes). */
  recordBytes(): Uint8Array {
    return new Uint8Array(this.f64.buffer, 0, this.count * RECORD_BYTES);
  }

  /** Copies of the given records (entries may repeat), as raw bytes. */
  copyRecords(entries: Uint32Array, n: number): Uint8Array {
    const out = new Uint8Array(n * RECORD_BYTES);
    const src = new Uint8Array(this.f64.buffer);
    for (let j = 0; j < n; j++) {
      const at = entries[j] * RECORD_BYTES;
      out.set(src.subarray(at, at + RECORD_BYTES), j * RECORD_BYTES);
    }
    return out;
  }

  /**
   * A table rebuilt from raw records (a checkpoint). Throws when two records share a fingerprint or a
   * record's state is unknown.
   */
  static fromRecords(bytes: Uint8Array, count: number): BaselineTable {
    if (bytes.length !== count * RECORD_BYTES) throw new Error('record bytes do not match the count');
    if (count > MAX_ENTRIES) throw new Error(`more than ${MAX_ENTRIES} flows`);
    const t = new BaselineTable(Math.ceil(count * 1.25));
    new Uint8Array(t.f64.buffer).set(bytes);
    const u32 = t.u32;
    const f64 = t.f64;
    for (let e = 0; e < count; e++) {
      checkRecord(f64, u32, e);
      const r = REC_U32 * e;
      const lo = u32[r + U_FP_LO];
      const hi = u32[r + U_FP_HI];
      if (t.find(lo, hi) !== -1) throw new Error(`record ${e} repeats the key of an earlier one`);
      t.count = e + 1;
      t.place(e, lo, hi);
    }
    return t;
  }

  /** Checks raw records as `fromRecords` does (but for repeated keys); returns an aligned copy of them. */
  static checkRecords(bytes: Uint8Array): Uint32Array {
    if (bytes.length % RECORD_BYTES !== 0) throw new Error('record bytes are not whole records');
    const copy = new Uint8Array(bytes);
    const f64 = new Float64Array(copy.buffer);
    const u32 = new Uint32Array(copy.buffer);
    for (let j = 0; j < bytes.length / RECORD_BYTES; j++) checkRecord(f64, u32, j);
    return u32;
  }

  /**
   * Writes raw records (a checkpoint's journal) over the entries with the same fingerprint, adding those
   * not held. All are checked first: on an error (thrown) the table is unchanged.
   */
  upsertRecords(bytes: Uint8Array): void {
    const u32 = BaselineTable.checkRecords(bytes);
    const n = u32.length / REC_U32;
    for (let j = 0; j < n; j++) {
      const lo = u32[REC_U32 * j + U_FP_LO];
      const hi = u32[REC_U32 * j + U_FP_HI];
      let e = this.find(lo, hi);
      if (e === -1) e = this.insert(lo, hi);
      this.u32.set(u32.subarray(REC_U32 * j, REC_U32 * j + REC_U32), REC_U32 * e);
    }
  }

  private place(e: number, lo: number, hi: number): void {
    const index = this.index;
    const mask = this.mask;
    let s = lo & mask;
    while (index[s] !== 0) s = (s + 1) & mask;
    index[s] = (((hi >>> ENTRY_BITS) << ENTRY_BITS) | (e + 1)) >>> 0;
  }

  private slotOf(e: number): number {
    const index = this.index;
    const mask = this.mask;
    for (let s = this.u32[REC_U32 * e + U_FP_LO] & mask; ; s = (s + 1) & mask) {
      if ((index[s] & ENTRY_MASK) === e + 1) return s;
      if (index[s] === 0) throw new Error(`baseline table corrupt: entry ${e} is not indexed`);
    }
  }

  /** Backward-shift deletion: pulls later members of the probe run into the hole; no tombstones. */
  private unlink(slot: number): void {
    const index = this.index;
    const mask = this.mask;
    const u32 = this.u32;
    let hole = slot;
    for (let j = (slot + 1) & mask; ; j = (j + 1) & mask) {
      const v = index[j];
      if (v === 0) break;
      const home = u32[REC_U32 * ((v & ENTRY_MASK) - 1) + U_FP_LO] & mask;
      // The entry at j may fill the hole when its home is not within (hole, j] going round.
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        index[hole] = v;
        hole = j;
      }
    }
    index[hole] = 0;
  }

  private resize(capacity: number): void {
    const buf = new ArrayBuffer(capacity * RECORD_BYTES);
    new Uint8Array(buf).set(new Uint8Array(this.f64.buffer, 0, this.count * RECORD_BYTES));
    this.f64 = new Float64Array(buf);
    this.u32 = new Uint32Array(buf);
    this.capacity = capacity;
    const size = indexSizeFor(capacity);
    if (size !== this.index.length) {
      this.index = new Uint32Array(size);
      this.mask = size - 1;
      for (let e = 0; e < this.count; e++) {
        this.place(e, this.u32[REC_U32 * e + U_FP_LO], this.u32[REC_U32 * e + U_FP_HI]);
      }
    }
  }
}

/** Throws when record `e` holds an unknown state or a slot no valid state holds. */
function checkRecord(f64: Float64Array, u32: Uint32Array, e: number): void {
  const state = u32[REC_U32 * e + U_STATE];
  if (state !== STATE_LIVE && state !== STATE_CLOSED && state !== STATE_MISSING && state !== STATE_REOPENED)
    throw new Error(`record ${e} has unknown state ${state}`);
  for (let f = 0; f < 4; f++) {
    const v = f64[REC_F64 * e + f];
    if (!(v >= 0 && v <= Number.MAX_SAFE_INTEGER)) throw new Error(`record ${e} has counter ${v}`);
  }
}
