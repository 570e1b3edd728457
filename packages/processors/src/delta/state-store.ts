// The delta processor's state on disk: when the state file is read, when a batch's changes are appended
// to its journal and when the whole state is rewritten instead, and how a failed write is reported. The
// processor (delta.ts) owns the state itself and tells this store, after each batch, what changed;
// checkpoint.ts holds the file formats.
import { performance } from 'node:perf_hooks';
import { type ComponentSettings, systemError } from '@netmon/core';
import {
  appendJournal,
  checkStatePath,
  type DistrustReason,
  encodeCheckpoint,
  encodeJournalFrame,
  loadCheckpoint,
  newCheckpointId,
  nextCheckpointId,
  type OriginCheckpoint,
  writeCheckpoint,
} from './checkpoint.js';

/** The journal may grow to the state file's size, and at least this, before a rewrite replaces it. */
const MIN_JOURNAL_LIMIT = 1 << 20;

/** State files of the delta processors running in this process, with how many use each. */
const stateFilesInUse = new Map<string, number>();

export interface StateStoreOptions {
  /** ms between rewrites of the whole state file; 0: every snapshot, and a journal between them. */
  checkpointInterval: number;
  /** The state a rewrite writes: every origin, as it is when the rewrite is asked for. */
  origins: ReadonlyMap<string, OriginCheckpoint>;
  /**
   * Takes the origins read back from the state file (and its journal) at start; or, with `distrust`, none:
   * a saved state existed but could not be trusted, so each origin's first snapshot is a new baseline.
   */
  restore: (origins: OriginCheckpoint[], distrust?: DistrustReason) => void;
}

export class DeltaStateStore {
  private loaded?: Promise<void>;
  private isReady = false;
  private closed = false;
  private writing: Promise<void> = Promise.resolve();
  private lastCheckpoint = Number.NEGATIVE_INFINITY;
  /** Id of the last state file written or loaded; 0: none yet. */
  private checkpointId = 0;
  /**
   * The journal continuing the state file this process last wrote: set once that write succeeded, unset
   * when a write fails (the next batch that needs one rewrites the state file).
   */
  private journal?: { id: number; started: boolean; directorySynced: boolean };
  /** A state file write is queued or running: appends made meanwhile continue it once it is written. */
  private checkpointInFlight = false;
  private writesQueued = 0;
  /** Bytes appended to the journal since the state file was written, and when to rewrite instead. */
  private journalBytes = 0;
  private journalLimit = MIN_JOURNAL_LIMIT;
  private writeFailures = 0;
  /** The message of the last failed write while writes keep failing; undefined once one succeeds. */
  private checkpointError?: string;
  /** This store reported recoverable_error: the next good write reports ok. */
  private errorReported = false;
  private statusReport?: NodeJS.Immediate;
  private readonly checkpointInterval: number;
  private readonly origins: ReadonlyMap<string, OriginCheckpoint>;
  private readonly restoreOrigins: (origins: OriginCheckpoint[], distrust?: DistrustReason) => void;

  constructor(
    readonly file: string,
    private readonly settings: Pick<ComponentSettings, 'logger' | 'status'>,
    options: StateStoreOptions,
  ) {
    this.checkpointInterval = options.checkpointInterval;
    this.origins = options.origins;
    this.restoreOrigins = options.restore;
  }

  /** The state file has been read (or there is none): batches may be processed. */
  get ready(): boolean {
    return this.isReady;
  }

  /** Failed writes of the state file or its journal. */
  get failures(): number {
    return this.writeFailures;
  }

  /**
   * Reads the state file once; later calls wait for that read (or get its refusal). A bad or untrusted file
   * is set aside, never fatal; a path where no state file can ever be written (a directory, a FIFO, a path
   * through a file: what validate refuses) is refused, as every write would fail.
   */
  start(): Promise<void> {
    this.loaded ??= this.load();
    return this.loaded;
  }

