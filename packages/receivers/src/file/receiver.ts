import { constants } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  type AttributeKind,
  type BatchSink,
  type ComponentSettings,
  decodeFlowRecord,
  FlowBatch,
  type FlowInit,
  fileKind,
  type ObservedMetrics,
  observeMetrics,
  pseudoFilesystemOf,
  type Receiver,
  systemError,
} from '@netmon/core';
import {
  type CheckpointDocument,
  CheckpointWriter,
  HEAD_BYTES,
  hashHead,
  loadCheckpoint,
  mismatch,
  type Position,
} from './checkpoint.js';
import type { FileReceiverConfig } from './config.js';
import { LineReader } from './lines.js';
import { FILE_RECEIVER_METRICS, SKIP_REASONS, type SkipReason } from './metrics.js';

/** Malformed lines logged one by one before logging turns to every LOG_EVERY-th. */
const LOG_FIRST = 5;
const LOG_EVERY = 1000;
/** Batches start small and grow up to batch_size: most intervals in a file hold far fewer flows. */
const INITIAL_CAPACITY = 256;
const BOM = 0xfeff;

/**
 * Replays a JSON Lines file of flow records (the file exporter's output) as flow batches, one interval
 * at a time. The file is read in fixed chunks and split into lines of at most max_line_bytes, so neither
 * its size nor the length of a line bounds memory.
 */
export class FileReceiver implements Receiver {
  /** The file, resolved against the config file's directory. */
  readonly path: string;
  /** Where the replay position is kept across restarts, resolved; none without checkpoint_file. */
  readonly checkpointPath?: string;
  private readonly skipped: Record<SkipReason, number> = { not_json: 0, invalid: 0, too_long: 0 };
  private records = 0;
  private batch: FlowBatch;
  /** time_end of the rows in `batch`; NaN while it is empty. */
  private batchEnd = Number.NaN;
  /**
   * The value kind each attribute key had when first seen. Kept for the whole file, not per batch, so
   * which records count as malformed does not depend on where batch boundaries fall.
   */
  private readonly kinds = new Map<string, AttributeKind>();
  private stopping = false;
  private opening?: Promise<void>;
  private reader?: Promise<void>;
  private wake?: () => void;
  /** Pacing anchor: wall-clock time (performance.now) at which the interval ending at anchorRecorded went out. */
  private anchorWall = Number.NaN;
  private anchorRecorded = Number.NaN;
  private readonly metrics: ObservedMetrics<typeof FILE_RECEIVER_METRICS>;
  private checkpoint?: CheckpointWriter;

  // Where the replay stands. `readTo`/`lineNo`: every line before byte readTo (lineNo lines) was read and
  // its record is in `batch` or handed over, or it was skipped.
  private round = 0;
  /** The file's time span (ms), known once round 0 has ended; each later round is shifted by it once more. */
  private span = Number.NaN;
  private minStart = Number.POSITIVE_INFINITY;
  private maxEnd = Number.NEGATIVE_INFINITY;
  private readTo = 0;
  private lineNo = 0;
  /** SHA-256 of the file's first HEAD_BYTES bytes, once the file is that long. */
  private fullHead?: string;

  constructor(
    private readonly settings: ComponentSettings,
    private readonly config: FileReceiverConfig,
    private readonly next: BatchSink,
  ) {
    this.path = resolve(settings.configDir, config.path);
    if (config.checkpoint_file !== undefined) {
      this.checkpointPath = resolve(settings.configDir, config.checkpoint_file);
    }
    this.batch = this.newBatch();
    this.metrics = observeMetrics(settings.meter, FILE_RECEIVER_METRICS, (r) => {
      for (const reason of SKIP_REASONS) r.malformed(this.skipped[reason], { reason });
      if (this.checkpoint) r.checkpointFailures(this.checkpoint.failures);
    });
  }

  /** Lines skipped because they were not valid flow records or too long (every round counts again with loop). */
  get malformedRecords(): number {
    return this.skipped.not_json + this.skipped.invalid + this.skipped.too_long;
  }

  /** Valid records read so far, over every round. */
  get recordsRead(): number {
    return this.records;
  }

  /** Resolves once reading has stopped: the file ended (without loop), or shutdown. */
  finished(): Promise<void> {
    return (this.opening ?? Promise.resolve()).then(() => this.reader);
  }

  start(): Promise<void> {
    this.opening ??= this.open();
    return this.opening;
  }

