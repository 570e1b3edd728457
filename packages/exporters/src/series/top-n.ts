// A stable top N of label values by bytes, for labels whose values have no bound of their own (remote
// addresses, domain names): the N heaviest values keep their name, every other value becomes OTHER, so a
// flood of distinct values (a port scan, random subdomains) makes one series, not millions, and totals stay
// exact (every row is counted under its value or under OTHER).
//
// How: the admitted values (at most N) are counted exactly; the others are candidates in a Space-Saving
// sketch (Metwally, Agrawal, El Abbadi, "Efficient Computation of Frequent and Top-k Elements in Data
// Streams", ICDT 2005) of M slots, which finds every value heavier than 1/M of the bytes it saw in fixed
// memory. Counts decay (half-life), so the ranking follows current traffic. A candidate replaces the weakest
// admitted value only when it has surely (its count minus the sketch's error) sent twice as much, and only
// once that value has been admitted for `holdMs`: a label value lives at least that long, and values of
// similar weight do not swap back and forth. Everything is typed arrays of fixed size, made up front; a
// label's text is made once, when its value is admitted.
import { formatIp } from '@netmon/core';

/** The value of every row whose value is not among the admitted ones. */
export const OTHER = 'other';

/** A candidate must have sent this many times the bytes of the admitted value it replaces. */
const MARGIN = 2;
/** The code of a row whose value is not admitted (0 is a row without a value). */
export const CODE_OTHER = 1;
/** Reviews (decay, promotions) run at most this often. */
const REVIEW_MS = 1000;

export interface TopNOptions {
  /** How many values keep their name. */
  n: number;
  /** Shortest time a value stays admitted: the least a label value lives. */
  holdMs: number;
  /** Half-life of the counts (default: holdMs / 2). */
  halfLifeMs?: number;
  /** Candidate slots of the sketch (default: 8 × n, at least 64). */
  candidates?: number;
}

/**
 * The ranking, independent of what the values are: slots [0, n) are the admitted values, [n, n + m) the
 * candidates. Subclasses keep the keys and find a row's slot. A row's code is 2 + slot for an admitted
 * value, CODE_OTHER otherwise, 0 for a row without a value; `dict` spells the codes.
 */
export abstract class TopN {
  readonly n: number;
  readonly m: number;
  readonly holdMs: number;
  readonly halfLifeMs: number;
  /** Decayed bytes per slot; for a candidate an overestimate by at most `error`. */
  protected readonly count: Float64Array;
  protected readonly error: Float64Array;
  private readonly admittedAt: Float64Array;
  /** Admitted slots in use: [0, admitted). */
  admitted = 0;
  /** Candidate slots in use: [n, n + candidates). */
  candidates = 0;
  /** Candidate slots as a min-heap on count: the one to evict first at 0. */
  private readonly heap: Int32Array;
  private readonly heapPos: Int32Array;
  /**
   * '' (no value), OTHER, then the label of each admitted slot. Only ever appended to, except when an
   * admitted value is replaced: then it is a new array, so readers that cache per code (DictionaryIds) see
   * that codes changed meaning.
   */
  dict: string[] = ['', OTHER];
  /** Values replaced so far (for tests and status). */
  replaced = 0;
  private lastDecay = Number.NaN;
  private lastReview = Number.NEGATIVE_INFINITY;

  constructor(o: TopNOptions) {
    if (!(o.n >= 1)) throw new RangeError('top N needs n >= 1');
    this.n = o.n;
    this.m = o.candidates ?? Math.max(64, 8 * o.n);
    this.holdMs = o.holdMs;
    this.halfLifeMs = o.halfLifeMs ?? Math.max(1, o.holdMs / 2);
    const slots = this.n + this.m;
    this.count = new Float64Array(slots);
    this.error = new Float64Array(slots);
    this.admittedAt = new Float64Array(this.n);
    this.heap = new Int32Array(this.m);
    this.heapPos = new Int32Array(slots).fill(-1);
  }

  /** Total slots (admitted and candidates): what the key store must hold. */
  get slots(): number {
    return this.n + this.m;
  }

  /** The labels of the admitted values, in slot order. */
  values(): string[] {
    return this.dict.slice(2, 2 + this.admitted);
  }

