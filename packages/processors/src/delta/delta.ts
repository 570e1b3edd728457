// The delta processor: cumulative conntrack counters in, exact per-interval deltas out. Every byte the
// kernel counts is passed on once: snapshots and DESTROY events are reconciled against one baseline per
// flow, kept in a FlowTable per origin. README.md states the rules; the comments here say where each lives.
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type Batch, type ComponentSettings, FlowBatch, FlowFlags, type Processor } from '@netmon/core';
import {
  appendJournal,
  encodeCheckpoint,
  encodeJournalFrame,
  loadCheckpoint,
  newCheckpointId,
  nextCheckpointId,
  type OriginCheckpoint,
  systemError,
  writeCheckpoint,
} from './checkpoint.js';
import type { DeltaProcessorConfig } from './config.js';
import {
  addressWords,
  F_CLOSED_START,
  F_EARLIER_START,
  F_LAST_READ,
  F_REOPENED_AT_READ,
  F_RX_BYTES,
  F_RX_PACKETS,
  F_TX_BYTES,
  F_TX_PACKETS,
  FlowTable,
  FP,
  fingerprint,
  fingerprintWords,
  REC_F64,
  REC_U32,
  STATE_CLOSED,
  STATE_LIVE,
  STATE_MISSING,
  STATE_REOPENED,
  U_GEN,
  U_STATE,
} from './flow-table.js';

/** Number attribute columns that are part of a flow's identity (absent or NaN counts as 0). */
export const ID_ATTRIBUTE = 'conntrack.id';
export const ZONE_ATTRIBUTE = 'conntrack.zone';

/** A closed flow's tombstone is kept until this many later snapshots have been processed. */
const TOMBSTONE_SNAPSHOTS = 2;
/**
 * A live flow missing from this many snapshots in a row has ended without a DESTROY (events off or
 * lost). Not one: a DESTROY can still be on its way (events are batched), and a dump with skipped rows
 * must not make a flow look new when it reappears; until then its baseline stays, so either resumes it.
 */
const MISSING_SNAPSHOTS = 2;
/** The journal may grow to the state file's size, and at least this, before a rewrite replaces it. */
const MIN_JOURNAL_LIMIT = 1 << 20;

/** State files of the delta processors running in this process, with how many use each. */
const stateFilesInUse = new Map<string, number>();

type Meter = ComponentSettings['meter'];
type BatchCallback = Parameters<Meter['addBatchObservableCallback']>[0];
type Observable = Parameters<Meter['addBatchObservableCallback']>[1][number];

/** State and counts of one source of cumulative counters (one receiver instance). */
interface Origin extends OriginCheckpoint {
  /**
   * Dumps processed (snapshots and plain readings), to tell which came after a NEW. Not saved: a restored
   * REOPENED flow becomes LIVE, as every dump after a restart began after the NEW.
   */
  reads: number;
  vanished: number;
  counterResets: number;
  preexistingClosed: number;
}

const newOrigin = (origin: string): Origin => ({
  origin,
  table: new FlowTable(),
  // Until its first snapshot, an origin's unknown flows predate the agent: their counters are a baseline.
  baselinePhase: true,
  generation: 0,
  lastSnapshotTime: 0,
  reads: 0,
  vanished: 0,
  counterResets: 0,
  preexistingClosed: 0,
});

function numberValues(batch: FlowBatch, key: string): Float64Array | null {
  const col = batch.column(key);
  return col !== undefined && col.kind === 'number' ? col.values : null;
}

