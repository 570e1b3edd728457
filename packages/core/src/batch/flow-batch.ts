import {
  columnsOf,
  type FixedArray,
  FLOW_COLUMN_LIST,
  type FlowColumnArrays,
  type FlowColumnName,
  type FlowRowValues,
} from './flow-columns.js';
import { formatIp, parseIp } from './ip.js';
import { refuseIfSealed, Sealable, type SealState } from './seal.js';

/** Cumulative counters (conntrack, Cilium) or per-interval deltas (eBPF, the delta processor). */
export type Temporality = 'delta' | 'cumulative';

export type AttributeValue = string | number | boolean;

/** Bits of the `flags` column. */
export const FlowFlags = {
  /** The receiver knows which side opened the connection; src is that side. */
  InitiatorKnown: 1 << 0,
  /** The receiver only knows local/remote: src is the local end, whoever dialled. */
  LocalRemote: 1 << 1,
  /** The flow ended in this interval; its counters are final. */
  Closed: 1 << 2,
  /** The flow began in this interval: its cumulative counters count from zero, whatever they say now. */
  Opened: 1 << 3,
  /** The destination was rewritten (DNAT, e.g. a Service ClusterIP): backendAddr/backendPort hold the real peer. */
  Dnat: 1 << 4,
} as const;

/** The owner of a column made outside any batch: never sealed. */
const FREE: SealState = { readonly: false };

/**
 * Dictionary-encoded strings: code 0 means absent, so a fresh column is all-absent for free.
 *
 * The dictionary is the column's own, or shared (`share`): an append-only array a writer keeps across
 * batches (k8s_attributes' pod names), so a batch costs no dictionary building and readers may keep what
 * they derived per code for as long as `dict` is the same array. A shared dictionary may hold values no
 * row of this batch uses, and grow while the batch is read; codes never change meaning.
 */
export class StringColumn {
  readonly kind = 'string';
  codes: Uint32Array;
  dict: string[] = [''];
  private readonly index = new Map<string, number>();
  /** Dictionary entries [1, indexed) are in `index`; `append` leaves the rest to the next `code`. */
  private indexed = 1;
  /** `dict` belongs to someone else: copied before this column adds to it. */
  private borrowed = false;
  constructor(
    capacity: number,
    private readonly owner: SealState = FREE,
  ) {
    this.codes = new Uint32Array(capacity);
  }
  /** True when `dict` is shared with other batches (see `share`). */
  get shared(): boolean {
    return this.borrowed;
  }
  /**
   * Makes `dict` (entry 0 the empty string, never changed or shortened by its owner, only appended to)
   * this column's dictionary, without a copy. The column must not hold values yet.
   */
  share(dict: string[]): void {
    refuseIfSealed(this.owner);
    if (this.dict.length > 1 && this.dict !== dict) throw new Error('share: the column already has values');
    this.dict = dict;
    this.borrowed = true;
    this.index.clear();
    this.indexed = 1;
  }
  /** The code for a value, adding it to the dictionary if new. */
  code(value: string): number {
    if (this.borrowed) this.own();
    if (this.indexed < this.dict.length) {
      for (let c = this.indexed; c < this.dict.length; c++) this.index.set(this.dict[c], c);
      this.indexed = this.dict.length;
    }
    let c = this.index.get(value);
    if (c === undefined) {
      c = this.dict.length;
      this.dict.push(value);
      this.index.set(value, c);
      this.indexed = this.dict.length;
    }
    return c;
  }
  /**
   * Adds a value the caller knows is not in the dictionary yet and returns its code: no hash lookup, for
   * writers that track which values a batch already holds (k8s_attributes). A duplicate would give one
   * string two codes.
   */
  append(value: string): number {
    if (this.borrowed) this.own();
    this.dict.push(value);
    return this.dict.length - 1;
  }
  /** Copies a shared dictionary before the first write of our own: its owner's other batches keep theirs. */
  private own(): void {
    this.dict = this.dict.slice();
    this.borrowed = false;
  }
  get(i: number): string | undefined {
    const c = this.codes[i];
    return c === 0 ? undefined : this.dict[c];
  }
  set(i: number, value: string | undefined): void {
    refuseIfSealed(this.owner);
    this.codes[i] = value === undefined ? 0 : this.code(value);
  }
}

