import { readFileSync } from 'node:fs';
import {
  type BatchSink,
  type ComponentSettings,
  errorMessage,
  FlowBatch,
  observeMetrics,
  type Receiver,
} from '@netmon/core';
import {
  type ConntrackColumns,
  type ConntrackEventsHandle,
  type ConntrackHandle,
  type EventBatch,
  openConntrack,
  readSysctl,
  subscribeConntrackEvents,
  writeSysctl,
} from '@netmon/native';
import { type ConntrackReceiverConfig, PROTOCOL_NUMBERS } from './config.js';
import { CONNTRACK_METRICS } from './metrics.js';

const AF_INET = 2;
const AF_INET6 = 10;
const CAP_NET_ADMIN = 12;
/** First retry of a failed dump; each further one waits twice as long, until that reaches read_interval. */
const RETRY_BASE_MS = 500;
const ACCT_SYSCTL = 'net/netfilter/nf_conntrack_acct';

/** Effective capabilities of this process, from /proc/self/status (CapEff, hex). */
function hasCapability(cap: number): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m !== null && ((BigInt(`0x${m[1]}`) >> BigInt(cap)) & 1n) === 1n;
  } catch {
    return process.getuid?.() === 0;
  }
}

/**
 * The kernel access the receiver needs: the native addon and a capability check. A seam for unit tests,
 * which drive the receiver's scheduling and bookkeeping with a stand-in; not reachable from the config.
 */
export interface ConntrackKernel {
  hasNetAdmin(): boolean;
  openConntrack: typeof openConntrack;
  subscribeConntrackEvents: typeof subscribeConntrackEvents;
  readSysctl: typeof readSysctl;
  writeSysctl: typeof writeSysctl;
}

const nativeKernel: ConntrackKernel = {
  hasNetAdmin: () => hasCapability(CAP_NET_ADMIN),
  openConntrack,
  subscribeConntrackEvents,
  readSysctl,
  writeSysctl,
};

/**
 * Reads a network namespace's conntrack table over ctnetlink: a full dump every `read_interval`
 * (cumulative snapshots) and, between them, NEW and DESTROY events (DESTROY carries a connection's
 * final counters, so nothing that closes between two reads is lost). Everything is parsed by the
 * native addon straight into columns; this class only schedules reads and wraps the columns.
 *
 * Orientation: src is the original direction's source (the side that opened the connection); dst is
 * the destination as dialled; when DNAT changed it (a Service ClusterIP), backendAddr/backendPort hold
 * the real peer (the reply's source) and FlowFlags.Dnat is set.
 */
export class ConntrackReceiver implements Receiver {
  private dumper?: ConntrackHandle;
  private events?: ConntrackEventsHandle;
  private timer?: NodeJS.Timeout;
  private watchdog?: NodeJS.Timeout;
  /** performance.now() when the read in flight started; undefined when none is. */
  private readStartedAt: number | undefined;
  private reading?: Promise<void>;
  private resyncWanted = false;
  private stopping = false;
  private stopped = false;
  private readonly family: number;
  private readonly protocols: number[] | null;
  private readonly where: string;
  // Self-metric totals.
  private reads = 0;
  private readFailures = 0;
  private lastEntries = 0;
  private lastReadSeconds = 0;
  private resyncs = 0;
  private eventStats = { received: 0, overflows: 0, dropped: 0, malformed: 0 };
  private dumpMalformed = 0;
  private warnedEmpty = false;
  private readonly unobserve: Array<() => void> = [];
  private readonly barrierWaiters = new Set<(reached: number) => void>();
  /** Dumps in a row that held malformed messages. */
  private malformedStreak = 0;
  /** Dumps in a row that failed, and the delay of the quick retry the last failure earned (if any). */
  private failedInARow = 0;
  private retryInMs: number | undefined;
  private retries = 0;
  /** nf_conntrack_acct is known to be 1; otherwise `accountingProblem` says why not, when it is known. */
  private accountingOn = false;
  private accountingProblem: string | undefined;

