import { join } from 'node:path';
import {
  type BatchSink,
  type ComponentSettings,
  errorMessage,
  FlowBatch,
  observeMetrics,
  type Receiver,
} from '@netmon/core';
import type { PinnedMapRead } from '@netmon/native';
import { BPF_FS_MAGIC, notBpfFs } from './bpffs.js';
import {
  type ClockNow,
  detectClock,
  MONO_SCALER,
  measureHz,
  schedstatJiffies,
  secondsLeft,
  timerListJiffies,
} from './clock.js';
import type { CiliumReceiverConfig } from './config.js';
import type { CiliumKernel } from './kernel.js';
import {
  ClosedEntries,
  countedConnections,
  type DecodeCounts,
  decodeEntries,
  detectLayout,
  KEY_SIZE,
  newCounts,
  VALUE,
  VALUE_SIZE,
  type ValueLayout,
} from './layout.js';
import { CILIUM_METRICS } from './metrics.js';
import { nodeKernel } from './node-kernel.js';

const MAPS = [
  ['tcp4', 4],
  ['any4', 4],
  ['tcp6', 6],
  ['any6', 6],
] as const;
type MapKey = (typeof MAPS)[number][0];

/** The other map of a map's family: Cilium defines the two together (bpf/lib/conntrack_map.h). */
const MATE: Record<MapKey, MapKey> = { tcp4: 'any4', any4: 'tcp4', tcp6: 'any6', any6: 'tcp6' };

/** The connections a map holds, for an error saying they are not read. */
const HOLDS: Record<MapKey, string> = {
  tcp4: 'the IPv4 TCP connections',
  any4: 'the IPv4 connections of every protocol but TCP (UDP, ICMP, SCTP)',
  tcp6: 'the IPv6 TCP connections',
  any6: 'the IPv6 connections of every protocol but TCP (UDP, ICMPv6, SCTP)',
};

/** Entries of each map looked at by a start that must see counters. */
const SAMPLE = 4096;

/** First retry of a failed read; each further one waits twice as long, until that reaches read_interval. */
const RETRY_BASE_MS = 500;

/**
 * Reads Cilium's pinned conntrack maps every `read_interval` and hands on every connection with its
 * cumulative counters, src the side that opened it (a full snapshot: put `delta` after it). Service and
 * related entries are not counted; a connection between two endpoints of this node is reported once.
 */
export class CiliumReceiver implements Receiver {
  private timer?: NodeJS.Timeout;
  private reading?: Promise<void>;
  private stopping = false;
  private failedInARow = 0;
  private layout: ValueLayout | undefined;
  private layoutReason = '';
  private clock: 'ktime' | 'jiffies' | undefined;
  private hz: number | undefined;
  private countersOff = false;
  private warnedCountersOff = false;
  // Self-metric state.
  private reads = 0;
  private readonly failures = new Map<MapKey, number>();
  private readonly truncated = new Map<MapKey, number>();
  private readonly lastCounts = new Map<MapKey, DecodeCounts>();
  private readonly lastErrors = new Map<MapKey, string>();
  private readonly lastTruncated = new Map<MapKey, boolean>();
  /** Maps read at least once: one that goes missing later is an error, one never pinned is not. */
  private readonly seen = new Set<MapKey>();
  /** Maps not pinned (never read), with what /status says of each; half-pinned families' are errors. */
  private unpinned = new Map<MapKey, { text: string; error: boolean }>();
  /** What the log last said is wrong with each map: a map's problem is logged when it changes. */
  private logged = new Map<MapKey, string>();
  /** Why the layout is still undetermined, when entries disagree. */
  private layoutUndecided = '';
  /** The clock at the last read (monotonic units and wall ms), to put lifetimes in wall-clock time. */
  private lastNow?: ClockNow;
  private lastNowWallMs = 0;
  /** Per map, the ended entries already reported Closed. */
  private readonly closed = new Map<MapKey, ClosedEntries>();
  private lastReadSeconds = 0;
  private readonly unobserve: Array<() => void> = [];

  constructor(
    private readonly settings: ComponentSettings,
    private readonly config: CiliumReceiverConfig,
    private readonly next: BatchSink,
    private readonly kernel: CiliumKernel = nodeKernel,
  ) {
    if (config.value_layout !== 'auto') {
      this.layout = config.value_layout;
      this.layoutReason = 'set in the config';
    }
    if (config.clock_source !== 'auto') this.clock = config.clock_source;
    this.registerMetrics();
  }

