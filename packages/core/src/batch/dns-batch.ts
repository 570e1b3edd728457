import { formatIp, parseIp } from './ip.js';
import { Sealable } from './seal.js';

const UPPER = /[A-Z]/;

/**
 * A DNS name as series carry it: ASCII letters in lower case (names compare case-insensitively, RFC 4343,
 * and resolvers randomize the case of their questions, "0x20") and without the trailing dot of a fully
 * qualified name (the root, ".", stays). One series per name, not per spelling.
 */
export function dnsName(name: string): string {
  const lower = UPPER.test(name) ? name.replace(/[A-Z]+/g, (s) => s.toLowerCase()) : name;
  return lower.length > 1 && lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** DNS record types a DnsBatch carries. */
export const DnsType = { A: 1, CNAME: 5, AAAA: 28 } as const;

/** Response codes (RFC 1035 §4.1.1, RFC 6895 §2.3): the header's 4-bit RCODE, extended by EDNS. */
export const DnsRcode = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  YXDOMAIN: 6,
  YXRRSET: 7,
  NXRRSET: 8,
  NOTAUTH: 9,
  NOTZONE: 10,
  BADVERS: 16,
} as const;

const RCODE_NAMES = new Map<number, string>(Object.entries(DnsRcode).map(([name, code]) => [code, name]));

/** The mnemonic of a response code (NXDOMAIN, …), `RCODE<n>` for codes without one. */
export function rcodeName(code: number): string {
  return RCODE_NAMES.get(code) ?? `RCODE${code}`;
}

export interface DnsAnswerInit {
  /** The name this answer is for (the question, or a CNAME target along the chain). */
  name: string;
  type: number;
  ttl: number;
  /** Address for A/AAAA answers. */
  ip?: string;
  /** Target for CNAME answers. */
  target?: string;
}

export interface DnsLookupInit {
  /** When the answer arrived, ms since the Unix epoch. */
  time: number;
  clientIp: string;
  /** The client's UDP or TCP port (0 unknown). */
  clientPort?: number;
  /** The server that answered ('' unknown). */
  serverIp?: string;
  /** 17 (UDP) or 6 (TCP); 0 unknown. */
  protocol?: number;
  question: string;
  /** The question's QTYPE (1 A, 28 AAAA, …); 0 unknown. */
  questionType?: number;
  /** Response code (DnsRcode); 0, NOERROR, when absent. */
  rcode?: number;
  /** From the query leaving the client to the answer reaching it, ms; NaN (or absent) when no query was seen. */
  latencyMs?: number;
  /** cgroup v2 id of the client's socket (0 unknown). */
  cgroupId?: number;
  /** UID of the pod that cgroup belongs to ('' unknown). */
  podUid?: string;
  /** The end of the CNAME chain that starts at the question ('' when the answer has no CNAME for it). */
  canonical?: string;
  answers: DnsAnswerInit[];
}

/**
 * The answers of one message as a parser holds them: parallel arrays, addresses 16 bytes each
 * (IPv4-mapped), targets '' unless CNAME. What `DnsBatch.pushWire` takes, so the tracer's hot path never
 * turns an address into text and back.
 */
export interface DnsAnswerColumns {
  answers: number;
  answerName: readonly string[];
  answerType: ArrayLike<number>;
  answerTtl: ArrayLike<number>;
  answerAddr: Uint8Array;
  answerTarget: readonly string[];
}

/** A lookup's own fields for `pushWire`: as DnsLookupInit, with addresses as 16-byte slices of `addr`. */
export interface DnsLookupWire {
  time: number;
  /** Holds the client's and the server's 16-byte addresses at `clientAt` and `serverAt`. */
  addr: Uint8Array;
  clientAt: number;
  serverAt: number;
  clientPort: number;
  protocol: number;
  question: string;
  questionType: number;
  rcode: number;
  latencyMs: number;
  cgroupId: number;
  podUid: string;
  canonical: string;
}

/**
 * DNS answers seen on the node, columnar like FlowBatch: one row per lookup, answers in a second table
 * addressed by [answerStart, answerStart + answerCount). Names are dictionary-encoded once per batch.
 */
