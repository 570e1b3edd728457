// Test helper: builds DNS messages byte by byte, with name compression as real servers write it (owner
// names pointing at the question, CNAME targets at earlier names), so the parser's tests and fuzzing start
// from the shapes it meets on a node. dns-packet, the tests' oracle, writes no compression at all.
// Plain erasable TypeScript with no imports, so bench/dns/parse.mjs can load it too.

/** A name as labels of raw bytes; a string is split on '.' and each character taken as one byte (latin1). */
export type Name = string | readonly Uint8Array[];

export interface WireQuestion {
  name: Name;
  type: number;
  class?: number;
}

export interface WireRecord {
  name: Name;
  type: number;
  /** Default 1 (IN); for OPT, the UDP payload size. */
  class?: number;
  ttl?: number;
  /** A or AAAA address as text. */
  ip?: string;
  /** CNAME, NS, PTR target; MX exchange. */
  target?: Name;
  /** Raw RDATA, for any other type. */
  rdata?: Uint8Array;
  /** Writes RDLENGTH as this instead of the true length. */
  rdlength?: number;
}

export interface WireMessage {
  id?: number;
  /** The whole second header word: QR, opcode, AA, TC, RD, RA, Z, AD, CD, RCODE. */
  flags?: number;
  questions: WireQuestion[];
  answers?: WireRecord[];
  authorities?: WireRecord[];
  additionals?: WireRecord[];
  /** Header counts written instead of the sections' lengths: [QD, AN, NS, AR]. */
  counts?: [number, number, number, number];
}

export const QR = 0x8000;
export const TC = 0x0200;
/** QR RD RA, NOERROR: what a recursive resolver answers. */
export const RESPONSE = 0x8180;

/** Labels of a name given as text: split on '.', one byte per character. '' and '.' are the root. */
export function labels(name: Name): readonly Uint8Array[] {
  if (typeof name !== 'string') return name;
  if (name === '' || name === '.') return [];
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  return trimmed.split('.').map((l) => Uint8Array.from(l, (c) => c.charCodeAt(0) & 0xff));
}

/**
 * The presentation form the parser must give (RFC 1035 §5.1, RFC 4343 §2.1), written plainly byte by byte
 * as an independent reference: printable ASCII as is, '.' and '\' escaped with '\', everything else as \DDD.
 */
export function present(name: Name): string {
  const ls = labels(name);
  if (ls.length === 0) return '.';
  return ls
    .map((l) =>
      Array.from(l, (b) => {
        if (b === 0x2e || b === 0x5c) return `\\${String.fromCharCode(b)}`;
        if (b > 0x20 && b < 0x7f) return String.fromCharCode(b);
        return `\\${String(b).padStart(3, '0')}`;
      }).join(''),
    )
    .join('.');
}

/** The 4 or 16 bytes of an address literal (dotted IPv4, or IPv6 with '::'). */
export function ipBytes(ip: string): Uint8Array {
  if (!ip.includes(':')) return Uint8Array.from(ip.split('.'), Number);
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, ''];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = Number.parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

class Writer {
  bytes: number[] = [];
  /** Offsets of names already written, by the exact bytes of the labels from there on. */
  private readonly suffixes = new Map<string, number>();
  private readonly compress: boolean;
  constructor(compress: boolean) {
    this.compress = compress;
  }

  u8(v: number): void {
    this.bytes.push(v & 0xff);
  }
  u16(v: number): void {
    this.u8(v >>> 8);
    this.u8(v);
  }
  u32(v: number): void {
    this.u16(v >>> 16);
    this.u16(v);
  }
  raw(b: Uint8Array): void {
    for (const x of b) this.bytes.push(x);
  }
  name(n: Name): void {
    const ls = labels(n);
    for (let i = 0; i < ls.length; i++) {
      const key = ls
        .slice(i)
        .map((l) => Array.from(l).join(','))
        .join('|');
      const at = this.suffixes.get(key);
      if (this.compress && at !== undefined) {
        this.u16(0xc000 | at);
        return;
      }
      if (this.bytes.length < 0x4000) this.suffixes.set(key, this.bytes.length);
      this.u8(ls[i].length);
      this.raw(ls[i]);
    }
    this.u8(0);
  }
  record(r: WireRecord): void {
    this.name(r.name);
    this.u16(r.type);
    this.u16(r.class ?? 1);
    this.u32(r.ttl ?? 300);
    const lengthAt = this.bytes.length;
    this.u16(0);
    if (r.rdata) this.raw(r.rdata);
    else if (r.ip !== undefined) this.raw(ipBytes(r.ip));
    else if (r.target !== undefined) {
      if (r.type === 15) this.u16(10);
      this.name(r.target);
    }
    const length = r.rdlength ?? this.bytes.length - lengthAt - 2;
    this.bytes[lengthAt] = (length >>> 8) & 0xff;
    this.bytes[lengthAt + 1] = length & 0xff;
  }
}