  /** The value layout in use (undefined until auto has seen an entry that tells). */
  get valueLayout(): ValueLayout | undefined {
    return this.layout;
  }

  async start(): Promise<void> {
    const dir = this.config.maps_dir;
    if (!this.kernel.exists(dir)) {
      throw new Error(
        `cilium receiver: ${dir} does not exist: Cilium pins its maps there on a Cilium node (mount the host's /sys/fs/bpf into the pod and set maps_dir), or choose another collection mode`,
      );
    }
    // Off a bpffs every map would fail to open with EACCES, which reads as a missing capability.
    const fsType = this.kernel.fsType?.(dir);
    if (fsType !== undefined && fsType !== BPF_FS_MAGIC) {
      throw new Error(`cilium receiver: ${notBpfFs(dir, fsType)}, or choose another collection mode`);
    }
    const present = MAPS.filter(([k]) => this.config.map_names[k] && this.kernel.exists(this.pathOf(k)));
    if (present.length === 0) {
      throw new Error(
        `cilium receiver: no Cilium conntrack map in ${dir} (${MAPS.map(([k]) => this.config.map_names[k])
          .filter(Boolean)
          .join(', ')}): not a Cilium node, or maps_dir is not where its bpffs is mounted`,
      );
    }
    // Each present map read once: a start that could read none fails (so auto moves on to the next
    // mode), instead of a receiver that retries forever on maps it may not open or that are not
    // conntrack maps.
    const errors: string[] = [];
    let connections = 0;
    let counted = 0;
    for (const [k, family] of present) {
      try {
        const sample = await this.kernel.readMap({
          path: this.pathOf(k),
          keySize: KEY_SIZE[family],
          valueSize: VALUE_SIZE,
          maxEntries: this.config.require_counters ? SAMPLE : 1,
        });
        this.seen.add(k);
        const c = countedConnections(sample.keys, sample.values, KEY_SIZE[family], sample.count);
        connections += c.connections;
        counted += c.counted;
      } catch (err) {
        errors.push(errorMessage(err));
      }
    }
    if (errors.length === present.length) {
      throw new Error(`cilium receiver: no Cilium conntrack map in ${dir} can be read: ${errors.join('; ')}`);
    }
    if (this.config.require_counters && connections > 0 && counted === 0) {
      throw new Error(
        `cilium receiver: the ${connections} connections in Cilium's conntrack maps all have zero counters: Cilium's conntrack accounting is off (turn it on with --bpf-conntrack-accounting, Helm bpf.ctAccounting: true), so no byte could be reported`,
      );
    }
    this.hz = await this.measureHz();
    this.unpinned = this.unpinnedMaps(new Set(present.map(([k]) => k)));
    this.settings.status.describe(() => ({
      maps_dir: dir,
      value_layout: this.layout ?? `undetermined (${this.layoutUndecided || 'no entry with counters yet'})`,
      value_layout_reason: this.layoutReason,
      directions:
        this.layout === 'total'
          ? 'both directions in tx (this Cilium version counts a connection’s packets together)'
          : 'tx and rx',
      clock_source: this.clock ?? 'undetermined',
      ...(this.countersOff
        ? {
            counters:
              "every connection's counters are 0: Cilium's conntrack accounting looks off (--bpf-conntrack-accounting, Helm bpf.ctAccounting: true)",
          }
        : {}),
      kernel_hz:
        this.hz ??
        'unknown (no usable jiffies in /proc/schedstat or /proc/timer_list: the jiffies clock cannot be read)',
      maps: Object.fromEntries(
        MAPS.filter(([k]) => this.config.map_names[k]).map(([k]) => [
          this.config.map_names[k],
          this.lastErrors.get(k) ??
            (this.lastCounts.has(k)
              ? {
                  ...this.countFacts(k),
                  ...(this.lastTruncated.get(k) ? { truncated: 'read in part: max_entries reached' } : {}),
                }
              : (this.unpinned.get(k)?.text ?? 'not read yet')),
        ]),
      ),
    }));
    this.settings.logger.info(
      { maps_dir: dir, maps: present.map(([k]) => this.config.map_names[k]), kernel_hz: this.hz },
      `reading Cilium's conntrack maps in ${dir}`,
    );
    this.schedule(0);
  }

  async shutdown(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    await this.reading;
    for (const off of this.unobserve) off();
  }

  private pathOf(k: MapKey): string {
    return join(this.config.maps_dir, this.config.map_names[k]);
  }