export class DeltaProcessor implements Processor {
  /** Output batches are new; the input is only read. */
  readonly mutates = false;
  private readonly origins = new Map<string, Origin>();
  private readonly file: string | undefined;
  private loaded?: Promise<void>;
  /** The state file has been read (or there is none). */
  private ready = false;
  private stopped = false;
  private loggedDeltaInput = false;
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
  /** Entries the batch being computed changed (the first `changedCount`), for the journal. */
  private changed = new Uint32Array(1024);
  private changedCount = 0;
  private checkpointFailures = 0;
  /** The message of the last failed write while writes keep failing; undefined once one succeeds. */
  private checkpointError?: string;
  private statusReport?: NodeJS.Immediate;
  private readonly instruments: Observable[];
  private readonly observe: BatchCallback;

  constructor(
    private readonly settings: ComponentSettings,
    private readonly config: DeltaProcessorConfig,
  ) {
    this.file = config.state_file === undefined ? undefined : resolve(settings.configDir, config.state_file);
    const meter = settings.meter;
    const tracked = meter.createObservableGauge('netmon_delta_flows_tracked', {
      description: 'Flows the delta processor holds a baseline for (live, and recently closed), per origin.',
      unit: '{flow}',
    });
    const stateBytes = meter.createObservableGauge('netmon_delta_state_bytes', {
      description: 'Memory of the delta processor flow tables (typed arrays, with their spare capacity).',
      unit: 'By',
    });
    const vanished = meter.createObservableCounter('netmon_delta_flows_vanished', {
      description:
        'Flows that disappeared from a snapshot without a DESTROY event (events off or lost); what they sent since the previous reading was not reported.',
      unit: '{flow}',
    });
    const resets = meter.createObservableCounter('netmon_delta_flows_reset', {
      description: 'Readings whose counters were below the baseline: the flow was counted again from zero.',
      unit: '{flow}',
    });
    const preexisting = meter.createObservableCounter('netmon_delta_preexisting_closed', {
      description:
        'DESTROY events for flows older than the agent, before their origin had a first snapshot: dropped, as their counters include bytes from before the agent started.',
      unit: '{flow}',
    });
    const failures = meter.createObservableCounter('netmon_delta_checkpoint_failures', {
      description: 'Failed writes of the state file.',
      unit: '{write}',
    });
    this.instruments = [tracked, stateBytes, vanished, resets, preexisting, failures];
    this.observe = (r) => {
      let bytes = 0;
      for (const o of this.origins.values()) {
        const attrs = { origin: o.origin };
        r.observe(tracked, o.table.count, attrs);
        r.observe(vanished, o.vanished, attrs);
        r.observe(resets, o.counterResets, attrs);
        r.observe(preexisting, o.preexistingClosed, attrs);
        bytes += o.table.byteSize;
      }
      r.observe(stateBytes, bytes);
      r.observe(failures, this.checkpointFailures);
    };
    meter.addBatchObservableCallback(this.observe, this.instruments);
  }

  /** Loads the state file, if one is configured and present. Never fails: a bad file is set aside. */
  start(): Promise<void> {
    if (this.loaded === undefined && this.file !== undefined) {
      const users = stateFilesInUse.get(this.file) ?? 0;
      stateFilesInUse.set(this.file, users + 1);
      if (users > 0) {
        // A processor listed in two pipelines is two instances: they would overwrite each other's state.
        this.settings.logger.warn(
          { path: this.file },
          'another delta processor in this agent uses the same state_file: after a restart one of them loses its state. Give each pipeline its own delta/<name> with its own state_file',
        );
      }
    }
    this.loaded ??= this.load();
    return this.loaded;
  }

  async shutdown(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.settings.meter.removeBatchObservableCallback(this.observe, this.instruments);
    if (this.statusReport) clearImmediate(this.statusReport);
    this.statusReport = undefined;
    // Without start, the state was never loaded: writing it would replace a good file with nothing.
    if (this.loaded !== undefined && this.file !== undefined) {
      await this.loaded;
      await this.checkpoint();
      const users = (stateFilesInUse.get(this.file) ?? 1) - 1;
      if (users > 0) stateFilesInUse.set(this.file, users);
      else stateFilesInUse.delete(this.file);
    }
    await this.writing;
  }

