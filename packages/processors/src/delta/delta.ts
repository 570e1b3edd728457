// The delta processor: cumulative conntrack counters in, exact per-interval deltas out. Every byte the
// kernel counts is passed on once: snapshots and DESTROY events are reconciled against one baseline per
// flow, kept in a BaselineTable per origin; state-store.ts keeps that state on disk across restarts. README.md
// states the rules; the comments here say where each lives.
import { resolve } from 'node:path';
import {
  type Batch,
  type ComponentSettings,
  FlowBatch,
  FlowFlags,
  type ObservedMetrics,
  observeMetrics,
  type Processor,
} from '@netmon/core';
import {
  addressWords,
  BaselineTable,
  F_CLOSED_START,
  F_EARLIER_START,
  F_LAST_READ,
  F_REOPENED_AT_READ,
  F_RX_BYTES,
  F_RX_PACKETS,
  F_TX_BYTES,
  F_TX_PACKETS,
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
} from './baseline-table.js';
import type { DistrustReason, OriginCheckpoint } from './checkpoint.js';
import type { DeltaProcessorConfig } from './config.js';
import { DELTA_METRICS } from './metrics.js';
import { DeltaStateStore } from './state-store.js';

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
  /**
   * Set when this process started from a saved state it could not trust: the flows this origin's baseline
   * phase takes as a baseline are counted (what they sent since the last write before the restart is lost).
   */
  distrust?: DistrustReason;
  rebaselined: number;
}

const newOrigin = (origin: string, distrust?: DistrustReason): Origin => ({
  origin,
  table: new BaselineTable(),
  // Until its first snapshot, an origin's unknown flows predate the agent: their counters are a baseline.
  baselinePhase: true,
  generation: 0,
  lastSnapshotTime: 0,
  reads: 0,
  vanished: 0,
  counterResets: 0,
  preexistingClosed: 0,
  distrust,
  rebaselined: 0,
});

function numberValues(batch: FlowBatch, key: string): Float64Array | null {
  const col = batch.column(key);
  return col !== undefined && col.kind === 'number' ? col.values : null;
}

export class DeltaProcessor implements Processor {
  /** Output batches are new; the input is only read. */
  readonly mutates = false;
  private readonly origins = new Map<string, Origin>();
  /** Where the state is kept across restarts; none without state_file. */
  private readonly store: DeltaStateStore | undefined;
  private stopped = false;
  private loggedDeltaInput = false;
  /** Why the saved state was not trusted at start (none, or none saved): every origin starts with it. */
  private distrust?: DistrustReason;
  /** Entries the batch being computed changed (the first `changedCount`), for the journal. */
  private changed = new Uint32Array(1024);
  private changedCount = 0;
  private readonly metrics: ObservedMetrics<typeof DELTA_METRICS>;

  constructor(
    private readonly settings: ComponentSettings,
    config: DeltaProcessorConfig,
  ) {
    this.store =
      config.state_file === undefined
        ? undefined
        : new DeltaStateStore(resolve(settings.configDir, config.state_file), settings, {
            checkpointInterval: config.checkpoint_interval,
            origins: this.origins,
            restore: (restored, distrust) => this.restore(restored, distrust),
          });
    this.metrics = observeMetrics(settings.meter, DELTA_METRICS, (r) => {
      let bytes = 0;
      for (const o of this.origins.values()) {
        const attrs = { origin: o.origin };
        r.tracked(o.table.count, attrs);
        r.vanished(o.vanished, attrs);
        r.resets(o.counterResets, attrs);
        r.preexisting(o.preexistingClosed, attrs);
        if (o.distrust !== undefined) r.rebaselined(o.rebaselined, { ...attrs, reason: o.distrust });
        bytes += o.table.byteSize;
      }
      r.stateBytes(bytes);
      r.failures(this.store?.failures ?? 0);
    });
  }

  /**
   * Loads the state file, if one is configured and present: a bad or untrusted one is set aside, never
   * fatal. Fails only on a path no state file can be written to (what validate refuses).
   */
  start(): Promise<void> {
    return this.store?.start() ?? Promise.resolve();
  }

  async shutdown(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.metrics.close();
    await this.store?.close();
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
    const store = this.store;
    if (store !== undefined && !store.ready) {
      // Not started (a test, a tool) or still loading: the restored state comes first.
      return this.start().then(() => this.process(batch));
    }
    let origin = this.origins.get(batch.origin);
    if (origin === undefined) {
      origin = newOrigin(batch.origin, this.distrust);
      this.origins.set(batch.origin, origin);
    }
    const out = this.compute(batch, origin);
    if (store === undefined) return out;
    // The state whose deltas `out` holds is on disk before `out` is passed on, so that after a crash a
    // restarted agent continues from it and reports none of them again.
    const written = store.persist(
      origin,
      batch.snapshot,
      this.changed.subarray(0, this.changedCount),
      out !== null,
    );
    if (written === undefined) return out;
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
    rebaselined: number;
    checkpointFailures: number;
  } {
    let vanished = 0;
    let counterResets = 0;
    let preexistingClosed = 0;
    let rebaselined = 0;
    for (const o of this.origins.values()) {
      vanished += o.vanished;
      counterResets += o.counterResets;
      preexistingClosed += o.preexistingClosed;
      rebaselined += o.rebaselined;
    }
    return {
      vanished,
      counterResets,
      preexistingClosed,
      rebaselined,
      checkpointFailures: this.store?.failures ?? 0,
    };
  }

  /**
   * Takes the origins read back from the state file, with fresh counts; or, with `distrust`, remembers
   * that a saved state was not trusted, for the origins to come.
   */
  private restore(restored: OriginCheckpoint[], distrust?: DistrustReason): void {
    this.distrust = distrust;
    for (const c of restored) {
      settleReopened(c.table);
      this.origins.set(c.origin, {
        ...c,
        reads: 0,
        vanished: 0,
        counterResets: 0,
        preexistingClosed: 0,
        rebaselined: 0,
      });
    }
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
    const track = this.store !== undefined && !snapshot;
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
          // After an untrusted state, part of those counters may have been passed on before the restart.
          if (o.distrust !== undefined) o.rebaselined++;
          else if (fl & FlowFlags.Closed) o.preexistingClosed++;
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
}

/**
 * A restored REOPENED flow is LIVE with a zero baseline: its NEW was processed before the state was
 * written, so every dump after the restart began after it.
 */
function settleReopened(t: BaselineTable): void {
  const f64 = t.f64;
  const u32 = t.u32;
  for (let e = 0; e < t.count; e++) {
    if (u32[REC_U32 * e + U_STATE] !== STATE_REOPENED) continue;
    f64[REC_F64 * e + F_EARLIER_START] = 0;
    f64[REC_F64 * e + F_REOPENED_AT_READ] = 0;
    u32[REC_U32 * e + U_STATE] = STATE_LIVE;
  }
}