  /**
   * The configured maps not among `pinned` (never read), with what to say of each. Cilium defines a
   * family's TCP and other-protocol maps together, under ENABLE_IPV4 or ENABLE_IPV6
   * (bpf/lib/conntrack_map.h): a family with neither is off, which is no error; one map without the other
   * is a map_names naming a file Cilium does not pin, or an agent that has pinned its maps only in part,
   * and a whole class of the family's connections would go missing without a word — an error.
   */
  private unpinnedMaps(pinned: Set<MapKey>): Map<MapKey, { text: string; error: boolean }> {
    const out = new Map<MapKey, { text: string; error: boolean }>();
    for (const [k] of MAPS) {
      if (!this.config.map_names[k] || pinned.has(k)) continue;
      const mate = this.config.map_names[MATE[k]];
      if (mate && pinned.has(MATE[k])) {
        out.set(k, {
          text: `${this.pathOf(k)} is not pinned, while ${mate} is: ${HOLDS[k]} are not read (map_names.${k} names a file Cilium does not pin, or Cilium's agent has pinned its maps only in part)`,
          error: true,
        });
      } else {
        out.set(k, {
          text: `not pinned${mate ? `, nor is ${mate}` : ''}: Cilium pins a family's conntrack maps only with that family on (or map_names names files it does not pin)`,
          error: false,
        });
      }
    }
    return out;
  }

  /** HZ from two samples of (jiffies, monotonic) 100 ms apart, each pair read back to back. */
  private async measureHz(): Promise<number | undefined> {
    const sample = () => {
      const jiffies = this.jiffies();
      return jiffies === undefined ? undefined : { jiffies, ns: this.kernel.monotonicNs() };
    };
    const a = sample();
    if (!a) return undefined;
    await this.kernel.sleep(100);
    const b = sample();
    return b ? measureHz(a, b) : undefined;
  }

  private schedule(delayMs: number): void {
    if (this.stopping) return;
    this.timer = setTimeout(() => {
      const started = performance.now();
      this.reading = this.read().finally(() => {
        this.reading = undefined;
        const wait = this.config.read_interval - (performance.now() - started);
        const retry = this.failedInARow > 0 ? RETRY_BASE_MS * 2 ** (this.failedInARow - 1) : Infinity;
        this.schedule(Math.max(0, Math.min(wait, retry)));
      });
    }, delayMs);
  }

  /** The kernel's jiffies: /proc/schedstat's, else (a kernel without scheduler statistics) /proc/timer_list's. */
  private jiffies(): number | undefined {
    const fromSchedstat = schedstatJiffies(this.kernel.readProc('/proc/schedstat'));
    if (fromSchedstat !== undefined || this.clock === 'ktime') return fromSchedstat;
    return timerListJiffies(this.kernel.readProc('/proc/timer_list'));
  }

  private now(): ClockNow {
    const jiffies = this.jiffies();
    return {
      ktime: Math.floor(this.kernel.monotonicNs() / 1e9),
      jiffies: jiffies === undefined ? Number.NaN : Math.floor(jiffies / 2 ** MONO_SCALER),
    };
  }