/** Numbers; NaN means absent. */
export class NumberColumn {
  readonly kind = 'number';
  values: Float64Array;
  constructor(
    capacity: number,
    private readonly owner: SealState = FREE,
  ) {
    this.values = new Float64Array(capacity).fill(Number.NaN);
  }
  get(i: number): number | undefined {
    const v = this.values[i];
    return Number.isNaN(v) ? undefined : v;
  }
  set(i: number, value: number | undefined): void {
    refuseIfSealed(this.owner);
    this.values[i] = value ?? Number.NaN;
  }
}

/** Booleans; 0 absent, 1 false, 2 true. */
export class BoolColumn {
  readonly kind = 'bool';
  values: Uint8Array;
  constructor(
    capacity: number,
    private readonly owner: SealState = FREE,
  ) {
    this.values = new Uint8Array(capacity);
  }
  get(i: number): boolean | undefined {
    const v = this.values[i];
    return v === 0 ? undefined : v === 2;
  }
  set(i: number, value: boolean | undefined): void {
    refuseIfSealed(this.owner);
    this.values[i] = value === undefined ? 0 : value ? 2 : 1;
  }
}

export type AttributeColumn = StringColumn | NumberColumn | BoolColumn;
export type AttributeKind = AttributeColumn['kind'];

/** One flow as plain data: the shape of a flow record (flow-record.ts), times in ms. */
export interface FlowInit {
  timeStart: number;
  timeEnd: number;
  family?: 4 | 6;
  protocol: number;
  srcIp: string;
  srcPort?: number;
  dstIp: string;
  dstPort?: number;
  /** The real destination after DNAT, when it differs from dstIp/dstPort (sets FlowFlags.Dnat). */
  backendIp?: string;
  backendPort?: number;
  txBytes?: number;
  rxBytes?: number;
  txPackets?: number;
  rxPackets?: number;
  flags?: number;
  attributes?: Record<string, AttributeValue>;
}

// The fixed columns (family, addresses, ports, counters, …) are properties declared from the column table
// (flow-columns.ts) and set by the constructor's walk over it: one description for every copy of the list.
export interface FlowBatch extends FlowColumnArrays {}

/**
 * The unit that moves through flow pipelines: one typed array per field (struct of arrays), so receivers
 * fill it without creating an object per flow and processors work in plain loops.
 *
 * Ownership: a receiver hands a batch over and never touches it again. A batch shared by several
 * consumers is sealed (read-only); a processor that changes batches declares `mutates` and gets its own
 * copy from the framework. Times are milliseconds since the Unix epoch; counters are float64, exact to
 * 2^53 (9 PB per flow and interval).
 */
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the constructor assigns every column the table names.
export class FlowBatch extends Sealable {
  length = 0;
  capacity: number;
  temporality: Temporality;
  /**
   * True when the rows are every live flow of `origin` at the time of reading (a full table dump), so a
   * flow missing from it has ended. Stateful processors (delta) rely on it to forget flows.
   */
  snapshot = false;
  /** Id of the receiver that read the batch (`conntrack/node`): state kept per source is keyed by it. */
  origin = '';
  private attrs = new Map<string, AttributeColumn>();

  constructor(capacity = 1024, temporality: Temporality = 'delta') {
    super();
    this.capacity = Math.max(1, capacity);
    this.temporality = temporality;
    const columns = columnsOf(this);
    for (const c of FLOW_COLUMN_LIST) columns[c.name] = new c.array(c.width * this.capacity);
  }

  /**
   * A batch over columns someone else filled (the native addon): the arrays are adopted, not copied.
   * Every array must hold at least `length` rows (16 bytes per row for addresses).
   */
  static wrap(columns: FlowColumns, temporality: Temporality): FlowBatch {
    const n = columns.length;
    const batch = new FlowBatch(0, temporality);
    for (const c of FLOW_COLUMN_LIST) {
      const have = columns[c.name].length;
      if (have < c.width * n) {
        throw new RangeError(`FlowBatch.wrap: ${c.name} has ${have} values, not ${c.width * n}`);
      }
    }
    if (n === 0) return batch;
    batch.capacity = n;
    batch.length = n;
    const to = columnsOf(batch);
    for (const c of FLOW_COLUMN_LIST) to[c.name] = columns[c.name];
    return batch;
  }