  constructor(
    private readonly settings: ComponentSettings,
    private readonly config: ConntrackReceiverConfig,
    private readonly next: BatchSink,
    private readonly kernel: ConntrackKernel = nativeKernel,
  ) {
    const fams = new Set(config.families);
    this.family = fams.size === 2 ? 0 : fams.has('ipv4') ? AF_INET : AF_INET6;
    this.protocols =
      config.protocols.length === 0
        ? null
        : config.protocols.map((p) => (typeof p === 'number' ? p : PROTOCOL_NUMBERS[p]));
    this.where = config.netns ? `network namespace ${config.netns}` : "the agent's network namespace";
    this.registerMetrics();
  }

  /** Totals since start, as the self-metrics report them. */
  get counters() {
    return {
      reads: this.reads,
      readFailures: this.readFailures,
      readRetries: this.retries,
      lastEntries: this.lastEntries,
      resyncs: this.resyncs,
      eventsReceived: this.eventStats.received,
      eventOverflows: this.eventStats.overflows,
      eventsDropped: this.eventStats.dropped,
      malformed: this.dumpMalformed + this.eventStats.malformed,
      accountingEnabled: this.accountingOn,
    };
  }

  start(): void {
    const log = this.settings.logger;
    if (!this.kernel.hasNetAdmin()) {
      // SYS_ADMIN only for `netns`: joining another network namespace (setns) needs it; reading and
      // configuring the agent's own namespace needs NET_ADMIN alone.
      const { netns } = this.config;
      const need =
        netns === undefined ? 'CAP_NET_ADMIN' : `CAP_NET_ADMIN and CAP_SYS_ADMIN (to enter ${netns})`;
      const add = netns === undefined ? '[NET_ADMIN]' : '[NET_ADMIN, SYS_ADMIN]';
      throw new Error(
        `conntrack receiver: reading the conntrack table needs ${need}. Run netmon as root, or grant it ` +
          `(Kubernetes: securityContext.capabilities.add: ${add} with hostNetwork: true); ` +
          'without kernel access, replay recorded flows with the file receiver (configs/examples/replay.yaml)',
      );
    }
    this.dumper = this.kernel.openConntrack(this.config.netns);
    this.checkAccounting();
    this.settings.status.describe(() => ({
      accounting: this.accountingOn ? 'on' : `off: ${this.accountingProblem ?? 'not known yet'}`,
    }));
    // 16 bytes per entry buys each row its connection's start: exact time_start, and what lets the delta
    // processor trust the first dump after a tuple was reused with the same id.
    this.ensureSysctl(
      'nf_conntrack_timestamp',
      'connection start times (exact time_start; exact counts right after a tuple is reused)',
    );
    if (this.config.events) {
      this.ensureSysctl(
        'nf_conntrack_events',
        'DESTROY events for connections that existed before netmon started',
      );
      this.events = this.kernel.subscribeConntrackEvents(
        {
          netns: this.config.netns,
          newEvents: true,
          receiveBuffer: this.config.event_buffer_size,
          batchSize: 4096,
          flushMs: 200,
          family: this.family === AF_INET ? 4 : this.family === AF_INET6 ? 6 : 0,
          protocols: this.protocols,
        },
        (batch) => this.onEvents(batch),
      );
    }
    log.info(
      {
        netns: this.config.netns ?? 'own',
        read_interval_ms: this.config.read_interval,
        events: this.config.events,
        families: this.config.families,
      },
      `reading conntrack in ${this.where}`,
    );
    this.schedule(0);
    this.watchdog = setInterval(() => this.checkOverdue(), Math.max(this.config.read_interval, 5_000));
    this.watchdog.unref();
  }

  async shutdown(): Promise<void> {
    if (this.stopped) return;
    this.stopping = true;
    clearTimeout(this.timer);
    clearInterval(this.watchdog);
    await this.reading;
    // One last read, so bytes counted since the previous one reach the exporters before they stop; the
    // events stay subscribed through it, so the DESTROYs of entries it reaps are counted too.
    if (this.dumper) await this.read('final');
    this.events?.close();
    this.events = undefined;
    // close() hands over what the socket still held; let those batches arrive before we stop listening.
    await new Promise((r) => setImmediate(r));
    this.dumper?.close();
    this.dumper = undefined;
    this.stopped = true;
    for (const off of this.unobserve) off();
  }