export class DnsBatch extends Sealable {
  length = 0;
  /** ms since the Unix epoch. */
  time: number[] = [];
  clientAddr: Uint8Array = new Uint8Array(0);
  clientPort: number[] = [];
  /** 16 bytes per row, all zero when unknown. */
  serverAddr: Uint8Array = new Uint8Array(0);
  protocol: number[] = [];
  question: number[] = [];
  questionType: number[] = [];
  rcode: number[] = [];
  /** ms, NaN when unknown. */
  latency: number[] = [];
  cgroup: number[] = [];
  /** Code in `names` of the client's pod UID, 0 unknown (UIDs share the batch's string dictionary). */
  podUid: number[] = [];
  /** Code in `names` of the canonical name, 0 when there is no CNAME for the question. */
  canonical: number[] = [];
  answerStart: number[] = [];
  answerCount: number[] = [];
  answerName: number[] = [];
  answerType: number[] = [];
  answerTtl: number[] = [];
  answerAddr: Uint8Array = new Uint8Array(0);
  answerTarget: number[] = [];
  readonly names: string[] = [''];
  private readonly nameIndex = new Map<string, number>();

  static from(lookups: readonly DnsLookupInit[]): DnsBatch {
    const batch = new DnsBatch();
    for (const l of lookups) batch.push(l);
    return batch;
  }

  /** A writable deep copy. */
  clone(): DnsBatch {
    const out = new DnsBatch();
    for (let i = 0; i < this.length; i++) out.push(this.lookup(i));
    return out;
  }

  name(code: number): string {
    return this.names[code];
  }

  private code(name: string): number {
    let c = this.nameIndex.get(name);
    if (c === undefined) {
      c = this.names.length;
      this.names.push(name);
      this.nameIndex.set(name, c);
    }
    return c;
  }

  /** Appends one lookup; returns its row, or -1 when an address is not an IP literal. */
  push(lookup: DnsLookupInit): number {
    this.assertWritable();
    const client = new Uint8Array(16);
    if (parseIp(lookup.clientIp, client, 0) === 0) return -1;
    const server = new Uint8Array(16);
    if (lookup.serverIp && parseIp(lookup.serverIp, server, 0) === 0) return -1;
    const addrs = new Uint8Array(16 * lookup.answers.length);
    for (let j = 0; j < lookup.answers.length; j++) {
      const ip = lookup.answers[j].ip;
      if (ip !== undefined && parseIp(ip, addrs, 16 * j) === 0) return -1;
    }
    const row = this.length++;
    this.time.push(lookup.time);
    this.clientAddr = place(this.clientAddr, client, 16 * row);
    this.clientPort.push(lookup.clientPort ?? 0);
    this.serverAddr = place(this.serverAddr, server, 16 * row);
    this.protocol.push(lookup.protocol ?? 0);
    this.question.push(this.code(lookup.question));
    this.questionType.push(lookup.questionType ?? 0);
    this.rcode.push(lookup.rcode ?? 0);
    this.latency.push(lookup.latencyMs ?? Number.NaN);
    this.cgroup.push(lookup.cgroupId ?? 0);
    this.podUid.push(lookup.podUid ? this.code(lookup.podUid) : 0);
    this.canonical.push(lookup.canonical ? this.code(lookup.canonical) : 0);
    const firstAnswer = this.answerType.length;
    this.answerStart.push(firstAnswer);
    this.answerCount.push(lookup.answers.length);
    for (const a of lookup.answers) {
      this.answerName.push(this.code(a.name));
      this.answerType.push(a.type);
      this.answerTtl.push(a.ttl);
      this.answerTarget.push(a.target === undefined ? 0 : this.code(a.target));
    }
    this.answerAddr = place(this.answerAddr, addrs, 16 * firstAnswer);
    return row;
  }