  /** A batch built from plain objects: for tests, plugins and small inputs, not for hot paths. */
  static from(flows: readonly FlowInit[], temporality: Temporality = 'delta'): FlowBatch {
    const batch = new FlowBatch(flows.length, temporality);
    for (const flow of flows) batch.push(flow);
    return batch;
  }

  /** Grows every column to hold at least `n` rows (amortised doubling). */
  reserve(n: number): void {
    if (n <= this.capacity) return;
    this.assertWritable();
    const cap = Math.max(n, this.capacity * 2);
    // An adopted array may be longer than the capacity it was adopted for (wrap, adoptNumberColumn): what
    // lies past that capacity is no row's, and a new row there must start empty.
    const grow = <T extends FixedArray>(a: T, to: T, width = 1): T => {
      const kept = width * this.capacity;
      to.set(a.length > kept ? a.subarray(0, kept) : a);
      return to;
    };
    const columns = columnsOf(this);
    for (const c of FLOW_COLUMN_LIST) {
      columns[c.name] = grow(columns[c.name], new c.array(c.width * cap), c.width);
    }
    for (const col of this.attrs.values()) {
      if (col.kind === 'string') col.codes = grow(col.codes, new Uint32Array(cap));
      else if (col.kind === 'bool') col.values = grow(col.values, new Uint8Array(cap));
      else col.values = grow(col.values, new Float64Array(cap).fill(Number.NaN));
    }
    this.capacity = cap;
  }

  /**
   * Appends one flow. Returns the row index, or -1 (nothing appended) when an address is not an IP
   * literal or an IPv4 flow has an IPv6 end: callers count that as malformed input. Throws a TypeError,
   * appending nothing, when an attribute's kind differs from its column's.
   */
  push(flow: FlowInit): number {
    this.assertWritable();
    if (flow.attributes) {
      // Checked before anything is written, so a rejected row never leaves half its fields behind.
      for (const key in flow.attributes) {
        const existing = this.attrs.get(key);
        const kind = kindOf(flow.attributes[key]);
        if (existing && existing.kind !== kind) {
          throw new TypeError(`attribute "${key}" holds ${existing.kind} values, not ${kind}`);
        }
      }
    }
    if (this.length === this.capacity) this.reserve(this.length + 1);
    const i = this.length;
    const srcFamily = parseIp(flow.srcIp, this.srcAddr, 16 * i);
    const dstFamily = parseIp(flow.dstIp, this.dstAddr, 16 * i);
    if (srcFamily === 0 || dstFamily === 0) return -1;
    const backendFamily =
      flow.backendIp === undefined ? 0 : parseIp(flow.backendIp, this.backendAddr, 16 * i);
    if (flow.backendIp !== undefined && backendFamily === 0) return -1;
    const family = flow.family ?? (srcFamily === 4 && dstFamily === 4 ? 4 : 6);
    // An IPv4 flow has IPv4 ends; an IPv6 flow may carry IPv4-mapped addresses (dual-stack sockets).
    if (family === 4 && (srcFamily !== 4 || dstFamily !== 4 || backendFamily === 6)) return -1;
    if (backendFamily === 0) this.backendAddr.fill(0, 16 * i, 16 * i + 16);
    this.family[i] = family;
    this.protocol[i] = flow.protocol;
    this.srcPort[i] = flow.srcPort ?? 0;
    this.dstPort[i] = flow.dstPort ?? 0;
    this.backendPort[i] = backendFamily === 0 ? 0 : (flow.backendPort ?? 0);
    this.txBytes[i] = flow.txBytes ?? 0;
    this.rxBytes[i] = flow.rxBytes ?? 0;
    this.txPackets[i] = flow.txPackets ?? 0;
    this.rxPackets[i] = flow.rxPackets ?? 0;
    this.flags[i] =
      backendFamily === 0 ? (flow.flags ?? 0) & ~FlowFlags.Dnat : (flow.flags ?? 0) | FlowFlags.Dnat;
    this.timeStart[i] = flow.timeStart;
    this.timeEnd[i] = flow.timeEnd;
    this.length = i + 1;
    if (flow.attributes) {
      for (const key in flow.attributes) this.setAttribute(i, key, flow.attributes[key]);
    }
    return i;
  }

  /** Attribute keys present as columns, in the order they were added. */
  attributeKeys(): string[] {
    return [...this.attrs.keys()];
  }

