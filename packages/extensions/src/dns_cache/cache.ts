// The address → name table behind the dns_cache extension. Every node runs it and a busy node resolves
// tens of thousands of addresses, so no entry is a JS object: an entry is a slot in typed arrays (its key
// words, expiry, LRU links, name id), found through an open-addressing index of slot numbers; only the
// distinct names are objects (NameTable), shared by every entry that has them.
import { type DnsBatch, DnsRcode, DnsType, dnsName } from '@netmon/core';
import type { DnsName } from './contract.js';
import { NameTable } from './names.js';

export interface DnsCacheLimits {
  /** Entries (addresses and client overrides) held at most; past it the least recently used goes. */
  maxEntries: number;
  /** ms an answer is kept at least, and a lookup that finds it keeps it at least. */
  minTtlMs: number;
  /** ms an answer is kept at most without a lookup finding it. */
  maxTtlMs: number;
  /** ms since the Unix epoch; tests move it instead of sleeping. */
  now?: () => number;
}

/** Slot kinds. An address entry is keyed by the address alone; a client entry by address and client. */
const FREE = 0;
const ADDRESS = 1;
const CLIENT = 2;

const EMPTY = -1;
/** Slots made at first; the arrays double from there up to max_entries. */
const FIRST_SLOTS = 1024;
/** Slots the sweep visits per learned batch: the whole table every few dozen batches, never all at once. */
const SWEEP_SLOTS = 4096;
/** CNAME hops followed from the question; a longer chain (or a loop) ends there. */
const MAX_CHAIN = 16;

/**
 * Bits of the client filter: one per address hash, set when an address gets a client entry, so that a
 * lookup tries the client table only for addresses that may have one (8 KiB, a few percent false
 * positives with thousands of client entries).
 */
const FILTER_BITS = 1 << 16;
const FILTER_MASK = FILTER_BITS - 1;

/** Words of a key: the address (4), then the client (4; a client entry's, unused by an address entry). */
const WORDS = 8;

function word(buf: Uint8Array, off: number): number {
  return (buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24)) >>> 0;
}