  /** One read of every map: never throws. */
  private async read(): Promise<void> {
    const t0 = performance.now();
    const timeStart = Date.now();
    const pinned = MAPS.filter(
      ([k]) => this.config.map_names[k] && (this.seen.has(k) || this.kernel.exists(this.pathOf(k))),
    );
    this.unpinned = this.unpinnedMaps(new Set(pinned.map(([k]) => k)));
    // A map never read that is gone again: its last error is no longer what /status should say.
    for (const k of this.unpinned.keys()) this.lastErrors.delete(k);
    const results = await Promise.all(
      pinned.map(async ([k, family]) => {
        try {
          const r = await this.kernel.readMap({
            path: this.pathOf(k),
            keySize: KEY_SIZE[family],
            valueSize: VALUE_SIZE,
            maxEntries: this.config.max_entries,
          });
          this.lastErrors.delete(k);
          this.seen.add(k);
          return { k, family, r };
        } catch (err) {
          this.failures.set(k, (this.failures.get(k) ?? 0) + 1);
          this.lastErrors.set(k, errorMessage(err));
          return { k, family, err };
        }
      }),
    );
    const failed = results.filter((x) => x.err !== undefined);
    const now = this.now();
    const batch = new FlowBatch(1024, 'cumulative');
    batch.origin = this.settings.id;
    let disagreed = false;
    for (const { k, family, r } of results) {
      if (!r) continue;
      if (r.truncated) this.truncated.set(k, (this.truncated.get(k) ?? 0) + 1);
      this.lastTruncated.set(k, r.truncated);
      if (this.decide(r, family, now)) disagreed = true;
    }
    // Entries that disagree on the layout are read neither way until a read decides: decoded as the wrong
    // one they would hand delta wrong counters, and the read that decides would then show each connection's
    // bytes as a one-interval spike or a reset. (With every counter 0 nothing tells, and nothing is wrong.)
    const undecided = this.layout === undefined && disagreed;
    for (const { k, family, r } of results) {
      if (!r || undecided) continue;
      const counts = newCounts();
      decodeEntries(
        family,
        r.keys,
        r.values,
        r.count,
        this.layout ?? 'total',
        this.expiredBefore(now),
        batch,
        counts,
        this.closedOf(k),
      );
      this.lastCounts.set(k, counts);
    }
    const end = Date.now();
    this.lastNow = now;
    this.lastNowWallMs = end;
    this.noteCounters([batch]);
    batch.timeStart.fill(timeStart, 0, batch.length);
    batch.timeEnd.fill(end, 0, batch.length);
    // Every live connection when every map was read whole: one missing from it has ended.
    batch.snapshot = !undecided && failed.length === 0 && results.every((x) => !x.r?.truncated);
    this.reads++;
    this.lastReadSeconds = (performance.now() - t0) / 1000;
    // What is wrong with each map this read, in map order: a read that failed, a map of a half-pinned family.
    const problems = new Map<MapKey, string>();
    for (const [k] of MAPS) {
      const error = failed.some((f) => f.k === k) ? this.lastErrors.get(k) : undefined;
      const unpinned = this.unpinned.get(k);
      if (error !== undefined) problems.set(k, error);
      else if (unpinned?.error) problems.set(k, unpinned.text);
    }
    const said = [...problems.values()].join('; ');
    const allFailed = failed.length === results.length;
    if (allFailed) this.failedInARow++;
    else this.failedInARow = 0;
    this.logChanges(problems, allFailed ? `no Cilium conntrack map could be read: ${said}` : undefined);
    if (allFailed) {
      this.settings.status.recoverableError(new Error(`no Cilium conntrack map could be read: ${said}`));
      return;
    }
    try {
      this.next.consume(batch);
    } catch (err) {
      this.settings.status.recoverableError(
        new Error(`Cilium flows read but not handed on: ${errorMessage(err)}`),
      );
      return;
    }
    if (problems.size > 0) {
      this.settings.status.recoverableError(new Error(`Cilium conntrack maps not read: ${said}`));
    } else this.settings.status.ok();
  }

  /**
   * Logs what changed since the last read: a map's new or different problem, and the maps whose problem
   * is gone. The same problem read after read is not logged again (at 5 s that would be 17,000 lines a
   * day): /status and netmon_cilium_read_failures carry it meanwhile. `allFailed`: the message when no
   * map could be read, an error rather than a warning.
   */
  private logChanges(problems: Map<MapKey, string>, allFailed: string | undefined): void {
    const changed = [...problems].filter(([k, m]) => this.logged.get(k) !== m).map(([k]) => k);
    const recovered = [...this.logged.keys()].filter((k) => !problems.has(k));
    this.logged = new Map(problems);
    if (recovered.length > 0) {
      this.settings.logger.info(
        { maps: recovered },
        `Cilium conntrack maps recovered: ${recovered.map((k) => this.config.map_names[k]).join(', ')}`,
      );
    }
    if (changed.length === 0) return;
    if (allFailed) {
      this.settings.logger.error(
        { failed_in_a_row: this.failedInARow, maps: [...problems.keys()] },
        allFailed,
      );
    } else {
      this.settings.logger.warn(
        { maps: [...problems.keys()] },
        `Cilium conntrack maps not read: ${[...problems.values()].join('; ')}`,
      );
    }
  }