  column(key: string): AttributeColumn | undefined {
    return this.attrs.get(key);
  }

  /** The column for `key`, created all-absent when missing. Throws if it exists with another kind. */
  ensureColumn(key: string, kind: 'string'): StringColumn;
  ensureColumn(key: string, kind: 'number'): NumberColumn;
  ensureColumn(key: string, kind: 'bool'): BoolColumn;
  ensureColumn(key: string, kind: AttributeKind): AttributeColumn;
  ensureColumn(key: string, kind: AttributeKind): AttributeColumn {
    const existing = this.attrs.get(key);
    if (existing) {
      if (existing.kind !== kind) {
        throw new TypeError(`attribute "${key}" holds ${existing.kind} values, not ${kind}`);
      }
      return existing;
    }
    this.assertWritable();
    const col =
      kind === 'string'
        ? new StringColumn(this.capacity, this)
        : kind === 'number'
          ? new NumberColumn(this.capacity, this)
          : new BoolColumn(this.capacity, this);
    this.attrs.set(key, col);
    return col;
  }

  /** Removes an attribute column (every row loses the attribute); returns whether it existed. */
  deleteColumn(key: string): boolean {
    this.assertWritable();
    return this.attrs.delete(key);
  }

  /**
   * Adopts `values` (NaN = absent, at least `capacity` long) as the number column `key`, without a copy:
   * how the native addon's columns (conntrack id, zone, mark) become attributes.
   */
  adoptNumberColumn(key: string, values: Float64Array): NumberColumn {
    this.assertWritable();
    if (values.length < this.capacity) {
      throw new RangeError(
        `adoptNumberColumn: ${key} has ${values.length} values, capacity is ${this.capacity}`,
      );
    }
    if (this.attrs.has(key)) throw new Error(`attribute "${key}" already exists`);
    const col = new NumberColumn(0, this);
    col.values = values;
    this.attrs.set(key, col);
    return col;
  }

  getAttribute(i: number, key: string): AttributeValue | undefined {
    return this.attrs.get(key)?.get(i);
  }

  setAttribute(i: number, key: string, value: AttributeValue | undefined): void {
    this.assertWritable();
    if (value === undefined) {
      const col = this.attrs.get(key);
      if (col) col.set(i, undefined as never);
      return;
    }
    this.ensureColumn(key, kindOf(value)).set(i, value as never);
  }

  /** Every present attribute of row i, keys sorted: the `attributes` object of a flow record. */
  attributes(i: number): Record<string, AttributeValue> {
    // No prototype: an attribute may be called "__proto__".
    const out: Record<string, AttributeValue> = Object.create(null);
    for (const key of [...this.attrs.keys()].sort()) {
      const v = this.attrs.get(key)?.get(i);
      if (v !== undefined) out[key] = v;
    }
    return out;
  }

  srcIp(i: number): string {
    return formatIp(this.srcAddr, 16 * i, this.family[i]);
  }

  dstIp(i: number): string {
    return formatIp(this.dstAddr, 16 * i, this.family[i]);
  }

  /** The real destination after DNAT, or undefined when the flow was not translated. */
  backendIp(i: number): string | undefined {
    return this.flags[i] & FlowFlags.Dnat ? formatIp(this.backendAddr, 16 * i, this.family[i]) : undefined;
  }

  /** A view of row i with named getters: for plugins and tests, not for hot paths. */
  row(i: number): FlowRow {
    if (i < 0 || i >= this.length) throw new RangeError(`row ${i} outside 0..${this.length - 1}`);
    return new FlowRow(this, i);
  }

  *[Symbol.iterator](): IterableIterator<FlowRow> {
    for (let i = 0; i < this.length; i++) yield new FlowRow(this, i);
  }

  /** A writable deep copy of the first `length` rows. */
  clone(): FlowBatch {
    return this.select(null);
  }

