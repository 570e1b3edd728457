// Test helper: DNS responses crafted to make a name parser work hard, written byte by byte. Each is a
// message the parser accepts: compression pointers only ever point backward, every length is honest. What
// they abuse is that a pointer may lead to another pointer, into the middle of a run of labels, or to a
// name that differs from others only in its last byte. Plain erasable TypeScript with no imports, so
// bench/dns/parse.mjs can load it too.

/** A crafted message, and the answers (A or CNAME records, at most 64) the parser must keep. */
export interface Crafted {
  bytes: Uint8Array;
  answers: number;
}

/** QR RD RA, NOERROR, one question, `an` answers. */
function header(buf: Uint8Array, an: number): void {
  buf.fill(0, 0, 12);
  buf[2] = 0x81;
  buf[3] = 0x80;
  buf[5] = 1;
  buf[6] = an >> 8;
  buf[7] = an & 0xff;
}

/** Writes the question `a`, type A, class IN at 12; returns where it ends. */
function question(buf: Uint8Array): number {
  buf.set([1, 0x61, 0, 0, 1, 0, 1], 12);
  return 19;
}

/**
 * Writes, at `p`, a record of type 99 (kept by no parser) whose RDATA is `rdlength` bytes, with the root as
 * owner; returns where its RDATA starts.
 */
function unknownRecord(buf: Uint8Array, p: number, rdlength: number): number {
  buf.set([0, 0, 99, 0, 1, 0, 0, 0, 0, rdlength >> 8, rdlength & 0xff], p);
  return p + 11;
}

/** Writes, at `p`, an A record 192.0.2.1 whose owner is a pointer to `target`; returns where it ends. */
function aRecord(buf: Uint8Array, p: number, target: number): number {
  buf.set([0xc0 | (target >> 8), target & 0xff, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1], p);
  return p + 16;
}

/**
 * `size` bytes: the question `a`, then an unknown record holding a chain of `chain` pointers, each to the
 * one before and the first to the question, then as many A records as fit, each owned by the chain's last
 * pointer. Every answer is named `a`, at the end of the whole chain: a parser that walks a name from its
 * first pointer walks the chain once per answer.
 */
export function pointerChain(size: number, chain: number): Crafted {
  const buf = new Uint8Array(size);
  let p = question(buf);
  p = unknownRecord(buf, p, 2 * chain);
  let prev = 12;
  for (let i = 0; i < chain; i++) {
    buf[p] = 0xc0 | (prev >> 8);
    buf[p + 1] = prev & 0xff;
    prev = p;
    p += 2;
  }
  let answers = 0;
  for (; p + 16 <= size; answers++) p = aRecord(buf, p, prev);
  header(buf, answers + 1);
  return { bytes: buf.subarray(0, p), answers: Math.min(answers, 64) };
}

/**
 * `size` bytes: the question `a`, then an unknown record holding `run` bytes of 0x01 (read from an even
 * offset: labels of one byte, 0x01) ended by a pointer to the question, then as many A records as fit,
 * owned by pointers into the run at ever earlier even offsets (`descending`), or ever later ones. A parser
 * that walks each name from its pointer reads up to `run` / 2 labels per answer. `runName(k)` is the name
 * of an answer whose owner points `2k` bytes into the run.
 */
export function labelRun(size: number, descending: boolean, run = 250): Crafted & { offsets: number[] } {
  const buf = new Uint8Array(size);
  let p = question(buf);
  p = unknownRecord(buf, p, run + 2);
  const start = p;
  buf.fill(1, p, p + run);
  p += run;
  buf[p++] = 0xc0;
  buf[p++] = 12;
  const offsets: number[] = [];
  const labels = run / 2;
  for (let k = 0; p + 16 <= size; k++) {
    const i = k % labels;
    const label = descending ? labels - 1 - i : i;
    offsets.push(label);
    p = aRecord(buf, p, start + 2 * label);
  }
  header(buf, offsets.length + 1);
  return { bytes: buf.subarray(0, p), answers: Math.min(offsets.length, 64), offsets };
}

/** The name an answer of `labelRun` owned by a pointer `2k` bytes into its run of `run` bytes has. */
export function runName(k: number, run = 250): string {
  return `${'\\001.'.repeat(run / 2 - k)}a`;
}

/**
 * At most `size` bytes: the question `q` and a CNAME chain `q` → n0 → n1 → … whose links after the first
 * are written last first, so that finding each next link by comparing names scans every CNAME. The names
 * are `nameBytes` bytes (0x01 then their index), one length, alike but for their last byte, and so 4 times
 * as many characters in presentation form. The chain ends at the last name (`chainEnd`).
 */
export function cnameChain(size: number, nameBytes = 40): Crafted & { chainEnd: string } {
  const buf = new Uint8Array(size);
  buf.set([1, 0x71, 0, 0, 1, 0, 1], 12);
  let p = 19;
  const name = (j: number) => {
    const at = p;
    buf[p++] = nameBytes;
    buf.fill(1, p, p + nameBytes - 1);
    p += nameBytes - 1;
    buf[p++] = j;
    buf[p++] = 0;
    return at;
  };
  const pointer = (t: number) => {
    buf[p++] = 0xc0 | (t >> 8);
    buf[p++] = t & 0xff;
  };
  const fixed = (rdlength: number) => {
    buf.set([0, 5, 0, 1, 0, 0, 0, 60, rdlength >> 8, rdlength & 0xff], p);
    p += 10;
  };
  const per = nameBytes + 2 + 10 + 2;
  const n = Math.min(64, Math.floor((size - p - 12 - nameBytes - 2) / per) + 1);
  const at: number[] = new Array<number>(n).fill(-1);
  // q → n0, n0 in place.
  pointer(12);
  fixed(nameBytes + 2);
  at[0] = name(0);
  for (let j = n - 2; j >= 0; j--) {
    if (at[j] >= 0) pointer(at[j]);
    else at[j] = name(j);
    if (at[j + 1] >= 0) {
      fixed(2);
      pointer(at[j + 1]);
    } else {
      fixed(nameBytes + 2);
      at[j + 1] = name(j + 1);
    }
  }
  header(buf, n);
  const chainEnd = '\\001'.repeat(nameBytes - 1) + presentByte(n - 1);
  return { bytes: buf.subarray(0, p), answers: n, chainEnd };
}

/** One label byte in presentation form (RFC 1035 §5.1): printable ASCII as is, '.' and '\' after a '\', any other byte as \DDD. */
function presentByte(b: number): string {
  if (b === 0x2e || b === 0x5c) return `\\${String.fromCharCode(b)}`;
  if (b > 0x20 && b < 0x7f) return String.fromCharCode(b);
  return `\\${String(b).padStart(3, '0')}`;
}
