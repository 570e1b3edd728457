// The replay position kept across restarts (checkpoint_file), as the OpenTelemetry Collector's filelog
// receiver keeps its offsets in a storage extension: how far into the file records were handed to the
// pipeline, and enough about the file to notice that it is no longer the one the offset is for.
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { type ComponentSettings, fileKind, setAside, systemError, writeFileAtomic } from '@netmon/core';

/**
 * Bytes at the start of the file whose hash tells a file rewritten in place (same inode, new content)
 * from the one the checkpoint is for. The first lines of a flow file differ between recordings (times,
 * addresses), so 4 KiB is plenty, and reading it costs one small read per start.
 */
export const HEAD_BYTES = 4096;
/** A checkpoint is a few hundred bytes: a much larger file is not one, and is not read whole. */
const MAX_CHECKPOINT_BYTES = 64 * 1024;

/** Where the replay stands: what a restart resumes from. */
export interface Position {
  /** The round of a loop replay: 0 for the first pass (always 0 without loop). */
  round: number;
  /** Byte offset up to which every line was read and every record handed to the pipeline: a line start. */
  offset: number;
  /** Lines before `offset`, so that line numbers in logs stay the file's after a resume. */
  line: number;
  /** With loop, the file's time span (ms) by which each round is shifted; null until round 0 has ended. */
  span_ms: number | null;
  /** Round 0: earliest time_start and latest time_end read so far (ms since the epoch), to make the span. */
  min_start_ms: number | null;
  max_end_ms: number | null;
}

/** The file's content: a position and the identity of the replayed file. */
export interface CheckpointDocument extends Position {
  version: 1;
  /** The replayed file, as resolved, and whether it was replayed with loop. */
  path: string;
  loop: boolean;
  /** Device and inode (decimal strings: they may exceed 2^53), and the size when the checkpoint was written. */
  dev: string;
  ino: string;
  size: number;
  /** SHA-256 (hex) of the first head_bytes bytes: min(HEAD_BYTES, offset) when written. */
  head_bytes: number;
  head_sha256: string;
}

/** What the receiver knows of the file it opened, to compare with a checkpoint. */
export interface Input {
  path: string;
  loop: boolean;
  dev: bigint;
  ino: bigint;
  size: number;
  /** SHA-256 (hex) of the file's first `n` bytes (fewer when the file is shorter). */
  headHash(n: number): Promise<string>;
}

export type Loaded =
  | { kind: 'missing' }
  | { kind: 'loaded'; doc: CheckpointDocument }
  | { kind: 'corrupt'; reason: string; movedTo?: string; asideError?: string };

/**
 * Reads the checkpoint. Missing: nothing to resume. Damaged: renamed to `file.corrupt`, kept for a human
 * and out of the way of the next write. Throws when it exists but cannot be read or is not a regular file
 * (a FIFO would block the read): that is a configuration error to fix, and start fails with it.
 */
export async function loadCheckpoint(file: string): Promise<Loaded> {
  let handle: FileHandle;
  try {
    // O_NONBLOCK: should the path be a FIFO, open returns at once and the stat below refuses it.
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ENOTDIR: a part of the path is a file, so there is nothing to read; the first write says what is wrong.
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing' };
    throw new Error(`cannot read checkpoint_file ${file}: ${systemError(err)}`);
  }
  let text: string;
  try {
    const s = await handle.stat();
    if (!s.isFile()) throw new Error(`checkpoint_file ${file} is ${fileKind(s)}, not a regular file`);
    if (s.size > MAX_CHECKPOINT_BYTES)
      return await corrupt(file, `larger than ${MAX_CHECKPOINT_BYTES} bytes`);
    text = await handle.readFile('utf8');
  } catch (err) {
    if (err instanceof Error && err.message.startsWith('checkpoint_file ')) throw err;
    throw new Error(`cannot read checkpoint_file ${file}: ${systemError(err)}`);
  } finally {
    await handle.close();
  }
  const decoded = decodeCheckpoint(text);
  return typeof decoded === 'string' ? corrupt(file, decoded) : { kind: 'loaded', doc: decoded };
}

async function corrupt(file: string, reason: string): Promise<Loaded> {
  const aside = await setAside(file, 'corrupt');
  return 'movedTo' in aside
    ? { kind: 'corrupt', reason, movedTo: aside.movedTo }
    : { kind: 'corrupt', reason, asideError: systemError(aside.error) };
}

const COUNTS = ['round', 'offset', 'line', 'size', 'head_bytes'] as const;
const TIMES = ['span_ms', 'min_start_ms', 'max_end_ms'] as const;

