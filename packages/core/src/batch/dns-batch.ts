import { formatIp, parseIp } from './ip.js';
import { Sealable } from './seal.js';

/** DNS record types a DnsBatch carries. */
export const DnsType = { A: 1, CNAME: 5, AAAA: 28 } as const;

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
  time: number;
  clientIp: string;
  question: string;
  answers: DnsAnswerInit[];
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
  question: number[] = [];
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
    const addrs = new Uint8Array(16 * lookup.answers.length);
    for (let j = 0; j < lookup.answers.length; j++) {
      const ip = lookup.answers[j].ip;
      if (ip !== undefined && parseIp(ip, addrs, 16 * j) === 0) return -1;
    }
    const row = this.length++;
    this.time.push(lookup.time);
    this.clientAddr = place(this.clientAddr, client, 16 * row);
    this.question.push(this.code(lookup.question));
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

  clientIp(i: number): string {
    return formatIp(this.clientAddr, 16 * i);
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
    return {
      time: this.time[i],
      clientIp: this.clientIp(i),
      question: this.names[this.question[i]],
      answers,
    };
  }
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