  /** Sets a per-namespace conntrack sysctl to 1 when it is not, saying why and what failed. */
  private ensureSysctl(name: string, why: string): void {
    const key = `net/netfilter/${name}`;
    try {
      const value = this.kernel.readSysctl(key, this.config.netns);
      if (value === '1') return;
      this.kernel.writeSysctl(key, '1', this.config.netns);
      this.settings.logger.info(
        { sysctl: `net.netfilter.${name}`, was: value },
        `set net.netfilter.${name}=1 in ${this.where} for ${why}`,
      );
    } catch (err) {
      this.settings.logger.warn(
        { sysctl: `net.netfilter.${name}`, err: errorMessage(err) },
        `cannot set net.netfilter.${name}=1 in ${this.where} (${errorMessage(err)}): without it netmon gets no ${why}. ` +
          `Set it on the node (sysctl -w net.netfilter.${name}=1) or run netmon privileged`,
      );
    }
  }

  /**
   * Without nf_conntrack_acct the kernel keeps no byte or packet counters: every row says 0 while the
   * agent otherwise works, so this is reported in /status (the receiver's `accounting` detail, with the
   * fix), as netmon_conntrack_accounting_enabled and in a warning, not only logged. Not as an error
   * status: liveness would fail after recovery_duration and restart an agent that a restart cannot fix,
   * while connections are still counted; the operator's fix is seen at the next read. Sets it when
   * `enable_accounting` allows. Called at start and after each read until it is on: the sysctl only
   * exists once nf_conntrack is loaded, which the first dump may be what triggers.
   */
  private checkAccounting(): void {
    const sysctl = 'net.netfilter.nf_conntrack_acct';
    const fix = this.config.netns
      ? `run 'nsenter --net=${this.config.netns} sysctl -w ${sysctl}=1' on the node`
      : `run 'sysctl -w ${sysctl}=1' on the node`;
    let problem: string | undefined;
    try {
      const value = this.kernel.readSysctl(ACCT_SYSCTL, this.config.netns);
      if (value === '1') {
        // Set by someone else since: the status recovers at this read.
        if (this.accountingProblem) this.settings.logger.info(`${sysctl} is now 1 in ${this.where}`);
      } else if (!this.config.enable_accounting) {
        problem =
          `${sysctl} is ${value} in ${this.where} and enable_accounting is false: conntrack byte and packet ` +
          `counts are all 0. Set enable_accounting: true, or ${fix}`;
      } else {
        this.kernel.writeSysctl(ACCT_SYSCTL, '1', this.config.netns);
        this.settings.logger.info(
          { sysctl, was: value },
          `set ${sysctl}=1 in ${this.where} for byte and packet counters; connections that began before now keep showing 0 bytes`,
        );
      }
    } catch (err) {
      problem =
        `cannot ${this.config.enable_accounting ? 'set' : 'read'} ${sysctl} in ${this.where} (${errorMessage(err)}): ` +
        `conntrack byte and packet counts are 0 unless it is 1. Fix: ${fix} ` +
        "(Kubernetes: a container's /proc/sys is read-only; the netmon chart's init container sets it through a hostPath mount of /proc/sys/net/netfilter)";
    }
    this.accountingOn = problem === undefined;
    if (problem !== undefined && problem !== this.accountingProblem) {
      this.settings.logger.warn({ sysctl }, problem);
    }
    this.accountingProblem = problem;
  }

  private schedule(delayMs: number, reason: 'interval' | 'resync' | 'retry' = 'interval'): void {
    if (this.stopping) return;
    this.timer = setTimeout(() => {
      if (reason === 'retry') this.retries++;
      const started = performance.now();
      this.readStartedAt = started;
      this.reading = this.read(reason).finally(() => {
        this.reading = undefined;
        this.readStartedAt = undefined;
        const wait = this.config.read_interval - (performance.now() - started);
        if (this.resyncWanted) this.schedule(0, 'resync');
        else if (this.retryInMs !== undefined && this.retryInMs < wait)
          this.schedule(this.retryInMs, 'retry');
        else this.schedule(Math.max(0, wait));
      });
    }, delayMs);
  }

  /**
   * A failed dump (the socket overran, a transient kernel error) is retried sooner than the next
   * interval, so one bad read costs less than a whole interval of lost counts and a resync it stood for
   * is not postponed. The backoff doubles from RETRY_BASE_MS and stops once it reaches read_interval, so
   * a lasting failure (no privilege) costs a few more dumps, then one per interval as before. A retry is
   * as safe as any dump: a fresh sequence number keeps leftovers of the failed one apart.
   */
  private retryDelay(): number | undefined {
    const delay = RETRY_BASE_MS * 2 ** (this.failedInARow - 1);
    return delay < this.config.read_interval ? delay : undefined;
  }