/** The document, or what is wrong with it (in words of our own: the text is never repeated). */
export function decodeCheckpoint(text: string): CheckpointDocument | string {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return 'not JSON';
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return 'not a JSON object';
  if (doc.version !== 1) return 'not a version 1 file receiver checkpoint';
  for (const key of COUNTS) {
    const v = doc[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
      return `${key}: expected a whole number ≥ 0`;
  }
  for (const key of TIMES) {
    const v = doc[key];
    if (v !== null && (typeof v !== 'number' || !Number.isFinite(v)))
      return `${key}: expected a number or null`;
  }
  if (typeof doc.path !== 'string') return 'path: expected a string';
  if (typeof doc.loop !== 'boolean') return 'loop: expected true or false';
  for (const key of ['dev', 'ino'] as const) {
    if (typeof doc[key] !== 'string' || !/^\d{1,20}$/.test(doc[key] as string)) {
      return `${key}: expected a decimal number as a string`;
    }
  }
  if (typeof doc.head_sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(doc.head_sha256)) {
    return 'head_sha256: expected 64 hex digits';
  }
  const d = doc as unknown as CheckpointDocument;
  if (d.offset > d.size) return 'offset: beyond the size it records';
  if (d.head_bytes > HEAD_BYTES) return `head_bytes: expected at most ${HEAD_BYTES}`;
  if (d.round > 0 && d.span_ms === null) return 'span_ms: missing for a round after the first';
  return d;
}

/** Why the checkpoint is not for this file as it is now (it must be replayed from the start), or null. */
export async function mismatch(doc: CheckpointDocument, input: Input): Promise<string | null> {
  if (doc.path !== input.path) return 'it was written for another file';
  if (doc.loop !== input.loop) return `it was written with loop: ${doc.loop}`;
  if (doc.dev !== String(input.dev) || doc.ino !== String(input.ino)) {
    return 'the file was replaced (it is not on the device and inode the checkpoint was written for)';
  }
  if (input.size < doc.size) {
    return `the file is shorter than when the checkpoint was written (${input.size} < ${doc.size} bytes): truncated`;
  }
  if ((await input.headHash(doc.head_bytes)) !== doc.head_sha256) {
    return `its first ${doc.head_bytes} bytes differ from when the checkpoint was written: rewritten`;
  }
  return null;
}

/** SHA-256 (hex) of the first `n` bytes of the open file (fewer when it is shorter). */
export async function hashHead(handle: FileHandle, n: number): Promise<string> {
  const buf = Buffer.alloc(n);
  let got = 0;
  while (got < n) {
    const { bytesRead } = await handle.read(buf, got, n - got, got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return createHash('sha256').update(buf.subarray(0, got)).digest('hex');
}

/**
 * Writes positions to the checkpoint file one write at a time, each with the latest position when it
 * starts: positions saved during a write coalesce into one more write after it. So reading never waits
 * for a disk sync, and the file lags the pipeline by at most the batches handed over during one write.
 */
export class CheckpointWriter {
  /** Writes that failed, for the self-metric. */
  failures = 0;
  private pending?: Position;
  private running?: Promise<void>;
  private failing = false;

  constructor(
    readonly file: string,
    private readonly document: (p: Position) => Promise<CheckpointDocument>,
    private readonly settings: Pick<ComponentSettings, 'logger' | 'status'>,
  ) {}

  save(p: Position): void {
    this.pending = p;
    this.running ??= this.drain();
  }

  /** Resolves once the last position saved is written (or its write failed). */
  async flush(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending) {
        const p = this.pending;
        this.pending = undefined;
        try {
          await writeFileAtomic(this.file, `${JSON.stringify(await this.document(p))}\n`);
          if (this.failing) {
            this.failing = false;
            this.settings.logger.info({ checkpoint_file: this.file }, 'checkpoint written again');
            this.settings.status.ok();
          }
        } catch (err) {
          this.failures++;
          // Logged when failing starts, not at every batch: a full disk would flood the log.
          if (!this.failing) {
            this.failing = true;
            const why = `cannot write checkpoint_file ${this.file}: ${systemError(err)}`;
            this.settings.logger.error(
              { checkpoint_file: this.file, err: systemError(err) },
              `${why}; reading goes on, but a restart would resume from the last checkpoint written`,
            );
            this.settings.status.recoverableError(new Error(`file receiver: ${why}`));
          }
        }
      }
    } finally {
      this.running = undefined;
    }
  }
}