  /**
   * Opens the file and reads the checkpoint, so a wrong path stops the agent at start, not later. Only a
   * regular file is replayed: opening a FIFO for reading waits for a writer (start would never return),
   * and a FIFO, a device or a socket has no end, size or position to resume from.
   */
  private async open(): Promise<void> {
    let handle: FileHandle;
    try {
      // Stat first, for the message; O_NONBLOCK so that a FIFO put there since cannot block the open.
      const s = await stat(this.path);
      if (!s.isFile()) throw notRegular(this.path, fileKind(s));
      handle = await open(this.path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      if (err instanceof NotRegularFile) throw err;
      throw new Error(`file receiver: cannot open ${this.path}: ${systemError(err)}`);
    }
    let from: Position | undefined;
    try {
      const s = await handle.stat({ bigint: true });
      if (!s.isFile()) throw notRegular(this.path, fileKind(s));
      if (this.checkpointPath !== undefined) from = await this.resumePoint(handle, s);
    } catch (err) {
      await handle.close();
      throw err;
    }
    if (this.stopping) {
      await handle.close();
      return;
    }
    this.settings.logger.info(
      { path: this.path, pace: this.config.pace, loop: this.config.loop },
      'replaying flow records',
    );
    this.reader = this.run(handle, from);
  }

  /** The position to resume from, or undefined to replay from the start (saying why when a checkpoint exists). */
  private async resumePoint(
    handle: FileHandle,
    s: { dev: bigint; ino: bigint; size: bigint },
  ): Promise<Position | undefined> {
    const file = this.checkpointPath as string;
    const pseudo = pseudoFilesystemOf(file);
    if (pseudo !== undefined) {
      throw new Error(`file receiver: cannot keep checkpoint_file ${file}: it is under ${pseudo}`);
    }
    let loaded: Awaited<ReturnType<typeof loadCheckpoint>>;
    try {
      loaded = await loadCheckpoint(file);
    } catch (err) {
      throw new Error(`file receiver: ${(err as Error).message}`);
    }
    this.checkpoint = new CheckpointWriter(file, (p) => this.document(handle, p), this.settings);
    const log = this.settings.logger;
    if (loaded.kind === 'missing') return undefined;
    if (loaded.kind === 'corrupt') {
      const aside = loaded.movedTo
        ? `set aside as ${loaded.movedTo}`
        : `could not set it aside (${loaded.asideError}): the next checkpoint replaces it`;
      log.warn(
        { checkpoint_file: file, moved_to: loaded.movedTo },
        `checkpoint_file ${file} is damaged (${loaded.reason}); ${aside}; replaying ${this.path} from the start`,
      );
      return undefined;
    }
    const doc = loaded.doc;
    const why = await mismatch(doc, {
      path: this.path,
      loop: this.config.loop,
      dev: s.dev,
      ino: s.ino,
      size: Number(s.size),
      headHash: (n) => hashHead(handle, n),
    });
    if (why !== null) {
      log.warn(
        { checkpoint_file: file, path: this.path },
        `checkpoint_file ${file} does not match ${this.path}: ${why}; replaying it from the start`,
      );
      return undefined;
    }
    log.info(
      { checkpoint_file: file, path: this.path, offset: doc.offset, line: doc.line, round: doc.round },
      `resuming after line ${doc.line} (byte ${doc.offset}${this.config.loop ? `, round ${doc.round}` : ''}): the last record handed over before the restart`,
    );
    return doc;
  }

  async shutdown(): Promise<void> {
    this.stopping = true;
    this.metrics.close();
    this.wake?.();
    await this.opening?.catch(() => undefined);
    await this.reader;
  }

  private async run(handle: FileHandle, from: Position | undefined): Promise<void> {
    try {
      if (from) {
        this.round = from.round;
        this.span = from.span_ms ?? Number.NaN;
        this.minStart = from.min_start_ms ?? Number.POSITIVE_INFINITY;
        this.maxEnd = from.max_end_ms ?? Number.NEGATIVE_INFINITY;
      }
      let offset = from?.offset ?? 0;
      let line = from?.line ?? 0;
      for (;;) {
        await this.readRound(handle, offset, line);
        if (this.batch.length > 0) await this.send(this.detach(), this.readTo, this.lineNo);
        if (this.stopping) break;
        // Lines skipped at the end of the file are done too: a restart need not read them again.
        this.handedOver(this.readTo, this.lineNo);
        if (!this.config.loop) {
          this.settings.logger.info(
            { path: this.path, records: this.records, malformed: this.malformedRecords },
            'replay finished',
          );
          break;
        }
        if (this.round === 0) {
          this.span = this.maxEnd - this.minStart;
          if (!(this.span > 0)) {
            // Shifting by nothing would replay the same timestamps forever, as fast as the pipeline goes.
            this.settings.logger.warn(
              { path: this.path, records: this.records },
              'loop stopped: the file holds no records spanning any time, so there is nothing to loop over',
            );
            break;
          }
        }
        this.round++;
        offset = 0;
        line = 0;
        this.settings.logger.debug(
          { path: this.path, round: this.round, shift_ms: this.round * this.span },
          'replaying again',
        );
      }
    } catch (err) {
      this.settings.logger.error({ path: this.path, err: systemError(err) }, 'reading the file failed');
      this.settings.status.permanentError(
        new Error(`file receiver: reading ${this.path} failed: ${systemError(err)}`),
      );
      // What was read before the failure is still good data.
      if (this.batch.length > 0) {
        try {
          this.next.consume(this.detach());
          this.handedOver(this.readTo, this.lineNo);
        } catch {
          // The sink failing too has nothing left to add to the error already reported.
        }
      }
    } finally {
      await this.checkpoint?.flush();
      await handle.close().catch(() => undefined);
    }
  }

  /**
   * Reads the file once from `offset` (a line start; `line` lines before it), times shifted by the round.
   * The end of the file: without pace, the first read that finds nothing more. With pace: recorded, once
   * a read finds nothing more, the receiver waits until the last interval read is due and reads again;
   * the file ends when that read finds nothing either, so lines appended while the replay runs are read.
   */
  private async readRound(handle: FileHandle, offset: number, line: number): Promise<void> {
    const reader = new LineReader(handle, offset, this.config.max_line_bytes);
    const shift = this.round === 0 ? 0 : this.round * this.span;
    this.readTo = offset;
    this.lineNo = line;
    for (;;) {
      while (reader.next()) {
        const sending = this.take(reader, shift);
        if (sending) await sending;
        if (this.stopping) return;
      }
      if (this.stopping) return;
      if (await reader.fill()) continue;
      if (this.config.pace === 'recorded' && this.batch.length > 0) {
        await this.pace(this.batchEnd);
        if (this.stopping) return;
        if (await reader.fill()) continue;
      }
      if (reader.finish()) {
        const sending = this.take(reader, shift);
        if (sending) await sending;
      }
      return;
    }
  }

  /** Adds the reader's current line to the batch (or skips it); returns the send of a full batch, if any. */
  private take(reader: LineReader, shift: number): Promise<void> | undefined {
    const lineNo = ++this.lineNo;
    const start = reader.start;
    this.readTo = reader.end;
    if (reader.tooLong) {
      this.skip(lineNo, 'too_long', () => `longer than max_line_bytes (${this.config.max_line_bytes} bytes)`);
      return undefined;
    }
    let text = reader.text;
    // A UTF-8 byte order mark (which some editors write) is not part of the first record.
    if (start === 0 && text.charCodeAt(0) === BOM) text = text.slice(1);
    const flow = this.decode(text, lineNo);
    if (flow === null) return undefined;
    const { timeStart, timeEnd } = flow;
    if (shift !== 0) {
      flow.timeStart += shift;
      flow.timeEnd += shift;
    }
    // Detach before pushing: the new row goes into a fresh batch even when it turns out malformed. The
    // detached batch holds every record before this line, so handing it over covers the file up to `start`.
    const full =
      this.batch.length > 0 && (flow.timeEnd !== this.batchEnd || this.batch.length >= this.config.batch_size)
        ? this.detach()
        : null;
    if (this.batch.push(flow) < 0) {
      this.skip(lineNo, 'invalid', () => 'src_ip/dst_ip: not an IP address');
    } else {
      if (timeStart < this.minStart) this.minStart = timeStart;
      if (timeEnd > this.maxEnd) this.maxEnd = timeEnd;
      this.batchEnd = flow.timeEnd;
      this.records++;
      if (flow.attributes) this.rememberKinds(flow.attributes);
    }
    return full ? this.send(full, start, lineNo - 1) : undefined;
  }

  /** The record on this line, or null (counted and logged) when it is blank or malformed. */
  private decode(line: string, lineNo: number): FlowInit | null {
    if (line.length === 0 || (line.charCodeAt(0) <= 32 && line.trim().length === 0)) return null;
    const result = decodeFlowRecord(line);
    if (!result.ok) {
      const error = result.error;
      // decodeFlowRecord's reasons never quote the line.
      this.skip(lineNo, error === 'not JSON' ? 'not_json' : 'invalid', () => error);
      return null;
    }
    const flow = result.flow;
    if (flow.timeEnd < flow.timeStart) {
      this.skip(lineNo, 'invalid', () => 'time_end is before time_start');
      return null;
    }
    if (flow.attributes) {
      let k = 0;
      for (const key in flow.attributes) {
        k++;
        const seen = this.kinds.get(key);
        const kind = kindOf(flow.attributes[key]);
        if (seen !== undefined && seen !== kind) {
          const at = k;
          // By position, not name: the key comes from the file, and may be anything.
          this.skip(
            lineNo,
            'invalid',
            () =>
              `attributes: key ${at} holds ${KIND_WORDS[kind]} where earlier records hold ${KIND_WORDS[seen]} under that key`,
          );
          return null;
        }
      }
    }
    return flow;
  }

  private rememberKinds(attributes: Record<string, unknown>): void {
    for (const key in attributes) {
      if (!this.kinds.has(key)) this.kinds.set(key, kindOf(attributes[key] as string | number | boolean));
    }
  }

  /** Counts a skipped line; logs where and why (never what it holds) for the first few, then every 1000th. */
  private skip(lineNo: number, reason: SkipReason, why: () => string): void {
    this.skipped[reason]++;
    const n = this.malformedRecords;
    if (n <= LOG_FIRST || n % LOG_EVERY === 0) {
      this.settings.logger.warn(
        { file: this.path, line: lineNo, reason, malformed_records: n },
        `${this.path}:${lineNo}: malformed flow record skipped: ${why()}${n === LOG_FIRST ? ' (further ones are logged every 1000th)' : ''}`,
      );
    }
  }

  private newBatch(): FlowBatch {
    return new FlowBatch(Math.min(INITIAL_CAPACITY, this.config.batch_size), this.config.temporality);
  }

  private detach(): FlowBatch {
    const batch = this.batch;
    this.batch = this.newBatch();
    this.batchEnd = Number.NaN;
    return batch;
  }

  /** Hands a batch over; it holds every record before byte `offset` (`line` lines) not handed over yet. */
  private async send(batch: FlowBatch, offset: number, line: number): Promise<void> {
    // While stopping, what was read goes out at once: shutdown must not wait for the recorded schedule.
    if (this.config.pace === 'recorded' && !this.stopping) await this.pace(batch.timeEnd[0]);
    if (this.config.backpressure) await this.next.ready();
    this.next.consume(batch);
    this.handedOver(offset, line);
  }

  /**
   * Records the position after a hand-over, so the checkpoint is at least once: written after the batch
   * went to the pipeline, a kill in between replays that batch rather than losing it.
   */
  private handedOver(offset: number, line: number): void {
    this.checkpoint?.save({
      round: this.round,
      offset,
      line,
      span_ms: Number.isNaN(this.span) ? null : this.span,
      min_start_ms: Number.isFinite(this.minStart) ? this.minStart : null,
      max_end_ms: Number.isFinite(this.maxEnd) ? this.maxEnd : null,
    });
  }

  /** The checkpoint for position `p`, with the replayed file's identity as it is now. */
  private async document(handle: FileHandle, p: Position): Promise<CheckpointDocument> {
    const s = await handle.stat({ bigint: true });
    const headBytes = Math.min(HEAD_BYTES, p.offset);
    let head: string;
    if (headBytes === HEAD_BYTES) {
      this.fullHead ??= await hashHead(handle, HEAD_BYTES);
      head = this.fullHead;
    } else {
      head = await hashHead(handle, headBytes);
    }
    return {
      version: 1,
      path: this.path,
      loop: this.config.loop,
      dev: String(s.dev),
      ino: String(s.ino),
      size: Number(s.size),
      head_bytes: headBytes,
      head_sha256: head,
      ...p,
    };
  }

  /**
   * Waits until the interval ending at `timeEnd` is due. The schedule is anchored at the first interval
   * rather than at the previous emit, so timer lateness does not add up over a long replay; after a stall
   * (backpressure) intervals go out as fast as the pipeline allows until the schedule is met again.
   */
  private async pace(timeEnd: number): Promise<void> {
    const now = performance.now();
    if (Number.isNaN(this.anchorWall)) {
      this.anchorWall = now;
      this.anchorRecorded = timeEnd;
      return;
    }
    const wait = this.anchorWall + (timeEnd - this.anchorRecorded) / this.config.speed - now;
    // Node fires a timer asked to wait past 2^31−1 ms (24.8 days) after 1 ms: a recorded gap that long, or
    // a tiny speed, waits in steps instead of not at all.
    for (let left = wait; left > 0 && !this.stopping; left -= MAX_TIMER_MS) {
      await this.sleep(Math.min(left, MAX_TIMER_MS));
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((done) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        done();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        done();
      };
    });
  }
}

/** The longest wait one Node timer can do (https://nodejs.org/api/timers.html#settimeoutcallback-delay-args). */
const MAX_TIMER_MS = 2 ** 31 - 1;

class NotRegularFile extends Error {}

function notRegular(path: string, kind: string): NotRegularFile {
  return new NotRegularFile(`file receiver: cannot read ${path}: it is ${kind}, not a regular file`);
}

/** The attribute kinds as a reason says them. */
const KIND_WORDS = { string: 'a string', number: 'a number', bool: 'a boolean' } as const;

function kindOf(value: string | number | boolean): AttributeKind {
  return typeof value === 'string' ? 'string' : typeof value === 'number' ? 'number' : 'bool';
}
