// The flows of one devzero interval summed into zxporter's network traffic items: a row per (src IP, dst
// IP, dst port, protocol), the key of a NetworkTrafficItem, in typed arrays. A row is found by hashing
// its key — nine 32-bit words read straight from the batch's address bytes — into an open-addressing
// table with series/series-table.ts's hash (not that table itself: a raw address word can equal its
// UNKNOWN id). Adding a batch creates no object and no string per flow; addresses become strings only
// when the interval is flushed or peeked at.
import { type FlowBatch, formatIp } from '@netmon/core';
import { hashIds, slotCount } from '../series/series-table.js';

/** src address (4 words), dst address (4 words), then dst port << 16 | family << 8 | protocol. */
const KEY_WORDS = 9;

export class TrafficItemTable {
  /** Rows occupy [0, size), in the order their keys were first seen. */
  size = 0;
  txBytes: Float64Array;
  rxBytes: Float64Array;
  txPackets: Float64Array;
  rxPackets: Float64Array;
  /** ms since the epoch: the latest time_end of the flows summed into the row. */
  time: Float64Array;
  /** '' when unknown. The batches' dictionary strings, shared, never copied per flow. */
  readonly srcPod: string[] = [];
  readonly srcNamespace: string[] = [];
  readonly dstPod: string[] = [];
  readonly dstNamespace: string[] = [];
  private capacity: number;
  private keys: Int32Array;
  private slots: Int32Array;
  private mask: number;
  private readonly key = new Int32Array(KEY_WORDS);
  private readonly bytes = new Uint8Array(16);

  constructor(initialCapacity = 256) {
    this.capacity = Math.max(16, initialCapacity);
    this.keys = new Int32Array(this.capacity * KEY_WORDS);
    this.txBytes = new Float64Array(this.capacity);
    this.rxBytes = new Float64Array(this.capacity);
    this.txPackets = new Float64Array(this.capacity);
    this.rxPackets = new Float64Array(this.capacity);
    this.time = new Float64Array(this.capacity);
    this.slots = new Int32Array(slotCount(this.capacity));
    this.mask = this.slots.length - 1;
  }

  /**
   * The row of batch row `i`'s key, added (zeroed) if new. -1 when the key is new and the table already
   * holds `limit` rows: nothing is added then.
   */
  findOrAdd(batch: FlowBatch, i: number, limit: number): number {
    const k = this.key;
    const s = batch.srcAddr;
    const d = batch.dstAddr;
    const o = 16 * i;
    for (let w = 0; w < 4; w++) {
      const b = o + 4 * w;
      k[w] = (s[b] << 24) | (s[b + 1] << 16) | (s[b + 2] << 8) | s[b + 3];
      k[4 + w] = (d[b] << 24) | (d[b + 1] << 16) | (d[b + 2] << 8) | d[b + 3];
    }
    k[8] = (batch.dstPort[i] << 16) | (batch.family[i] << 8) | batch.protocol[i];
    const hash = hashIds(k, KEY_WORDS);
    let slot = hash & this.mask;
    for (;;) {
      const entry = this.slots[slot];
      if (entry === 0) break;
      if (this.sameKey(entry - 1, k)) return entry - 1;
      slot = (slot + 1) & this.mask;
    }
    if (this.size >= limit) return -1;
    if (this.size === this.capacity) {
      this.grow();
      slot = hash & this.mask;
      while (this.slots[slot] !== 0) slot = (slot + 1) & this.mask;
    }
    const r = this.size++;
    this.keys.set(k, r * KEY_WORDS);
    this.srcPod.push('');
    this.srcNamespace.push('');
    this.dstPod.push('');
    this.dstNamespace.push('');
    this.slots[slot] = r + 1;
    return r;
  }

  protocol(r: number): number {
    return this.keys[r * KEY_WORDS + 8] & 0xff;
  }

  family(r: number): number {
    return (this.keys[r * KEY_WORDS + 8] >>> 8) & 0xff;
  }

  dstPort(r: number): number {
    return this.keys[r * KEY_WORDS + 8] >>> 16;
  }

  srcIp(r: number): string {
    return this.address(r, 0);
  }

  dstIp(r: number): string {
    return this.address(r, 4);
  }

  private address(r: number, first: number): string {
    const b = this.bytes;
    const base = r * KEY_WORDS + first;
    for (let w = 0; w < 4; w++) {
      const v = this.keys[base + w];
      b[4 * w] = v >>> 24;
      b[4 * w + 1] = (v >>> 16) & 0xff;
      b[4 * w + 2] = (v >>> 8) & 0xff;
      b[4 * w + 3] = v & 0xff;
    }
    return formatIp(b, 0, this.family(r));
  }

  private sameKey(r: number, k: Int32Array): boolean {
    const base = r * KEY_WORDS;
    for (let w = 0; w < KEY_WORDS; w++) if (this.keys[base + w] !== k[w]) return false;
    return true;
  }

  private grow(): void {
    const capacity = this.capacity * 2;
    const grown = <T extends Float64Array | Int32Array>(a: T, n: number): T => {
      const b = new (a.constructor as new (n: number) => T)(n);
      b.set(a);
      return b;
    };
    this.keys = grown(this.keys, capacity * KEY_WORDS);
    this.txBytes = grown(this.txBytes, capacity);
    this.rxBytes = grown(this.rxBytes, capacity);
    this.txPackets = grown(this.txPackets, capacity);
    this.rxPackets = grown(this.rxPackets, capacity);
    this.time = grown(this.time, capacity);
    this.capacity = capacity;
    this.slots = new Int32Array(slotCount(capacity));
    this.mask = this.slots.length - 1;
    const k = new Int32Array(KEY_WORDS);
    for (let r = 0; r < this.size; r++) {
      for (let w = 0; w < KEY_WORDS; w++) k[w] = this.keys[r * KEY_WORDS + w];
      let slot = hashIds(k, KEY_WORDS) & this.mask;
      while (this.slots[slot] !== 0) slot = (slot + 1) & this.mask;
      this.slots[slot] = r + 1;
    }
  }
}
