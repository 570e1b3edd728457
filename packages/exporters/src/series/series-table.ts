// The aggregation state of the metric exporters: series identified by a tuple of label values, with
// parallel Float64Array columns of values. Built for batches, not records: a row is matched to its
// series by hashing small integer ids into an open-addressing table, so adding a million flows creates
// no object per flow. Label values are interned once, and only for a series that is made: a row past the
// cap leaves nothing behind, so the strings never outgrow the series. `retain` compacts series, columns and
// strings.

/** Strings ↔ small integer ids; id 0 is the empty string (an absent label). */
export class Interner {
  private readonly values: string[] = [''];
  private readonly ids = new Map<string, number>([['', 0]]);
  /** The id of a value, interning it if new. Tables intern only for series they make (see findOrAdd). */
  id(value: string): number {
    let id = this.ids.get(value);
    if (id === undefined) {
      id = this.values.length;
      this.values.push(value);
      this.ids.set(value, id);
    }
    return id;
  }
  /** The id of a value already interned, or -1: looks without adding. */
  find(value: string): number {
    return this.ids.get(value) ?? -1;
  }
  value(id: number): string {
    return this.values[id];
  }
  get size(): number {
    return this.values.length;
  }
}

const EMPTY = 0;

/** A label id that stands for a value not (known to be) interned: `findOrAdd` reads it from `values`. */
export const UNKNOWN = -1;

/**
 * A position in a table that `retain` keeps pointing at the same series: what a renderer that yields in
 * the middle of a table holds, so series removed meanwhile are neither rendered twice nor make it skip
 * others. Close it when done (a generator's `finally`).
 */