  process(batch: Batch): Batch | null | Promise<Batch | null> {
    if (!(batch instanceof FlowBatch)) return batch;
    if (batch.temporality !== 'cumulative') {
      if (!this.loggedDeltaInput) {
        this.loggedDeltaInput = true;
        this.settings.logger.debug(
          { origin: batch.origin },
          'batches that already hold deltas pass through unchanged',
        );
      }
      return batch;
    }
    if (this.file !== undefined && !this.ready) {
      // Not started (a test, a tool) or still loading: the restored state comes first.
      return this.start().then(() => this.process(batch));
    }
    let origin = this.origins.get(batch.origin);
    if (origin === undefined) {
      origin = newOrigin(batch.origin);
      this.origins.set(batch.origin, origin);
    }
    const out = this.compute(batch, origin);
    if (this.file === undefined) return out;
    // The state whose deltas `out` holds is on disk before `out` is passed on, so that after a crash a
    // restarted agent continues from it and reports none of them again. A snapshot rewrites the state
    // file; any other batch that changed the state appends what it changed to the journal, or, before this
    // process has written a state file to continue (or with checkpoint_interval), rewrites it too.
    let written: Promise<void>;
    if (batch.snapshot) {
      if (!this.checkpointDue()) return out;
      written = this.checkpoint();
    } else if (this.changedCount === 0) {
      return out;
    } else if (
      this.config.checkpoint_interval === 0 &&
      (this.journal !== undefined || this.checkpointInFlight)
    ) {
      // A journal as long as the state file costs more to replay than a rewrite: rewrite then.
      written = this.journalBytes > this.journalLimit ? this.checkpoint() : this.append(origin, out !== null);
    } else if (this.config.checkpoint_interval === 0 && this.checkpointError !== undefined) {
      // Writes are failing (a full or read-only disk): not a full rewrite per event batch; the next
      // snapshot tries again. Counts since the last good write may repeat after a crash, as the log said.
      return out;
    } else if (this.checkpointDue()) {
      written = this.checkpoint();
    } else {
      return out;
    }
    // An event batch with nothing to pass on need not wait: later writes queue behind this one.
    return out === null && !batch.snapshot ? null : written.then(() => out);
  }

  /** Tracked flows per origin (live and tombstones). */
  trackedFlows(origin: string): number {
    return this.origins.get(origin)?.table.count ?? 0;
  }

  /** Bytes of typed arrays held by every origin's table. */
  get stateBytes(): number {
    let n = 0;
    for (const o of this.origins.values()) n += o.table.byteSize;
    return n;
  }

  /** Self-metric values, summed over origins (for tests and tools). */
  get counts(): {
    vanished: number;
    counterResets: number;
    preexistingClosed: number;
    checkpointFailures: number;
  } {
    let vanished = 0;
    let counterResets = 0;
    let preexistingClosed = 0;
    for (const o of this.origins.values()) {
      vanished += o.vanished;
      counterResets += o.counterResets;
      preexistingClosed += o.preexistingClosed;
    }
    return { vanished, counterResets, preexistingClosed, checkpointFailures: this.checkpointFailures };
  }

