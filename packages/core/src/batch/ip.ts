// IP addresses as 16 bytes, IPv4 stored IPv4-mapped (::ffff:a.b.c.d), so one column holds both families.
// Our own code rather than a library: these run once per flow on the record paths (file I/O, /api) and
// work directly on slices of a batch's address column, without allocating an object per address.

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16));

/** True when bytes [off, off+16) hold an IPv4-mapped address. */
export function isV4Mapped(buf: Uint8Array, off: number): boolean {
  for (let i = 0; i < 10; i++) if (buf[off + i] !== 0) return false;
  return buf[off + 10] === 0xff && buf[off + 11] === 0xff;
}

/**
 * Parses an IPv4 or IPv6 literal into buf[off..off+16). Returns the family (4 or 6), or 0 when the text
 * is not an address (nothing is written then).
 */
export function parseIp(text: string, buf: Uint8Array, off: number): 0 | 4 | 6 {
  if (text.includes(':')) return parseV6(text, buf, off) ? 6 : 0;
  const v4 = parseV4(text);
  if (v4 < 0) return 0;
  buf.fill(0, off, off + 10);
  buf[off + 10] = 0xff;
  buf[off + 11] = 0xff;
  buf[off + 12] = v4 >>> 24;
  buf[off + 13] = (v4 >>> 16) & 0xff;
  buf[off + 14] = (v4 >>> 8) & 0xff;
  buf[off + 15] = v4 & 0xff;
  return 4;
}

function parseV4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4) return -1;
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part)) return -1;
    const n = Number(part);
    if (n > 255) return -1;
    value = value * 256 + n;
  }
  return value;
}

function parseV6(text: string, buf: Uint8Array, off: number): boolean {
  const zone = text.indexOf('%');
  if (zone >= 0) return false; // zone ids do not belong in flow records
  let tail = text;
  // An embedded IPv4 suffix (::ffff:1.2.3.4) is rewritten as the two 16-bit words it stands for.
  const lastColon = text.lastIndexOf(':');
  const suffix = text.slice(lastColon + 1);
  if (suffix.includes('.')) {
    const v4 = parseV4(suffix);
    if (v4 < 0) return false;
    tail = `${text.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const halves = tail.split('::');
  if (halves.length > 2) return false;
  const parse = (s: string): number[] | null => {
    if (s === '') return [];
    const out: number[] = [];
    for (const w of s.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(w)) return null;
      out.push(Number.parseInt(w, 16));
    }
    return out;
  };
  const head = parse(halves[0]);
  const rest = halves.length === 2 ? parse(halves[1]) : [];
  if (!head || !rest) return false;
  const explicit = head.length + rest.length;
  if (halves.length === 1 ? explicit !== 8 : explicit > 7) return false;
  const words = halves.length === 1 ? head : [...head, ...new Array<number>(8 - explicit).fill(0), ...rest];
  for (let i = 0; i < 8; i++) {
    buf[off + 2 * i] = words[i] >>> 8;
    buf[off + 2 * i + 1] = words[i] & 0xff;
  }
  return true;
}

/**
 * Formats bytes [off, off+16): a dotted quad for an IPv4 flow's IPv4-mapped address, RFC 5952 text
 * otherwise (an IPv6 flow between dual-stack sockets keeps its `::ffff:a.b.c.d` form).
 */
export function formatIp(buf: Uint8Array, off: number, family: number = 4): string {
  if (isV4Mapped(buf, off)) {
    if (family === 6) return `::ffff:${buf[off + 12]}.${buf[off + 13]}.${buf[off + 14]}.${buf[off + 15]}`;
    return `${buf[off + 12]}.${buf[off + 13]}.${buf[off + 14]}.${buf[off + 15]}`;
  }
  // RFC 5952: the longest run (>1) of zero words becomes "::", the first one on a tie; lowercase hex.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (buf[off + 2 * i] === 0 && buf[off + 2 * i + 1] === 0) {
      let j = i;
      while (j < 8 && buf[off + 2 * j] === 0 && buf[off + 2 * j + 1] === 0) j++;
      if (j - i > bestLen) {
        bestStart = i;
        bestLen = j - i;
      }
      i = j;
    } else i++;
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      out += '::';
      i += bestLen - 1;
      continue;
    }
    if (out !== '' && !out.endsWith(':')) out += ':';
    const hi = buf[off + 2 * i];
    const lo = buf[off + 2 * i + 1];
    out += hi === 0 ? HEX[lo] : HEX[hi] + (lo < 16 ? '0' : '') + HEX[lo];
  }
  return out;
}
