import { constants } from 'node:fs';
import { type FileHandle, lstat, open, rename } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  type Batch,
  type ComponentSettings,
  type Exporter,
  encodeFlowRecords,
  FlowBatch,
  type ObservedMetrics,
  observeMetrics,
  pseudoFilesystemOf,
  systemError,
} from '@netmon/core';
import type { FileExporterConfig } from './config.js';
import { FILE_EXPORTER_METRICS } from './metrics.js';
import { existingFileProblem, fileProblem, prepareOutputDirectory } from './safety.js';

const MIB = 1024 * 1024;

// O_NOFOLLOW: a link at the path fails the open (ELOOP) instead of being written through. O_NONBLOCK: a FIFO
// there fails (ENXIO) instead of blocking a libuv thread until a reader comes; on a regular file it changes
// nothing. Read as well as write: the last byte tells whether the file ends in a partial record.
const OPEN_FLAGS =
  constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK;

const NEWLINE = Buffer.from('\n');

/**
 * Appends flow batches to a file as JSON Lines flow records (the file receiver's input), rotating by size.
 * One instance serves every flows pipeline that lists it. Exports run one at a time: rotation closes and
 * reopens the file, and batches of different pipelines must not interleave.
 */
export class FileExporter implements Exporter {
  /** The file, resolved against the config file's directory. */
  readonly path: string;
  private readonly maxBytes: number;
  private readonly fileMode: number;
  private handle?: FileHandle;
  /** Bytes in the current file: its size when opened plus what was written since. */
  private size = 0;
  private tail: Promise<void> = Promise.resolve();
  private stopped = false;
  private rotations = 0;
  private deletedBytes = 0;
  private partialLines = 0;
  private readonly metrics: ObservedMetrics<typeof FILE_EXPORTER_METRICS>;

  constructor(
    private readonly settings: ComponentSettings,
    private readonly config: FileExporterConfig,
  ) {
    this.path = resolve(settings.configDir, config.path);
    this.maxBytes = Math.floor(config.rotation.max_megabytes * MIB);
    this.fileMode = Number.parseInt(config.file_mode, 8);
    this.metrics = observeMetrics(settings.meter, FILE_EXPORTER_METRICS, (r) => {
      r.rotations(this.rotations);
      r.deleted(this.deletedBytes);
      r.partialLines(this.partialLines);
    });
  }

  async start(): Promise<void> {
    if (!this.handle && !this.stopped) await this.openFile();
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
    this.metrics.close();
    await this.closeFile();
  }

  /**
   * A batch goes to one file, whole: when it does not fit in what is left of the current file, the file is
   * rotated first, and a batch larger than the limit gets a file of its own. So a rotation never deletes a
   * record of the batch that caused it, and each export is on disk entirely or (it failed) not at all.
   */
  private async write(batch: FlowBatch): Promise<void> {
    // Opens again after a failure, so a disk that was full and freed up does not stop the exporter.
    if (!this.handle) await this.openFile();
    const text = encodeFlowRecords(batch).join('');
    if (text.length === 0) return;
    const data = Buffer.from(text);
    if (this.size > 0 && this.size + data.length > this.maxBytes) await this.rotate();
    await this.append(data);
  }

  /**
   * Waiting for the write is the backpressure: a slow disk holds the next batch back. A write that fails
   * part way (ENOSPC, EFBIG) is undone by truncating to the size before it, so the failed batch, counted as
   * failed, leaves nothing behind, and the next record does not start in the middle of a line.
   */
  private async append(data: Buffer): Promise<void> {
    const handle = this.handle as FileHandle;
    const before = this.size;
    try {
      // writeFile on a handle loops until all of `data` is written; O_APPEND puts it at the end.
      await handle.writeFile(data);
      this.size = before + data.length;
    } catch (err) {
      try {
        await handle.truncate(before);
      } catch {
        // The partial record stays; the next open finds it and ends its line.
        this.handle = undefined;
        await handle.close().catch(() => undefined);
      }
      throw new Error(`file exporter: writing ${this.path} failed: ${systemError(err)}`);
    }
  }