  /** Writes the state a last time and waits for every write. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.statusReport) clearImmediate(this.statusReport);
    this.statusReport = undefined;
    // Without a start that read the state, writing it would replace a good file with nothing.
    const started = await this.loaded?.then(
      () => true,
      () => false,
    );
    if (started) {
      await this.checkpoint();
      const users = (stateFilesInUse.get(this.file) ?? 1) - 1;
      if (users > 0) stateFilesInUse.set(this.file, users);
      else stateFilesInUse.delete(this.file);
    }
    await this.writing;
  }

  /**
   * After a cumulative batch of origin `o`: what must be on disk before its deltas are passed on, or
   * undefined when nothing need be waited for. A snapshot rewrites the state file; any other batch that
   * changed the state appends what it changed (`changed`: entries of `o.table`) to the journal, or, before
   * this process has written a state file to continue (or with checkpoint_interval), rewrites it too.
   * `sync`: the batch has deltas to pass on, so its journal frame must reach the disk, not just the page
   * cache. The promise never rejects; failures are counted, logged and reported as status.
   */
  persist(
    o: OriginCheckpoint,
    snapshot: boolean,
    changed: Uint32Array,
    sync: boolean,
  ): Promise<void> | undefined {
    if (snapshot) return this.checkpointDue() ? this.checkpoint() : undefined;
    if (changed.length === 0) return undefined;
    if (this.checkpointInterval === 0 && (this.journal !== undefined || this.checkpointInFlight)) {
      // A journal as long as the state file costs more to replay than a rewrite: rewrite then.
      return this.journalBytes > this.journalLimit ? this.checkpoint() : this.append(o, changed, sync);
    }
    if (this.checkpointInterval === 0 && this.checkpointError !== undefined) {
      // Writes are failing (a full or read-only disk): not a full rewrite per event batch; the next
      // snapshot tries again. Counts since the last good write may repeat after a crash, as the log said.
      return undefined;
    }
    return this.checkpointDue() ? this.checkpoint() : undefined;
  }

  private checkpointDue(): boolean {
    return (
      this.checkpointInterval === 0 || performance.now() - this.lastCheckpoint >= this.checkpointInterval
    );
  }

  /** Writes the state as it is now; writes run one at a time, in order. Never rejects. */
  private checkpoint(): Promise<void> {
    const file = this.file;
    this.lastCheckpoint = performance.now();
    this.checkpointInFlight = true;
    const origins = [...this.origins.values()];
    const id = this.checkpointId === 0 ? newCheckpointId() : nextCheckpointId(this.checkpointId);
    this.checkpointId = id;
    const data = encodeCheckpoint(origins, id);
    const flows = origins.reduce((s, o) => s + o.table.count, 0);
    const run = this.writing.then(async () => {
      const t0 = performance.now();
      try {
        await writeCheckpoint(file, data);
        this.journal = { id, started: false, directorySynced: false };
        this.journalBytes = 0;
        this.journalLimit = Math.max(data.length, MIN_JOURNAL_LIMIT);
        this.settings.logger.debug(
          { path: file, flows, bytes: data.length, ms: Math.round((performance.now() - t0) * 10) / 10 },
          'state file written',
        );
        this.written();
      } catch (err) {
        this.journal = undefined;
        this.writeFailed(err);
      } finally {
        this.checkpointInFlight = this.writesQueued > 1;
        this.writesQueued--;
      }
    });
    this.writesQueued++;
    this.writing = run;
    return run;
  }

  /**
   * Appends the records the batch just changed to the journal; with `sync`, they are on disk when this
   * resolves (else in the page cache, which outlives a killed process). Never rejects.
   */
  private append(o: OriginCheckpoint, changed: Uint32Array, sync: boolean): Promise<void> {
    const file = this.file;
    // Encoded now: the table goes on changing while earlier writes run.
    const frame = encodeJournalFrame([
      {
        origin: o.origin,
        baselinePhase: o.baselinePhase,
        generation: o.generation,
        lastSnapshotTime: o.lastSnapshotTime,
        records: o.table.copyRecords(changed, changed.length),
      },
    ]);
    const run = this.writing.then(async () => {
      const j = this.journal;
      if (j === undefined) {
        // The state file this frame continues was not written (that failure is reported and counted).
        this.writeFailures++;
        return;
      }
      try {
        await appendJournal(file, frame, {
          id: j.started ? undefined : j.id,
          sync,
          syncDirectory: sync && !j.directorySynced,
        });
        j.started = true;
        this.journalBytes += frame.length;
        if (sync) j.directorySynced = true;
        this.written();
      } catch (err) {
        this.journal = undefined;
        this.writeFailed(err);
      }
    });
    this.writing = run;
    return run;
  }

  private written(): void {
    if (this.checkpointError !== undefined) {
      this.checkpointError = undefined;
      this.settings.logger.info({ path: this.file }, 'state file written again');
    }
    if (this.errorReported) {
      // What this store reports is its own: the framework never clears it after a good batch.
      this.errorReported = false;
      if (this.statusReport) clearImmediate(this.statusReport);
      this.statusReport = undefined;
      this.settings.status.ok();
    }
  }

