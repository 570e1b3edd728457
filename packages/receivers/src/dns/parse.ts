// DNS message parser (RFC 1035 §4) for the dns receiver's hot path: every DNS packet the node's pods send
// or receive passes through it. It writes into one reusable DnsMessage (typed arrays and string slots),
// creates no object per record, and its work is bounded by the bytes present, never by the header's
// counts, so a hostile or mangled packet costs no more than a valid one of the same size.

/** Why a message was rejected; the receiver counts each in a self-metric label `reason`. */
export type DnsReject =
  /** Fewer than the 12 bytes of a DNS header. */
  | 'short_header'
  /** QDCOUNT is not 1: no question to name the lookup by, or several, which no resolver sends. */
  | 'question_count'
  /** The message ends inside its question. */
  | 'bad_question'
  /** The question's class is not IN (CHAOS, HESIOD, ANY, …). */
  | 'not_in_class'
  /** A name with a reserved label type (0x40, 0x80) or longer than 255 bytes. */
  | 'bad_name'
  /** A compression pointer outside the message's bytes or into its header. */
  | 'bad_pointer'
  /** A compression pointer that does not point strictly backward, so following it could loop. */
  | 'pointer_loop'
  /** An answer whose data does not fit its type: A without 4 bytes, AAAA without 16, a CNAME target not filling its RDATA. */
  | 'bad_rdata';

/** Every reject reason, for metric docs and tests. */
export const DNS_REJECTS: readonly DnsReject[] = [
  'short_header',
  'question_count',
  'bad_question',
  'not_in_class',
  'bad_name',
  'bad_pointer',
  'pointer_loop',
  'bad_rdata',
];

/** Answers kept per message (A, AAAA, CNAME of class IN); later ones are read past, not kept. */
export const MAX_ANSWERS = 64;

const TYPE_A = 1;
const TYPE_CNAME = 5;
const TYPE_AAAA = 28;
const TYPE_OPT = 41;
const CLASS_IN = 1;
const HEADER = 12;

/** Reusable result; each parse overwrites it. After a reject only `answers` (0) is meaningful. */
export class DnsMessage {
  id = 0;
  /** QR bit: a response (true) or a query. */
  response = false;
  opcode = 0;
  /** TC bit: the server cut the answer to fit UDP; the client retries over TCP. */
  truncated = false;
  /** The header's 4-bit RCODE, extended with the EDNS OPT record's upper 8 bits when present (RFC 6891 §6.1.3). */
  rcode = 0;
  /** The question's name in presentation form (RFC 1035 §5.1): no trailing dot, '.' for the root, case as sent. */
  question = '';
  questionType = 0;
  questionClass = 0;
  /** How many answers are kept, at most MAX_ANSWERS. */
  answers = 0;
  /** Owner name of each kept answer, presentation form like `question`. */
  readonly answerName: string[] = new Array<string>(MAX_ANSWERS).fill('');
  readonly answerType = new Uint16Array(MAX_ANSWERS);
  /** Seconds; a TTL with the top bit set counts as 0 (RFC 2181 §8). */
  readonly answerTtl = new Uint32Array(MAX_ANSWERS);
  /** 16 bytes per answer: A as IPv4-mapped ::ffff:a.b.c.d, AAAA as is, zero for CNAME. */
  readonly answerAddr = new Uint8Array(16 * MAX_ANSWERS);
  /** CNAME target, '' for A and AAAA. */
  readonly answerTarget: string[] = new Array<string>(MAX_ANSWERS).fill('');
  /** The end of the CNAME chain that starts at the question, matched case-insensitively; '' when none. */
  canonical = '';
  /** The message ended (capture length) before all its records; what was complete is kept. */
  cut = false;
}

// readName/skipName results below 0.
const CUT = -1;
const BAD_NAME = -2;
const BAD_POINTER = -3;
const POINTER_LOOP = -4;
const REJECT_OF: readonly (DnsReject | null)[] = [null, null, 'bad_name', 'bad_pointer', 'pointer_loop'];

/** The reject for a readName/skipName error; `cut` says what running out of bytes means where it happened. */
function reject(code: number, cut: DnsReject): DnsReject {
  return REJECT_OF[-code] ?? cut;
}

// Presentation bytes of the name being read. A name has at most 255 wire bytes, each label byte becomes at
// most 4 characters (\DDD), so 1024 always suffices. A Buffer because its latin1 toString makes the string
// in one native step, about 2x faster than TextDecoder or String.fromCharCode on names this short.
const text = Buffer.alloc(1024);

// Names already read in this message, by the message offset of their first label. Compression makes answers
// point at the question and at earlier CNAME targets, so a hit saves building the same string again.
const CACHE = 16;
const cacheAt = new Int32Array(CACHE);
const cacheWire = new Int32Array(CACHE);
const cacheName: string[] = new Array<string>(CACHE).fill('');
let cached = 0;
/** The last name readName decoded. */
let nameOut = '';

