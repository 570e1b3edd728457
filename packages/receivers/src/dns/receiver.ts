import {
  type BatchSink,
  type ComponentSettings,
  DnsBatch,
  errorMessage,
  observeMetrics,
  type Receiver,
} from '@netmon/core';
import type { DnsCache } from '@netmon/extensions';
import type { CgroupDnsHandle, CgroupDnsRead } from '@netmon/native';
import { CgroupPods } from '../ebpf/cgroup-pods.js';
import { cgroupAttachPoint } from '../ebpf/kernel.js';
import type { DnsReceiverConfig } from './config.js';
import type { DnsKernel } from './kernel.js';
import { DNS_METRICS } from './metrics.js';
import { nodeKernel } from './node-kernel.js';
import { DnsTracker } from './tracker.js';

/** First retry of a failed read; each further one waits twice as long, until that reaches read_interval. */
const RETRY_BASE_MS = 250;
/** Bytes of records one drain takes at most; a fuller ring is drained by further reads at once. */
const READ_BUDGET = 4 << 20;
/**
 * Drains one read chains before it hands its batch on and yields to the event loop; when the ring still
 * holds more, the next read follows at once.
 */
const DRAINS_PER_READ = 8;

/**
 * Traces the DNS lookups of every socket under a cgroup with the addon's eBPF programs: queries leaving
 * for port 53 and answers arriving from it, over UDP and TCP, IPv4 and IPv6. Every `read_interval` the
 * ring buffer is drained and the answers since the last read are handed on as a DnsBatch (one row per
 * answer: client, question, response code, latency from its query, records, the client's cgroup and
 * pod) — and taught to the dns_cache extension when one is configured, so classify names destinations.
 */
export class DnsReceiver implements Receiver {
  private handle?: CgroupDnsHandle;
  private timer?: NodeJS.Timeout;
  private reading?: Promise<void>;
  private stopping = false;
  private stopped = false;
  private cgroupPath = '';
  private pods?: CgroupPods;
  private readonly tracker: DnsTracker;
  private failedInARow = 0;
  // Self-metric totals.
  private reads = 0;
  private readFailures = 0;
  private lastReadSeconds = 0;
  private kernelTotals = { lost: 0, lostBytes: 0, malformed: 0 };
  /** The addon reports each read's own: summed here. */
  private badRecords = 0;
  private warnedLoss = 0;
  private readonly unobserve: Array<() => void> = [];

  constructor(
    private readonly settings: ComponentSettings,
    private readonly config: DnsReceiverConfig,
    private readonly next: BatchSink,
    private readonly cache: DnsCache | undefined,
    private readonly kernel: DnsKernel = nodeKernel,
  ) {
    this.tracker = new DnsTracker(config.query_timeout * 1e6, (id) => this.pods?.podUid(id));
    this.registerMetrics();
  }

  /** Totals since start, as the self-metrics report them. */
  get counters() {
    const t = this.tracker.counters;
    return {
      reads: this.reads,
      readFailures: this.readFailures,
      queryPackets: t.queryPackets,
      answerPackets: t.answerPackets,
      lostPackets: this.kernelTotals.lost,
      lostBytes: this.kernelTotals.lostBytes,
      lookups: t.lookups,
      unmatched: t.unmatched,
      unanswered: t.unanswered,
      pending: this.tracker.pendingQueries,
      malformed: this.malformedCounts(),
      skipped: Object.fromEntries(t.skipped) as Record<string, number>,
    };
  }

  start(): void {
    let path: string;
    try {
      path = this.attach();
    } catch (err) {
      if (!this.config.optional) throw err;
      const reason = errorMessage(err);
      this.settings.status.describe(() => ({ tracing: false, reason }));
      this.settings.logger.warn(
        { reason },
        'DNS lookups are not traced on this host (optional: true): flows get no domain names',
      );
      return;
    }
    // Answers whose query was not seen are lookups only while a query sent before this could be waiting.
    this.tracker.tracingSince(this.kernel.monotonicNs());
    this.pods = new CgroupPods(path);
    this.settings.status.describe(() => ({
      tracing: true,
      cgroup: this.cgroupPath,
      ring_buffer_bytes: this.config.ring_buffer_size,
      lookups: this.tracker.counters.lookups,
      lost_packets: this.kernelTotals.lost,
      pending_queries: this.tracker.pendingQueries,
      cache: this.cache ? 'feeding the dns_cache extension' : 'none configured: flows get no dst.domain',
    }));
    this.settings.logger.info(
      {
        cgroup: path,
        read_interval_ms: this.config.read_interval,
        ring_buffer_bytes: this.config.ring_buffer_size,
        capture_bytes: this.config.capture_bytes,
      },
      `tracing the DNS lookups of the sockets under ${path} with eBPF (UDP and TCP port 53)`,
    );
    this.schedule(this.config.read_interval);
  }

  /** Attaches the tracer; returns the cgroup, or throws what stands in the way and what to do. */
  private attach(): string {
    const path = cgroupAttachPoint(
      this.kernel,
      this.config.cgroup_path,
      'dns',
      'or set optional: true to run without DNS (flows are still counted, without domain names)',
    );
    this.cgroupPath = path;
    try {
      this.handle = this.kernel.attach({
        cgroupPath: path,
        ringBytes: this.config.ring_buffer_size,
        captureBytes: this.config.capture_bytes,
      });
    } catch (err) {
      throw new Error(`dns receiver: cannot attach to the cgroup ${path}: ${errorMessage(err)}`);
    }
    return path;
  }

