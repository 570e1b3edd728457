// DNS message parser (RFC 1035 §4) for the dns receiver's hot path: every DNS packet the node's pods send
// or receive passes through it. It writes into one reusable DnsMessage (typed arrays and string slots) and
// creates no object per record. Its work is bounded by the bytes present, never by the header's counts, and
// compression cannot multiply it: a name walk remembers every position it reads past a pointer, so a chain
// of pointers or a run of labels is read once per message, not once per name, and each CNAME's successor in
// the chain is looked for once. nameSteps counts that work, and the tests hold it to 2 · length + 512 steps
// for any message. A crafted message still costs more per byte than a typical one (it can make the parser
// build and compare 64 names of up to 1020 characters), but a few times more, not a power of its length.

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

// Names read in this message, remembered by position: where each name walk started, and every position it
// read past a compression pointer, with how far into its name (wire bytes, characters) the suffix from that
// position starts. A walk that reaches a remembered position past a pointer takes the rest of its name from
// there, so each position is read past a pointer by at most one walk that completed: a crafted chain of
// pointers to pointers, or a long run of labels entered at ever earlier positions, is read once per
// message, not once per name. Such a suffix is the name a walk from there would read (a walk that completed
// read it), and taking it ends the walk, so no loop can follow. Only positions a pointer reaches (14 bits),
// and a name's length past them, are remembered. An entry is this message's when its tag holds the
// message's stamp, so nothing is cleared between messages: tag = stamp · 256 + walk, and memoAt = wire
// bytes · 65536 + characters before the suffix.
const MEMO = (1 << 14) + 256;
const memoTag = new Int32Array(MEMO);
const memoAt = new Uint32Array(MEMO);
/**
 * This message's stamp · 256. Stamps run from 1 to 2^23 − 1, then the tags are cleared and they start over:
 * tags stay small integers, which V8 compares fastest.
 */
let stampBase = 0;
/** Name walks a message makes at most: its question, and each kept answer's owner and CNAME target. */
const MAX_WALKS = 1 + 2 * MAX_ANSWERS;
const walkName: string[] = new Array<string>(MAX_WALKS).fill('');
const walkWire = new Uint8Array(MAX_WALKS);
/** Walks completed in this message; the one under way is number `walks`. */
let walks = 0;
/** The last name readName decoded. */
let nameOut = '';
/** Work units of the message being parsed (see nameSteps). */
let steps = 0;

/**
 * The work the last parseDns call did on names: one unit per label, pointer or end byte a name walk read,
 * and one per step of the canonical-name search (a CNAME compared, indexed or followed). Whatever the bytes
 * say it stays at most 2 · length + 512: each byte is read at most once in place and once past a pointer,
 * plus a walk that fails (at most 128 steps) and the search (at most 3 per kept answer). The tests check
 * that bound, the parser's worst case, without a clock.
 */
export function nameSteps(): number {
  return steps;
}

/**
 * Reads the name at `pos` (absolute in buf) of the message at `base` whose bytes end at `end`; leaves its
 * presentation form in `nameOut` and returns the position after the name in place, or an error below 0.
 * Only pointers strictly before the start of the labels being read are followed: each jump moves that start
 * back, so the walk ends within the message's length in jumps, whatever the bytes say. The labels in place
 * are read without the memo (no pointer can have led there yet in this walk); past the first pointer every
 * position is looked up, then remembered.
 */
