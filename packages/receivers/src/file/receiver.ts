import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { resolve } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import {
  type AttributeKind,
  type BatchSink,
  type ComponentSettings,
  decodeFlowRecord,
  FlowBatch,
  type FlowInit,
  type ObservedMetrics,
  observeMetrics,
  type Receiver,
  systemError,
} from '@netmon/core';
import type { FileReceiverConfig } from './config.js';
import { FILE_RECEIVER_METRICS } from './metrics.js';

/** Malformed lines logged one by one before logging turns to every LOG_EVERY-th. */
const LOG_FIRST = 5;
const LOG_EVERY = 1000;
/** Batches start small and grow up to batch_size: most intervals in a file hold far fewer flows. */
const INITIAL_CAPACITY = 256;
const READ_CHUNK = 64 * 1024;

/**
 * Replays a JSON Lines file of flow records (the file exporter's output) as flow batches, one interval
 * at a time. The file is streamed line by line, so its size does not bound memory.
 */
export class FileReceiver implements Receiver {
  /** The file, resolved against the config file's directory. */
  readonly path: string;
  private malformed = 0;
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
  private lines?: Interface;
  private wake?: () => void;
  /** Pacing anchor: wall-clock time (performance.now) at which the interval ending at anchorRecorded went out. */
  private anchorWall = Number.NaN;
  private anchorRecorded = Number.NaN;

  constructor(
    private readonly settings: ComponentSettings,
    private readonly config: FileReceiverConfig,
    private readonly next: BatchSink,
  ) {
    this.path = resolve(settings.configDir, config.path);
    this.batch = this.newBatch();
    this.metrics = observeMetrics(settings.meter, FILE_RECEIVER_METRICS, (r) => r.malformed(this.malformed));
  }

  private readonly metrics: ObservedMetrics<typeof FILE_RECEIVER_METRICS>;

  /** Lines skipped because they were not valid flow records (every round counts again with loop). */
  get malformedRecords(): number {
    return this.malformed;
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

  /** Checks that the file can be read, so a wrong path stops the agent at start, not later. */
  private async open(): Promise<void> {
    let isDirectory: boolean;
    try {
      const handle = await open(this.path, 'r');
      try {
        isDirectory = (await handle.stat()).isDirectory();
      } finally {
        await handle.close();
      }
    } catch (err) {
      throw new Error(`file receiver: cannot open ${this.path}: ${systemError(err)}`);
    }
    if (isDirectory) {
      throw new Error(`file receiver: cannot open ${this.path}: it is a directory, not a file`);
    }
    if (this.stopping) return;
    this.settings.logger.info(
      { path: this.path, pace: this.config.pace, loop: this.config.loop },
      'replaying flow records',
    );
    this.reader = this.run();
  }

  async shutdown(): Promise<void> {
    this.stopping = true;
    this.metrics.close();
    this.wake?.();
    this.lines?.close();
    await this.opening?.catch(() => undefined);
    await this.reader;
  }

  private async run(): Promise<void> {
    try {
      let shift = 0;
      let span = Number.NaN;
      for (let round = 0; ; round++) {
        const times = await this.readRound(shift);
        if (this.batch.length > 0) await this.send(this.detach());
        if (this.stopping) break;
        if (!this.config.loop) {
          this.settings.logger.info(
            { path: this.path, records: this.records, malformed: this.malformed },
            'replay finished',
          );
          break;
        }
        if (round === 0) {
          span = times.maxEnd - times.minStart;
          if (!(span > 0)) {
            // Shifting by nothing would replay the same timestamps forever, as fast as the pipeline goes.
            this.settings.logger.warn(
              { path: this.path, records: this.records },
              'loop stopped: the file holds no records spanning any time, so there is nothing to loop over',
            );
            break;
          }
        }
        shift += span;
        this.settings.logger.debug({ path: this.path, round: round + 1, shift_ms: shift }, 'replaying again');
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
        } catch {
          // The sink failing too has nothing left to add to the error already reported.
        }
      }
    }
  }