function lookup(at: number): number {
  for (let i = 0; i < cached; i++) if (cacheAt[i] === at) return i;
  return -1;
}

/**
 * Reads the name at `pos` (absolute in buf) of the message at `base` whose bytes end at `end`; leaves its
 * presentation form in `nameOut` and returns the position after the name in place, or an error below 0.
 * Only pointers strictly before the start of the labels being read are followed: each jump moves that start
 * back, so the walk ends within the message's length in jumps, whatever the bytes say.
 */
function readName(buf: Uint8Array, base: number, end: number, pos: number): number {
  let p = pos;
  let segment = pos;
  let after = -1;
  let wire = 0;
  let n = 0;
  // The first label the walk reads: the whole name starts there, so it is what the cache is keyed by.
  let first = -1;
  for (;;) {
    if (p >= end) return CUT;
    const len = buf[p];
    if (len === 0) {
      if (after < 0) after = p + 1;
      if (first < 0) first = p;
      break;
    }
    const kind = len & 0xc0;
    if (kind === 0) {
      const stop = p + 1 + len;
      if (stop > end) return CUT;
      // 255 wire bytes at most, counting the root's zero byte.
      wire += len + 1;
      if (wire > 254) return BAD_NAME;
      if (first < 0) first = p;
      if (n > 0) text[n++] = 0x2e;
      for (let i = p + 1; i < stop; i++) {
        const c = buf[i];
        if (c > 0x20 && c < 0x7f) {
          if (c === 0x2e || c === 0x5c) text[n++] = 0x5c;
          text[n++] = c;
        } else {
          // RFC 1035 §5.1 / RFC 4343 §2.1: any other octet as \DDD, space included, as dig prints it.
          text[n++] = 0x5c;
          text[n++] = 0x30 + ((c / 100) | 0);
          text[n++] = 0x30 + (((c / 10) | 0) % 10);
          text[n++] = 0x30 + (c % 10);
        }
      }
      p = stop;
    } else if (kind === 0xc0) {
      if (p + 1 >= end) return CUT;
      const target = base + (((len & 0x3f) << 8) | buf[p + 1]);
      if (after < 0) after = p + 2;
      if (target >= end) return BAD_POINTER;
      if (target >= segment) return POINTER_LOOP;
      if (target < base + HEADER) return BAD_POINTER;
      const hit = lookup(target - base);
      if (hit >= 0) {
        if (wire + cacheWire[hit] > 254) return BAD_NAME;
        const suffix = cacheName[hit];
        if (n === 0) nameOut = suffix;
        else
          nameOut =
            suffix === '.' ? text.toString('latin1', 0, n) : `${text.toString('latin1', 0, n)}.${suffix}`;
        if (first >= 0) remember(first - base, wire + cacheWire[hit], nameOut);
        return after;
      }
      p = segment = target;
    } else {
      return BAD_NAME;
    }
  }
  nameOut = n === 0 ? '.' : text.toString('latin1', 0, n);
  remember(first - base, wire, nameOut);
  return after;
}

function remember(at: number, wire: number, name: string): void {
  if (cached < CACHE && lookup(at) < 0) {
    cacheAt[cached] = at;
    cacheWire[cached] = wire;
    cacheName[cached++] = name;
  }
}

/**
 * Steps over the name at `pos` without decoding it (records that are not kept); returns the position after
 * it or an error below 0. Pointers are checked to point backward of themselves but not followed.
 */
function skipName(buf: Uint8Array, base: number, end: number, pos: number): number {
  let p = pos;
  for (;;) {
    if (p >= end) return CUT;
    const len = buf[p];
    if (len === 0) return p + 1;
    const kind = len & 0xc0;
    if (kind === 0) {
      p += len + 1;
    } else if (kind === 0xc0) {
      if (p + 1 >= end) return CUT;
      const target = base + (((len & 0x3f) << 8) | buf[p + 1]);
      if (target >= end) return BAD_POINTER;
      if (target >= p) return POINTER_LOOP;
      if (target < base + HEADER) return BAD_POINTER;
      return p + 2;
    } else {
      return BAD_NAME;
    }
  }
}

/** Case-insensitive equality of two presentation-form names (ASCII only: other bytes are escaped). */
function sameName(a: string, b: string): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0x41 && x <= 0x5a) x |= 0x20;
    if (y >= 0x41 && y <= 0x5a) y |= 0x20;
    if (x !== y) return false;
  }
  return true;
}

/**
 * Parses `length` bytes at `offset` of `buf` (one DNS message: a UDP payload, or a TCP message without its
 * 2-byte length prefix, possibly cut short by the capture length) into `out`. Returns null when the message
 * is usable, else why not. Never throws.
 */
