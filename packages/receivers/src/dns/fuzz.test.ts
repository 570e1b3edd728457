// Fuzzing parseDns: a million packets mutated from valid messages (a real server's and typical generated
// ones), each from its own seed, so any failure reproduces from the seed and hex it prints. The parser must
// never throw, reject only with a listed reason, leave a self-consistent result when it accepts, and do no
// more work on any packet than nameSteps documents (2 · length + 512 steps).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DNS_REJECTS, DnsMessage, type DnsReject, MAX_ANSWERS, nameSteps, parseDns } from './parse.js';
import { encode, opt, RESPONSE, soa, TC, typicalMessage, type WireRecord } from './testdata/wire.js';

const MASTER = Number(process.env.DNS_FUZZ_SEED ?? 16);
const COUNT = Number(process.env.DNS_FUZZ_COUNT ?? 1_000_000);

/** xorshift32. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/** The seed of packet i: spread, so neighbouring packets do not start from neighbouring states. */
const seedOf = (i: number) =>
  (Math.imul(MASTER ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(i + 1, 0xc2b2ae35)) >>> 0;

interface Seed {
  bytes: Uint8Array;
  /** Positions of label length bytes, compression pointers, and RDLENGTH fields, for targeted mutations. */
  labels: number[];
  pointers: number[];
  rdlengths: number[];
}

/** Walks a valid message once to find where its names, pointers and lengths are. */
function structure(bytes: Uint8Array): Seed {
  const s: Seed = { bytes, labels: [], pointers: [], rdlengths: [] };
  const name = (at: number): number => {
    let p = at;
    while (p < bytes.length) {
      const len = bytes[p];
      if (len === 0) return p + 1;
      if ((len & 0xc0) === 0xc0) {
        s.pointers.push(p);
        return p + 2;
      }
      s.labels.push(p);
      p += len + 1;
    }
    return p;
  };
  let p = name(12) + 4;
  const records =
    ((bytes[6] << 8) | bytes[7]) + ((bytes[8] << 8) | bytes[9]) + ((bytes[10] << 8) | bytes[11]);
  for (let r = 0; r < records && p < bytes.length; r++) {
    p = name(p);
    const type = (bytes[p] << 8) | bytes[p + 1];
    s.rdlengths.push(p + 8);
    const rdata = p + 10;
    if (type === 5) name(rdata);
    p = rdata + ((bytes[p + 8] << 8) | bytes[p + 9]);
  }
  return s;
}

function corpus(): Seed[] {
  const out: Uint8Array[] = readFileSync(new URL('./testdata/dnsmasq.txt', import.meta.url), 'utf8')
    .trim()
    .split('\n')
    .map((line) => Uint8Array.from(Buffer.from(line.split('\t')[1], 'hex')));
  const next = rng(MASTER);
  for (let i = 0; i < 300; i++) out.push(encode(typicalMessage(next)));
  const odd = [
    Uint8Array.of(0x61, 0x2e, 0x5c, 0x00, 0xff, 0x20),
    Uint8Array.of(0x2a),
    Uint8Array.of(0x41, 0x42),
  ];
  const long = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`;
  const many: WireRecord[] = Array.from({ length: 70 }, (_, i) => ({
    name: 'x.example',
    type: 1,
    ip: `10.0.0.${i}`,
  }));
  out.push(
    encode({
      questions: [{ name: odd, type: 1 }],
      answers: [{ name: odd, type: 5, target: [odd[1], ...odd] }],
    }),
    encode({ questions: [{ name: long, type: 28 }], answers: [{ name: long, type: 28, ip: '2001:db8::1' }] }),
    encode({ questions: [{ name: 'x.example', type: 1 }], answers: many, additionals: [opt(1)] }),
    encode({ flags: RESPONSE | TC | 2, questions: [{ name: '.', type: 1 }], authorities: [soa('example')] }),
    encode({
      questions: [{ name: 'a.b.c.example', type: 1 }],
      answers: [
        { name: 'a.b.c.example', type: 5, target: 'x.c.example' },
        { name: 'x.c.example', type: 5, target: 'y.b.c.example' },
        { name: 'y.b.c.example', type: 1, ip: '192.0.2.1' },
      ],
    }),
  );
  return out.map(structure);
}

const INTERESTING = [0x00, 0x01, 0x3f, 0x40, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xff];

/** One mutation of work[0, len); returns the new length. */
function mutate(work: Uint8Array, len: number, seed: Seed, next: () => number): number {
  const at = () => (len === 0 ? 0 : next() % len);
  const pick = (xs: number[]) => (xs.length ? xs[next() % xs.length] : at());
  switch (next() % 10) {
    case 0: {
      if (len > 0) work[at()] ^= 1 << (next() & 7);
      return len;
    }
    case 1: {
      if (len > 0) work[at()] = next() % 2 ? INTERESTING[next() % INTERESTING.length] : next() & 0xff;
      return len;
    }
    case 2:
      return next() % (len + 1);
    case 3: {
      const k = Math.min(1 + (next() % 8), work.length - len);
      const p = at();
      work.copyWithin(p + k, p, len);
      for (let i = 0; i < k; i++) work[p + i] = next() & 0xff;
      return len + k;
    }
    case 4: {
      const p = at();
      const k = Math.min(1 + (next() % 8), len - p);
      work.copyWithin(p, p + k, len);
      return len - k;
    }
    case 5: {
      // Count inflation (or deflation): QD, AN, NS or AR.
      const c = 4 + 2 * (next() % 4);
      const v = [0xffff, 0, 1, 2, 64, 65, next() & 0xffff][next() % 7];
      work[c] = v >> 8;
      work[c + 1] = v & 0xff;
      return len;
    }
    case 6: {
      // Pointer rewrite at a pointer or a label: to itself, forward, out of range, into the header,
      // validly backward, or two pointers at each other.
      const p = next() % 2 ? pick(seed.pointers) : pick(seed.labels);
      if (p + 1 >= len) return len;
      let target: number;
      switch (next() % 6) {
        case 0:
          target = p;
          break;
        case 1:
          target = p + 1 + (next() % 16);
          break;
        case 2:
          target = len + (next() % 0x3fff);
          break;
        case 3:
          target = next() % 12;
          break;
        case 4:
          target = 12 + (next() % Math.max(1, p - 12));
          break;
        default: {
          const q = pick(seed.pointers);
          target = q;
          if (q + 1 < len) {
            work[q] = 0xc0 | ((p >> 8) & 0x3f);
            work[q + 1] = p & 0xff;
          }
        }
      }
      work[p] = 0xc0 | ((target >> 8) & 0x3f);
      work[p + 1] = target & 0xff;
      return len;
    }
    case 7: {
      // A label length that lies, or a reserved label type.
      const p = pick(seed.labels);
      if (p < len)
        work[p] = [next() % 64, work[p] + 1, work[p] - 1, 0x40 | (next() & 0x3f), 0x80][next() % 5] & 0xff;
      return len;
    }
    case 8: {
      // An RDLENGTH that lies.
      const p = pick(seed.rdlengths);
      if (p + 1 < len) {
        const v = [(work[p + 1] + 1) & 0xff, (work[p + 1] - 1) & 0xff, 0, 16, 4, 0xff][next() % 6];
        if (next() % 4 === 0) work[p] = next() & 0xff;
        work[p + 1] = v;
      }
      return len;
    }
    default: {
      // Type or class rewrite at a record: A/AAAA/CNAME/OPT/other, IN or not.
      const p = pick(seed.rdlengths) - 8;
      if (p >= 0 && p + 3 < len) {
        work[p] = 0;
        work[p + 1] = [1, 5, 28, 41, 15, 2][next() % 6];
        if (next() % 3 === 0) work[p + 3] = next() % 4;
      }
      return len;
    }
  }
}

/** Printable ASCII only, 1 to 4·255 characters: what presentation form allows. */
function presentable(s: string): string | null {
  if (s.length === 0 || s.length > 4 * 255) return `length ${s.length}`;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return `character ${c}`;
  }
  return null;
}

/** What is wrong with an accepted result, or null. */
function inconsistency(m: DnsMessage): string | null {
  if (!Number.isInteger(m.answers) || m.answers < 0 || m.answers > MAX_ANSWERS) return `answers ${m.answers}`;
  const q = presentable(m.question);
  if (q) return `question: ${q}`;
  if (m.questionClass !== 1) return `question class ${m.questionClass}`;
  if (m.rcode < 0 || m.rcode > 0xfff) return `rcode ${m.rcode}`;
  let canonicalSeen = m.canonical === '';
  for (let i = 0; i < m.answers; i++) {
    const type = m.answerType[i];
    const name = presentable(m.answerName[i]);
    if (name) return `answer ${i} name: ${name}`;
    const a = 16 * i;
    const addr = m.answerAddr;
    if (type === 5) {
      const target = presentable(m.answerTarget[i]);
      if (target) return `answer ${i} target: ${target}`;
      for (let b = a; b < a + 16; b++) if (addr[b] !== 0) return `CNAME ${i} has address bytes`;
      if (m.answerTarget[i] === m.canonical) canonicalSeen = true;
    } else if (type === 1 || type === 28) {
      if (m.answerTarget[i] !== '') return `address answer ${i} has a target`;
      if (type === 1) {
        for (let b = a; b < a + 10; b++) if (addr[b] !== 0) return `A ${i} not IPv4-mapped`;
        if (addr[a + 10] !== 0xff || addr[a + 11] !== 0xff) return `A ${i} not IPv4-mapped`;
      }
    } else {
      return `answer ${i} of type ${type}`;
    }
  }
  if (!canonicalSeen) return `canonical ${m.canonical} is no CNAME target`;
  return null;
}

describe('parseDns fuzzing', () => {
  it(`survives ${COUNT.toLocaleString('en-US')} mutated packets (DNS_FUZZ_SEED=${MASTER})`, () => {
    const seeds = corpus();
    const work = new Uint8Array(Math.max(...seeds.map((s) => s.bytes.length)) + 64);
    const out = new DnsMessage();
    const rejected = new Map<DnsReject, number>(DNS_REJECTS.map((r) => [r, 0]));
    let parsed = 0;
    let cut = 0;
    let withAnswers = 0;
    let mostSteps = 0;
    const fail = (i: number, len: number, problem: string) => {
      const hex = Buffer.from(work.subarray(0, len)).toString('hex');
      throw new Error(
        `fuzz packet ${i} (seed ${seedOf(i)}, DNS_FUZZ_SEED=${MASTER}): ${problem}\npacket: ${hex}`,
      );
    };
    for (let i = 0; i < COUNT; i++) {
      const next = rng(seedOf(i));
      const seed = seeds[next() % seeds.length];
      work.set(seed.bytes);
      let len = seed.bytes.length;
      for (let k = 1 + (next() % 3); k > 0; k--) len = mutate(work, len, seed, next);
      let reason: DnsReject | null;
      try {
        reason = parseDns(work, 0, len, out);
      } catch (e) {
        return fail(i, len, `threw ${(e as Error).stack}`);
      }
      const steps = nameSteps();
      if (steps > 2 * len + 512) fail(i, len, `${steps} steps, over 2 · ${len} + 512`);
      if (steps > mostSteps) mostSteps = steps;
      if (reason === null) {
        parsed++;
        if (out.cut) cut++;
        if (out.answers > 0) withAnswers++;
        const problem = inconsistency(out);
        if (problem) fail(i, len, problem);
      } else {
        const n = rejected.get(reason);
        if (n === undefined) fail(i, len, `unknown reason ${reason}`);
        rejected.set(reason, (n ?? 0) + 1);
      }
    }
    const totalRejected = [...rejected.values()].reduce((a, b) => a + b, 0);
    expect(parsed + totalRejected).toBe(COUNT);
    // The mutations must reach every outcome, or the run proves less than it claims.
    for (const [reason, n] of rejected) expect(n, reason).toBeGreaterThan(0);
    expect(parsed).toBeGreaterThan(COUNT / 10);
    expect(withAnswers).toBeGreaterThan(COUNT / 20);
    expect(cut).toBeGreaterThan(COUNT / 100);
    // The bound was checked against work actually done.
    expect(mostSteps).toBeGreaterThan(50);
  }, 120_000);

  it('accepts every unmutated corpus message with a consistent result', () => {
    const out = new DnsMessage();
    for (const s of corpus()) {
      const reason = parseDns(s.bytes, 0, s.bytes.length, out);
      if (reason === 'not_in_class') continue;
      expect(reason).toBeNull();
      expect(inconsistency(out)).toBeNull();
      expect(out.cut).toBe(false);
    }
  });
});