  /**
   * Reads the file once from the start, times shifted by `shift` ms; returns the span it covered. Each
   * round opens the file anew: a stream over a shared FileHandle closes the handle when destroyed.
   */
  private async readRound(shift: number): Promise<{ minStart: number; maxEnd: number }> {
    const stream = createReadStream(this.path, { highWaterMark: READ_CHUNK });
    // readline's async iterator pauses the stream while lines wait to be consumed: memory stays bounded.
    const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
    this.lines = lines;
    if (this.stopping) lines.close();
    let lineNo = 0;
    let minStart = Number.POSITIVE_INFINITY;
    let maxEnd = Number.NEGATIVE_INFINITY;
    try {
      for await (const line of lines) {
        lineNo++;
        if (this.stopping) break;
        const flow = this.decode(line, lineNo);
        if (flow === null) continue;
        const { timeStart, timeEnd } = flow;
        if (shift !== 0) {
          flow.timeStart += shift;
          flow.timeEnd += shift;
        }
        // Detach before pushing: the new row goes into a fresh batch even when it turns out malformed.
        const full =
          this.batch.length > 0 &&
          (flow.timeEnd !== this.batchEnd || this.batch.length >= this.config.batch_size)
            ? this.detach()
            : null;
        if (this.batch.push(flow) < 0) {
          this.countMalformed(lineNo, 'src_ip/dst_ip: not an IP address');
        } else {
          if (timeStart < minStart) minStart = timeStart;
          if (timeEnd > maxEnd) maxEnd = timeEnd;
          this.batchEnd = flow.timeEnd;
          this.records++;
          if (flow.attributes) this.rememberKinds(flow.attributes);
        }
        if (full) await this.send(full);
      }
    } finally {
      this.lines = undefined;
      lines.close();
      if (!stream.closed) {
        // A late error must not replace the one already on its way out of this function.
        const closed = once(stream, 'close').catch(() => undefined);
        stream.destroy();
        await closed;
      }
    }
    return { minStart, maxEnd };
  }

  /** The record on this line, or null (counted and logged) when it is blank or malformed. */
  private decode(line: string, lineNo: number): FlowInit | null {
    if (line.length === 0 || line.trim().length === 0) return null;
    const result = decodeFlowRecord(line);
    if (!result.ok) {
      this.countMalformed(lineNo, result.error);
      return null;
    }
    const flow = result.flow;
    if (flow.timeEnd < flow.timeStart) {
      this.countMalformed(lineNo, 'time_end is before time_start');
      return null;
    }
    if (flow.attributes) {
      for (const key in flow.attributes) {
        const seen = this.kinds.get(key);
        const kind = kindOf(flow.attributes[key]);
        if (seen !== undefined && seen !== kind) {
          this.countMalformed(
            lineNo,
            `attributes.${key}: a ${kind} value where earlier records hold ${seen} values`,
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

  private countMalformed(lineNo: number, error: string): void {
    const n = ++this.malformed;
    if (n <= LOG_FIRST || n % LOG_EVERY === 0) {
      this.settings.logger.warn(
        { file: this.path, line: lineNo, malformed_records: n },
        `${this.path}:${lineNo}: malformed flow record skipped: ${error}${n === LOG_FIRST ? ' (further ones are logged every 1000th)' : ''}`,
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

  private async send(batch: FlowBatch): Promise<void> {
    // While stopping, what was read goes out at once: shutdown must not wait for the recorded schedule.
    if (this.config.pace === 'recorded' && !this.stopping) await this.pace(batch.timeEnd[0]);
    if (this.config.backpressure) await this.next.ready();
    this.next.consume(batch);
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
    if (wait > 0) await this.sleep(wait);
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

function kindOf(value: string | number | boolean): AttributeKind {
  return typeof value === 'string' ? 'string' : typeof value === 'number' ? 'number' : 'bool';
}
