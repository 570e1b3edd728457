import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  decodeCheckpoint,
  encodeCheckpoint,
  loadCheckpoint,
  MAGIC,
  type OriginCheckpoint,
  writeCheckpoint,
} from './checkpoint.js';
import {
  F_LAST_READ,
  F_TX_BYTES,
  FlowTable,
  REC_F64,
  REC_U32,
  STATE_CLOSED,
  STATE_LIVE,
  U_GEN,
  U_STATE,
} from './flow-table.js';

function table(n: number, seed: number): FlowTable {
  const t = new FlowTable();
  for (let i = 0; i < n; i++) {
    const e = t.insert(Math.imul(i + seed, 0x9e3779b1) >>> 0, i ^ seed);
    t.f64[REC_F64 * e + F_TX_BYTES] = i * 1000;
    t.f64[REC_F64 * e + F_LAST_READ] = 1.7e12 + i;
    t.u32[REC_U32 * e + U_GEN] = 3;
    t.u32[REC_U32 * e + U_STATE] = i % 10 === 0 ? STATE_CLOSED : STATE_LIVE;
  }
  return t;
}

const state = (): OriginCheckpoint[] => [
  {
    origin: 'conntrack',
    baselinePhase: false,
    generation: 3,
    lastSnapshotTime: 1.7e12,
    table: table(2000, 1),
  },
  { origin: 'conntrack/ns-é', baselinePhase: true, generation: 0, lastSnapshotTime: 0, table: table(0, 2) },
  { origin: '', baselinePhase: false, generation: 7, lastSnapshotTime: 5, table: table(3, 3) },
];

describe('state file format', () => {
  it('round-trips every origin, its phase, generation, snapshot time and records', () => {
    const saved = state();
    const buf = encodeCheckpoint(saved);
    expect(buf.subarray(0, 8).toString('latin1')).toBe(MAGIC);
    const loaded = decodeCheckpoint(buf);
    expect(
      loaded.map((o) => [o.origin, o.baselinePhase, o.generation, o.lastSnapshotTime, o.table.count]),
    ).toEqual(saved.map((o) => [o.origin, o.baselinePhase, o.generation, o.lastSnapshotTime, o.table.count]));
    for (let k = 0; k < saved.length; k++) {
      expect(loaded[k].table.recordBytes()).toEqual(saved[k].table.recordBytes());
    }
    // Every byte is written (no leftovers of uninitialised memory).
    expect(encodeCheckpoint(saved)).toEqual(buf);
    // 32-byte header, 32 per origin plus its padded name, 56 per flow.
    expect(buf.length).toBe(32 + 3 * 32 + 16 + 16 + 0 + 2003 * 56);
  });

  it('reads from an unaligned buffer', () => {
    const buf = encodeCheckpoint(state());
    const shifted = Buffer.alloc(buf.length + 3);
    buf.copy(shifted, 3);
    expect(decodeCheckpoint(shifted.subarray(3))[0].table.count).toBe(2000);
  });

  it('says what is wrong with a file it cannot use', () => {
    const good = encodeCheckpoint(state());
    const spoilt = (f: (b: Buffer) => void) => {
      const b = Buffer.from(good);
      f(b);
      return b;
    };
    expect(() => decodeCheckpoint(good.subarray(0, 31))).toThrow(/truncated: 31 bytes/);
    expect(() => decodeCheckpoint(spoilt((b) => b.write('X', 0)))).toThrow(/wrong magic/);
    expect(() => decodeCheckpoint(spoilt((b) => b.writeUInt32LE(2, 8)))).toThrow(
      /format version 2; this netmon reads version 1/,
    );
    expect(() => decodeCheckpoint(spoilt((b) => b.writeUInt32BE(0x01020304, 12)))).toThrow(
      /other byte order/,
    );
    expect(() => decodeCheckpoint(spoilt((b) => b.writeUInt32LE(48, 16)))).toThrow(/records of 48 bytes/);
    expect(() => decodeCheckpoint(good.subarray(0, good.length - 56))).toThrow(/checksum/);
    expect(() => decodeCheckpoint(spoilt((b) => (b[1000] ^= 1)))).toThrow(/checksum/);
  });
});

describe('state file on disk', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'netmon-delta-checkpoint-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes atomically, creating directories, and leaves no temporary file', async () => {
    const file = join(dir, 'a/b/delta.state');
    await writeCheckpoint(file, encodeCheckpoint(state()));
    await writeCheckpoint(file, encodeCheckpoint(state().slice(0, 1)));
    expect(await readdir(join(dir, 'a/b'))).toEqual(['delta.state']);
    const loaded = await loadCheckpoint(file);
    expect(loaded.kind === 'loaded' && loaded.origins.length).toBe(1);
  });

  it('reports a missing file, and moves a damaged one aside', async () => {
    const file = join(dir, 'delta.state');
    expect(await loadCheckpoint(file)).toEqual({ kind: 'missing' });
    await writeFile(file, 'junk');
    expect(await loadCheckpoint(file)).toEqual({
      kind: 'corrupt',
      reason: 'truncated: 4 bytes, shorter than the 32-byte header',
      movedTo: `${file}.corrupt`,
    });
    expect(await readFile(`${file}.corrupt`, 'utf8')).toBe('junk');
    expect(await loadCheckpoint(file)).toEqual({ kind: 'missing' });
  });
});