export interface Cursor {
  /** Index of the next series to visit; `retain` moves it to where that series (or its successor) went. */
  next: number;
  close(): void;
}

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
  /**
   * Rows added so far (every findOrAdd), never reset: a clock that cannot go back or tie. `lastUpdate[s]`
   * is its value when series s was last added to, so a reader that noted `updates` at some moment knows
   * which series changed since (the prometheus exporter: has a scrape shown a series' last bytes?).
   */
  updates = 0;
  lastUpdate: Float64Array;
  /** Value columns, indexed by the handle `addColumn` returned. */
  readonly values: Float64Array[] = [];
  strings = new Interner();
  private capacity: number;
  private labelIds: Int32Array;
  private slots: Int32Array;
  private mask: number;
  private readonly cursors = new Set<Cursor>();

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
    this.lastUpdate = new Float64Array(this.capacity);
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

  /** True once no new series can be made: further new label sets go to the overflow series. */
  get full(): boolean {
    return this.size >= this.maxSeries - (this.overflow < 0 ? 1 : 0);
  }

  /**
   * The series with these label ids (`width` of them), created if new; the overflow series once
   * `maxSeries` series exist. An id of UNKNOWN (any negative) stands for `values[l]`, a value that may not
   * be interned: it is looked up, and interned only if a new series is made for it — a row that goes to
   * the overflow series leaves no string behind, so a flood of distinct values (random DNS subdomains)
   * past the cap costs no memory. `ids` is overwritten with the resolved ids.
   */
  findOrAdd(ids: Int32Array, now: number, values?: ArrayLike<string | undefined>): number {
    const w = this.width;
    for (let l = 0; l < w; l++) {
      if (ids[l] >= 0) continue;
      const v = values?.[l];
      if (v === undefined) throw new RangeError(`label ${l} has no id and no value`);
      const id = this.strings.find(v);
      if (id >= 0) {
        ids[l] = id;
        continue;
      }
      // A value never interned is in no series: this row is a new series, or the overflow one.
      if (this.full) return this.toOverflow(now);
      ids[l] = this.strings.id(v);
    }
    const hash = hashIds(ids, w);
    let slot = hash & this.mask;
    for (;;) {
      const entry = this.slots[slot];
      if (entry === 0) break;
      const s = entry - 1;
      if (s !== this.overflow && this.sameIds(s, ids)) {
        this.lastSeen[s] = now;
        this.lastUpdate[s] = ++this.updates;
        return s;
      }
      slot = (slot + 1) & this.mask;
    }
    if (this.full) return this.toOverflow(now);
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

  /** A cursor at series 0, kept right by `retain` until closed. */
  cursor(): Cursor {
    const cursors = this.cursors;
    const c: Cursor = {
      next: 0,
      close: () => {
        cursors.delete(c);
      },
    };
    cursors.add(c);
    return c;
  }

  /**
   * Keeps the series for which `keep` is true and compacts everything (columns, ids, strings, the hash),
   * in order; open cursors move with their series. Returns how many series went. The overflow series goes
   * like any other when `keep` says so.
   */
  retain(keep: (s: number) => boolean): number {
    const w = this.width;
    const strings = new Interner();
    let out = 0;
    let overflow = -1;
    const cursors = this.cursors.size > 0 ? [...this.cursors] : [];
    for (let s = 0; s < this.size; s++) {
      // Kept series before a cursor's next end up before its new next: count them as they are moved.
      for (const c of cursors) if (c.next === s) c.next = out;
      if (!keep(s)) continue;
      if (s === this.overflow) overflow = out;
      for (let l = 0; l < w; l++) {
        this.labelIds[out * w + l] = strings.id(this.strings.value(this.labelIds[s * w + l]));
      }
      this.lastSeen[out] = this.lastSeen[s];
      this.created[out] = this.created[s];
      this.lastUpdate[out] = this.lastUpdate[s];
      for (const col of this.values) col[out] = col[s];
      out++;
    }
    for (const c of cursors) if (c.next >= this.size) c.next = out;
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

  /** Counts a row that found no room and returns the overflow series, made on first use. */
  private toOverflow(now: number): number {
    this.overflowRows++;
    if (this.overflow < 0) this.overflow = this.append(null, now);
    this.lastSeen[this.overflow] = now;
    this.lastUpdate[this.overflow] = ++this.updates;
    return this.overflow;
  }

  private append(ids: Int32Array | null, now: number): number {
    if (this.size === this.capacity) this.grow();
    const s = this.size++;
    const w = this.width;
    if (ids) this.labelIds.set(ids.subarray(0, w), s * w);
    else this.labelIds.fill(EMPTY, s * w, s * w + w);
    this.lastSeen[s] = now;
    this.created[s] = now;
    this.lastUpdate[s] = ++this.updates;
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
    this.lastUpdate = grown(this.lastUpdate, capacity);
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

/**
 * A batch's dictionary codes → the table's label ids, each value looked up once per batch and never
 * interned here (findOrAdd interns what a new series needs). `put` writes a row's label: its id, or
 * UNKNOWN and the value for findOrAdd to resolve.
 *
 * A dictionary shared across batches (`StringColumn.share`: k8s_attributes' pod names) is looked up once
 * for as long as it and the table's strings last, not once per batch: with 100k pods a batch meets almost
 * as many distinct pods as it has rows.
 */
export class DictionaryIds {
  /** Per code: the id; -1 not looked up yet; -2 not interned when looked up. */
  private ids = new Int32Array(16);
  /** Codes [0, known) have an entry in `ids`. */
  private known = 0;
  /** Codes found not interned: looked up again in the next batch (a series may have interned them). */
  private misses: number[] = [];
  private names: (string | undefined)[] = [];
  private dict: readonly string[] = [];
  private table?: SeriesTable;
  private strings?: Interner;

  constructor(private readonly normalize?: (value: string) => string) {}

  /** Starts a batch whose column has this dictionary (code 0 = absent = ''). */
  reset(table: SeriesTable, dict: readonly string[]): void {
    const same = dict === this.dict && table === this.table && table.strings === this.strings;
    this.table = table;
    this.strings = table.strings;
    this.dict = dict;
    if (same) {
      for (const code of this.misses) this.ids[code] = -1;
    } else {
      this.known = 0;
      if (this.normalize) this.names.length = 0;
    }
    this.misses.length = 0;
    if (this.ids.length < dict.length) {
      const ids = new Int32Array(Math.max(dict.length, this.ids.length * 2));
      ids.set(this.ids.subarray(0, this.known));
      this.ids = ids;
    }
    if (this.known < dict.length) {
      this.ids.fill(-1, this.known, dict.length);
      this.ids[0] = 0;
      this.known = dict.length;
    }
  }

  /** Sets label `l` of a row to the value of `code`. */
  put(code: number, ids: Int32Array, values: (string | undefined)[], l: number): void {
    let id = this.ids[code];
    if (id >= 0) {
      ids[l] = id;
      return;
    }
    const value = this.value(code);
    if (id === -1) {
      id = (this.table as SeriesTable).strings.find(value);
      if (id >= 0) {
        this.ids[code] = id;
        ids[l] = id;
        return;
      }
      this.ids[code] = -2;
      this.misses.push(code);
    }
    ids[l] = UNKNOWN;
    values[l] = value;
  }

  private value(code: number): string {
    const raw = this.dict[code];
    if (!this.normalize) return raw;
    let v = this.names[code];
    if (v === undefined) v = this.names[code] = this.normalize(raw);
    return v;
  }
}

/** A power of two at least twice the capacity, so probes stay short. */
export function slotCount(capacity: number): number {
  let n = 32;
  while (n < capacity * 2) n *= 2;
  return n;
}

/** FNV-1a over the ids' 32-bit values, then a final mix so sequential ids spread over the table. */
export function hashIds(ids: Int32Array, width: number): number {
  let h = 0x811c9dc5;
  for (let l = 0; l < width; l++) {
    h = Math.imul(h ^ ids[l], 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}