  /**
   * path → path.1 → … → path.N; the rename onto path.N deletes the oldest. rename(2) never follows a link at
   * either name: a link planted at path.K is moved or replaced, never written through.
   */
  private async rotate(): Promise<void> {
    await this.closeFile();
    const n = this.config.rotation.max_files;
    const oldest = `${this.path}.${n}`;
    const replaced = await lstat(oldest).then(
      (st) => (st.isFile() ? st.size : 0),
      () => 0,
    );
    let deleted = 0;
    for (let i = n; i >= 1; i--) {
      const from = i === 1 ? this.path : `${this.path}.${i - 1}`;
      const to = `${this.path}.${i}`;
      try {
        await rename(from, to);
        if (to === oldest) deleted = replaced;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && i > 1) continue;
        throw new Error(
          `file exporter: cannot rotate ${this.path}: renaming ${from} to ${to} failed: ${systemError(err)}`,
        );
      }
    }
    this.rotations++;
    this.deletedBytes += deleted;
    this.settings.logger.debug({ path: this.path, max_files: n, deleted_bytes: deleted }, 'rotated');
    await this.openFile();
  }

  private async openFile(): Promise<void> {
    // Validation refuses these already; an exporter made without it must not hang in mkdir either.
    const pseudo = pseudoFilesystemOf(this.path);
    if (pseudo) throw new Error(`file exporter: cannot write ${this.path}: it is under ${pseudo}`);
    const cannot = (why: string) => new Error(`file exporter: cannot open ${this.path}: ${why}`);
    // Checked at every open, not only at start: a folder made writable to others later stops the next one.
    // The file first, with lstat, so that a device or a FIFO is never even opened; the way to it before
    // any folder is made on it, so that none is made behind a planted link.
    let problem: string | undefined;
    try {
      problem = (await existingFileProblem(this.path)) ?? (await prepareOutputDirectory(this.path));
    } catch (err) {
      throw cannot(systemError(err));
    }
    if (problem) throw cannot(problem);
    let handle: FileHandle;
    try {
      handle = await open(this.path, OPEN_FLAGS, this.fileMode);
    } catch (err) {
      // A link or a FIFO put there since the check: say what it is rather than ELOOP or ENXIO.
      throw cannot((await existingFileProblem(this.path).catch(() => undefined)) ?? systemError(err));
    }
    try {
      const st = await handle.stat();
      const wrong = fileProblem(this.path, st);
      if (wrong) throw cannot(wrong);
      // open's mode applies only to a new file and is narrowed by the umask; fchmod sets it as configured.
      if ((st.mode & 0o7777) !== this.fileMode) await handle.chmod(this.fileMode);
      this.size = st.size;
      if (st.size > 0) await this.endPartialLine(handle, st.size);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err instanceof Error && err.message.startsWith('file exporter:') ? err : cannot(systemError(err));
    }
    this.handle = handle;
  }

  /**
   * A file that does not end in a newline ends in a partial record (a crash mid-write): appending to it
   * would glue the next record to that fragment and lose both.
   */
  private async endPartialLine(handle: FileHandle, size: number): Promise<void> {
    const last = Buffer.alloc(1);
    await handle.read(last, 0, 1, size - 1);
    if (last[0] === 0x0a) return;
    await handle.writeFile(NEWLINE);
    this.size = size + 1;
    this.partialLines++;
    this.settings.logger.warn(
      { path: this.path },
      'the file ended in a partial record (an interrupted write); ended its line before appending',
    );
  }

  /** Flushes the file to disk (fsync) and closes it, so shutdown and rotation leave the data on disk. */
  private async closeFile(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    if (!handle) return;
    try {
      await handle.sync();
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw new Error(`file exporter: closing ${this.path} failed: ${systemError(err)}`);
    }
    await handle.close();
  }
}