  /** The decayed bytes of an admitted value's slot (tests). */
  weight(slot: number): number {
    return this.count[slot];
  }

  /** Forgets the key in `slot` (evicted). */
  protected abstract removeKey(slot: number): void;
  /** Exchanges the keys of two slots. */
  protected abstract swapKeys(a: number, b: number): void;
  /** The label text of the key in `slot`. */
  protected abstract label(slot: number): string;

  /** A row of a known key: counts it; returns the row's code. */
  protected hit(slot: number, weight: number): number {
    if (slot < this.n) {
      this.count[slot] += weight;
      return 2 + slot;
    }
    if (weight > 0) {
      this.count[slot] += weight;
      this.siftDown(this.heapPos[slot]);
    }
    return CODE_OTHER;
  }

  /**
   * A slot for a new key with `weight` bytes (> 0): a free admitted slot while there is one (values are
   * admitted as they come until N are), else a free candidate slot, else the lightest candidate's, whose key
   * is forgotten and whose count becomes the new key's error (Space-Saving). The caller stores the key in
   * the slot, then calls `placed`.
   */
  protected claim(weight: number, now: number): number {
    if (this.admitted < this.n) {
      const s = this.admitted++;
      this.count[s] = weight;
      this.error[s] = 0;
      this.admittedAt[s] = now;
      return s;
    }
    if (this.candidates < this.m) {
      const s = this.n + this.candidates;
      const at = this.candidates++;
      this.count[s] = weight;
      this.error[s] = 0;
      this.heap[at] = s;
      this.heapPos[s] = at;
      this.siftUp(at);
      return s;
    }
    const s = this.heap[0];
    this.removeKey(s);
    const floor = this.count[s];
    this.count[s] = floor + weight;
    this.error[s] = floor;
    this.siftDown(0);
    return s;
  }

  /** The key of `slot` was stored; returns the row's code. */
  protected placed(slot: number): number {
    if (slot >= this.n) return CODE_OTHER;
    // Admitted slots fill in order, so the dictionary only grows here.
    this.dict.push(this.label(slot));
    return 2 + slot;
  }

  /**
   * Decays the counts and promotes candidates that surely outweigh an admitted value held long enough.
   * Called before a batch is counted, so a batch's rows see one set of admitted values.
   */
  review(now: number): void {
    if (now - this.lastReview < REVIEW_MS) return;
    this.lastReview = now;
    this.decay(now);
    if (this.candidates === 0) return;
    let dict: string[] | undefined;
    for (let swaps = 0; swaps < this.n; swaps++) {
      let best = -1;
      let sure = 0;
      for (let s = this.n; s < this.n + this.candidates; s++) {
        const g = this.count[s] - this.error[s];
        if (g > sure) {
          sure = g;
          best = s;
        }
      }
      if (best < 0) break;
      let weakest = -1;
      let least = Number.POSITIVE_INFINITY;
      for (let a = 0; a < this.admitted; a++) {
        if (now - this.admittedAt[a] < this.holdMs) continue;
        if (this.count[a] < least) {
          least = this.count[a];
          weakest = a;
        }
      }
      if (weakest < 0 || sure <= MARGIN * least) break;
      this.swapKeys(weakest, best);
      // The value that leaves becomes a candidate with what it has counted, exactly (no error).
      this.count[best] = least;
      this.error[best] = 0;
      this.siftUp(this.heapPos[best]);
      this.count[weakest] = sure;
      this.error[weakest] = 0;
      this.admittedAt[weakest] = now;
      dict ??= this.dict.slice();
      dict[2 + weakest] = this.label(weakest);
      this.replaced++;
    }
    if (dict) this.dict = dict;
  }

  private decay(now: number): void {
    const last = this.lastDecay;
    this.lastDecay = now;
    if (Number.isNaN(last) || now <= last) return;
    const f = 0.5 ** ((now - last) / this.halfLifeMs);
    // A uniform factor keeps the heap's order.
    for (let s = 0; s < this.admitted; s++) this.count[s] *= f;
    for (let s = this.n; s < this.n + this.candidates; s++) {
      this.count[s] *= f;
      this.error[s] *= f;
    }
  }