  /** The deltas of one cumulative batch, with the state updated; null when nothing changed. */
  private compute(batch: FlowBatch, o: Origin): FlowBatch | null {
    const n = batch.length;
    const table = o.table;
    const snapshot = batch.snapshot;
    const baselinePhase = o.baselinePhase;
    const prevSnapshotTime = o.lastSnapshotTime;
    if (snapshot) o.generation = (o.generation + 1) >>> 0;
    const gen = o.generation;
    const { family, protocol, srcAddr, dstAddr, srcPort, dstPort, flags, timeStart, timeEnd } = batch;
    const { txBytes, rxBytes, txPackets, rxPackets } = batch;
    const ids = numberValues(batch, ID_ATTRIBUTE);
    const zones = numberValues(batch, ZONE_ATTRIBUTE);
    const src32 = addressWords(srcAddr);
    const dst32 = addressWords(dstAddr);
    // Records this batch changes, for the journal (a snapshot rewrites the whole state file instead).
    const track = this.file !== undefined && !snapshot;
    this.changedCount = 0;
    // This batch's number among the origin's dumps (snapshots and plain readings); 0 for events.
    let read = snapshot ? ++o.reads : 0;

    // Rows to emit, and per row its four deltas and start time (stride 5). Allocated per batch, not per
    // row, small at first: most rows of a dump of a large table did not change.
    let cap = Math.min(n, 1024);
    let rows = new Uint32Array(cap);
    let d = new Float64Array(5 * cap);
    let k = 0;
    let snapshotTime = 0;
    let f64 = table.f64;
    let u32 = table.u32;

    for (let i = 0; i < n; i++) {
      const fl = flags[i];
      const tEnd = timeEnd[i];
      if (tEnd > snapshotTime) snapshotTime = tEnd;
      const zone = zones === null ? 0 : zones[i] & 0xffff;
      const id = ids === null ? 0 : ids[i] >>> 0;
      if (src32 !== null && dst32 !== null) {
        fingerprintWords(src32, dst32, i, srcPort[i], dstPort[i], family[i], protocol[i], zone, id);
      } else {
        fingerprint(srcAddr, dstAddr, i, srcPort[i], dstPort[i], family[i], protocol[i], zone, id);
      }
      const lo = FP[0];
      const hi = FP[1];
      let e = table.find(lo, hi);
      const tx = txBytes[i];
      const rx = rxBytes[i];
      const tp = txPackets[i];
      const rp = rxPackets[i];
      let dtx = tx;
      let drx = rx;
      let dtp = tp;
      let drp = rp;
      let from: number;
      const ts = timeStart[i];
      // The connection's start when the kernel keeps it (nf_conntrack_timestamp), else 0.
      const start = ts > 0 && ts <= tEnd ? ts : 0;
      const event = !snapshot && (fl & (FlowFlags.Opened | FlowFlags.Closed)) !== 0;
      if (!event && read === 0) read = ++o.reads;
      const state = e === -1 ? 0 : u32[REC_U32 * e + U_STATE];

      if (event && !(fl & FlowFlags.Closed)) {
        // NEW event: the connection counts from zero, whatever the row says; nothing to emit yet.
        if (e === -1) {
          e = table.insert(lo, hi);
          f64 = table.f64;
          u32 = table.u32;
          f64[REC_F64 * e + F_LAST_READ] = start || tEnd;
          u32[REC_U32 * e + U_GEN] = gen;
          u32[REC_U32 * e + U_STATE] = STATE_LIVE;
          if (track) this.markChanged(e);
          continue;
        }
        // The key of a connection we hold: the kernel reused the tuple, and with it the id (the id hashes
        // the entry's address and tuple, and a reused entry often sits at the same address).
        const r = REC_F64 * e;
        let earlier = 0;
        if (state === STATE_CLOSED) {
          earlier = f64[r + F_CLOSED_START];
        } else {
          // Read before the reading we hold: not a new connection but the NEW of the one that reading saw,
          // late (the receiver hands a dump on only after every event queued before it ends, so this takes
          // a failed event barrier, or the clock stepped back).
          if (tEnd < f64[r + F_LAST_READ]) continue;
          // The old connection ended without a DESTROY reaching us: what it sent since its last reading is
          // lost, as for a flow missing from two snapshots.
          o.vanished++;
        }
        f64[r + F_EARLIER_START] = earlier;
        f64[r + F_REOPENED_AT_READ] = o.reads;
        f64[r + F_TX_PACKETS] = 0;
        f64[r + F_RX_PACKETS] = 0;
        f64[r + F_LAST_READ] = start || tEnd;
        u32[REC_U32 * e + U_GEN] = gen;
        u32[REC_U32 * e + U_STATE] = STATE_REOPENED;
        if (track) this.markChanged(e);
        continue;
      }
      if (e === -1) {
        // A flow we hold nothing for.
        e = table.insert(lo, hi);
        f64 = table.f64;
        u32 = table.u32;
        const r = REC_F64 * e;
        f64[r + F_TX_BYTES] = tx;
        f64[r + F_RX_BYTES] = rx;
        f64[r + F_TX_PACKETS] = tp;
        f64[r + F_RX_PACKETS] = rp;
        u32[REC_U32 * e + U_GEN] = gen;
        if (fl & FlowFlags.Closed) {
          f64[r + F_CLOSED_START] = start;
          u32[REC_U32 * e + U_STATE] = STATE_CLOSED;
        } else {
          f64[r + F_LAST_READ] = tEnd;
          u32[REC_U32 * e + U_STATE] = STATE_LIVE;
        }
        if (track) this.markChanged(e);
        if (baselinePhase && !(fl & FlowFlags.Opened)) {
          // Alive before the agent started: its counters so far are the baseline, not news. A DESTROY of
          // such a flow is dropped whole (the tombstone keeps a stale dump from baselining it again).
          if (fl & FlowFlags.Closed) o.preexistingClosed++;
          continue;
        }
        // Born after the previous reading (its NEW missed, or events off): all of it is new.
        from = start || (prevSnapshotTime > 0 && prevSnapshotTime <= tEnd ? prevSnapshotTime : tEnd);
      } else {
        if (state === STATE_CLOSED) {
          // Already closed: a duplicate DESTROY, or a dump taken before the DESTROY was processed. Its
          // final counters were passed on; never count them again.
          continue;
        }
        const r = REC_F64 * e;
        if (state === STATE_REOPENED) {
          const earlier = f64[r + F_EARLIER_START];
          if (fl & FlowFlags.Closed) {
            // The new connection's DESTROY (events come in the kernel's order), unless its start says it
            // is the old one's again.
            if (start > 0 && start <= earlier) continue;
          } else if (
            !(read - f64[r + F_REOPENED_AT_READ] >= 2 || (start > 0 && earlier > 0 && start > earlier))
          ) {
            // The first dump processed since the NEW may have passed this key before the kernel reused
            // it, and then shows the old connection, whose bytes were counted: held back (not lost) unless
            // its start proves it the new one. A later dump began after the NEW was handed on.
            if (snapshot) u32[REC_U32 * e + U_GEN] = gen;
            continue;
          }
          f64[r + F_TX_BYTES] = 0;
          f64[r + F_RX_BYTES] = 0;
        }
        const btx = f64[r + F_TX_BYTES];
        const brx = f64[r + F_RX_BYTES];
        const btp = f64[r + F_TX_PACKETS];
        const brp = f64[r + F_RX_PACKETS];
        from = f64[r + F_LAST_READ];
        if (tx < btx || rx < brx || tp < btp || rp < brp) {
          // Below the baseline: the counters were reset (or the kernel reused the entry). Count from zero.
          o.counterResets++;
        } else {
          dtx = tx - btx;
          drx = rx - brx;
          dtp = tp - btp;
          drp = rp - brp;
        }
        f64[r + F_TX_BYTES] = tx;
        f64[r + F_RX_BYTES] = rx;
        f64[r + F_TX_PACKETS] = tp;
        f64[r + F_RX_PACKETS] = rp;
        if (fl & FlowFlags.Closed) {
          // DESTROY: the counters are final; the entry stays as a tombstone for a while.
          f64[r + F_CLOSED_START] = start;
          u32[REC_U32 * e + U_STATE] = STATE_CLOSED;
          u32[REC_U32 * e + U_GEN] = gen;
        } else {
          // Seen again (a flow missing from the previous snapshot comes back with its baseline intact).
          f64[r + F_LAST_READ] = tEnd;
          u32[REC_U32 * e + U_STATE] = STATE_LIVE;
          if (snapshot) u32[REC_U32 * e + U_GEN] = gen;
        }
        if (track) this.markChanged(e);
        if (from > tEnd) from = tEnd;
      }
      if (dtx === 0 && drx === 0 && dtp === 0 && drp === 0) continue;
      if (k === cap) {
        cap = Math.min(n, 2 * cap);
        const r2 = new Uint32Array(cap);
        r2.set(rows);
        rows = r2;
        const d2 = new Float64Array(5 * cap);
        d2.set(d);
        d = d2;
      }
      rows[k] = i;
      const at = 5 * k;
      d[at] = dtx;
      d[at + 1] = drx;
      d[at + 2] = dtp;
      d[at + 3] = drp;
      d[at + 4] = from;
      k++;
    }

    if (snapshot) {
      this.sweep(o, gen, n === 0 ? Number.POSITIVE_INFINITY : snapshotTime);
      o.baselinePhase = false;
      if (n > 0) o.lastSnapshotTime = snapshotTime;
    }
    if (k === 0) return null;
    const out = batch.select(rows.subarray(0, k));
    out.temporality = 'delta';
    out.snapshot = false;
    for (let j = 0; j < k; j++) {
      const at = 5 * j;
      out.txBytes[j] = d[at];
      out.rxBytes[j] = d[at + 1];
      out.txPackets[j] = d[at + 2];
      out.rxPackets[j] = d[at + 3];
      out.timeStart[j] = d[at + 4];
    }
    return out;
  }