export function parseDns(buf: Uint8Array, offset: number, length: number, out: DnsMessage): DnsReject | null {
  out.answers = 0;
  out.cut = false;
  out.canonical = '';
  const base = offset;
  const end = Math.min(buf.length, offset + length);
  if (!(base >= 0) || !(end - base >= HEADER)) return 'short_header';
  out.id = (buf[base] << 8) | buf[base + 1];
  const flags = (buf[base + 2] << 8) | buf[base + 3];
  out.response = (flags & 0x8000) !== 0;
  out.opcode = (flags >> 11) & 0xf;
  out.truncated = (flags & 0x0200) !== 0;
  out.rcode = flags & 0xf;
  if (buf[base + 4] !== 0 || buf[base + 5] !== 1) return 'question_count';
  const ancount = (buf[base + 6] << 8) | buf[base + 7];
  const nscount = (buf[base + 8] << 8) | buf[base + 9];
  const records = ancount + nscount + ((buf[base + 10] << 8) | buf[base + 11]);

  cached = 0;
  let p = readName(buf, base, end, base + HEADER);
  if (p < 0) return reject(p, 'bad_question');
  if (p + 4 > end) return 'bad_question';
  out.question = nameOut;
  out.questionType = (buf[p] << 8) | buf[p + 1];
  out.questionClass = (buf[p + 2] << 8) | buf[p + 3];
  if (out.questionClass !== CLASS_IN) return 'not_in_class';
  p += 4;

  let kept = 0;
  let opt = false;
  for (let r = 0; r < records; r++) {
    const owner = p;
    const fixed = skipName(buf, base, end, p);
    if (fixed < 0) {
      if (fixed === CUT) {
        out.cut = true;
        break;
      }
      return reject(fixed, 'bad_name');
    }
    if (fixed + 10 > end) {
      out.cut = true;
      break;
    }
    const type = (buf[fixed] << 8) | buf[fixed + 1];
    const klass = (buf[fixed + 2] << 8) | buf[fixed + 3];
    const rdlength = (buf[fixed + 8] << 8) | buf[fixed + 9];
    const rdata = fixed + 10;
    if (rdata + rdlength > end) {
      out.cut = true;
      break;
    }
    p = rdata + rdlength;
    if (r < ancount) {
      if (klass !== CLASS_IN || (type !== TYPE_A && type !== TYPE_AAAA && type !== TYPE_CNAME)) continue;
      if (type === TYPE_A ? rdlength !== 4 : type === TYPE_AAAA ? rdlength !== 16 : rdlength === 0) {
        return 'bad_rdata';
      }
      if (kept === MAX_ANSWERS) continue;
      const named = readName(buf, base, end, owner);
      // Running out of bytes here means a pointer led to a label that overruns the message: not a cut.
      if (named < 0) return reject(named, 'bad_name');
      out.answerName[kept] = nameOut;
      out.answerType[kept] = type;
      // RFC 2181 §8: a TTL with the most significant bit set is to be treated as zero.
      out.answerTtl[kept] =
        buf[fixed + 4] & 0x80
          ? 0
          : (buf[fixed + 4] << 24) | (buf[fixed + 5] << 16) | (buf[fixed + 6] << 8) | buf[fixed + 7];
      const a = 16 * kept;
      const addr = out.answerAddr;
      if (type === TYPE_CNAME) {
        const stop = readName(buf, base, end, rdata);
        if (stop < 0) return reject(stop, 'bad_rdata');
        if (stop !== p) return 'bad_rdata';
        out.answerTarget[kept] = nameOut;
        addr.fill(0, a, a + 16);
      } else {
        out.answerTarget[kept] = '';
        if (type === TYPE_A) {
          addr.fill(0, a, a + 10);
          addr[a + 10] = 0xff;
          addr[a + 11] = 0xff;
          addr[a + 12] = buf[rdata];
          addr[a + 13] = buf[rdata + 1];
          addr[a + 14] = buf[rdata + 2];
          addr[a + 15] = buf[rdata + 3];
        } else {
          for (let i = 0; i < 16; i++) addr[a + i] = buf[rdata + i];
        }
      }
      kept++;
    } else if (type === TYPE_OPT && !opt && r >= ancount + nscount) {
      // The OPT pseudo-record's TTL field starts with EXTENDED-RCODE, the upper 8 bits of the 12-bit code.
      opt = true;
      out.rcode |= buf[fixed + 4] << 4;
    }
  }
  out.answers = kept;

  let name = out.question;
  let chained = false;
  for (let step = 0; step < kept; step++) {
    let next = -1;
    for (let i = 0; i < kept; i++) {
      if (out.answerType[i] === TYPE_CNAME && sameName(out.answerName[i], name)) {
        next = i;
        break;
      }
    }
    if (next < 0) break;
    name = out.answerTarget[next];
    chained = true;
  }
  out.canonical = chained ? name : '';
  return null;
}