/** The message's bytes; `compress` (default true) points repeated names at their first occurrence. */
export function encode(m: WireMessage, compress = true): Uint8Array {
  const w = new Writer(compress);
  const an = m.answers ?? [];
  const ns = m.authorities ?? [];
  const ar = m.additionals ?? [];
  const counts = m.counts ?? [m.questions.length, an.length, ns.length, ar.length];
  w.u16(m.id ?? 0x1234);
  w.u16(m.flags ?? RESPONSE);
  for (const c of counts) w.u16(c);
  for (const q of m.questions) {
    w.name(q.name);
    w.u16(q.type);
    w.u16(q.class ?? 1);
  }
  for (const r of [...an, ...ns, ...ar]) w.record(r);
  return Uint8Array.from(w.bytes);
}

/** An EDNS OPT pseudo-record (RFC 6891) carrying the upper 8 bits of a 12-bit RCODE. */
export function opt(extendedRcode = 0, payload = 1232): WireRecord {
  return { name: '.', type: 41, class: payload, ttl: (extendedRcode & 0xff) * 0x1000000, rdata: new Uint8Array(0) };
}

/** A zone's SOA record, as an authority section carries it in an NXDOMAIN or NODATA answer. */
export function soa(zone: string): WireRecord {
  const mname = labels(`ns1.${zone}`);
  const rname = labels(`hostmaster.${zone}`);
  const parts: number[] = [];
  for (const n of [mname, rname]) {
    for (const l of n) parts.push(l.length, ...l);
    parts.push(0);
  }
  for (const v of [2024010101, 7200, 900, 1209600, 60]) parts.push(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  return { name: zone, type: 6, ttl: 60, rdata: Uint8Array.from(parts) };
}

const CDNS = ['cdn.cloudflare.net', 'edgekey.net', 'a.akamaiedge.net', 'cloudfront.net', 'fastly.net', 'azureedge.net'];
const ZONES = ['example.com', 'svc.cluster.local', 'shop.example.org', 'api.internal.example.net', 'amazonaws.com'];
const WORDS = ['api', 'www', 'static', 'auth', 'login', 'cdn', 'img', 'eu-west-1', 's3', 'payments', 'grpc', 'db'];

/**
 * A typical message a node sees, drawn with `next` (a 32-bit generator): a query, or a resolver's response
 * with A/AAAA answers behind 0–3 CNAMEs to CDN names, NXDOMAIN or NODATA with the zone's SOA, EDNS OPT often.
 */
export function typicalMessage(next: () => number): WireMessage {
  const pick = <T>(xs: readonly T[]): T => xs[next() % xs.length];
  const zone = pick(ZONES);
  const qname = `${pick(WORDS)}${next() % 100}.${next() % 3 === 0 ? `${pick(WORDS)}.` : ''}${zone}`;
  const qtype = next() % 3 === 0 ? 28 : 1;
  const edns = next() % 3 !== 0;
  const id = next() & 0xffff;
  const additionals = edns ? [opt()] : [];
  const kind = next() % 10;
  if (kind === 0) return { id, flags: 0x0100, questions: [{ name: qname, type: qtype }], additionals };
  if (kind === 1)
    return { id, flags: RESPONSE | 3, questions: [{ name: qname, type: qtype }], authorities: [soa(zone)], additionals };
  const answers: WireRecord[] = [];
  let owner = qname;
  const chain = next() % 4;
  for (let i = 0; i < chain; i++) {
    const target = i === chain - 1 ? `e${next() % 10000}.${pick(CDNS)}` : `${owner}.${pick(CDNS)}`;
    answers.push({ name: owner, type: 5, ttl: 60 + (next() % 3600), target });
    owner = target;
  }
  if (kind === 2)
    return { id, flags: RESPONSE, questions: [{ name: qname, type: qtype }], answers, authorities: [soa(zone)], additionals };
  const count = 1 + (next() % 6);
  for (let i = 0; i < count; i++) {
    const ip =
      qtype === 1
        ? `${next() % 224}.${next() % 256}.${next() % 256}.${next() % 256}`
        : `2001:db8:${(next() % 65536).toString(16)}::${(next() % 65536).toString(16)}`;
    answers.push({ name: owner, type: qtype, ttl: next() % 300, ip });
  }
  return { id, flags: RESPONSE, questions: [{ name: qname, type: qtype }], answers, additionals };
}