function readName(buf: Uint8Array, base: number, end: number, pos: number): number {
  let p = pos;
  let wire = 0;
  let n = 0;
  let read = 0;
  let len = 0;
  // In place: labels up to the end byte or the first pointer.
  for (;;) {
    read++;
    if (p >= end) {
      steps += read;
      return CUT;
    }
    len = buf[p];
    if (len === 0 || (len & 0xc0) !== 0) break;
    const stop = p + 1 + len;
    // 255 wire bytes at most, counting the root's zero byte.
    wire += len + 1;
    if (stop > end || wire > 254) {
      steps += read;
      return stop > end ? CUT : BAD_NAME;
    }
    n = appendLabel(buf, p + 1, stop, n);
    p = stop;
  }
  const walk = walks;
  let rest = -1;
  let after: number;
  if (len === 0) after = p + 1;
  else {
    // Past the first pointer: the rest of the name, remembered at every position read.
    after = p + 2;
    const tag = stampBase + walk;
    let segment = pos;
    for (;;) {
      if (len === 0) break;
      const kind = len & 0xc0;
      if (kind === 0) {
        const stop = p + 1 + len;
        wire += len + 1;
        if (stop > end || wire > 254) {
          steps += read;
          return stop > end ? CUT : BAD_NAME;
        }
        n = appendLabel(buf, p + 1, stop, n);
        p = stop;
      } else {
        if (kind !== 0xc0 || p + 1 >= end) {
          steps += read;
          return kind !== 0xc0 ? BAD_NAME : CUT;
        }
        const target = base + (((len & 0x3f) << 8) | buf[p + 1]);
        if (target >= end || target < base + HEADER || target >= segment) {
          steps += read;
          return target >= end ? BAD_POINTER : target >= segment ? POINTER_LOOP : BAD_POINTER;
        }
        p = segment = target;
      }
      // A position an earlier walk of this message read ends this one: the rest of the name is that
      // walk's from here.
      const at = p - base;
      if (at < MEMO) {
        const t = memoTag[at];
        if (t >= stampBase && t < tag) {
          rest = at;
          break;
        }
        memoTag[at] = tag;
        // Where the suffix from here starts: after the dot that will follow what is read so far.
        memoAt[at] = (wire << 16) | (n === 0 ? 0 : n + 1);
      }
      read++;
      if (p >= end) {
        steps += read;
        return CUT;
      }
      len = buf[p];
    }
  }
  steps += read;
  if (rest < 0) nameOut = n === 0 ? '.' : text.toString('latin1', 0, n);
  else {
    // A pointer straight to a name read before (an answer's owner, most often) is not remembered: a later
    // pointer to it costs one more jump, and this walk no record.
    if (read === 1 && memoAt[rest] === 0) {
      nameOut = walkName[memoTag[rest] - stampBase];
      return after;
    }
    wire = joinRest(rest, n, wire);
    if (wire < 0) return BAD_NAME;
    if (read === 1) return after;
  }
  if (walk < MAX_WALKS) {
    walkName[walk] = nameOut;
    walkWire[walk] = wire;
    walks = walk + 1;
    // Remembered: where the walk starts, and (above) every position it read past a pointer. The labels in
    // place after the start are not: a pointer into them is followed once, and that walk remembers them.
    const at = pos - base;
    if (at < MEMO) {
      memoTag[at] = stampBase + walk;
      memoAt[at] = 0;
    }
  }
  return after;
}