  private siftUp(i: number): void {
    const { heap, heapPos, count } = this;
    const s = heap[i];
    const c = count[s];
    while (i > 0) {
      const p = (i - 1) >> 1;
      const ps = heap[p];
      if (count[ps] <= c) break;
      heap[i] = ps;
      heapPos[ps] = i;
      i = p;
    }
    heap[i] = s;
    heapPos[s] = i;
  }

  private siftDown(i: number): void {
    const { heap, heapPos, count } = this;
    const size = this.candidates;
    const s = heap[i];
    const c = count[s];
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) break;
      const r = l + 1;
      const child = r < size && count[heap[r]] < count[heap[l]] ? r : l;
      if (count[heap[child]] >= c) break;
      heap[i] = heap[child];
      heapPos[heap[i]] = i;
      i = child;
    }
    heap[i] = s;
    heapPos[s] = i;
  }
}

/** A power of two at least twice `n`: open addressing with short probes. */
function tableSize(n: number): number {
  let size = 16;
  while (size < 2 * n) size *= 2;
  return size;
}

/**
 * Top N of destination prefixes: an address is cut to its first `ipv4`/`ipv6` bits (IPv4-mapped addresses
 * count as IPv4) and keyed by the four 32-bit words of the result, in an open-addressing table of slot
 * numbers (linear probing, backward-shift deletion: no tombstones pile up under a flood of evictions).
 */
export class PrefixTopN extends TopN {
  private readonly keys: Int32Array;
  private readonly table: Int32Array;
  private readonly mask: number;
  private readonly v4Mask: number;
  private readonly v6Masks: Int32Array;
  private readonly text = new Uint8Array(16);

  constructor(
    o: TopNOptions,
    readonly ipv4: number,
    readonly ipv6: number,
  ) {
    super(o);
    this.keys = new Int32Array(4 * this.slots);
    this.table = new Int32Array(tableSize(this.slots));
    this.mask = this.table.length - 1;
    this.v4Mask = wordMask(ipv4);
    this.v6Masks = Int32Array.from([0, 1, 2, 3], (w) => wordMask(ipv6 - 32 * w));
  }

  /** Counts a row whose destination is the 16 bytes at `off` of `addr`; returns the row's code. */
  offer(addr: Uint8Array, off: number, weight: number, now: number): number {
    let w0: number;
    let w1: number;
    let w2: number;
    let w3 = word(addr, off + 12);
    if (isMapped(addr, off)) {
      w0 = 0;
      w1 = 0;
      w2 = 0xffff;
      w3 &= this.v4Mask;
    } else {
      const m = this.v6Masks;
      w0 = word(addr, off) & m[0];
      w1 = word(addr, off + 4) & m[1];
      w2 = word(addr, off + 8) & m[2];
      w3 &= m[3];
    }
    const keys = this.keys;
    const table = this.table;
    let i = hash4(w0, w1, w2, w3) & this.mask;
    for (;;) {
      const e = table[i];
      if (e === 0) break;
      const k = 4 * (e - 1);
      if (keys[k] === w0 && keys[k + 1] === w1 && keys[k + 2] === w2 && keys[k + 3] === w3) {
        return this.hit(e - 1, weight);
      }
      i = (i + 1) & this.mask;
    }
    if (!(weight > 0)) return CODE_OTHER;
    const s = this.claim(weight, now);
    const k = 4 * s;
    keys[k] = w0;
    keys[k + 1] = w1;
    keys[k + 2] = w2;
    keys[k + 3] = w3;
    // An eviction in claim may have shifted entries: probe again for the free place.
    this.insert(s);
    return this.placed(s);
  }

  protected removeKey(slot: number): void {
    const table = this.table;
    let i = this.find(slot);
    // Backward-shift deletion: move later entries of the run into the hole when their home allows it.
    let j = i;
    for (;;) {
      j = (j + 1) & this.mask;
      const e = table[j];
      if (e === 0) break;
      const k = 4 * (e - 1);
      const home = hash4(this.keys[k], this.keys[k + 1], this.keys[k + 2], this.keys[k + 3]) & this.mask;
      // Entry at j may fill the hole at i unless its home lies cyclically in (i, j].
      const between = i <= j ? home > i && home <= j : home > i || home <= j;
      if (between) continue;
      table[i] = e;
      i = j;
    }
    table[i] = 0;
  }

