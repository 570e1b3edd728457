import { describe, expect, it } from 'vitest';
import {
  addressWords,
  BaselineTable,
  F_TX_BYTES,
  FP,
  fingerprint,
  fingerprintWords,
  REC_F64,
  REC_U32,
  RECORD_BYTES,
  STATE_LIVE,
  U_FP_HI,
  U_FP_LO,
  U_STATE,
} from './baseline-table.js';
import { rng } from './testdata/rng.js';

const keyOf = (lo: number, hi: number) => `${lo}:${hi}`;

describe('fingerprint', () => {
  const src = new Uint8Array(32);
  const dst = new Uint8Array(32);
  src.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1], 16);
  dst.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2], 16);
  const fp = (...args: [number, number, number, number, number, number]) => {
    fingerprint(src, dst, 1, ...args);
    return [FP[0], FP[1]];
  };

  it('depends on every part of the key', () => {
    const base = fp(40000, 443, 4, 6, 0, 7);
    expect(fp(40000, 443, 4, 6, 0, 7)).toEqual(base);
    const variants = [
      fp(40001, 443, 4, 6, 0, 7),
      fp(40000, 444, 4, 6, 0, 7),
      fp(40000, 443, 6, 6, 0, 7),
      fp(40000, 443, 4, 17, 0, 7),
      fp(40000, 443, 4, 6, 1, 7),
      fp(40000, 443, 4, 6, 0, 8),
      fp(443, 40000, 4, 6, 0, 7),
    ];
    for (const v of variants) {
      expect(v[0]).not.toBe(base[0]);
      expect(v[1]).not.toBe(base[1]);
    }
    src[31] = 9;
    expect(fp(40000, 443, 4, 6, 0, 7)).not.toEqual(base);
    src[31] = 1;
    dst[16] = 1;
    expect(fp(40000, 443, 4, 6, 0, 7)).not.toEqual(base);
    dst[16] = 0;
  });

  it('gives the same result from address words as from bytes, aligned or not', () => {
    const random = rng(3);
    const buf = new Uint8Array(16 * 65 + 4);
    for (let i = 0; i < buf.length; i++) buf[i] = random() * 256;
    const a = buf.subarray(0, 16 * 64);
    const b = buf.subarray(16, 16 * 65);
    const a32 = addressWords(a)!;
    const b32 = addressWords(b)!;
    expect(addressWords(buf.subarray(1, 17))).toBeNull();
    for (let row = 0; row < 64; row++) {
      fingerprint(a, b, row, row, 443, 4, 6, 3, 0xfffffff0 + row);
      const bytes = [FP[0], FP[1]];
      fingerprintWords(a32, b32, row, row, 443, 4, 6, 3, 0xfffffff0 + row);
      expect([FP[0], FP[1]]).toEqual(bytes);
    }
  });

  it('spreads sequential keys without 64-bit collisions (256k ports × ids)', () => {
    const seen = new Set<string>();
    const lows = new Set<number>();
    for (let id = 0; id < 4; id++) {
      for (let port = 0; port < 65536; port++) {
        fingerprint(src, dst, 1, port, 443, 4, 6, 0, id);
        seen.add(keyOf(FP[0], FP[1]));
        lows.add(FP[0]);
      }
    }
    expect(seen.size).toBe(4 * 65536);
    // 2^18 random 32-bit values collide ~8 times on average: the low half alone behaves like one.
    expect(4 * 65536 - lows.size).toBeLessThan(40);
  });
});

describe('BaselineTable', () => {
  it('inserts, finds and removes like a Map, through growth and shrinking', () => {
    const random = rng(42);
    const t = new BaselineTable();
    const model = new Map<string, number>();
    const keys: [number, number][] = [];
    for (let step = 0; step < 300_000; step++) {
      const grow = step < 150_000 ? random() < 0.8 : random() < 0.2;
      if (grow || keys.length === 0) {
        const lo = (random() * 2 ** 32) >>> 0;
        // A few keys share their low half (same bucket, long probe runs).
        const hi = random() < 0.05 && keys.length > 0 ? keys[keys.length - 1][1] : (random() * 2 ** 32) >>> 0;
        const lo2 = random() < 0.05 && keys.length > 0 ? keys[keys.length - 1][0] : lo;
        if (model.has(keyOf(lo2, hi))) continue;
        const e = t.insert(lo2, hi);
        t.f64[REC_F64 * e + F_TX_BYTES] = step;
        model.set(keyOf(lo2, hi), step);
        keys.push([lo2, hi]);
      } else {
        const j = Math.floor(random() * keys.length);
        const [lo, hi] = keys[j];
        keys[j] = keys[keys.length - 1];
        keys.pop();
        const e = t.find(lo, hi);
        expect(e).toBeGreaterThanOrEqual(0);
        t.remove(e);
        model.delete(keyOf(lo, hi));
      }
      if (step % 50_000 === 0) t.shrinkToFit();
    }
    t.shrinkToFit();
    expect(t.count).toBe(model.size);
    for (const [lo, hi] of keys) {
      const e = t.find(lo, hi);
      expect(e).toBeGreaterThanOrEqual(0);
      expect(t.f64[REC_F64 * e + F_TX_BYTES]).toBe(model.get(keyOf(lo, hi)));
    }
    expect(t.find(1, 2)).toBe(-1);
  });

  it('holds a flow in well under 100 bytes', () => {
    const t = new BaselineTable();
    for (let i = 0; i < 100_000; i++) t.insert(Math.imul(i, 0x9e3779b1) >>> 0, i);
    expect(t.byteSize / t.count).toBeLessThan(100);
  });

  it('rebuilds from its records and refuses duplicates and unknown states', () => {
    const t = new BaselineTable();
    for (let i = 0; i < 5000; i++) {
      const e = t.insert(i * 7919, i);
      t.u32[REC_U32 * e + U_STATE] = STATE_LIVE;
      t.f64[REC_F64 * e + F_TX_BYTES] = i;
    }
    const bytes = t.recordBytes().slice();
    expect(bytes.length).toBe(5000 * RECORD_BYTES);
    const copy = BaselineTable.fromRecords(bytes, 5000);
    expect(copy.count).toBe(5000);
    for (let i = 0; i < 5000; i++) {
      const e = copy.find(i * 7919, i);
      expect(copy.f64[REC_F64 * e + F_TX_BYTES]).toBe(i);
    }
    const dup = bytes.slice();
    const view = new Uint32Array(dup.buffer);
    view[REC_U32 * 1 + U_FP_LO] = view[U_FP_LO];
    view[REC_U32 * 1 + U_FP_HI] = view[U_FP_HI];
    expect(() => BaselineTable.fromRecords(dup, 5000)).toThrow(/repeats the key/);
    const bad = bytes.slice();
    new Uint32Array(bad.buffer)[REC_U32 * 3 + U_STATE] = 7;
    expect(() => BaselineTable.fromRecords(bad, 5000)).toThrow(/unknown state 7/);
  });
});