/** Appends the presentation form of label bytes [from, stop) of `buf` to `text` at `n`; returns the new end. */
function appendLabel(buf: Uint8Array, from: number, stop: number, at: number): number {
  let n = at;
  if (n > 0) text[n++] = 0x2e;
  for (let i = from; i < stop; i++) {
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
  return n;
}

/**
 * Completes `nameOut`: the `n` characters read (in `text`; `wire` bytes on the wire) followed by the suffix
 * an earlier walk read from position `rest`. Returns the whole name's wire bytes, or -1 past 255.
 */
function joinRest(rest: number, n: number, wire: number): number {
  const w = memoTag[rest] - stampBase;
  const from = memoAt[rest];
  const total = wire + walkWire[w] - (from >>> 16);
  if (total > 254) return -1;
  const whole = walkName[w];
  const c = from & 0xffff;
  const suffix = c === 0 ? whole : c < whole.length ? whole.slice(c) : '.';
  if (n === 0) nameOut = suffix;
  else
    nameOut = suffix === '.' ? text.toString('latin1', 0, n) : `${text.toString('latin1', 0, n)}.${suffix}`;
  return total;
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
 * CNAMEs up to which the chain is followed by comparing names (a compressed chain's names are mostly one
 * string, which compares at once); with more, through a table of owners, so that a crafted message of 64
 * CNAMEs with long names alike costs 64 lookups, not 64 × 64 comparisons of up to 1020 characters.
 */
const FEW_CNAMES = 4;
/** For each kept CNAME, the CNAME its target leads to: -1 none, -2 not looked for yet. */
const cnameNext = new Int8Array(MAX_ANSWERS);
/** The message's CNAMEs by owner name in lower case, the first of each (RFC 4343: ASCII case folding). */
const cnameByOwner = new Map<string, number>();

const UPPER = /[A-Z]/;

/** A name in lower case: itself when it has none in upper case, so a string met again keeps its hash. */
function folded(name: string): string {
  return UPPER.test(name) ? name.toLowerCase() : name;
}

/**
 * The end of the CNAME chain that starts at the question ('' when no CNAME starts there): each step takes
 * the first CNAME, in answer order, whose owner is the name reached, matched case-insensitively. A chain
 * that loops ends after as many steps as there are answers; each CNAME's successor is looked for once.
 */
function canonicalName(m: DnsMessage, kept: number, cnames: number): string {
  const type = m.answerType;
  const owner = m.answerName;
  const target = m.answerTarget;
  let work = 0;
  let byOwner: Map<string, number> | undefined;
  if (cnames > FEW_CNAMES) {
    byOwner = cnameByOwner;
    byOwner.clear();
    for (let i = 0; i < kept; i++) {
      if (type[i] !== TYPE_CNAME) continue;
      work++;
      const key = folded(owner[i]);
      if (!byOwner.has(key)) byOwner.set(key, i);
    }
  }
  let name = m.question;
  let last = -1;
  for (let step = 0; step < kept; step++) {
    work++;
    let next = last < 0 ? -2 : cnameNext[last];
    if (next === -2) {
      if (byOwner) next = byOwner.get(folded(name)) ?? -1;
      else {
        next = -1;
        for (let i = 0; i < kept; i++) {
          if (type[i] !== TYPE_CNAME) continue;
          work++;
          if (sameName(owner[i], name)) {
            next = i;
            break;
          }
        }
      }
      if (last >= 0) cnameNext[last] = next;
    }
    if (next < 0) break;
    last = next;
    name = target[next];
  }
  // Holds no names past the message.
  byOwner?.clear();
  steps += work;
  return last < 0 ? '' : name;
}

/**
 * Parses `length` bytes at `offset` of `buf` (one DNS message: a UDP payload, or a TCP message without its
 * 2-byte length prefix, possibly cut short by the capture length) into `out`. Returns null when the message
 * is usable, else why not. Never throws.
 */
export function parseDns(buf: Uint8Array, offset: number, length: number, out: DnsMessage): DnsReject | null {
  steps = 0;
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

  stampBase += 256;
  if (stampBase === 0x8000_0000) {
    // After 2^23 messages the stamps start over: no entry left may look like this message's.
    memoTag.fill(0);
    stampBase = 256;
  }
  walks = 0;
  let p = readName(buf, base, end, base + HEADER);
  if (p < 0) return reject(p, 'bad_question');
  if (p + 4 > end) return 'bad_question';
  out.question = nameOut;
  out.questionType = (buf[p] << 8) | buf[p + 1];
  out.questionClass = (buf[p + 2] << 8) | buf[p + 3];
  if (out.questionClass !== CLASS_IN) return 'not_in_class';
  p += 4;

  let kept = 0;
  let cnames = 0;
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
        cnameNext[kept] = -2;
        cnames++;
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

  out.canonical = cnames > 0 ? canonicalName(out, kept, cnames) : '';
  return null;
}
