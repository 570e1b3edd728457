// The distinct names the cache's entries point at, each one DnsName object however many addresses and
// clients share it (a CDN name answers with dozens of addresses; every pod asks for the same services),
// counted so that the last entry to let go of a name frees it.
import type { DnsName } from './contract.js';

export class NameTable {
  /** By id; undefined for a freed id (kept for reuse in `free`). */
  private readonly objects: (DnsName | undefined)[] = [];
  private refs = new Int32Array(64);
  /** The next id with the same question (another canonical name), -1 at the end of the chain. */
  private sameQuestion = new Int32Array(64);
  private readonly free: number[] = [];
  /**
   * Question → the first id of its chain. The key is the very string the DnsName holds, so the index
   * costs a map entry per question, not a second copy of the name.
   */
  private readonly byQuestion = new Map<string, number>();
  private count = 0;

  /** Distinct names held. */
  get size(): number {
    return this.count;
  }

  /**
   * The id of (name, canonical), made with no reference when new: the caller `acquire`s it, or `release`s
   * a reference it took to keep it while it worked.
   */
  intern(name: string, canonical: string): number {
    const first = this.byQuestion.get(name) ?? -1;
    for (let id = first; id >= 0; id = this.sameQuestion[id]) {
      if ((this.objects[id] as DnsName).canonical === canonical) return id;
    }
    let id = this.free.pop();
    if (id === undefined) {
      id = this.objects.length;
      this.objects.push(undefined);
      if (id >= this.refs.length) this.grow(2 * this.refs.length);
    }
    // The key string is the DnsName's own (a name found under another spelling is already this one).
    const held = first >= 0 ? (this.objects[first] as DnsName).name : name;
    this.objects[id] = { name: held, canonical };
    this.refs[id] = 0;
    this.sameQuestion[id] = first;
    this.byQuestion.set(held, id);
    this.count++;
    return id;
  }

  get(id: number): DnsName {
    return this.objects[id] as DnsName;
  }

  acquire(id: number): void {
    this.refs[id]++;
  }

  /** Drops one reference; the last one frees the name. */
  release(id: number): void {
    if (--this.refs[id] > 0) return;
    const name = (this.objects[id] as DnsName).name;
    const first = this.byQuestion.get(name) as number;
    if (first === id) {
      const rest = this.sameQuestion[id];
      if (rest >= 0) this.byQuestion.set(name, rest);
      else this.byQuestion.delete(name);
    } else {
      let at = first;
      while (this.sameQuestion[at] !== id) at = this.sameQuestion[at];
      this.sameQuestion[at] = this.sameQuestion[id];
    }
    this.objects[id] = undefined;
    this.free.push(id);
    this.count--;
  }

  /** Bytes of its typed arrays (the DnsName objects and strings are on the heap). */
  get arrayBytes(): number {
    return this.refs.byteLength + this.sameQuestion.byteLength;
  }

  clear(): void {
    this.objects.length = 0;
    this.free.length = 0;
    this.byQuestion.clear();
    this.count = 0;
    this.refs = new Int32Array(64);
    this.sameQuestion = new Int32Array(64);
  }

  private grow(size: number): void {
    const refs = new Int32Array(size);
    refs.set(this.refs);
    this.refs = refs;
    const same = new Int32Array(size);
    same.set(this.sameQuestion);
    this.sameQuestion = same;
  }
}