  /**
   * Appends one lookup from wire-form parts (the dns receiver's path): addresses are copied as bytes,
   * answers taken from the parser's columns. Returns the row.
   */
  pushWire(l: DnsLookupWire, a: DnsAnswerColumns): number {
    this.assertWritable();
    const row = this.length++;
    this.clientAddr = room(this.clientAddr, 16 * row + 16);
    this.clientAddr.set(l.addr.subarray(l.clientAt, l.clientAt + 16), 16 * row);
    this.serverAddr = room(this.serverAddr, 16 * row + 16);
    this.serverAddr.set(l.addr.subarray(l.serverAt, l.serverAt + 16), 16 * row);
    this.time.push(l.time);
    this.clientPort.push(l.clientPort);
    this.protocol.push(l.protocol);
    this.question.push(this.code(l.question));
    this.questionType.push(l.questionType);
    this.rcode.push(l.rcode);
    this.latency.push(l.latencyMs);
    this.cgroup.push(l.cgroupId);
    this.podUid.push(l.podUid ? this.code(l.podUid) : 0);
    this.canonical.push(l.canonical ? this.code(l.canonical) : 0);
    const firstAnswer = this.answerType.length;
    this.answerStart.push(firstAnswer);
    this.answerCount.push(a.answers);
    this.answerAddr = room(this.answerAddr, 16 * (firstAnswer + a.answers));
    this.answerAddr.set(a.answerAddr.subarray(0, 16 * a.answers), 16 * firstAnswer);
    for (let k = 0; k < a.answers; k++) {
      this.answerName.push(this.code(a.answerName[k]));
      this.answerType.push(a.answerType[k]);
      this.answerTtl.push(a.answerTtl[k]);
      this.answerTarget.push(a.answerTarget[k] === '' ? 0 : this.code(a.answerTarget[k]));
    }
    return row;
  }

  clientIp(i: number): string {
    return formatIp(this.clientAddr, 16 * i);
  }

  /** The answering server's address, '' when unknown. */
  serverIp(i: number): string {
    const a = this.serverAddr;
    for (let b = 16 * i; b < 16 * i + 16; b++) if (a[b] !== 0) return formatIp(a, 16 * i);
    return '';
  }

  /** Row i as plain data. */
  lookup(i: number): DnsLookupInit {
    const answers: DnsAnswerInit[] = [];
    for (let k = this.answerStart[i]; k < this.answerStart[i] + this.answerCount[i]; k++) {
      const type = this.answerType[k];
      const a: DnsAnswerInit = { name: this.names[this.answerName[k]], type, ttl: this.answerTtl[k] };
      if (type === DnsType.A || type === DnsType.AAAA) a.ip = formatIp(this.answerAddr, 16 * k);
      if (this.answerTarget[k] !== 0) a.target = this.names[this.answerTarget[k]];
      answers.push(a);
    }
    const out: DnsLookupInit = {
      time: this.time[i],
      clientIp: this.clientIp(i),
      question: this.names[this.question[i]],
      answers,
    };
    if (this.clientPort[i] !== 0) out.clientPort = this.clientPort[i];
    const server = this.serverIp(i);
    if (server !== '') out.serverIp = server;
    if (this.protocol[i] !== 0) out.protocol = this.protocol[i];
    if (this.questionType[i] !== 0) out.questionType = this.questionType[i];
    if (this.rcode[i] !== 0) out.rcode = this.rcode[i];
    if (!Number.isNaN(this.latency[i])) out.latencyMs = this.latency[i];
    if (this.cgroup[i] !== 0) out.cgroupId = this.cgroup[i];
    if (this.podUid[i] !== 0) out.podUid = this.names[this.podUid[i]];
    if (this.canonical[i] !== 0) out.canonical = this.names[this.canonical[i]];
    return out;
  }
}

/** `buf`, or a copy at least twice as large when it holds fewer than `size` bytes. */
function room(buf: Uint8Array, size: number): Uint8Array {
  if (size <= buf.length) return buf;
  const out = new Uint8Array(Math.max(size, 2 * buf.length, 256));
  out.set(buf);
  return out;
}

/** Writes `bytes` at `offset`, growing `buf` by doubling when it is too small. */
function place(buf: Uint8Array, bytes: Uint8Array, offset: number): Uint8Array {
  let out = buf;
  if (offset + bytes.length > buf.length) {
    out = new Uint8Array(Math.max(offset + bytes.length, 2 * buf.length, 256));
    out.set(buf);
  }
  out.set(bytes, offset);
  return out;
}