  private markChanged(e: number): void {
    if (this.changedCount === this.changed.length) {
      const grown = new Uint32Array(2 * this.changed.length);
      grown.set(this.changed);
      this.changed = grown;
    }
    this.changed[this.changedCount++] = e;
  }

  /**
   * After a snapshot: live flows it did not list (unless first seen after the dump was read) become
   * missing; a flow missing MISSING_SNAPSHOTS snapshots in a row has ended without a DESTROY (its bytes
   * since its last reading are lost) and goes; tombstones older than TOMBSTONE_SNAPSHOTS snapshots go;
   * reopened flows become live (or missing) with a zero baseline.
   */
  private sweep(o: Origin, gen: number, snapshotTime: number): void {
    const t = o.table;
    const f64 = t.f64;
    const u32 = t.u32;
    // Downwards: remove() moves the last entry, already visited, into the hole.
    for (let e = t.count - 1; e >= 0; e--) {
      const g = u32[REC_U32 * e + U_GEN];
      const state = u32[REC_U32 * e + U_STATE];
      if (state === STATE_LIVE) {
        if (g !== gen && f64[REC_F64 * e + F_LAST_READ] <= snapshotTime) {
          u32[REC_U32 * e + U_STATE] = STATE_MISSING;
        }
      } else if (state === STATE_REOPENED) {
        // Every dump after this snapshot began after the NEW was handed on: nothing older can show up
        // any more, and the new connection is an ordinary flow with a zero baseline.
        const r = REC_F64 * e;
        f64[r + F_EARLIER_START] = 0;
        f64[r + F_REOPENED_AT_READ] = 0;
        u32[REC_U32 * e + U_STATE] =
          g !== gen && f64[r + F_LAST_READ] <= snapshotTime ? STATE_MISSING : STATE_LIVE;
      } else if (state === STATE_MISSING) {
        if ((gen - g) >>> 0 >= MISSING_SNAPSHOTS) {
          t.remove(e);
          o.vanished++;
        }
      } else if ((gen - g) >>> 0 >= TOMBSTONE_SNAPSHOTS) {
        t.remove(e);
      }
    }
    t.shrinkToFit();
  }