  /**
   * Cilium counts only with its conntrack accounting on (off by default since 1.15): connections whose
   * counters are all 0 say it is off. Said once in the log, and in /status while it lasts.
   */
  private noteCounters(batches: FlowBatch[]): void {
    if (batches.every((b) => b.length === 0)) return;
    let any = false;
    for (const batch of batches) {
      for (let i = 0; i < batch.length && !any; i++) {
        any = batch.txPackets[i] + batch.rxPackets[i] + batch.txBytes[i] + batch.rxBytes[i] > 0;
      }
    }
    if (!any && !this.countersOff && !this.warnedCountersOff) {
      this.warnedCountersOff = true;
      this.settings.logger.warn(
        { connections: batches.reduce((n, b) => n + b.length, 0) },
        "every connection in Cilium's conntrack maps has zero counters: its conntrack accounting looks off, so no bytes can be reported. Turn it on (cilium-agent --bpf-conntrack-accounting, Helm bpf.ctAccounting: true), or choose the ebpf or netfilter collection mode",
      );
    }
    this.countersOff = !any;
  }

  /** Settles the value layout and the clock source from the entries, once each, when auto. */
  /** Settles the value layout and the clock from a map's entries; true when its entries disagree on the layout. */
  private decide(r: PinnedMapRead, family: 4 | 6, now: ClockNow): boolean {
    let disagreed = false;
    if (this.layout === undefined) {
      const { layout, split, total } = detectLayout(r.values, r.keys, KEY_SIZE[family], r.count);
      const of = `${layout === 'split' ? split : total} of ${split + total} entries that tell the layouts apart`;
      if (layout) {
        this.layout = layout;
        this.layoutReason =
          layout === 'split'
            ? `entries hold rx packets and bytes before tx (Cilium 1.15 and earlier): ${of}`
            : `entries hold one packets/bytes pair (Cilium 1.16 and later): ${of}`;
        this.settings.logger.info(
          { value_layout: layout, reason: this.layoutReason },
          `Cilium value layout: ${layout}`,
        );
      } else if (split + total > 0) {
        this.layoutUndecided = `entries disagree: ${split} read as rx counters, ${total} cannot be; no flow is read until a read decides`;
        disagreed = true;
      }
    }
    if (this.clock === undefined && r.count > 0) {
      const lifetimes = new Uint32Array(Math.min(r.count, 4096));
      const v = new DataView(r.values.buffer, r.values.byteOffset, r.values.byteLength);
      for (let i = 0; i < lifetimes.length; i++)
        lifetimes[i] = v.getUint32(VALUE_SIZE * i + VALUE.lifetime, true);
      this.clock = detectClock(lifetimes, now, this.hz);
      if (this.clock)
        this.settings.logger.info(
          { clock_source: this.clock, kernel_hz: this.hz },
          `Cilium lifetimes count in ${this.clock}`,
        );
    }
    return disagreed;
  }

  /**
   * The last read's counts of a map for /status; with expired entries, when the first of them expired,
   * in wall-clock time: how far behind Cilium's garbage collector is.
   */
  private countFacts(k: MapKey): Record<string, unknown> {
    const { oldestExpired, ...counts } = this.lastCounts.get(k) ?? newCounts();
    if (!Number.isFinite(oldestExpired) || !this.clock || !this.lastNow) return counts;
    const hz = this.hz ?? 250;
    if (this.clock === 'jiffies' && !this.hz) return counts;
    const at = this.lastNowWallMs + secondsLeft(oldestExpired, this.clock, this.lastNow, hz) * 1000;
    return { ...counts, oldest_expired_at: new Date(at).toISOString() };
  }

  /** The map's ended entries reported Closed, ready for a new read of it. */
  private closedOf(k: MapKey): ClosedEntries {
    let c = this.closed.get(k);
    if (!c) {
      c = new ClosedEntries();
      this.closed.set(k, c);
    }
    c.next();
    return c;
  }

  /** Lifetimes below this have passed, in the entries' unit; NaN when the unit is unknown. */
  private expiredBefore(now: ClockNow): number {
    if (this.clock === 'ktime') return now.ktime;
    if (this.clock === 'jiffies') return now.jiffies;
    return Number.NaN;
  }

  private registerMetrics(): void {
    const observed = observeMetrics(this.settings.meter, CILIUM_METRICS, (r) => {
      r.reads(this.reads);
      for (const [map, n] of this.failures) r.readFailures(n, { map });
      for (const [map, n] of this.truncated) r.truncatedReads(n, { map });
      for (const [map, c] of this.lastCounts) {
        r.entries(c.connections, { map, kind: 'connection' });
        r.entries(c.service, { map, kind: 'service' });
        r.entries(c.related, { map, kind: 'related' });
        r.entries(c.pairs, { map, kind: 'pair' });
        r.entries(c.expired, { map, kind: 'expired' });
      }
      r.readDuration(this.lastReadSeconds);
    });
    this.unobserve.push(observed.close);
  }
}
