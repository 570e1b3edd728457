// A stand-in for the node access the dns receiver has (the DnsKernel seam in ../kernel.ts): the addon's
// DNS tracer, serving queued drains of raw records (testdata/records.ts writes them as dns.bpf.c does),
// the /proc files the attach point is found from, and CLOCK_MONOTONIC tied to the (fake) wall clock, so
// a record's ktime says exactly which wall time it stands for. The receiver's own logic (scheduling,
// retries, losses, status, the cache, self-metrics) runs on it without a kernel; the programs themselves
// are tested on a real cgroup in test/kernel/dns.test.ts.
import type { CgroupDnsHandle, CgroupDnsOptions, CgroupDnsRead } from '@netmon/native';
import { CAPS_ROOT, procStatus } from '../../ebpf/testdata/proc.js';
import type { DnsKernel } from '../kernel.js';
import { concat, recordCount } from './records.js';

/** Totals and flags of a drain, as the addon reports them beside the records. */
export interface DrainTotals {
  /** The drain stopped at its byte budget: the ring holds more. */
  more?: boolean;
  /** Totals since the programs were loaded. */
  captured?: number;
  lost?: number;
  lostBytes?: number;
  malformed?: number;
  badRecords?: number;
  durationMs?: number;
}

/** One drain handing over `records` (one buffer, or several laid back to back). */
export function dnsRead(
  records: Uint8Array | readonly Uint8Array[] = [],
  totals: DrainTotals = {},
): CgroupDnsRead {
  const bytes = records instanceof Uint8Array ? records : concat(...records);
  const count = recordCount(bytes);
  return {
    records: bytes,
    count,
    more: totals.more ?? false,
    badRecords: totals.badRecords ?? 0,
    captured: totals.captured ?? count,
    lost: totals.lost ?? 0,
    lostBytes: totals.lostBytes ?? 0,
    malformed: totals.malformed ?? 0,
    durationMs: totals.durationMs ?? 1,
  };
}

/** What a drain does: resolve with a result, reject with an error, or settle when the promise does. */
export type DrainStep = CgroupDnsRead | Error | Promise<CgroupDnsRead>;

export class FakeDnsHandle implements CgroupDnsHandle {
  /** Each drain: the (fake) wall clock's time and the byte budget asked for. */
  readonly reads: { at: number; maxBytes: number | undefined }[] = [];
  /** Steps taken in order; when empty, `fallback` answers. */
  readonly script: DrainStep[] = [];
  fallback: () => DrainStep = () => dnsRead();
  closed = false;
  /** close() while a drain was running (the addon then detaches when it ends: allowed, but noted). */
  closedWhileBusy = false;
  /** Drains the addon refused, as the receiver must never provoke them. */
  readonly refused: string[] = [];
  private busy = false;

  constructor(readonly options: CgroupDnsOptions) {}

  read(maxBytes?: number): Promise<CgroupDnsRead> {
    // The addon's refusals are synchronous throws, not rejected promises.
    if (this.closed) return this.refuse('the DNS tracer is closed');
    if (this.busy) return this.refuse('a read is already running on this handle');
    this.reads.push({ at: Date.now(), maxBytes });
    const step = this.script.shift() ?? this.fallback();
    this.busy = true;
    const settle = async () => {
      try {
        if (step instanceof Error) throw step;
        return await step;
      } finally {
        this.busy = false;
      }
    };
    return settle();
  }

  close(): void {
    if (this.busy) this.closedWhileBusy = true;
    this.closed = true;
  }

  private refuse(message: string): never {
    this.refused.push(message);
    throw new Error(message);
  }
}

/** Uptime at the fake kernel's creation: records' ktimes are far from 0, as on a real node. */
const UPTIME_MS = 3_600_000;

export class FakeKernel implements DnsKernel {
  /** Every attach call's options, in order. */
  readonly attached: CgroupDnsOptions[] = [];
  /** The handle the last attach returned. */
  handle?: FakeDnsHandle;
  /** Set: attach throws it (the addon's errors: EPERM, a missing BPF object, a path that is no cgroup). */
  attachError?: Error;
  /** Steps the next handle's drains take (queued before start). */
  readonly script: DrainStep[] = [];
  fallback: () => DrainStep = () => dnsRead();
  /** /proc files by path; a missing one, or one set to undefined, cannot be read. */
  readonly files = new Map<string, string | undefined>([['/proc/self/status', procStatus(CAPS_ROOT)]]);
  /** Paths exists() says are there (e.g. a mount's cgroup.type, which makes it no hierarchy root). */
  readonly present = new Set<string>();
  /** The wall time (ms) CLOCK_MONOTONIC started from: monotonic = wall - boot, both following Date.now(). */
  readonly bootWallMs = Date.now() - UPTIME_MS;

  attach = (options: CgroupDnsOptions): CgroupDnsHandle => {
    this.attached.push(options);
    if (this.attachError) throw this.attachError;
    const handle = new FakeDnsHandle(options);
    handle.script.push(...this.script.splice(0));
    handle.fallback = () => this.fallback();
    this.handle = handle;
    return handle;
  };

  readProc = (path: string): string | undefined => this.files.get(path);

  exists = (path: string): boolean => this.present.has(path);

  monotonicNs = (): number => this.ktimeAt(Date.now());

  /** The CLOCK_MONOTONIC ns of wall time `wallMs` (what bpf_ktime_get_ns() returned then). */
  ktimeAt(wallMs: number): number {
    return (wallMs - this.bootWallMs) * 1e6;
  }

  /** Queues the answers of the next drains (before or after start). */
  answer(...steps: DrainStep[]): void {
    (this.handle?.script ?? this.script).push(...steps);
  }

  /** Drain times of the handle, relative to `from`. */
  readTimes(from: number): number[] {
    return (this.handle?.reads ?? []).map((r) => r.at - from);
  }
}
