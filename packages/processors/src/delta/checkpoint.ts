// The delta processor's state file: every origin's flow table, written atomically so that after a crash
// the restored baselines are exactly those whose deltas were already passed on.
//
// Format (version 1). All header fields little-endian; records are the table's own bytes, in the byte
// order of the machine that wrote them (the header says which, and a reader of the other order refuses).
//
//   header, 32 bytes
//     0   8  magic "NMDELTA\0"
//     8   4  version (1)
//     12  4  byte-order mark 0x01020304, written in the machine's order
//     16  4  record size in bytes (56)
//     20  4  number of origins
//     24  4  CRC-32 of everything after the header
//     28  4  reserved (0)
//   per origin, 32 bytes + name + records
//     0   4  name length in bytes (UTF-8)
//     4   4  flags: bit 0 = still in its baseline phase
//     8   4  generation (snapshots processed)
//     12  4  records
//     16  8  time of the last snapshot (ms since the epoch, float64; 0 = none)
//     24  8  reserved (0)
//     32  .  name, zero-padded to a multiple of 8 bytes
//     .   .  records × 56 bytes (see flow-table.ts)
import { constants } from 'node:fs';
import { access, mkdir, open, readFile, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { getSystemErrorMessage } from 'node:util';
import { crc32 } from 'node:zlib';
import { FlowTable, RECORD_BYTES } from './flow-table.js';

export const MAGIC = 'NMDELTA\0';
export const VERSION = 1;
const HEADER_BYTES = 32;
const ORIGIN_HEADER_BYTES = 32;
const BYTE_ORDER_MARK = 0x01020304;

/** One origin's state as the checkpoint holds it. */
export interface OriginCheckpoint {
  origin: string;
  baselinePhase: boolean;
  generation: number;
  lastSnapshotTime: number;
  table: FlowTable;
}

/** Raised for a state file that cannot be used: its message says what is wrong with it. */
export class CheckpointFormatError extends Error {}

const pad8 = (n: number) => (n + 7) & ~7;

/** The state as one buffer, copied: the tables may change while it is being written. */
export function encodeCheckpoint(origins: readonly OriginCheckpoint[]): Buffer {
  const names = origins.map((o) => Buffer.from(o.origin, 'utf8'));
  let total = HEADER_BYTES;
  origins.forEach((o, i) => {
    total += ORIGIN_HEADER_BYTES + pad8(names[i].length) + o.table.count * RECORD_BYTES;
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
  let off = HEADER_BYTES;
  origins.forEach((o, i) => {
    const name = names[i];
    view.setUint32(off, name.length, true);
    view.setUint32(off + 4, o.baselinePhase ? 1 : 0, true);
    view.setUint32(off + 8, o.generation >>> 0, true);
    view.setUint32(off + 12, o.table.count, true);
    view.setFloat64(off + 16, o.lastSnapshotTime, true);
    view.setFloat64(off + 24, 0, true);
    off += ORIGIN_HEADER_BYTES;
    name.copy(buf, off);
    buf.fill(0, off + name.length, off + pad8(name.length));
    off += pad8(name.length);
    const records = o.table.recordBytes();
    buf.set(records, off);
    off += records.length;
  });
  view.setUint32(24, crc32(buf.subarray(HEADER_BYTES)), true);
  return buf;
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
  if (version !== VERSION) fail(`format version ${version}; this netmon reads version ${VERSION}`);
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
    if (off + ORIGIN_HEADER_BYTES > buf.length) fail(`truncated in the header of origin ${i + 1}`);
    const nameLength = view.getUint32(off, true);
    const flags = view.getUint32(off + 4, true);
    const generation = view.getUint32(off + 8, true);
    const count = view.getUint32(off + 12, true);
    const lastSnapshotTime = view.getFloat64(off + 16, true);
    off += ORIGIN_HEADER_BYTES;
    const recordsAt = off + pad8(nameLength);
    if (recordsAt + count * RECORD_BYTES > buf.length) fail(`truncated in origin ${i + 1}`);
    const origin = Buffer.from(buf.buffer, buf.byteOffset + off, nameLength).toString('utf8');
    if (seen.has(origin)) fail(`origin "${origin}" appears twice`);
    seen.add(origin);
    if (!(lastSnapshotTime >= 0)) fail(`origin "${origin}" has snapshot time ${lastSnapshotTime}`);
    let table: FlowTable;
    try {
      table = FlowTable.fromRecords(buf.subarray(recordsAt, recordsAt + count * RECORD_BYTES), count);
    } catch (err) {
      return fail(`origin "${origin}": ${(err as Error).message}`);
    }
    out.push({ origin, baselinePhase: (flags & 1) === 1, generation, lastSnapshotTime, table });
    off = recordsAt + count * RECORD_BYTES;
  }
  if (off !== buf.length) fail(`${buf.length - off} unexpected bytes after the last origin`);
  return out;
}

/**
 * Writes the state atomically: `file.tmp`, fsync, rename over `file`, fsync of the directory. A crash at
 * any point leaves either the old file or the new one. Creates missing directories.
 */
export async function writeCheckpoint(file: string, data: Uint8Array): Promise<void> {
  const tmp = `${file}.tmp`;
  await mkdir(path.dirname(file), { recursive: true });
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
  try {
    const dir = await open(path.dirname(file), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    // Some file systems refuse fsync on a directory; the rename is still atomic.
  }
}

export type LoadResult =
  | { kind: 'missing' }
  | { kind: 'loaded'; origins: OriginCheckpoint[]; bytes: number }
  | { kind: 'unreadable'; reason: string }
  | { kind: 'corrupt'; reason: string; movedTo?: string };

/** Reads the state file. A damaged one is renamed to `file.corrupt` so the next write does not hide it. */
export async function loadCheckpoint(file: string): Promise<LoadResult> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // ENOTDIR: a part of the path is a file, so there is nothing to read; writing will say what is wrong.
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return { kind: 'missing' };
    return { kind: 'unreadable', reason: systemError(err) };
  }
  try {
    return { kind: 'loaded', origins: decodeCheckpoint(buf), bytes: buf.length };
  } catch (err) {
    // Whatever went wrong, a file that cannot be decoded is not trusted (and never crashes the agent).
    const reason = err instanceof Error ? err.message : String(err);
    const movedTo = `${file}.corrupt`;
    try {
      await rename(file, movedTo);
      return { kind: 'corrupt', reason, movedTo };
    } catch {
      return { kind: 'corrupt', reason };
    }
  }
}

/**
 * Why the state file could not be written, or null when it looks writable: the path is not a directory,
 * and the file (if present) and the nearest existing directory on its way are writable. Cheap: a few stats.
 */
export async function checkStatePath(file: string): Promise<string | null> {
  try {
    const s = await stat(file);
    if (s.isDirectory()) return `${file} is a directory, not a file`;
    await access(file, constants.W_OK);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // ENOTDIR: a part of the path is a file; the walk below says which.
    if (e.code !== 'ENOENT' && e.code !== 'ENOTDIR') return `cannot write ${file}: ${systemError(err)}`;
  }
  let dir = path.dirname(file);
  for (;;) {
    try {
      const s = await stat(dir);
      if (!s.isDirectory()) return `cannot create ${file}: ${dir} is not a directory`;
      await access(dir, constants.W_OK | constants.X_OK);
      return null;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if ((e.code === 'ENOENT' || e.code === 'ENOTDIR') && path.dirname(dir) !== dir) {
        dir = path.dirname(dir);
        continue;
      }
      return `cannot create ${file} in ${dir}: ${systemError(err)}`;
    }
  }
}

/** `EACCES (permission denied)`: the code and the system's message, without the syscall and path. */
export function systemError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code === 'string' && typeof e.errno === 'number') {
    return `${e.code} (${getSystemErrorMessage(e.errno)})`;
  }
  return err instanceof Error ? err.message : String(err);
}