  /**
   * A read that never returns (a wedged kernel walk, a stuck pool) would otherwise leave the status `ok`
   * while nothing is counted: past three intervals (at least 30 s) the status says so, and /healthz
   * fails once it stays that way for the health check's recovery_duration.
   */
  private checkOverdue(): void {
    if (this.readStartedAt === undefined) return;
    const ms = performance.now() - this.readStartedAt;
    if (ms > Math.max(3 * this.config.read_interval, 30_000)) {
      this.settings.status.recoverableError(
        new Error(`a conntrack read of ${this.where} has not returned for ${Math.round(ms / 1000)} s`),
      );
    }
  }

  private async read(reason: 'interval' | 'resync' | 'retry' | 'final'): Promise<void> {
    const dumper = this.dumper;
    if (!dumper) return;
    this.resyncWanted = false;
    this.retryInMs = undefined;
    let result: Awaited<ReturnType<ConntrackHandle['dump']>>;
    try {
      result = await dumper.dump(this.family, this.protocols);
    } catch (err) {
      this.readFailures++;
      this.failedInARow++;
      this.retryInMs = reason === 'final' ? undefined : this.retryDelay();
      this.settings.status.recoverableError(
        new Error(`conntrack dump of ${this.where} failed: ${errorMessage(err)}`),
      );
      this.settings.logger.error(
        { err: errorMessage(err), failed_in_a_row: this.failedInARow },
        this.retryInMs === undefined
          ? 'conntrack dump failed; retrying at the next interval'
          : `conntrack dump failed; retrying in ${this.retryInMs} ms`,
      );
      return;
    }
    this.failedInARow = 0;
    this.reads++;
    this.lastEntries = result.length;
    this.lastReadSeconds = result.durationMs / 1000;
    this.dumpMalformed += result.malformed;
    if (!this.accountingOn && reason !== 'final') this.checkAccounting();
    this.settings.status.ok();
    this.settings.logger.debug(
      { reason, entries: result.length, ms: Math.round(result.durationMs), malformed: result.malformed },
      'conntrack read',
    );
    if (result.length === 0 && this.reads === 1 && !this.warnedEmpty) {
      this.warnedEmpty = true;
      this.settings.logger.warn(
        `the conntrack table of ${this.where} is empty: the kernel only tracks connections in a namespace where a ` +
          'netfilter rule uses conntrack (kube-proxy, a CNI, or e.g. `nft add rule inet filter output ct state new`). ' +
          'netmon keeps reading and counts connections as soon as tracking starts',
      );
    }
    // A dump reaps expired entries as it walks the table and their DESTROY events (final counters) are
    // queued before the dump ends: they must reach the pipeline before the snapshot that no longer
    // lists those entries, or the delta processor would take them for connections it never saw.
    await this.eventsCaughtUp();
    if (result.malformed > 0 && this.malformedStreak++ === 0 && reason !== 'final') {
      // Rows were skipped: this is not every live connection, so it is not passed on as a snapshot
      // (what is missing would look ended); its rows go on as plain readings and another read follows at
      // once. Only once: when the next dump is malformed too, the fault is lasting, and dumps go on at
      // the interval as snapshots (the delta processor keeps a flow missing from one snapshot anyway).
      this.settings.logger.warn(
        { malformed: result.malformed },
        'malformed messages in a conntrack dump were skipped: resyncing with another read',
      );
      this.resyncs++;
      this.hand(result, false);
      this.resyncWanted = true;
      return;
    }
    if (result.malformed > 0 && this.malformedStreak === 2) {
      this.settings.logger.warn(
        { malformed: result.malformed },
        'every conntrack dump holds malformed messages: they are skipped and counted (netmon_conntrack_malformed_messages); reading on at the interval',
      );
    }
    if (result.malformed === 0) this.malformedStreak = 0;
    // Handed on even when empty: an empty snapshot still says "nothing else is alive", which ends the
    // delta processor's baseline phase (flows appearing later are then new, not pre-existing).
    this.hand(result, true);
  }