  /**
   * A writable copy holding only the rows listed in `rows` (in that order), or every row when null.
   * Used by filters and by exporters that split large batches.
   */
  select(rows: ArrayLike<number> | null): FlowBatch {
    const n = rows === null ? this.length : rows.length;
    const out = new FlowBatch(n, this.temporality);
    out.length = n;
    out.snapshot = this.snapshot && rows === null;
    out.origin = this.origin;
    const from = columnsOf(this);
    const to = columnsOf(out);
    for (const c of FLOW_COLUMN_LIST) {
      if (rows === null) to[c.name].set(from[c.name].subarray(0, c.width * n));
      else gather(from[c.name], to[c.name], rows, n, c.width);
    }
    for (const [key, col] of this.attrs) {
      const copy = out.ensureColumn(key, col.kind);
      if (col.kind === 'string') {
        // Dictionaries are copied verbatim (the index is built when first needed), shared ones shared:
        // codes stay valid either way.
        const target = copy as StringColumn;
        if (col.shared) target.share(col.dict);
        else for (let c = 1; c < col.dict.length; c++) target.append(col.dict[c]);
        if (rows === null) target.codes.set(col.codes.subarray(0, n));
        else for (let j = 0; j < n; j++) target.codes[j] = col.codes[rows[j]];
      } else {
        const target = copy as NumberColumn | BoolColumn;
        if (rows === null) target.values.set(col.values.subarray(0, n));
        else for (let j = 0; j < n; j++) target.values[j] = col.values[rows[j]];
      }
    }
    return out;
  }
}

/** The typed columns of a FlowBatch, for `FlowBatch.wrap`. */
export type FlowColumns = Pick<FlowBatch, 'length' | FlowColumnName>;

/**
 * Copies rows `rows[0..n)` of one column into rows 0..n of another, `width` values a row: `select`'s step
 * per column. Element loops, not subarray().set(): no view object per row on this hot path (filters,
 * delta). A row of whole 32-bit words (an address) is copied a word at a time through views made once per
 * column, a quarter of the steps of a byte loop.
 */
function gather(from: FixedArray, to: FixedArray, rows: ArrayLike<number>, n: number, width: number): void {
  if (width === 1) {
    for (let j = 0; j < n; j++) to[j] = from[rows[j]];
    return;
  }
  let src: FixedArray = from;
  let dst: FixedArray = to;
  let w = width;
  const rowBytes = width * from.BYTES_PER_ELEMENT;
  if (rowBytes % 4 === 0 && from.byteOffset % 4 === 0 && to.byteOffset % 4 === 0) {
    src = new Uint32Array(from.buffer, from.byteOffset, Math.floor(from.byteLength / 4));
    dst = new Uint32Array(to.buffer, to.byteOffset, Math.floor(to.byteLength / 4));
    w = rowBytes >> 2;
  }
  for (let j = 0; j < n; j++) {
    const a = w * rows[j];
    const o = w * j;
    for (let b = 0; b < w; b++) dst[o + b] = src[a + b];
  }
}

export function kindOf(value: AttributeValue): AttributeKind {
  return typeof value === 'string' ? 'string' : typeof value === 'number' ? 'number' : 'bool';
}

// FlowRow's properties, one per fixed column, declared from the column table and defined below from it.
export interface FlowRow extends FlowRowValues {}

/** Named access to one row of a FlowBatch. */
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the loop after the class defines every property the table names.
export class FlowRow {
  constructor(
    readonly batch: FlowBatch,
    readonly index: number,
  ) {}
  get attributes(): Record<string, AttributeValue> {
    return this.batch.attributes(this.index);
  }
  get(key: string): AttributeValue | undefined {
    return this.batch.getAttribute(this.index, key);
  }
  set(key: string, value: AttributeValue | undefined): void {
    this.batch.setAttribute(this.index, key, value);
  }
}

// One getter per column on the prototype, made once: a row view allocates nothing but itself. Each getter
// is compiled from its own source text because V8 keeps type feedback per function source: one closure
// reading `this.batch[name]` for every column turns megamorphic, ten times slower a read than a getter
// naming its column. The text holds only the table's own identifiers, never input.
for (const c of FLOW_COLUMN_LIST) {
  const read = c.text === undefined ? `this.batch.${c.name}[this.index]` : `this.batch.${c.text}(this.index)`;
  // An address's method already answers undefined on untranslated rows; a number column asks the flag.
  const body =
    c.dnat && c.text === undefined
      ? `return this.batch.flags[this.index] & ${FlowFlags.Dnat} ? ${read} : undefined;`
      : `return ${read};`;
  Object.defineProperty(FlowRow.prototype, c.text ?? c.name, {
    get: new Function(body) as (this: FlowRow) => unknown,
    enumerable: false,
    configurable: true,
  });
}