  protected swapKeys(a: number, b: number): void {
    const ia = this.find(a);
    const ib = this.find(b);
    this.table[ia] = b + 1;
    this.table[ib] = a + 1;
    const keys = this.keys;
    for (let w = 0; w < 4; w++) {
      const t = keys[4 * a + w];
      keys[4 * a + w] = keys[4 * b + w];
      keys[4 * b + w] = t;
    }
  }

  protected label(slot: number): string {
    const t = this.text;
    for (let w = 0; w < 4; w++) {
      const v = this.keys[4 * slot + w];
      t[4 * w] = v >>> 24;
      t[4 * w + 1] = (v >>> 16) & 0xff;
      t[4 * w + 2] = (v >>> 8) & 0xff;
      t[4 * w + 3] = v & 0xff;
    }
    return isMapped(t, 0) ? `${formatIp(t, 0, 4)}/${this.ipv4}` : `${formatIp(t, 0, 6)}/${this.ipv6}`;
  }

  /** Position in the table of the entry of `slot` (which must be there). */
  private find(slot: number): number {
    const k = 4 * slot;
    const keys = this.keys;
    let i = hash4(keys[k], keys[k + 1], keys[k + 2], keys[k + 3]) & this.mask;
    while (this.table[i] !== slot + 1) i = (i + 1) & this.mask;
    return i;
  }

  private insert(slot: number): void {
    const k = 4 * slot;
    const keys = this.keys;
    let i = hash4(keys[k], keys[k + 1], keys[k + 2], keys[k + 3]) & this.mask;
    while (this.table[i] !== 0) i = (i + 1) & this.mask;
    this.table[i] = slot + 1;
  }
}

/** The first `bits` bits of a 32-bit word set (bits clamped to 0..32). */
function wordMask(bits: number): number {
  if (bits >= 32) return -1;
  if (bits <= 0) return 0;
  return (-1 << (32 - bits)) | 0;
}

function word(b: Uint8Array, o: number): number {
  return (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
}

function isMapped(b: Uint8Array, o: number): boolean {
  return (
    b[o] === 0 &&
    b[o + 1] === 0 &&
    b[o + 2] === 0 &&
    b[o + 3] === 0 &&
    b[o + 4] === 0 &&
    b[o + 5] === 0 &&
    b[o + 6] === 0 &&
    b[o + 7] === 0 &&
    b[o + 8] === 0 &&
    b[o + 9] === 0 &&
    b[o + 10] === 0xff &&
    b[o + 11] === 0xff
  );
}

function hash4(a: number, b: number, c: number, d: number): number {
  let h = 0x811c9dc5;
  h = Math.imul(h ^ a, 0x01000193);
  h = Math.imul(h ^ b, 0x01000193);
  h = Math.imul(h ^ c, 0x01000193);
  h = Math.imul(h ^ d, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

/**
 * Top N of strings (DNS names). Callers offer each distinct value of a batch once, with the bytes of all its
 * rows, so the Map is touched per distinct value, not per row.
 */
export class StringTopN extends TopN {
  private readonly keys: (string | undefined)[];
  private readonly index = new Map<string, number>();

  constructor(o: TopNOptions) {
    super(o);
    this.keys = new Array(this.slots).fill(undefined);
  }

  /** Counts `weight` bytes of `value`; returns the code of its rows. */
  offer(value: string, weight: number, now: number): number {
    const slot = this.index.get(value);
    if (slot !== undefined) return this.hit(slot, weight);
    if (!(weight > 0)) return CODE_OTHER;
    const s = this.claim(weight, now);
    this.keys[s] = value;
    this.index.set(value, s);
    return this.placed(s);
  }

  /** Values the structure holds (admitted and candidates): bounded by n + m. */
  get size(): number {
    return this.index.size;
  }

  protected removeKey(slot: number): void {
    const k = this.keys[slot];
    if (k !== undefined) this.index.delete(k);
    this.keys[slot] = undefined;
  }

  protected swapKeys(a: number, b: number): void {
    const ka = this.keys[a] as string;
    const kb = this.keys[b] as string;
    this.keys[a] = kb;
    this.keys[b] = ka;
    this.index.set(kb, a);
    this.index.set(ka, b);
  }

  protected label(slot: number): string {
    return this.keys[slot] as string;
  }
}