  /** Resolves once every event queued before now has been handed on (or after a second, with a warning). */
  private eventsCaughtUp(): Promise<void> {
    const events = this.events;
    if (!events) return Promise.resolve();
    const mark = events.barrier();
    if (mark === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        // Timers run before the poll phase that would dispatch an already queued marker (after a stalled
        // loop): give that phase one turn before giving up.
        setImmediate(() => {
          if (!this.barrierWaiters.has(done)) return;
          this.barrierWaiters.delete(done);
          // The marker was dropped (JS too slow: the drop is counted and triggers a resync anyway).
          this.settings.logger.warn({ barrier: mark }, 'conntrack events did not catch up within 1 s');
          resolve();
        });
      }, 1000);
      const done = (reached: number) => {
        if (reached < mark) return;
        clearTimeout(timer);
        this.barrierWaiters.delete(done);
        resolve();
      };
      this.barrierWaiters.add(done);
    });
  }

  private onEvents(batch: EventBatch): void {
    if (this.stopped) return;
    const s = this.eventStats;
    if (batch.overflows > s.overflows || batch.dropped > s.dropped) {
      this.settings.logger.warn(
        {
          overflows: batch.overflows,
          dropped_rows: batch.dropped,
          event_buffer_size: this.config.event_buffer_size,
        },
        'conntrack events were lost (socket buffer overflow): resyncing with a full read. Bytes of connections that ' +
          'closed unseen since the last read are lost; raise event_buffer_size if this repeats',
      );
    } else if (batch.malformed > s.malformed) {
      this.settings.logger.warn(
        { malformed: batch.malformed },
        'malformed conntrack event messages were skipped: resyncing with a full read',
      );
    }
    this.eventStats = {
      received: batch.received,
      overflows: batch.overflows,
      dropped: batch.dropped,
      malformed: batch.malformed,
    };
    if (batch.length > 0) this.hand(batch, false);
    if (batch.barrier > 0) for (const done of [...this.barrierWaiters]) done(batch.barrier);
    if (batch.overflow && !this.stopping) {
      this.resyncs++;
      if (this.reading) this.resyncWanted = true;
      else {
        clearTimeout(this.timer);
        this.schedule(0, 'resync');
      }
    }
  }

  private hand(cols: ConntrackColumns, snapshot: boolean): void {
    this.next.consume(conntrackBatch(cols, snapshot, this.settings.id));
  }

  private registerMetrics(): void {
    const observed = observeMetrics(this.settings.meter, CONNTRACK_METRICS, (r) => {
      r.reads(this.reads);
      r.readFailures(this.readFailures);
      r.retries(this.retries);
      r.accountingEnabled(this.accountingOn ? 1 : 0);
      r.entries(this.lastEntries);
      r.readDuration(this.lastReadSeconds);
      r.events(this.eventStats.received);
      r.eventOverflows(this.eventStats.overflows);
      r.eventsDropped(this.eventStats.dropped);
      r.malformedMessages(this.dumpMalformed + this.eventStats.malformed);
      r.resyncs(this.resyncs);
    });
    this.unobserve.push(observed.close);
  }
}

/**
 * The addon's columns as a cumulative FlowBatch, adopted without a copy: original tuple as src/dst, the
 * reply's source as the DNAT backend, and the kernel's id, zone and mark as number attributes.
 */
export function conntrackBatch(cols: ConntrackColumns, snapshot: boolean, origin: string): FlowBatch {
  const n = cols.length;
  const batch = FlowBatch.wrap(
    {
      length: n,
      family: cols.family,
      protocol: cols.protocol,
      srcAddr: cols.src,
      dstAddr: cols.dst,
      srcPort: cols.srcPort,
      dstPort: cols.dstPort,
      backendAddr: cols.replySrc,
      backendPort: cols.replySrcPort,
      txBytes: cols.txBytes,
      rxBytes: cols.rxBytes,
      txPackets: cols.txPackets,
      rxPackets: cols.rxPackets,
      flags: cols.flags,
      timeStart: cols.startMs,
      timeEnd: cols.seenMs,
    },
    'cumulative',
  );
  batch.snapshot = snapshot;
  batch.origin = origin;
  if (n > 0) {
    batch.adoptNumberColumn('conntrack.id', cols.id);
    batch.adoptNumberColumn('conntrack.zone', cols.zone);
    batch.adoptNumberColumn('conntrack.mark', cols.mark);
  }
  return batch;
}
