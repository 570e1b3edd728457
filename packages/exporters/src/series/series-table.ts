// The aggregation state of the metric exporters: series identified by a tuple of label values, with
// parallel Float64Array columns of values. Built for batches, not records: a row is matched to its
// series by hashing small integer ids into an open-addressing table, so adding a million flows creates
// no object per flow. Label values are interned once; `retain` compacts series, columns and strings.

/** Strings ↔ small integer ids; id 0 is the empty string (an absent label). */
export class Interner {
  private readonly values: string[] = [''];
  private readonly ids = new Map<string, number>([['', 0]]);
  id(value: string): number {
    let id = this.ids.get(value);
    if (id === undefined) {
      id = this.values.length;
      this.values.push(value);
      this.ids.set(value, id);
    }
    return id;
  }
  value(id: number): string {
    return this.values[id];
  }
  get size(): number {
    return this.values.length;
  }
}

const EMPTY = 0;

/**
 * Series of `width` labels, at most `maxSeries` of them. Past the cap, `findOrAdd` returns the one
 * overflow series (every label empty, `isOverflow` true), so totals stay right while detail is lost.
 */
export class SeriesTable {
  /** Live series occupy [0, size). */
  size = 0;
  /** Index of the overflow series, or -1 until the cap was first hit. */
  overflow = -1;
  /** Rows that went to the overflow series because the cap was reached. */
  overflowRows = 0;
  /** ms since the epoch a series was last added to. */
  lastSeen: Float64Array;
  /** ms since the epoch a series was created (the start of a cumulative counter). */
  created: Float64Array;
  /** Value columns, indexed by the handle `addColumn` returned. */
  readonly values: Float64Array[] = [];
  strings = new Interner();
  private capacity: number;
  private labelIds: Int32Array;
  private slots: Int32Array;
  private mask: number;

  constructor(
    readonly width: number,
    readonly maxSeries: number,
    initialCapacity = 1024,
  ) {
    if (maxSeries < 2) throw new RangeError('maxSeries must leave room for the overflow series (>= 2)');
    this.capacity = Math.max(16, Math.min(initialCapacity, maxSeries));
    this.labelIds = new Int32Array(this.capacity * width);
    this.lastSeen = new Float64Array(this.capacity);
    this.created = new Float64Array(this.capacity);
    this.slots = new Int32Array(slotCount(this.capacity));
    this.mask = this.slots.length - 1;
  }

  /** A new value column (zeros); returns its index into `values`. */
  addColumn(): number {
    this.values.push(new Float64Array(this.capacity));
    return this.values.length - 1;
  }

  /** The id of label `l` of series `s`; resolve with `strings.value`. */
  labelId(s: number, l: number): number {
    return this.labelIds[s * this.width + l];
  }

  label(s: number, l: number): string {
    return this.strings.value(this.labelIds[s * this.width + l]);
  }

  isOverflow(s: number): boolean {
    return s === this.overflow;
  }

  /**
   * The series with these label ids (`width` of them, from `strings.id`), created if new. Returns the
   * overflow series once `maxSeries` series exist.
   */
  findOrAdd(ids: Int32Array, now: number): number {
    const w = this.width;
    const hash = hashIds(ids, w);
    let slot = hash & this.mask;
    for (;;) {
      const entry = this.slots[slot];
      if (entry === 0) break;
      const s = entry - 1;
      if (s !== this.overflow && this.sameIds(s, ids)) {
        this.lastSeen[s] = now;
        return s;
      }
      slot = (slot + 1) & this.mask;
    }
    if (this.size >= this.maxSeries - (this.overflow < 0 ? 1 : 0)) {
      this.overflowRows++;
      if (this.overflow < 0) this.overflow = this.append(null, now);
      this.lastSeen[this.overflow] = now;
      return this.overflow;
    }
    const grew = this.size === this.capacity;
    const s = this.append(ids, now);
    // Growing rehashed the table: the free slot found above belongs to the old one.
    if (grew) {
      slot = hash & this.mask;
      while (this.slots[slot] !== 0) slot = (slot + 1) & this.mask;
    }
    this.slots[slot] = s + 1;
    return s;
  }

  /**
   * Keeps the series for which `keep` is true and compacts everything (columns, ids, strings, the hash).
   * Returns how many series went. The overflow series goes like any other when `keep` says so.
   */
  retain(keep: (s: number) => boolean): number {
    const w = this.width;
    const strings = new Interner();
    let out = 0;
    let overflow = -1;
    for (let s = 0; s < this.size; s++) {
      if (!keep(s)) continue;
      if (s === this.overflow) overflow = out;
      for (let l = 0; l < w; l++) {
        this.labelIds[out * w + l] = strings.id(this.strings.value(this.labelIds[s * w + l]));
      }
      this.lastSeen[out] = this.lastSeen[s];
      this.created[out] = this.created[s];
      for (const col of this.values) col[out] = col[s];
      out++;
    }
    const removed = this.size - out;
    for (const col of this.values) col.fill(0, out, this.size);
    this.size = out;
    this.overflow = overflow;
    this.strings = strings;
    this.rehash();
    return removed;
  }

  private sameIds(s: number, ids: Int32Array): boolean {
    const w = this.width;
    const base = s * w;
    for (let l = 0; l < w; l++) if (this.labelIds[base + l] !== ids[l]) return false;
    return true;
  }

  private append(ids: Int32Array | null, now: number): number {
    if (this.size === this.capacity) this.grow();
    const s = this.size++;
    const w = this.width;
    if (ids) this.labelIds.set(ids.subarray(0, w), s * w);
    else this.labelIds.fill(EMPTY, s * w, s * w + w);
    this.lastSeen[s] = now;
    this.created[s] = now;
    return s;
  }

  private grow(): void {
    const capacity = Math.min(this.maxSeries, this.capacity * 2);
    const grown = <T extends Float64Array | Int32Array>(a: T, n: number): T => {
      const b = new (a.constructor as new (n: number) => T)(n);
      b.set(a);
      return b;
    };
    this.labelIds = grown(this.labelIds, capacity * this.width);
    this.lastSeen = grown(this.lastSeen, capacity);
    this.created = grown(this.created, capacity);
    for (let c = 0; c < this.values.length; c++) this.values[c] = grown(this.values[c], capacity);
    this.capacity = capacity;
    if (slotCount(capacity) > this.slots.length) this.rehash();
  }

  private rehash(): void {
    this.slots = new Int32Array(slotCount(this.capacity));
    this.mask = this.slots.length - 1;
    const w = this.width;
    for (let s = 0; s < this.size; s++) {
      if (s === this.overflow) continue;
      let slot = hashIds(this.labelIds.subarray(s * w, s * w + w), w) & this.mask;
      while (this.slots[slot] !== 0) slot = (slot + 1) & this.mask;
      this.slots[slot] = s + 1;
    }
  }
}

/** A power of two at least twice the capacity, so probes stay short. */
function slotCount(capacity: number): number {
  let n = 32;
  while (n < capacity * 2) n *= 2;
  return n;
}

/** FNV-1a over the ids' 32-bit values, then a final mix so sequential ids spread over the table. */
function hashIds(ids: Int32Array, width: number): number {
  let h = 0x811c9dc5;
  for (let l = 0; l < width; l++) {
    h = Math.imul(h ^ ids[l], 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}