  private checkpointDue(): boolean {
    if (this.file === undefined) return false;
    return (
      this.config.checkpoint_interval === 0 ||
      performance.now() - this.lastCheckpoint >= this.config.checkpoint_interval
    );
  }

  /** Writes the state as it is now; writes run one at a time, in order. Never rejects. */
  private checkpoint(): Promise<void> {
    const file = this.file;
    if (file === undefined) return Promise.resolve();
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
   * Appends the records the batch just computed changed to the journal; with `sync`, they are on disk
   * when this resolves (else in the page cache, which outlives a killed process). Never rejects.
   */
  private append(o: Origin, sync: boolean): Promise<void> {
    const file = this.file;
    if (file === undefined) return Promise.resolve();
    const frame = encodeJournalFrame([
      {
        origin: o.origin,
        baselinePhase: o.baselinePhase,
        generation: o.generation,
        lastSnapshotTime: o.lastSnapshotTime,
        records: o.table.copyRecords(this.changed, this.changedCount),
      },
    ]);
    const run = this.writing.then(async () => {
      const j = this.journal;
      if (j === undefined) {
        // The state file this frame continues was not written (that failure is reported and counted).
        this.checkpointFailures++;
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
  }

  private writeFailed(err: unknown): void {
    const file = this.file;
    this.checkpointFailures++;
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

  /**
   * Reports recoverable_error once this batch has been handed on: the framework marks a processor
   * healthy after each batch it returns, which would hide an error reported during `process`.
   */
  private reportError(message: string): void {
    if (this.stopped) {
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
    try {
      await this.restore();
    } finally {
      this.ready = true;
    }
  }

  private async restore(): Promise<void> {
    const file = this.file;
    if (file === undefined) return;
    const t0 = performance.now();
    const result = await loadCheckpoint(file);
    const log = this.settings.logger;
    switch (result.kind) {
      case 'missing':
        log.info({ path: file }, 'no state file yet: every origin starts with a baseline snapshot');
        break;
      case 'unreadable':
        log.warn(
          { path: file, err: result.reason },
          'cannot read the state file: starting without it (the first snapshot of each origin is a baseline)',
        );
        this.settings.status.recoverableError(
          new Error(`cannot read the state file ${file}: ${result.reason}`),
        );
        break;
      case 'corrupt':
        log.warn(
          { path: file, problem: result.reason, moved_to: result.movedTo },
          `state file ${file} is unusable (${result.reason}): ${
            result.movedTo ? `moved to ${result.movedTo}` : 'could not move it aside'
          }; starting without it`,
        );
        break;
      case 'loaded': {
        this.checkpointId = result.id;
        for (const c of result.origins) {
          settleReopened(c.table);
          this.origins.set(c.origin, { ...c, reads: 0, vanished: 0, counterResets: 0, preexistingClosed: 0 });
        }
        const { journal } = result;
        if (journal.ignored !== undefined) {
          const fields = { path: `${file}.journal`, problem: journal.ignored, frames_used: journal.frames };
          // A frame cut short is what a crash while appending leaves (its deltas were never passed on);
          // a journal of an older state file is what a crash right after rewriting the state file leaves.
          if (journal.damaged)
            log.warn(fields, 'the state file journal is damaged: using what precedes the damage');
          else log.info(fields, 'part of the state file journal is not used');
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

/**
 * A restored REOPENED flow is LIVE with a zero baseline: its NEW was processed before the state was
 * written, so every dump after the restart began after it.
 */
function settleReopened(t: FlowTable): void {
  const f64 = t.f64;
  const u32 = t.u32;
  for (let e = 0; e < t.count; e++) {
    if (u32[REC_U32 * e + U_STATE] !== STATE_REOPENED) continue;
    f64[REC_F64 * e + F_EARLIER_START] = 0;
    f64[REC_F64 * e + F_REOPENED_AT_READ] = 0;
    u32[REC_U32 * e + U_STATE] = STATE_LIVE;
  }
}
