// Address keys and longest-prefix match over the 16-byte addresses of a FlowBatch. Our own code: these run
// several times per flow on the enrichment path, so a lookup must not allocate for IPv4 (one Map lookup
// per distinct prefix length) and must read the batch's address column in place.
import { isV4Mapped, parseIp } from './ip.js';

/**
 * A Map key for the address at buf[off..off+16): an IPv4 address as its uint32 value (a number, no
 * allocation), an IPv6 address as a 16-character string. Equal addresses give equal keys.
 */
export type AddressKey = number | string;

export function addressKey(buf: Uint8Array, off: number): AddressKey {
  if (isV4Mapped(buf, off)) {
    return ((buf[off + 12] << 24) | (buf[off + 13] << 16) | (buf[off + 14] << 8) | buf[off + 15]) >>> 0;
  }
  let s = '';
  for (let i = 0; i < 16; i += 2) s += String.fromCharCode((buf[off + i] << 8) | buf[off + i + 1]);
  return s;
}

const scratch = new Uint8Array(16);

/** The key of an address literal, or undefined when the text is not one. */
export function addressKeyOf(text: string): AddressKey | undefined {
  return parseIp(text, scratch, 0) === 0 ? undefined : addressKey(scratch, 0);
}

/** Parsed `a.b.c.d/n` or `x::/n`: the network in 16 bytes and the prefix length over those 128 bits. */
export interface Cidr {
  bytes: Uint8Array;
  /** Bits of the 128-bit (IPv4-mapped) address that must match. */
  bits: number;
  family: 4 | 6;
}

/** Parses a CIDR (or a bare address, as a host route). Returns a message instead when it is not one. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const bytes = new Uint8Array(16);
  const family = parseIp(addr.trim(), bytes, 0);
  if (family === 0) return `"${text}" is not an IP address or CIDR`;
  const max = family === 4 ? 32 : 128;
  let len = max;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1).trim();
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) {
      return `"${text}" has a bad prefix length (0..${max} for IPv${family})`;
    }
    len = Number(lenText);
  }
  const bits = family === 4 ? 96 + len : len;
  // Host bits are cleared, as routers do: 10.1.2.3/8 means 10.0.0.0/8.
  for (let b = bits; b < 128; b++) bytes[b >> 3] &= ~(0x80 >> (b & 7));
  return { bytes, bits, family };
}

interface Bucket<T> {
  family: 4 | 6;
  bits: number;
  entries: Map<AddressKey, T>;
}

/**
 * Longest-prefix match from CIDRs to values. One Map per distinct prefix length, longest first: pod
 * CIDRs or a rule list use a handful of lengths, so a lookup is a handful of Map lookups.
 */
export class CidrTable<T> {
  private buckets: Bucket<T>[] = [];
  private readonly masked = new Uint8Array(16);
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds a CIDR; an equal CIDR added before keeps its value (first wins, as in a rule list). */
  add(cidr: string | Cidr, value: T): void {
    const c = typeof cidr === 'string' ? parseCidr(cidr) : cidr;
    if (typeof c === 'string') throw new Error(c);
    let bucket = this.buckets.find((b) => b.bits === c.bits && b.family === c.family);
    if (!bucket) {
      bucket = { family: c.family, bits: c.bits, entries: new Map() };
      this.buckets.push(bucket);
      this.buckets.sort((a, b) => b.bits - a.bits);
    }
    const key = addressKey(c.bytes, 0);
    if (!bucket.entries.has(key)) {
      bucket.entries.set(key, value);
      this.count++;
    }
  }

  /** Removes a CIDR added before; returns whether it was there. */
  delete(cidr: string | Cidr): boolean {
    const c = typeof cidr === 'string' ? parseCidr(cidr) : cidr;
    if (typeof c === 'string') return false;
    const bucket = this.buckets.find((b) => b.bits === c.bits && b.family === c.family);
    if (!bucket?.entries.delete(addressKey(c.bytes, 0))) return false;
    this.count--;
    if (bucket.entries.size === 0) this.buckets = this.buckets.filter((b) => b !== bucket);
    return true;
  }

  /** The value of the longest prefix that holds the address at buf[off..off+16), if any. */
  lookup(buf: Uint8Array, off: number): T | undefined {
    const buckets = this.buckets;
    if (buckets.length === 0) return undefined;
    const v4 = isV4Mapped(buf, off);
    for (let k = 0; k < buckets.length; k++) {
      const { family, bits, entries } = buckets[k];
      // IPv4 rules match IPv4 addresses only and IPv6 rules IPv6 only: ::/0 does not swallow 0.0.0.0/0.
      if ((family === 4) !== v4) continue;
      let key: AddressKey;
      if (v4) {
        const word =
          ((buf[off + 12] << 24) | (buf[off + 13] << 16) | (buf[off + 14] << 8) | buf[off + 15]) >>> 0;
        const len = bits - 96;
        key = len === 0 ? 0 : (word & (0xffffffff << (32 - len))) >>> 0;
      } else {
        const m = this.masked;
        for (let b = 0; b < 16; b++) m[b] = buf[off + b];
        for (let b = bits; b < 128; b++) m[b >> 3] &= ~(0x80 >> (b & 7));
        key = addressKey(m, 0);
      }
      const hit = entries.get(key);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }

  /** Lookup of an address literal; undefined also when the text is not an address. */
  lookupText(text: string): T | undefined {
    const buf = new Uint8Array(16);
    return parseIp(text, buf, 0) === 0 ? undefined : this.lookup(buf, 0);
  }
}
