import { mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BaselineTable,
  F_CLOSED_START,
  F_LAST_READ,
  F_TX_BYTES,
  REC_F64,
  REC_U32,
  RECORD_BYTES,
  STATE_CLOSED,
  STATE_LIVE,
  U_GEN,
  U_STATE,
} from './baseline-table.js';
import {
  appendJournal,
  checkpointId,
  decodeCheckpoint,
  encodeCheckpoint,
  encodeJournalFrame,
  encodeJournalHeader,
  journalPath,
  loadCheckpoint,
  MAGIC,
  type OriginCheckpoint,
  replayJournal,
  writeCheckpoint,
} from './checkpoint.js';

function table(n: number, seed: number): BaselineTable {
  const t = new BaselineTable();
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
    expect(() => decodeCheckpoint(spoilt((b) => b.writeUInt32LE(3, 8)))).toThrow(
      /format version 3; this netmon reads versions 1 and 2/,
    );
    expect(() => decodeCheckpoint(spoilt((b) => b.writeUInt32BE(0x01020304, 12)))).toThrow(
      /other byte order/,
    );
    expect(() => decodeCheckpoint(spoilt((b) => b.writeUInt32LE(48, 16)))).toThrow(/records of 48 bytes/);
    expect(() => decodeCheckpoint(good.subarray(0, good.length - 56))).toThrow(/checksum/);
    expect(() => decodeCheckpoint(spoilt((b) => (b[1000] ^= 1)))).toThrow(/checksum/);
  });
});

describe('state file versions', () => {
  it('reads version 1: id 0, and a tombstone holds no start (version 1 kept its last reading there)', () => {
    const buf = encodeCheckpoint(state(), 5);
    expect(checkpointId(buf)).toBe(5);
    buf.writeUInt32LE(1, 8);
    buf.writeUInt32LE(0, 28);
    const [o] = decodeCheckpoint(buf);
    expect(checkpointId(buf)).toBe(0);
    for (let e = 0; e < o.table.count; e++) {
      const closed = o.table.u32[REC_U32 * e + U_STATE] === STATE_CLOSED;
      expect(o.table.f64[REC_F64 * e + F_CLOSED_START]).toBe(closed ? 0 : 1.7e12 + e);
    }
  });
});