/** murmur3's 32-bit mix over the key's words (4 for an address entry, 8 for a client entry). */
function hashKey(keys: Uint32Array, at: number, kind: number): number {
  let h = kind === ADDRESS ? 0x2545f491 : 0x9e3779b9;
  const n = kind === ADDRESS ? 4 : 8;
  for (let j = 0; j < n; j++) {
    let k = Math.imul(keys[at + j], 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  // Signed: a small integer V8 passes around unboxed (a uint32 past 2^31 would be a heap number).
  return h ^ (h >>> 16);
}

export class DnsNameCache {
  /** Lookups answered, lookups not, answers learned, entries removed by TTL and by capacity. */
  hits = 0;
  misses = 0;
  learned = 0;
  expired = 0;
  evicted = 0;
  /** Entries held, by kind. */
  addresses = 0;
  clients = 0;

  readonly names = new NameTable();
  readonly maxEntries: number;
  private readonly minTtl: number;
  private readonly maxTtl: number;
  private readonly now: () => number;

  private capacity = 0;
  /** Slots ever used (below it, a free slot is on the free list). */
  private highWater = 0;
  private freeHead = EMPTY;
  private keys = new Uint32Array(0);
  private kind = new Uint8Array(0);
  /** ms since the Unix epoch. */
  private expiry = new Float64Array(0);
  /** LRU links (towards the most and the least recently used); `next` also links the free list. */
  private newer = new Int32Array(0);
  private older = new Int32Array(0);
  private nameOf = new Int32Array(0);
  private index = new Int32Array(0);
  private mask = 0;
  /** Most and least recently used. */
  private head = EMPTY;
  private tail = EMPTY;
  private cursor = 0;
  /** The client filter, and the one the current sweep pass is building. */
  private readonly clientBits = new Uint32Array(FILTER_BITS / 32);
  private readonly nextClientBits = new Uint32Array(FILTER_BITS / 32);
  /** The key being looked up or learned. */
  private readonly key = new Uint32Array(WORDS);
  /** A lookup's CNAME chain: its names (as dnsName spells them) and the smallest TTL to reach each. */
  private readonly chainName: string[] = [];
  private readonly chainTtl: number[] = [];

  constructor(limits: DnsCacheLimits) {
    this.maxEntries = limits.maxEntries;
    this.minTtl = limits.minTtlMs;
    this.maxTtl = limits.maxTtlMs;
    this.now = limits.now ?? Date.now;
  }

  /** Entries held (addresses and client overrides). */
  get size(): number {
    return this.addresses + this.clients;
  }

  /**
   * Learns the A and AAAA answers of every NOERROR lookup that belong to its question's chain: owned by
   * the question or by a name its CNAMEs lead to. Others (glue, answers a resolver added for names
   * nobody asked) could name an address after the wrong question, so they are left out.
   */
  learn(batch: DnsBatch): void {
    const now = this.now();
    const spelt: (string | undefined)[] = new Array(batch.names.length);
    const name = (code: number): string => {
      let s = spelt[code];
      if (s === undefined) s = spelt[code] = dnsName(batch.names[code]);
      return s;
    };
    const { answerStart, answerCount, answerType, answerName, answerTtl, answerTarget, answerAddr } = batch;
    const chainName = this.chainName;
    const chainTtl = this.chainTtl;
    let answers = 0;
    for (let i = 0; i < batch.length; i++) {
      const count = answerCount[i];
      if (batch.rcode[i] !== DnsRcode.NOERROR || count === 0) continue;
      const first = answerStart[i];
      const end = first + count;
      answers += count;
      const question = name(batch.question[i]);
      chainName.length = 0;
      chainTtl.length = 0;
      chainName.push(question);
      chainTtl.push(Number.POSITIVE_INFINITY);
      // CNAMEs in any order: passes until one adds no name.
      for (let grew = true; grew && chainName.length < MAX_CHAIN; ) {
        grew = false;
        for (let k = first; k < end && chainName.length < MAX_CHAIN; k++) {
          if (answerType[k] !== DnsType.CNAME) continue;
          const from = chainName.indexOf(name(answerName[k]));
          if (from < 0) continue;
          const target = name(answerTarget[k]);
          if (chainName.includes(target)) continue;
          chainName.push(target);
          chainTtl.push(Math.min(chainTtl[from], answerTtl[k]));
          grew = true;
        }
      }
      let id = -1;
      for (let k = first; k < end; k++) {
        const type = answerType[k];
        if (type !== DnsType.A && type !== DnsType.AAAA) continue;
        const at = chainName.indexOf(name(answerName[k]));
        if (at < 0) continue;
        const ttl = Math.min(Math.max(1000 * Math.min(chainTtl[at], answerTtl[k]), this.minTtl), this.maxTtl);
        if (!(ttl > 0)) continue;
        if (id < 0) {
          const canonical = batch.canonical[i] === 0 ? '' : name(batch.canonical[i]);
          id = this.names.intern(question, canonical === question ? '' : canonical);
          // Held while this lookup's answers are placed: an eviction on the way must not free it.
          this.names.acquire(id);
        }
        this.place(answerAddr, 16 * k, batch.clientAddr, 16 * i, id, now + ttl, now);
        this.learned++;
      }
      if (id >= 0) this.names.release(id);
    }
    this.sweep(now, Math.max(SWEEP_SLOTS, 2 * answers));
  }

  /**
   * The name `client` (when given) got for the address in its latest answer, else the address entry's
   * (the name it was first resolved to, while that entry lives); undefined when none is held or it
   * expired. A hit keeps the entry at least min_ttl longer.
   */
  domainOf(addr: Uint8Array, offset: number, client?: Uint8Array, clientOffset = 0): DnsName | undefined {
    if (this.size === 0) {
      this.misses++;
      return undefined;
    }
    const key = this.key;
    key[0] = word(addr, offset);
    key[1] = word(addr, offset + 4);
    key[2] = word(addr, offset + 8);
    key[3] = word(addr, offset + 12);
    const hash = hashKey(key, 0, ADDRESS);
    // The clock is read only when an entry is found: a miss needs no time.
    if (client !== undefined && this.clients > 0 && this.mayHaveClients(this.clientBits, hash)) {
      key[4] = word(client, clientOffset);
      key[5] = word(client, clientOffset + 4);
      key[6] = word(client, clientOffset + 8);
      key[7] = word(client, clientOffset + 12);
      const s = this.find(key, CLIENT);
      if (s !== EMPTY) {
        const now = this.now();
        if (this.expiry[s] > now) return this.hit(s, now);
        this.remove(s);
        this.expired++;
      }
    }
    const s = this.find(key, ADDRESS, hash);
    if (s !== EMPTY) {
      const now = this.now();
      if (this.expiry[s] > now) return this.hit(s, now);
      this.remove(s);
      this.expired++;
    }
    this.misses++;
    return undefined;
  }

  /** Frees every entry and the arrays (shutdown). */
  clear(): void {
    this.capacity = 0;
    this.highWater = 0;
    this.freeHead = EMPTY;
    this.keys = new Uint32Array(0);
    this.kind = new Uint8Array(0);
    this.expiry = new Float64Array(0);
    this.newer = new Int32Array(0);
    this.older = new Int32Array(0);
    this.nameOf = new Int32Array(0);
    this.index = new Int32Array(0);
    this.mask = 0;
    this.head = EMPTY;
    this.tail = EMPTY;
    this.cursor = 0;
    this.clientBits.fill(0);
    this.nextClientBits.fill(0);
    this.addresses = 0;
    this.clients = 0;
    this.names.clear();
  }

  /** Bytes of the typed arrays (slots, index, client filter, names' counts), for the benchmark. */
  get arrayBytes(): number {
    return (
      this.names.arrayBytes +
      this.clientBits.byteLength +
      this.nextClientBits.byteLength +
      this.keys.byteLength +
      this.kind.byteLength +
      this.expiry.byteLength +
      this.newer.byteLength +
      this.older.byteLength +
      this.nameOf.byteLength +
      this.index.byteLength
    );
  }

  /** The entries from the most to the least recently used (tests). */
  *recency(): Generator<{ slot: number; kind: 'address' | 'client'; name: DnsName; expiry: number }> {
    for (let s = this.head; s !== EMPTY; s = this.older[s]) {
      yield {
        slot: s,
        kind: this.kind[s] === ADDRESS ? 'address' : 'client',
        name: this.names.get(this.nameOf[s]),
        expiry: this.expiry[s],
      };
    }
  }

  private hit(s: number, now: number): DnsName {
    this.hits++;
    const until = now + this.minTtl;
    if (this.expiry[s] < until) this.expiry[s] = until;
    this.touch(s);
    return this.names.get(this.nameOf[s]);
  }

  /**
   * One answer. The address's entry keeps the name it holds while it lives: any number of clients may
   * have got that name, and none of them is recorded, so replacing it would rename the address for all
   * of them. A client that got another name keeps it in an entry of its own; one that got the address
   * entry's name needs none, and its old one goes. Only an expired address entry takes the new name.
   */
  private place(
    addr: Uint8Array,
    offset: number,
    client: Uint8Array,
    clientOffset: number,
    id: number,
    expiry: number,
    now: number,
  ): void {
    const key = this.key;
    key[0] = word(addr, offset);
    key[1] = word(addr, offset + 4);
    key[2] = word(addr, offset + 8);
    key[3] = word(addr, offset + 12);
    key[4] = word(client, clientOffset);
    key[5] = word(client, clientOffset + 4);
    key[6] = word(client, clientOffset + 8);
    key[7] = word(client, clientOffset + 12);
    const b = this.find(key, ADDRESS);
    if (b !== EMPTY && this.nameOf[b] !== id && this.expiry[b] > now) {
      const own = this.clients > 0 ? this.find(key, CLIENT) : EMPTY;
      if (own !== EMPTY) {
        this.renew(own, id, expiry);
        return;
      }
      const s = this.alloc(now);
      // Making room evicted b itself when it was the least recently used (the freed slot is the one
      // handed out): with no address entry left, this name becomes the address's.
      this.fill(s, s === b ? ADDRESS : CLIENT, id, expiry);
      return;
    }
    if (this.clients > 0) {
      const own = this.find(key, CLIENT);
      if (own !== EMPTY) this.remove(own);
    }
    if (b !== EMPTY) this.renew(b, id, expiry);
    else this.fill(this.alloc(now), ADDRESS, id, expiry);
  }

  /** An answer for entry s: the same name never shortens its life; another replaces name and expiry. */
  private renew(s: number, id: number, expiry: number): void {
    if (this.nameOf[s] === id) {
      if (this.expiry[s] < expiry) this.expiry[s] = expiry;
    } else {
      const old = this.nameOf[s];
      this.nameOf[s] = id;
      this.names.acquire(id);
      this.names.release(old);
      this.expiry[s] = expiry;
    }
    this.touch(s);
  }

  /** Makes slot s the entry of `this.key` of this kind (an address entry ignores the client words). */
  private fill(s: number, kind: number, id: number, expiry: number): void {
    this.keys.set(this.key, WORDS * s);
    this.kind[s] = kind;
    this.nameOf[s] = id;
    this.names.acquire(id);
    this.expiry[s] = expiry;
    if (kind === ADDRESS) {
      this.addresses++;
    } else {
      const hash = hashKey(this.key, 0, ADDRESS);
      this.markClients(this.clientBits, hash);
      this.markClients(this.nextClientBits, hash);
      this.clients++;
    }
    this.insert(s);
    this.pushHead(s);
  }

  /** A free slot; at max_entries the least recently used entry makes room. */
  private alloc(now: number): number {
    if (this.size >= this.maxEntries) {
      const t = this.tail;
      if (this.expiry[t] <= now) this.expired++;
      else this.evicted++;
      this.remove(t);
    }
    if (this.freeHead !== EMPTY) {
      const s = this.freeHead;
      this.freeHead = this.older[s];
      return s;
    }
    if (this.highWater === this.capacity) this.grow();
    return this.highWater++;
  }

  private remove(s: number): void {
    this.unindex(s);
    this.unlink(s);
    this.names.release(this.nameOf[s]);
    if (this.kind[s] === ADDRESS) this.addresses--;
    else this.clients--;
    this.kind[s] = FREE;
    this.older[s] = this.freeHead;
    this.freeHead = s;
  }

  /**
   * Visits up to `steps` slots from where the last sweep stopped, removing expired entries. A whole pass
   * also rebuilds the client filter from the client entries it found alive (and those made meanwhile), so
   * the bits of client entries gone do not stay set for ever.
   */
  private sweep(now: number, steps: number): void {
    const end = Math.min(steps, this.highWater);
    for (let j = 0; j < end; j++) {
      if (this.cursor >= this.highWater) {
        this.cursor = 0;
        this.clientBits.set(this.nextClientBits);
        this.nextClientBits.fill(0);
      }
      const s = this.cursor++;
      const kind = this.kind[s];
      if (kind === FREE) continue;
      if (this.expiry[s] <= now) {
        this.remove(s);
        this.expired++;
      } else if (kind === CLIENT) {
        this.markClients(this.nextClientBits, hashKey(this.keys, WORDS * s, ADDRESS));
      }
    }
  }

  /** Whether an address of this hash may have client entries (false: surely none). */
  private mayHaveClients(bits: Uint32Array, hash: number): boolean {
    return ((bits[(hash & FILTER_MASK) >>> 5] >>> (hash & 31)) & 1) !== 0;
  }

  private markClients(bits: Uint32Array, hash: number): void {
    bits[(hash & FILTER_MASK) >>> 5] |= 1 << (hash & 31);
  }

  private find(key: Uint32Array, kind: number, hash = hashKey(key, 0, kind)): number {
    if (this.mask === 0) return EMPTY;
    const keys = this.keys;
    const n = kind === ADDRESS ? 4 : 8;
    for (let p = hash & this.mask; ; p = (p + 1) & this.mask) {
      const s = this.index[p];
      if (s === EMPTY) return EMPTY;
      if (this.kind[s] !== kind) continue;
      const at = WORDS * s;
      let j = 0;
      while (j < n && keys[at + j] === key[j]) j++;
      if (j === n) return s;
    }
  }

  private insert(s: number): void {
    let p = hashKey(this.keys, WORDS * s, this.kind[s]) & this.mask;
    while (this.index[p] !== EMPTY) p = (p + 1) & this.mask;
    this.index[p] = s;
  }

  /** Takes slot s out of the index, shifting later entries of its probe run back (no tombstones). */
  private unindex(s: number): void {
    const mask = this.mask;
    const index = this.index;
    let hole = hashKey(this.keys, WORDS * s, this.kind[s]) & mask;
    for (let probes = 0; index[hole] !== s; probes++) {
      // A slot missing from its own index is a bug: fail loudly rather than spin forever.
      if (probes > mask) throw new Error(`dns_cache: slot ${s} is not in the index`);
      hole = (hole + 1) & mask;
    }
    for (let p = (hole + 1) & mask; ; p = (p + 1) & mask) {
      const t = index[p];
      if (t === EMPTY) break;
      const home = hashKey(this.keys, WORDS * t, this.kind[t]) & mask;
      // t may fill the hole unless its home lies cyclically in (hole, p].
      const stays = hole <= p ? hole < home && home <= p : hole < home || home <= p;
      if (!stays) {
        index[hole] = t;
        hole = p;
      }
    }
    index[hole] = EMPTY;
  }

  private touch(s: number): void {
    if (this.head === s) return;
    this.unlink(s);
    this.pushHead(s);
  }

  private pushHead(s: number): void {
    this.newer[s] = EMPTY;
    this.older[s] = this.head;
    if (this.head !== EMPTY) this.newer[this.head] = s;
    this.head = s;
    if (this.tail === EMPTY) this.tail = s;
  }

  private unlink(s: number): void {
    const n = this.newer[s];
    const o = this.older[s];
    if (n !== EMPTY) this.older[n] = o;
    else this.head = o;
    if (o !== EMPTY) this.newer[o] = n;
    else this.tail = n;
  }

  /** Doubles the slots (up to max_entries) and rebuilds the index at twice their number or more. */
  private grow(): void {
    const capacity = Math.min(this.maxEntries, Math.max(FIRST_SLOTS, 2 * this.capacity));
    const keys = new Uint32Array(WORDS * capacity);
    keys.set(this.keys);
    this.keys = keys;
    const kind = new Uint8Array(capacity);
    kind.set(this.kind);
    this.kind = kind;
    const expiry = new Float64Array(capacity);
    expiry.set(this.expiry);
    this.expiry = expiry;
    const newer = new Int32Array(capacity);
    newer.set(this.newer);
    this.newer = newer;
    const older = new Int32Array(capacity);
    older.set(this.older);
    this.older = older;
    const nameOf = new Int32Array(capacity);
    nameOf.set(this.nameOf);
    this.nameOf = nameOf;
    this.capacity = capacity;
    let size = 16;
    while (size < 2 * capacity) size *= 2;
    this.index = new Int32Array(size).fill(EMPTY);
    this.mask = size - 1;
    for (let s = 0; s < this.highWater; s++) if (kind[s] !== FREE) this.insert(s);
  }
}
