// The delta processor's state file: every origin's baseline table, written atomically so that after a crash
// the restored baselines are exactly those whose deltas were already passed on. Between two writes of the
// whole file, batches that are not snapshots (events, plain readings) append what they changed to a
// journal beside it, so the file need not be rewritten (53 MiB at a million flows) several times a second.
//
// State file, format version 2. All header fields little-endian; records are the table's own bytes, in the
// byte order of the machine that wrote them (the header says which, and a reader of the other order refuses).
//
//   header, 32 bytes
//     0   8  magic "NMDELTA\0"
//     8   4  version (2; version 1 is read too)
//     12  4  byte-order mark 0x01020304, written in the machine's order
//     16  4  record size in bytes (56)
//     20  4  number of origins
//     24  4  CRC-32 of everything after the header
//     28  4  id of this write, which its journal names (version 1: reserved, 0)
//   per origin, 32 bytes + name + records
//     0   4  name length in bytes (UTF-8)
//     4   4  flags: bit 0 = still in its baseline phase
//     8   4  generation (snapshots processed)
//     12  4  records
//     16  8  time of the last snapshot (ms since the epoch, float64; 0 = none)
//     24  8  reserved (0)
//     32  .  name, zero-padded to a multiple of 8 bytes
//     .   .  records × 56 bytes (see baseline-table.ts)
//
// Journal (`<state file>.journal`), removed whenever the state file is written:
//   header, 16 bytes: magic "NMDJRNL\0", version (1), id of the state file it continues
//   frames, one per batch: payload length (u32), CRC-32 of the payload (u32), then the payload: number of
//     origins (u32), reserved (u32, 0), and per origin the same header, name and records as above — the
//     records of the flows the batch changed, as they were after it.
// A journal continues the state file with its id. One naming an earlier write (up to 2^20 writes back) is
// what a crash between rewriting the state file and removing the journal leaves: the state file holds all of
// it, so it is ignored. Reading stops at a last frame cut short, or zeros where it should be: what a crash
// while appending leaves, a batch whose deltas were not passed on, as an append completes (and, for a batch
// with deltas, reaches the disk) before they are. Anything else — a frame that fails its checksum or does not
// parse, a length that does not match what the frame holds, bytes after the last frame that are not one, a
// wrong magic, an unknown version, a journal of a newer or of another state file, one that cannot be read,
// or one whose state file is gone — may have hidden batches whose deltas were passed on: the state is not
// trusted (see loadCheckpoint).
import { randomInt } from 'node:crypto';
import { constants } from 'node:fs';
import { access, lstat, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import {
  NotRegularFileError,
  openRegularFile,
  readRegularFile,
  setAside,
  syncDirectory,
  systemError,
  writeFileAtomic,
} from '@netmon/core';
import {
  BaselineTable,
  F_CLOSED_START,
  REC_F64,
  REC_U32,
  RECORD_BYTES,
  STATE_CLOSED,
  U_STATE,
} from './baseline-table.js';

export const MAGIC = 'NMDELTA\0';
export const VERSION = 2;
export const JOURNAL_MAGIC = 'NMDJRNL\0';
export const JOURNAL_VERSION = 1;
const HEADER_BYTES = 32;
const ORIGIN_HEADER_BYTES = 32;
const JOURNAL_HEADER_BYTES = 16;
const FRAME_HEADER_BYTES = 8;
const BYTE_ORDER_MARK = 0x01020304;

/** The journal that continues a state file. */
export const journalPath = (file: string): string => `${file}.journal`;

/** One origin's state as the checkpoint holds it. */
export interface OriginCheckpoint {
  origin: string;
  baselinePhase: boolean;
  generation: number;
  lastSnapshotTime: number;
  table: BaselineTable;
}

/** One origin's part of a journal frame: its fields after the batch, and the records the batch changed. */
export interface JournalSection {
  origin: string;
  baselinePhase: boolean;
  generation: number;
  lastSnapshotTime: number;
  /** Whole records (56 bytes each). */
  records: Uint8Array;
}

/** Raised for a state file that cannot be used: its message says what is wrong with it. */
export class CheckpointFormatError extends Error {}

const isMissing = (err: unknown): boolean => {
  const code = (err as NodeJS.ErrnoException)?.code;
  // ENOTDIR: a part of the path is a file, so there is nothing there.
  return code === 'ENOENT' || code === 'ENOTDIR';
};

/**
 * Why a restart did not trust the saved state and started without it, each origin's first snapshot a new
 * baseline (the `reason` of netmon_delta_flows_rebaselined).
 */
export type DistrustReason =
  | 'state_file_damaged'
  | 'state_file_unreadable'
  | 'state_file_missing'
  | 'journal_damaged'
  | 'journal_version'
  | 'journal_mismatch'
  | 'journal_unreadable';

const pad8 = (n: number) => (n + 7) & ~7;

/** A fresh id for the first state file this process writes when it found none to continue. */
export const newCheckpointId = (): number => randomInt(1, 2 ** 32);

/** The id after `id` (never 0, which marks a version-1 file). */
export const nextCheckpointId = (id: number): number => (id + 1) >>> 0 || 1;

function originBytes(name: Buffer, records: number): number {
  return ORIGIN_HEADER_BYTES + pad8(name.length) + records * RECORD_BYTES;
}

/** Writes one origin's header, name and records at `off`; returns the offset after them. */
function putOrigin(
  buf: Buffer,
  view: DataView,
  off: number,
  name: Buffer,
  o: { baselinePhase: boolean; generation: number; lastSnapshotTime: number },
  records: Uint8Array,
): number {
  view.setUint32(off, name.length, true);
  view.setUint32(off + 4, o.baselinePhase ? 1 : 0, true);
  view.setUint32(off + 8, o.generation >>> 0, true);
  view.setUint32(off + 12, records.length / RECORD_BYTES, true);
  view.setFloat64(off + 16, o.lastSnapshotTime, true);
  view.setFloat64(off + 24, 0, true);
  off += ORIGIN_HEADER_BYTES;
  name.copy(buf, off);
  buf.fill(0, off + name.length, off + pad8(name.length));
  off += pad8(name.length);
  buf.set(records, off);
  return off + records.length;
}

interface OriginPart {
  origin: string;
  baselinePhase: boolean;
  generation: number;
  lastSnapshotTime: number;
  records: Uint8Array;
  count: number;
  end: number;
}

/** Reads one origin's header, name and records at `off` (within `limit`); throws what is wrong. */
function getOrigin(buf: Uint8Array, view: DataView, off: number, limit: number, i: number): OriginPart {
  if (off + ORIGIN_HEADER_BYTES > limit)
    throw new CheckpointFormatError(`truncated in the header of origin ${i + 1}`);
  const nameLength = view.getUint32(off, true);
  const flags = view.getUint32(off + 4, true);
  const generation = view.getUint32(off + 8, true);
  const count = view.getUint32(off + 12, true);
  const lastSnapshotTime = view.getFloat64(off + 16, true);
  off += ORIGIN_HEADER_BYTES;
  const recordsAt = off + pad8(nameLength);
  if (recordsAt + count * RECORD_BYTES > limit)
    throw new CheckpointFormatError(`truncated in origin ${i + 1}`);
  const origin = Buffer.from(buf.buffer, buf.byteOffset + off, nameLength).toString('utf8');
  if (!(lastSnapshotTime >= 0)) {
    throw new CheckpointFormatError(`origin "${origin}" has snapshot time ${lastSnapshotTime}`);
  }
  const end = recordsAt + count * RECORD_BYTES;
  return {
    origin,
    baselinePhase: (flags & 1) === 1,
    generation,
    lastSnapshotTime,
    records: buf.subarray(recordsAt, end),
    count,
    end,
  };
}

/** The state as one buffer, copied: the tables may change while it is being written. */
export function encodeCheckpoint(origins: readonly OriginCheckpoint[], id = 0): Buffer {
  const names = origins.map((o) => Buffer.from(o.origin, 'utf8'));
  let total = HEADER_BYTES;
  origins.forEach((o, i) => {
    total += originBytes(names[i], o.table.count);
  });
  // Not zero-filled (56 MB at a million flows): every byte is written below, padding included.
  const buf = Buffer.allocUnsafeSlow(total);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  buf.fill(0, 0, HEADER_BYTES);
  buf.write(MAGIC, 0, 'latin1');
  view.setUint32(8, VERSION, true);
  new Uint32Array(buf.buffer, buf.byteOffset + 12, 1)[0] = BYTE_ORDER_MARK;
  view.setUint32(16, RECORD_BYTES, true);
  view.setUint32(20, origins.length, true);
  view.setUint32(28, id >>> 0, true);
  let off = HEADER_BYTES;
  origins.forEach((o, i) => {
    off = putOrigin(buf, view, off, names[i], o, o.table.recordBytes());
  });
  view.setUint32(24, crc32(buf.subarray(HEADER_BYTES)), true);
  return buf;
}

/** The id a state file names its journal by (0 for version 1); call after `decodeCheckpoint` accepted it. */
export function checkpointId(buf: Uint8Array): number {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(28, true);
}

/** Parses a state file; throws CheckpointFormatError saying what is wrong. */
export function decodeCheckpoint(buf: Uint8Array): OriginCheckpoint[] {
  const fail = (what: string): never => {
    throw new CheckpointFormatError(what);
  };
  if (buf.length < HEADER_BYTES)
    fail(`truncated: ${buf.length} bytes, shorter than the ${HEADER_BYTES}-byte header`);
  if (Buffer.from(buf.buffer, buf.byteOffset, 8).toString('latin1') !== MAGIC) {
    fail('not a netmon delta state file (wrong magic)');
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const version = view.getUint32(8, true);
  if (version !== VERSION && version !== 1) {
    fail(`format version ${version}; this netmon reads versions 1 and ${VERSION}`);
  }
  const bom = new Uint32Array(new Uint8Array(buf.subarray(12, 16)).buffer)[0];
  if (bom !== BYTE_ORDER_MARK) fail('written on a machine of the other byte order');
  const recordBytes = view.getUint32(16, true);
  if (recordBytes !== RECORD_BYTES) fail(`records of ${recordBytes} bytes; expected ${RECORD_BYTES}`);
  const originCount = view.getUint32(20, true);
  const crc = view.getUint32(24, true);
  if (crc32(buf.subarray(HEADER_BYTES)) !== crc) fail('checksum mismatch (truncated or damaged)');
  const out: OriginCheckpoint[] = [];
  const seen = new Set<string>();
  let off = HEADER_BYTES;
  for (let i = 0; i < originCount; i++) {
    const part = getOrigin(buf, view, off, buf.length, i);
    if (seen.has(part.origin)) fail(`origin "${part.origin}" appears twice`);
    seen.add(part.origin);
    let table: BaselineTable;
    try {
      table = BaselineTable.fromRecords(part.records, part.count);
    } catch (err) {
      return fail(`origin "${part.origin}": ${(err as Error).message}`);
    }
    // Version 1 kept a tombstone's last reading where version 2 keeps its start: that reading is no start.
    if (version === 1) {
      for (let e = 0; e < table.count; e++) {
        if (table.u32[REC_U32 * e + U_STATE] === STATE_CLOSED) table.f64[REC_F64 * e + F_CLOSED_START] = 0;
      }
    }
    const { origin, baselinePhase, generation, lastSnapshotTime } = part;
    out.push({ origin, baselinePhase, generation, lastSnapshotTime, table });
    off = part.end;
  }
  if (off !== buf.length) fail(`${buf.length - off} unexpected bytes after the last origin`);
  return out;
}

/** The journal's header for the state file with this id. */
export function encodeJournalHeader(id: number): Buffer {
  const buf = Buffer.alloc(JOURNAL_HEADER_BYTES);
  buf.write(JOURNAL_MAGIC, 0, 'latin1');
  buf.writeUInt32LE(JOURNAL_VERSION, 8);
  buf.writeUInt32LE(id >>> 0, 12);
  return buf;
}

/** One journal frame: the sections of the origins a batch changed. */
export function encodeJournalFrame(sections: readonly JournalSection[]): Buffer {
  const names = sections.map((s) => Buffer.from(s.origin, 'utf8'));
  let payload = 8;
  sections.forEach((s, i) => {
    payload += originBytes(names[i], s.records.length / RECORD_BYTES);
  });
  const buf = Buffer.alloc(FRAME_HEADER_BYTES + payload);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  view.setUint32(0, payload, true);
  view.setUint32(FRAME_HEADER_BYTES, sections.length, true);
  let off = FRAME_HEADER_BYTES + 8;
  sections.forEach((s, i) => {
    off = putOrigin(buf, view, off, names[i], s, s.records);
  });
  view.setUint32(4, crc32(buf.subarray(FRAME_HEADER_BYTES)), true);
  return buf;
}

/** What a journal added to its state file. */
export interface JournalReplay {
  frames: number;
  records: number;
  /** Why the journal, or its end, was not used (absent: all of it was). */
  ignored?: string;
  /**
   * Set when the journal cannot be trusted: it may have held batches whose deltas were passed on, so
   * neither it nor its state file may be used. Absent when what was not used is only what a crash left.
   */
  distrust?: Extract<DistrustReason, `journal_${string}`>;
}

/** How many state file writes (failed ones count) a journal may lag behind its state file: an older one. */
const OLDER_IDS = 2 ** 20;

/** Every byte of `buf` from `from` on is zero. */
function zeros(buf: Uint8Array, from: number): boolean {
  for (let i = from; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

/** Multiple of 8 at or above n, without 32-bit overflow (n is read from a file that may be damaged). */
const pad8Safe = (n: number) => n + ((8 - (n % 8)) % 8);

/**
 * A frame the journal ends in before its declared length: why it cannot be the start of a frame of that
 * length (a damaged length field hides the frames after it), or undefined when it can be (what a crash
 * while appending leaves). `start` is where its payload begins.
 */
function cutShortProblem(
  buf: Uint8Array,
  view: DataView,
  start: number,
  payload: number,
): string | undefined {
  const end = buf.length;
  if (end - start < 8) return undefined;
  const n = view.getUint32(start, true);
  if (n === 0 || view.getUint32(start + 4, true) !== 0) return 'does not begin as a frame does';
  let need = 8;
  let at = start + 8;
  let i = 0;
  for (; i < n && at + ORIGIN_HEADER_BYTES <= end && need <= payload; i++) {
    if (view.getUint32(at + 24, true) !== 0 || view.getUint32(at + 28, true) !== 0) {
      return `does not hold an origin where its origin ${i + 1} should be`;
    }
    const size =
      ORIGIN_HEADER_BYTES + pad8Safe(view.getUint32(at, true)) + view.getUint32(at + 12, true) * RECORD_BYTES;
    need += size;
    at += size;
  }
  if (need > payload || (i === n && need !== payload)) {
    return `says it holds ${payload} bytes, but what it holds is not that long`;
  }
  return undefined;
}

/** The journal's first `buf.length` (< 16) bytes could be the start of a header this netmon writes. */
function headerPrefix(buf: Uint8Array): boolean {
  const magic = Buffer.from(JOURNAL_MAGIC, 'latin1');
  const n = Math.min(buf.length, magic.length);
  if (!magic.subarray(0, n).equals(Buffer.from(buf.buffer, buf.byteOffset, n))) return false;
  return (
    buf.length < 12 || Buffer.from(buf.buffer, buf.byteOffset, buf.length).readUInt32LE(8) === JOURNAL_VERSION
  );
}

/**
 * Applies a journal to the origins of the state file with id `id`: frame by frame, in order, until its end
 * or the end a crash while appending left. Origins it names that the state file lacks are added. When it
 * meets anything else (see the top of this file) it stops and sets `distrust`: the origins are then only
 * partly updated, and must not be used.
 */
export function replayJournal(buf: Uint8Array, id: number, origins: OriginCheckpoint[]): JournalReplay {
  const result: JournalReplay = { frames: 0, records: 0 };
  const damaged = (what: string): JournalReplay => ({
    ...result,
    ignored: what,
    distrust: 'journal_damaged',
  });
  if (buf.length < JOURNAL_HEADER_BYTES) {
    if (zeros(buf, 0) || headerPrefix(buf)) {
      result.ignored = 'its header is incomplete (a crash while it was started)';
      return result;
    }
    return damaged(`its ${buf.length} bytes are not the start of a journal`);
  }
  if (Buffer.from(buf.buffer, buf.byteOffset, 8).toString('latin1') !== JOURNAL_MAGIC) {
    return damaged('not a journal of a delta state file (wrong magic)');
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const version = view.getUint32(8, true);
  if (version !== JOURNAL_VERSION) {
    return {
      ...result,
      ignored: `journal format version ${version}; this netmon reads version ${JOURNAL_VERSION}`,
      distrust: 'journal_version',
    };
  }
  const journalId = view.getUint32(12, true);
  if (journalId !== id) {
    if ((id - journalId) >>> 0 <= OLDER_IDS) {
      // Written before the state file was last rewritten (a crash before the old journal was removed).
      result.ignored = 'it continues an older state file';
      return result;
    }
    const newer = (journalId - id) >>> 0 <= OLDER_IDS;
    return {
      ...result,
      ignored: newer
        ? 'it continues a newer state file than this one, which is older than what was passed on'
        : 'it continues another state file',
      distrust: 'journal_mismatch',
    };
  }
  const byName = new Map(origins.map((o) => [o.origin, o]));
  let off = JOURNAL_HEADER_BYTES;
  while (off < buf.length) {
    const left = buf.length - off;
    const frame = result.frames + 1;
    // A frame's length is never 0, so zeros are not a frame: a crash before the appended data reached the
    // disk (the file's new size did).
    if (zeros(buf, off)) {
      result.ignored = `its last ${left} bytes are zeros, never written (a crash while appending)`;
      return result;
    }
    const payload = left >= FRAME_HEADER_BYTES ? view.getUint32(off, true) : 0;
    if (left >= FRAME_HEADER_BYTES && payload < 8) {
      return damaged(
        `frame ${frame} says it holds ${payload} bytes, too few for a frame; ` +
          `it and the ${left} bytes from it are ignored`,
      );
    }
    if (left < FRAME_HEADER_BYTES || left - FRAME_HEADER_BYTES < payload) {
      const problem =
        left < FRAME_HEADER_BYTES ? undefined : cutShortProblem(buf, view, off + FRAME_HEADER_BYTES, payload);
      if (problem !== undefined) {
        return damaged(
          `frame ${frame} ends the file early and ${problem}; it and the ${left} bytes from it are ignored`,
        );
      }
      result.ignored = `its last ${left} bytes are an incomplete frame (a crash while it was appended)`;
      return result;
    }
    const start = off + FRAME_HEADER_BYTES;
    const end = start + payload;
    if (crc32(buf.subarray(start, end)) !== view.getUint32(off + 4, true)) {
      return damaged(
        `checksum mismatch in frame ${frame}; it and the ${buf.length - end} bytes after it are ignored`,
      );
    }
    try {
      const parts: OriginPart[] = [];
      let at = start + 8;
      const n = view.getUint32(start, true);
      for (let i = 0; i < n; i++) {
        const part = getOrigin(buf, view, at, end, i);
        parts.push(part);
        at = part.end;
      }
      if (at !== end) throw new CheckpointFormatError(`${end - at} unexpected bytes in the frame`);
      // All of a frame or nothing: its records are checked before any is applied.
      for (const part of parts) BaselineTable.checkRecords(part.records);
      for (const part of parts) {
        let o = byName.get(part.origin);
        if (o === undefined) {
          o = {
            origin: part.origin,
            baselinePhase: true,
            generation: 0,
            lastSnapshotTime: 0,
            table: new BaselineTable(),
          };
          byName.set(part.origin, o);
          origins.push(o);
        }
        o.table.upsertRecords(part.records);
        o.baselinePhase = part.baselinePhase;
        o.generation = part.generation;
        o.lastSnapshotTime = part.lastSnapshotTime;
        result.records += part.count;
      }
    } catch (err) {
      return damaged(
        `frame ${frame} does not parse (${(err as Error).message}); it and what follows are ignored`,
      );
    }
    result.frames++;
    off = end;
  }
  return result;
}

/**
 * Writes the state atomically (see `writeFileAtomic`), then removes the journal, which the new file
 * contains. A crash at any point leaves either the old file (with its journal) or the new one (with no
 * journal, or an old one it does not match). Creates missing directories.
 */
export async function writeCheckpoint(file: string, data: Uint8Array): Promise<void> {
  await writeFileAtomic(file, data);
  // unlink, not rm: rm's error for a directory is no system error (it has a positive errno).
  await unlink(journalPath(file)).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

/**
 * Appends a frame to the journal of `file`. With `id`, the journal is started afresh for the state file
 * with that id. With `sync`, the frame is on disk (fsync) when this resolves; without, it is in the page
 * cache, which outlives the process (kill -9) but not the machine; `syncDirectory` makes the journal's
 * name durable too (once after it was started).
 */
export async function appendJournal(
  file: string,
  frame: Uint8Array,
  opts: { id?: number; sync: boolean; syncDirectory?: boolean },
): Promise<void> {
  const journal = journalPath(file);
  const fresh = opts.id !== undefined;
  // O_NOFOLLOW: run as root, a link planted at the journal's name must not take the append elsewhere.
  const flags =
    constants.O_WRONLY |
    constants.O_CREAT |
    constants.O_NOFOLLOW |
    (fresh ? constants.O_TRUNC : constants.O_APPEND);
  const handle = await openRegularFile(journal, flags, 0o600);
  try {
    await handle.writeFile(fresh ? Buffer.concat([encodeJournalHeader(opts.id ?? 0), frame]) : frame);
    if (opts.sync) await handle.datasync();
  } finally {
    await handle.close();
  }
  // A new file's name must be on disk too before what it holds survives a power cut.
  if (opts.syncDirectory) await syncDirectory(path.dirname(journal));
}

export type LoadResult =
  | { kind: 'missing' }
  | { kind: 'loaded'; origins: OriginCheckpoint[]; bytes: number; id: number; journal: JournalReplay }
  | { kind: 'unreadable'; reason: string }
  | { kind: 'corrupt'; reason: string; movedTo?: string; journalMovedTo?: string }
  | {
      /** The state file was read, or is gone, but its journal cannot be trusted: both were set aside. */
      kind: 'untrusted';
      distrust: Exclude<DistrustReason, 'state_file_damaged' | 'state_file_unreadable'>;
      reason: string;
      movedTo?: string;
      journalMovedTo?: string;
    };

const errorText = (err: unknown): string =>
  err instanceof NotRegularFileError ? err.message : systemError(err);

/** Sets the journal of `file` aside as `<journal>.<reason>`; undefined when there is none or it stays. */
async function setJournalAside(file: string, reason: string): Promise<string | undefined> {
  const aside = await setAside(journalPath(file), reason);
  return 'movedTo' in aside ? aside.movedTo : undefined;
}

/**
 * Reads the state file and replays its journal. A damaged state file is renamed to `file.corrupt` (and its
 * journal to `file.journal.corrupt`) so the next write does not hide it. A state file whose journal cannot
 * be trusted, or a journal without a state file, is renamed to `file.untrusted` (and
 * `file.journal.untrusted`): neither is used, now or after another restart. The end a crash left on a
 * journal is only reported (the next write replaces the journal).
 */
export async function loadCheckpoint(file: string): Promise<LoadResult> {
  let buf: Buffer;
  try {
    buf = await readRegularFile(file);
  } catch (err) {
    if (!isMissing(err)) return { kind: 'unreadable', reason: errorText(err) };
    // A journal is started only after its state file was written: the state it continued is lost.
    const left = await lstat(journalPath(file)).then(
      () => true,
      () => false,
    );
    if (!left) return { kind: 'missing' };
    const journalMovedTo = await setJournalAside(file, 'untrusted');
    return {
      kind: 'untrusted',
      distrust: 'state_file_missing',
      reason: 'the state file it continues is gone',
      ...(journalMovedTo && { journalMovedTo }),
    };
  }
  let origins: OriginCheckpoint[];
  try {
    origins = decodeCheckpoint(buf);
  } catch (err) {
    // Whatever went wrong, a file that cannot be decoded is not trusted (and never crashes the agent).
    const reason = err instanceof Error ? err.message : String(err);
    const aside = await setAside(file, 'corrupt');
    const journalMovedTo = await setJournalAside(file, 'corrupt');
    return {
      kind: 'corrupt',
      reason,
      ...('movedTo' in aside && { movedTo: aside.movedTo }),
      ...(journalMovedTo && { journalMovedTo }),
    };
  }
  const id = checkpointId(buf);
  let journal: JournalReplay = { frames: 0, records: 0 };
  try {
    journal = replayJournal(await readRegularFile(journalPath(file)), id, origins);
  } catch (err) {
    if (!isMissing(err)) {
      journal = { ...journal, ignored: `cannot read it: ${errorText(err)}`, distrust: 'journal_unreadable' };
    }
  }
  if (journal.distrust !== undefined) {
    // The state file first: a crash between the two renames leaves a journal without a state file, which
    // is not trusted either, never the state file alone, which would be.
    const aside = await setAside(file, 'untrusted');
    const journalMovedTo = 'movedTo' in aside ? await setJournalAside(file, 'untrusted') : undefined;
    return {
      kind: 'untrusted',
      distrust: journal.distrust,
      reason: journal.ignored ?? journal.distrust,
      ...('movedTo' in aside && { movedTo: aside.movedTo }),
      ...(journalMovedTo && { journalMovedTo }),
    };
  }
  return { kind: 'loaded', origins, bytes: buf.length, id, journal };
}

/**
 * Why the state file could not be written, or null when it looks writable: the state file, its journal and
 * its temporary file are regular files where they exist, writable, and the nearest existing directory on the
 * way is one, writable. Cheap: a few stats.
 */
export async function checkStatePath(file: string): Promise<string | null> {
  for (const f of [file, journalPath(file), `${file}.tmp`]) {
    try {
      const s = await stat(f);
      if (!s.isFile()) return new NotRegularFileError(f, s).message;
      await access(f, constants.W_OK);
    } catch (err) {
      // Missing: created when written; ENOTDIR (a part of the path is a file): the walk below says which.
      if (!isMissing(err)) return `cannot write ${f}: ${systemError(err)}`;
    }
  }
  let dir = path.dirname(file);
  for (;;) {
    try {
      const s = await stat(dir);
      if (!s.isDirectory()) return `cannot create ${file}: ${dir} is not a directory`;
      await access(dir, constants.W_OK | constants.X_OK);
      return null;
    } catch (err) {
      if (isMissing(err) && path.dirname(dir) !== dir) {
        dir = path.dirname(dir);
        continue;
      }
      return `cannot create ${file} in ${dir}: ${systemError(err)}`;
    }
  }
}