  private writeFailed(err: unknown): void {
    const file = this.file;
    this.writeFailures++;
    const message = `cannot write the state file ${file}: ${systemError(err)}`;
    if (message !== this.checkpointError) {
      this.settings.logger.warn(
        { path: file, err: systemError(err) },
        'cannot write the state file; deltas go on, but after a restart the counts since the last good write are reported again',
      );
      this.checkpointError = message;
      this.reportError(message);
    }
  }

  /** Reports recoverable_error once the batch being processed has been handed on. */
  private reportError(message: string): void {
    this.errorReported = true;
    if (this.closed) {
      this.settings.status.recoverableError(new Error(message));
      return;
    }
    if (this.statusReport) clearImmediate(this.statusReport);
    this.statusReport = setImmediate(() => {
      this.statusReport = undefined;
      this.settings.status.recoverableError(new Error(message));
    });
  }

  private async load(): Promise<void> {
    const problem = await checkStatePath(this.file);
    if (problem !== null) {
      // Every write would fail, and reading may not even return (a FIFO): say so once, here.
      throw new Error(`unusable state_file: ${problem}`);
    }
    const users = stateFilesInUse.get(this.file) ?? 0;
    stateFilesInUse.set(this.file, users + 1);
    if (users > 0) {
      // A processor listed in two pipelines is two instances: they would overwrite each other's state.
      this.settings.logger.warn(
        { path: this.file },
        'another delta processor in this agent uses the same state_file: after a restart one of them loses its state. Give each pipeline its own delta/<name> with its own state_file',
      );
    }
    try {
      await this.restore();
    } finally {
      this.isReady = true;
    }
  }

  private async restore(): Promise<void> {
    const file = this.file;
    const t0 = performance.now();
    const result = await loadCheckpoint(file);
    const log = this.settings.logger;
    switch (result.kind) {
      case 'missing':
        log.info({ path: file }, 'no state file yet: every origin starts with a baseline snapshot');
        break;
      case 'unreadable':
        this.restoreOrigins([], 'state_file_unreadable');
        log.warn(
          { path: file, err: result.reason },
          'cannot read the state file: starting without it (the first snapshot of each origin is a baseline)',
        );
        this.errorReported = true;
        this.settings.status.recoverableError(
          new Error(`cannot read the state file ${file}: ${result.reason}`),
        );
        break;
      case 'corrupt':
        this.restoreOrigins([], 'state_file_damaged');
        log.warn(
          {
            path: file,
            problem: result.reason,
            moved_to: result.movedTo,
            journal_moved_to: result.journalMovedTo,
          },
          `state file ${file} is unusable (${result.reason}): ${
            result.movedTo ? `moved to ${result.movedTo}` : 'could not move it aside'
          }; starting without it`,
        );
        break;
      case 'untrusted': {
        // The journal may have held batches whose deltas were passed on: from the state file without them,
        // a flow's next reading would count those again. Each origin's first snapshot is a new baseline
        // instead: one interval is lost, nothing is counted twice.
        this.restoreOrigins([], result.distrust);
        const journal = `${file}.journal`;
        const aside = [result.movedTo, result.journalMovedTo].filter((f) => f !== undefined);
        log.warn(
          {
            path: journal,
            problem: result.reason,
            moved_to: result.movedTo,
            journal_moved_to: result.journalMovedTo,
          },
          `the state file journal ${journal} cannot be trusted (${result.reason}): ${
            aside.length > 0 ? `moved to ${aside.join(' and ')}` : 'could not move it aside'
          }; starting without the saved state, so what flows sent since the last write before the restart is not reported (never twice): the first snapshot of each origin is a new baseline`,
        );
        break;
      }
      case 'loaded': {
        this.checkpointId = result.id;
        this.restoreOrigins(result.origins);
        const { journal } = result;
        if (journal.ignored !== undefined) {
          // A frame cut short is what a crash while appending leaves (its deltas were never passed on);
          // a journal of an older state file is what a crash right after rewriting the state file leaves.
          log.info(
            { path: `${file}.journal`, problem: journal.ignored, frames_used: journal.frames },
            'part of the state file journal is not used',
          );
        }
        log.info(
          {
            path: file,
            origins: result.origins.length,
            flows: result.origins.reduce((s, o) => s + o.table.count, 0),
            bytes: result.bytes,
            journal_frames: journal.frames,
            journal_records: journal.records,
            ms: Math.round((performance.now() - t0) * 10) / 10,
          },
          'state restored',
        );
        break;
      }
    }
  }
}
