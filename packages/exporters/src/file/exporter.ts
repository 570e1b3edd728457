import { once } from 'node:events';
import type { WriteStream } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import {
  type Batch,
  type ComponentSettings,
  type Exporter,
  encodeFlowRecords,
  FlowBatch,
  systemError,
} from '@netmon/core';
import type { FileExporterConfig } from './config.js';
import { pseudoFilesystemOf } from './paths.js';

const MIB = 1024 * 1024;

/**
 * Appends flow batches to a file as JSON Lines flow records (the file receiver's input), rotating by size.
 * One instance serves every flows pipeline that lists it. Exports run one at a time: rotation closes and
 * reopens the file, and batches of different pipelines must not interleave.
 */
export class FileExporter implements Exporter {
  /** The file, resolved against the config file's directory. */
  readonly path: string;
  private readonly maxBytes: number;
  private stream?: WriteStream;
  /** Bytes in the current file: its size when opened plus what was written since. */
  private size = 0;
  private tail: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly settings: ComponentSettings,
    private readonly config: FileExporterConfig,
  ) {
    this.path = resolve(settings.configDir, config.path);
    this.maxBytes = Math.max(1, Math.floor(config.rotation.max_megabytes * MIB));
  }

  async start(): Promise<void> {
    if (!this.stream && !this.stopped) await this.openFile();
  }

  export(batch: Batch): Promise<void> {
    // Refused only when it arrives after shutdown began; exports queued before then are still written.
    if (this.stopped) {
      return Promise.reject(new Error(`file exporter: ${this.path} is closed (export after shutdown)`));
    }
    // The configuration lets only flows pipelines list it; a DNS batch has no flow record.
    if (!(batch instanceof FlowBatch)) {
      return Promise.reject(new Error('file exporter: writes flows only; a dns batch was refused'));
    }
    const run = this.tail.then(() => this.write(batch));
    this.tail = run.catch(() => undefined);
    return run;
  }

  async shutdown(): Promise<void> {
    this.stopped = true;
    await this.tail;
    await this.closeFile();
  }

  private async write(batch: FlowBatch): Promise<void> {
    // Opens again after a failed write, so a disk that was full and freed up does not stop the exporter.
    if (!this.stream) await this.openFile();
    let chunk = '';
    let chunkBytes = 0;
    for (const line of encodeFlowRecords(batch)) {
      const bytes = Buffer.byteLength(line);
      if (this.size + chunkBytes + bytes > this.maxBytes && this.size + chunkBytes > 0) {
        if (chunkBytes > 0) await this.append(chunk, chunkBytes);
        chunk = '';
        chunkBytes = 0;
        await this.rotate();
      }
      chunk += line;
      chunkBytes += bytes;
    }
    if (chunkBytes > 0) await this.append(chunk, chunkBytes);
  }

  /**
   * Writes and waits for the write's callback rather than only for 'drain' when write() returns false:
   * the callback ties an error to the batch that caused it, and holding the next batch back while the
   * disk is slow is the backpressure.
   */
  private append(chunk: string, bytes: number): Promise<void> {
    const stream = this.stream as WriteStream;
    this.size += bytes;
    return new Promise((done, fail) => {
      stream.write(chunk, (err) => {
        if (!err) return done();
        if (this.stream === stream) this.stream = undefined;
        stream.destroy();
        fail(new Error(`file exporter: writing ${this.path} failed: ${systemError(err)}`));
      });
    });
  }

  /** path → path.1 → … → path.N; the rename onto path.N deletes the oldest. */
  private async rotate(): Promise<void> {
    await this.closeFile();
    for (let i = this.config.rotation.max_files - 1; i >= 1; i--) {
      await rename(`${this.path}.${i}`, `${this.path}.${i + 1}`).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
    await rename(this.path, `${this.path}.1`);
    this.settings.logger.debug({ path: this.path, max_files: this.config.rotation.max_files }, 'rotated');
    await this.openFile();
  }

  private async openFile(): Promise<void> {
    // Validation refuses these already; an exporter made without it must not hang in mkdir either.
    const pseudo = pseudoFilesystemOf(this.path);
    if (pseudo) throw new Error(`file exporter: cannot write ${this.path}: it is under ${pseudo}`);
    try {
      await mkdir(dirname(this.path), { recursive: true });
    } catch (err) {
      throw new Error(`file exporter: cannot create the directory of ${this.path}: ${systemError(err)}`);
    }
    try {
      const handle = await open(this.path, 'a');
      try {
        this.size = (await handle.stat()).size;
      } catch (err) {
        await handle.close();
        throw err;
      }
      // flush: the data is fsync'ed before the file closes, so shutdown and rotation leave it on disk.
      const stream = handle.createWriteStream({ flush: true });
      // Errors reach the write callbacks and `errored`; without a listener an 'error' event would crash.
      stream.on('error', () => undefined);
      this.stream = stream;
    } catch (err) {
      throw new Error(`file exporter: cannot open ${this.path}: ${systemError(err)}`);
    }
  }

  /** Ends the stream and resolves once its data is on disk and the file is closed. */
  private async closeFile(): Promise<void> {
    const stream = this.stream;
    this.stream = undefined;
    if (!stream) return;
    if (!stream.closed) {
      const closed = once(stream, 'close');
      stream.end();
      await closed.catch(() => undefined);
    }
    if (stream.errored) {
      throw new Error(`file exporter: closing ${this.path} failed: ${systemError(stream.errored)}`);
    }
  }
}