describe('journal', () => {
  /** A frame changing record `e` of table `t` (tx bytes set to `value`), for origin `origin`. */
  const change = (origin: string, t: BaselineTable, e: number, value: number) => {
    const copy = new BaselineTable();
    const r = REC_U32 * e;
    const c = copy.insert(t.u32[r + 10], t.u32[r + 11]);
    copy.u32.set(t.u32.subarray(r, r + REC_U32), REC_U32 * c);
    copy.f64[REC_F64 * c + F_TX_BYTES] = value;
    return {
      origin,
      baselinePhase: false,
      generation: 9,
      lastSnapshotTime: 123,
      records: copy.recordBytes().slice(),
    };
  };

  it('replays its frames in order over the state file with its id, adding records and origins', () => {
    const base = state();
    const fresh = table(2, 99);
    const journal = Buffer.concat([
      encodeJournalHeader(41),
      encodeJournalFrame([change('conntrack', base[0].table, 5, 1), change('', base[2].table, 0, 2)]),
      encodeJournalFrame([change('conntrack', base[0].table, 5, 3), change('new', fresh, 1, 4)]),
    ]);
    const origins = state();
    expect(replayJournal(journal, 41, origins)).toEqual({ frames: 2, records: 4 });
    const [ct, , empty, added] = origins;
    expect(ct.table.count).toBe(2000);
    expect(ct.table.f64[REC_F64 * 5 + F_TX_BYTES]).toBe(3);
    expect([ct.generation, ct.lastSnapshotTime, empty.generation]).toEqual([9, 123, 9]);
    expect(empty.table.f64[F_TX_BYTES]).toBe(2);
    expect(added.origin).toBe('new');
    expect(added.table.count).toBe(1);
    expect(added.table.f64[F_TX_BYTES]).toBe(4);
    // Another state file's journal changes nothing.
    const other = state();
    expect(replayJournal(journal, 42, other)).toMatchObject({
      frames: 0,
      ignored: expect.stringMatching(/older state file/),
    });
    expect(other[0].table.f64[REC_F64 * 5 + F_TX_BYTES]).toBe(5000);
  });

  it('stops at a frame cut short or zeros (a crash while appending), keeping the frames before it', () => {
    const base = state();
    const frame = (v: number) => encodeJournalFrame([change('conntrack', base[0].table, 5, v)]);
    const whole = Buffer.concat([encodeJournalHeader(7), frame(1), frame(2)]);
    const second = encodeJournalHeader(7).length + frame(1).length;
    for (const cut of [1, RECORD_BYTES, whole.length - second - 3, whole.length - second - 8 - 30]) {
      const o = state();
      const r = replayJournal(whole.subarray(0, whole.length - cut), 7, o);
      expect(r).toEqual({ frames: 1, records: 1, ignored: expect.stringMatching(/incomplete frame/) });
      expect(o[0].table.f64[REC_F64 * 5 + F_TX_BYTES]).toBe(1);
    }
    const zeroed = Buffer.concat([whole.subarray(0, second), Buffer.alloc(frame(2).length + 100)]);
    expect(replayJournal(zeroed, 7, state())).toEqual({
      frames: 1,
      records: 1,
      ignored: expect.stringMatching(/zeros, never written/),
    });
    for (const n of [9, 12, 15]) {
      expect(replayJournal(encodeJournalHeader(7).subarray(0, n), 7, state())).toEqual({
        frames: 0,
        records: 0,
        ignored: expect.stringMatching(/header is incomplete/),
      });
    }
    expect(replayJournal(Buffer.alloc(10), 7, state()).distrust).toBeUndefined();
  });

  it('does not trust a journal with anything else wrong', () => {
    const base = state();
    const frame = (v: number) => encodeJournalFrame([change('conntrack', base[0].table, 5, v)]);
    const whole = Buffer.concat([encodeJournalHeader(7), frame(1), frame(2)]);
    const second = encodeJournalHeader(7).length + frame(1).length;
    const spoilt = (spoil: (b: Buffer) => void) => {
      const b = Buffer.from(whole);
      spoil(b);
      return b;
    };
    const cases: [Buffer, number, RegExp, string][] = [
      [spoilt((b) => (b[b.length - 20] ^= 1)), 1, /checksum mismatch in frame 2/, 'journal_damaged'],
      [spoilt((b) => (b[20 + 8] ^= 1)), 0, /checksum mismatch in frame 1/, 'journal_damaged'],
      // A length grown past the end of the file: not what a crash leaves, as the frame's content says.
      [
        spoilt((b) => b.writeUInt32LE(b.readUInt32LE(16) + 10 * 56, 16)),
        0,
        /frame 1 ends the file early/,
        'journal_damaged',
      ],
      [spoilt((b) => b.writeUInt32LE(3, second)), 1, /frame 2 says it holds 3 bytes/, 'journal_damaged'],
      [
        Buffer.concat([whole, Buffer.from('stray bytes, no frame')]),
        2,
        /frame 3 ends the file early/,
        'journal_damaged',
      ],
      [Buffer.concat([whole, Buffer.from([1, 0, 0])]), 2, /incomplete frame/, ''],
      [spoilt((b) => b.write('X', 0, 'latin1')), 0, /wrong magic/, 'journal_damaged'],
      [Buffer.from('garbage'), 0, /not the start of a journal/, 'journal_damaged'],
      [spoilt((b) => b.writeUInt32LE(2, 8)), 0, /version 2/, 'journal_version'],
    ];
    for (const [buf, frames, problem, distrust] of cases) {
      const r = replayJournal(buf, 7, state());
      expect(r.ignored).toMatch(problem);
      expect(r.frames).toBe(frames);
      expect(r.distrust ?? '').toBe(distrust);
    }
    // The journal of an older write is ignored (the state file holds it); a newer or unrelated one is not
    // trusted.
    expect(replayJournal(whole, 8, state())).toEqual({
      frames: 0,
      records: 0,
      ignored: 'it continues an older state file',
    });
    expect(replayJournal(whole, 7 + 2 ** 20, state()).distrust).toBeUndefined();
    expect(replayJournal(whole, 6, state())).toMatchObject({
      ignored: expect.stringMatching(/newer state file/),
      distrust: 'journal_mismatch',
    });
    expect(replayJournal(whole, 7 + 2 ** 31, state())).toMatchObject({
      ignored: 'it continues another state file',
      distrust: 'journal_mismatch',
    });
  });

  it('is replayed by loadCheckpoint, and removed when the state file is written', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'netmon-delta-journal-'));
    try {
      const file = join(dir, 'delta.state');
      await writeCheckpoint(file, encodeCheckpoint(state(), 3));
      const base = state();
      await appendJournal(file, encodeJournalFrame([change('conntrack', base[0].table, 5, 1)]), {
        id: 3,
        sync: false,
      });
      await appendJournal(file, encodeJournalFrame([change('conntrack', base[0].table, 6, 2)]), {
        sync: true,
        syncDirectory: true,
      });
      const loaded = await loadCheckpoint(file);
      expect(loaded.kind === 'loaded' && [loaded.id, loaded.journal]).toEqual([3, { frames: 2, records: 2 }]);
      await writeCheckpoint(file, encodeCheckpoint(state(), 4));
      expect(await readdir(dir)).toEqual(['delta.state']);
      expect(journalPath(file)).toBe(`${file}.journal`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
  // The agent runs as root: a link planted at the journal's name must not send flow state into another file.
  it('never appends through a link at the journal name', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'netmon-delta-journal-'));
    try {
      const file = join(dir, 'delta.state');
      const victim = join(dir, 'victim');
      await writeFile(victim, 'precious');
      await symlink(victim, journalPath(file));
      const frame = encodeJournalFrame([change('conntrack', state()[0].table, 5, 1)]);
      await expect(appendJournal(file, frame, { sync: false })).rejects.toThrow(/ELOOP/);
      await expect(appendJournal(file, frame, { id: 1, sync: false })).rejects.toThrow(/ELOOP/);
      expect(await readFile(victim, 'utf8')).toBe('precious');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
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