  async shutdown(): Promise<void> {
    if (this.stopped) return;
    this.stopping = true;
    clearTimeout(this.timer);
    await this.reading;
    // One last read: the answers since the previous one reach the exporters before they stop.
    if (this.handle) await this.read();
    this.handle?.close();
    this.handle = undefined;
    this.stopped = true;
    for (const off of this.unobserve) off();
  }

  private schedule(delayMs: number): void {
    if (this.stopping) return;
    this.timer = setTimeout(() => {
      const started = performance.now();
      let more = false;
      this.reading = this.read()
        .then((m) => {
          more = m;
        })
        .finally(() => {
          this.reading = undefined;
          const wait = more ? 0 : this.config.read_interval - (performance.now() - started);
          const retry = this.failedInARow > 0 ? RETRY_BASE_MS * 2 ** (this.failedInARow - 1) : Infinity;
          this.schedule(Math.max(0, Math.min(wait, retry)));
        });
    }, delayMs);
  }

  /**
   * One read (a few drains when the ring is fuller than one takes): never throws. Returns true when the
   * ring still held more: the next read then comes at once.
   */
  private async read(): Promise<boolean> {
    const handle = this.handle;
    if (!handle) return false;
    const batch = new DnsBatch();
    let failed = false;
    let more = false;
    // Read to the ring's end: every record not read yet is newer than now.
    let drained = false;
    for (let drains = 0; drains < DRAINS_PER_READ; drains++) {
      let result: CgroupDnsRead;
      try {
        result = await handle.read(READ_BUDGET);
      } catch (err) {
        this.failedInARow++;
        this.readFailures++;
        failed = true;
        more = false; // the retry's backoff, not an immediate read
        const message = `DNS ring buffer read failed: ${errorMessage(err)}`;
        this.settings.status.recoverableError(new Error(message));
        this.settings.logger.error({ err: errorMessage(err), failed_in_a_row: this.failedInARow }, message);
        break;
      }
      this.reads++;
      this.failedInARow = 0;
      this.lastReadSeconds = result.durationMs / 1000;
      this.noteKernelTotals(result);
      try {
        const monoNs = this.kernel.monotonicNs();
        this.tracker.add(result.records, batch, { monoNs, wallMs: Date.now() });
      } catch (err) {
        // A defect, not bad input (the tracker counts that): the records of this drain are lost.
        this.readFailures++;
        failed = true;
        this.settings.status.recoverableError(
          new Error(`DNS records could not be decoded: ${errorMessage(err)}`),
        );
        this.settings.logger.error({ err: errorMessage(err), records: result.count }, 'DNS records lost');
      }
      more = result.more;
      drained = !more;
      if (!more || this.stopping) break;
    }
    // A TCP hole is judged by the kernel's clock only when the ring was read to its end: otherwise its
    // segment may be in the part not read yet.
    this.tracker.expire(batch, { monoNs: this.kernel.monotonicNs(), wallMs: Date.now() }, drained);
    if (batch.length > 0) {
      try {
        this.cache?.learn(batch);
      } catch (err) {
        this.settings.logger.error(
          { err: errorMessage(err) },
          'the dns_cache extension could not learn a batch',
        );
      }
      try {
        this.next.consume(batch);
      } catch (err) {
        this.readFailures++;
        failed = true;
        const message = `DNS lookups read but not handed on (lost): ${errorMessage(err)}`;
        this.settings.status.recoverableError(new Error(message));
        this.settings.logger.error({ err: errorMessage(err), lookups: batch.length }, message);
      }
    }
    if (!failed) this.settings.status.ok();
    return more;
  }

  private noteKernelTotals(result: CgroupDnsRead): void {
    this.kernelTotals = { lost: result.lost, lostBytes: result.lostBytes, malformed: result.malformed };
    if (result.badRecords > 0) {
      // Only a program and an addon built from different sources write them: worth one warning, not one per read.
      if (this.badRecords === 0) {
        this.settings.logger.warn(
          { bad_records: result.badRecords },
          'DNS tracer records of an impossible size were skipped: the BPF program and the addon are not from one build',
        );
      }
      this.badRecords += result.badRecords;
    }
    if (result.lost > this.warnedLoss) {
      // Once per growth, not per read: a lasting overflow logs at most every read, each with the total.
      this.settings.logger.warn(
        { lost_packets: result.lost, ring_buffer_bytes: this.config.ring_buffer_size },
        'the DNS ring buffer was full: DNS packets were not traced. Raise ring_buffer_size or shorten read_interval',
      );
      this.warnedLoss = result.lost;
    }
  }

  private malformedCounts(): Record<string, number> {
    const out: Record<string, number> = Object.fromEntries(this.tracker.counters.malformed);
    if (this.kernelTotals.malformed > 0) out.unreadable = this.kernelTotals.malformed;
    if (this.badRecords > 0) out.bad_record = this.badRecords;
    return out;
  }

  private registerMetrics(): void {
    const observed = observeMetrics(this.settings.meter, DNS_METRICS, (r) => {
      const t = this.tracker.counters;
      r.reads(this.reads);
      r.readFailures(this.readFailures);
      r.readDuration(this.lastReadSeconds);
      r.packets(t.queryPackets, { direction: 'query' });
      r.packets(t.answerPackets, { direction: 'answer' });
      r.lostPackets(this.kernelTotals.lost);
      r.lostBytes(this.kernelTotals.lostBytes);
      for (const [reason, n] of Object.entries(this.malformedCounts())) r.malformed(n, { reason });
      for (const [reason, n] of t.skipped) r.skipped(n, { reason });
      r.lookups(t.lookups);
      r.unmatched(t.unmatched);
      r.unanswered(t.unanswered);
      r.pending(this.tracker.pendingQueries);
    });
    this.unobserve.push(observed.close);
  }
}
