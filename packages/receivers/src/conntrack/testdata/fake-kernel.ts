// A stand-in for the native addon, implementing the same TS interface (native/src/index.ts), so the
// receiver's own logic (scheduling, barrier, resyncs, retries, status, counters) runs without a kernel.
// Kernel behaviour itself is tested against the real thing in test/kernel/.
import { FlowFlags, parseIp } from '@netmon/core';
import type {
  ConntrackColumns,
  ConntrackEventsHandle,
  ConntrackEventsOptions,
  ConntrackHandle,
  DumpResult,
  EventBatch,
} from '@netmon/native';
import type { ConntrackKernel } from '../receiver.js';

/** One conntrack entry as the addon reports it; unset reply fields mean no NAT. */
export interface Row {
  protocol?: number;
  src: string;
  dst: string;
  srcPort?: number;
  dstPort?: number;
  /** The reply's source: the real backend when DNAT rewrote dst. */
  replySrc?: string;
  replySrcPort?: number;
  tx?: number;
  rx?: number;
  txPackets?: number;
  rxPackets?: number;
  id?: number;
  zone?: number;
  mark?: number;
  /** Added to what the addon sets itself (InitiatorKnown, Dnat, Opened/Closed from `event`). */
  flags?: number;
  /** 0 dump row, 1 NEW, 2 DESTROY. */
  event?: 0 | 1 | 2;
  startMs?: number;
  seenMs?: number;
}

/** Columns as the addon fills them: IPv4 as IPv4-mapped, flags derived the way the addon derives them. */
export function columns(rows: readonly Row[]): ConntrackColumns {
  const n = rows.length;
  const c: ConntrackColumns = {
    length: n,
    family: new Uint8Array(n),
    protocol: new Uint8Array(n),
    src: new Uint8Array(16 * n),
    dst: new Uint8Array(16 * n),
    srcPort: new Uint16Array(n),
    dstPort: new Uint16Array(n),
    replySrc: new Uint8Array(16 * n),
    replyDst: new Uint8Array(16 * n),
    replySrcPort: new Uint16Array(n),
    replyDstPort: new Uint16Array(n),
    txBytes: new Float64Array(n),
    txPackets: new Float64Array(n),
    rxBytes: new Float64Array(n),
    rxPackets: new Float64Array(n),
    id: new Float64Array(n),
    zone: new Float64Array(n),
    mark: new Float64Array(n),
    status: new Uint32Array(n),
    timeout: new Uint32Array(n),
    startMs: new Float64Array(n),
    seenMs: new Float64Array(n),
    flags: new Uint32Array(n),
    event: new Uint8Array(n),
  };
  rows.forEach((r, i) => {
    const family = parseIp(r.src, c.src, 16 * i);
    if (family === 0 || parseIp(r.dst, c.dst, 16 * i) !== family) throw new Error(`bad row ${i}`);
    const replySrc = r.replySrc ?? r.dst;
    const replySrcPort = r.replySrcPort ?? r.dstPort ?? 0;
    parseIp(replySrc, c.replySrc, 16 * i);
    parseIp(r.src, c.replyDst, 16 * i);
    c.family[i] = family;
    c.protocol[i] = r.protocol ?? 6;
    c.srcPort[i] = r.srcPort ?? 0;
    c.dstPort[i] = r.dstPort ?? 0;
    c.replySrcPort[i] = replySrcPort;
    c.replyDstPort[i] = r.srcPort ?? 0;
    c.txBytes[i] = r.tx ?? 0;
    c.rxBytes[i] = r.rx ?? 0;
    c.txPackets[i] = r.txPackets ?? 0;
    c.rxPackets[i] = r.rxPackets ?? 0;
    c.id[i] = r.id ?? 0;
    c.zone[i] = r.zone ?? 0;
    c.mark[i] = r.mark ?? 0;
    c.startMs[i] = r.startMs ?? 0;
    c.seenMs[i] = r.seenMs ?? Date.now();
    c.event[i] = r.event ?? 0;
    const dnat = replySrc !== r.dst || replySrcPort !== (r.dstPort ?? 0);
    c.flags[i] =
      FlowFlags.InitiatorKnown |
      (dnat ? FlowFlags.Dnat : 0) |
      (r.event === 1 ? FlowFlags.Opened : 0) |
      (r.event === 2 ? FlowFlags.Closed : 0) |
      (r.flags ?? 0);
  });
  return c;
}

export function dumpResult(
  rows: readonly Row[],
  opts: { malformed?: number; durationMs?: number } = {},
): DumpResult {
  const malformed = opts.malformed ?? 0;
  return {
    ...columns(rows),
    messages: rows.length + malformed,
    malformed,
    filtered: 0,
    durationMs: opts.durationMs ?? 2,
  };
}

/** What a dump call does: resolve with a result, reject with an error, or settle when the promise does. */
export type DumpStep = DumpResult | Error | Promise<DumpResult>;

export class FakeDumper implements ConntrackHandle {
  /** Each call, with the fake clock's time. */
  readonly calls: { family: number; protocols: readonly number[] | null; at: number }[] = [];
  /** Steps taken in order; when empty, `fallback` answers. */
  readonly script: DumpStep[] = [];
  fallback: () => DumpStep = () => dumpResult([]);
  /** Called at each dump, before it answers (e.g. a table that changes, a module that loads). */
  onDump?: () => void;
  closed = false;
  private busy = false;

  async dump(family: number, protocols: readonly number[] | null): Promise<DumpResult> {
    // The addon's own refusals: the receiver must never provoke them.
    if (this.closed) throw new Error('conntrack handle is closed');
    if (this.busy) throw new Error('a dump is already running on this handle');
    this.calls.push({ family, protocols, at: Date.now() });
    this.onDump?.();
    const step = this.script.shift() ?? this.fallback();
    this.busy = true;
    try {
      if (step instanceof Error) throw step;
      return await step;
    } finally {
      this.busy = false;
    }
  }

  close(): void {
    if (this.busy) throw new Error('a dump is still running; await it before close()');
    this.closed = true;
  }
}

export class FakeEvents implements ConntrackEventsHandle {
  options?: ConntrackEventsOptions;
  private onBatch?: (batch: EventBatch) => void;
  /** When false, barriers are never completed (a stalled or dropped marker). */
  autoBarrier = true;
  /** Rows the socket "holds" when a barrier is asked for: delivered in the batch that completes it. */
  pendingAtBarrier: Row[] = [];
  barriers = 0;
  closed = false;
  readonly totals = { received: 0, overflows: 0, malformed: 0, dropped: 0, filtered: 0 };

  subscribe(options: ConntrackEventsOptions, onBatch: (batch: EventBatch) => void): this {
    this.options = options;
    this.onBatch = onBatch;
    return this;
  }

  get subscribed(): boolean {
    return this.onBatch !== undefined;
  }

  barrier(): number {
    if (this.closed) return 0;
    const mark = ++this.barriers;
    if (this.autoBarrier) {
      const rows = this.pendingAtBarrier;
      this.pendingAtBarrier = [];
      // The addon answers from its own thread, through a thread-safe function: never synchronously.
      setImmediate(() => this.emit(rows, { barrier: mark }));
    }
    return mark;
  }

  /** Delivers one batch; loss counts are increments, added to the totals as the addon keeps them. */
  emit(
    rows: readonly Row[],
    loss: { overflows?: number; malformed?: number; dropped?: number; barrier?: number } = {},
  ): void {
    if (!this.onBatch) throw new Error('not subscribed');
    const t = this.totals;
    t.received += rows.length;
    t.overflows += loss.overflows ?? 0;
    t.malformed += loss.malformed ?? 0;
    t.dropped += loss.dropped ?? 0;
    this.onBatch({
      ...columns(rows),
      // As the addon: any loss since the last batch (overflow, a malformed message, a JS drop) asks for a resync.
      overflow: (loss.overflows ?? 0) + (loss.malformed ?? 0) + (loss.dropped ?? 0) > 0,
      barrier: loss.barrier ?? 0,
      ...t,
    });
  }

  close(): void {
    this.closed = true;
  }
}

export class FakeKernel implements ConntrackKernel {
  netAdmin = true;
  readonly dumper = new FakeDumper();
  readonly events = new FakeEvents();
  /** /proc/sys as the namespace sees it; a missing key reads as ENOENT. */
  readonly sysctls = new Map<string, string>([
    ['net/netfilter/nf_conntrack_acct', '1'],
    ['net/netfilter/nf_conntrack_events', '1'],
    ['net/netfilter/nf_conntrack_timestamp', '1'],
  ]);
  /** Set: writes fail with it (a read-only /proc/sys). */
  writeError?: Error;
  readonly sysctlReads: string[] = [];
  readonly sysctlWrites: [name: string, value: string, netns: string | undefined][] = [];
  openedIn: (string | undefined)[] = [];

  hasNetAdmin = (): boolean => this.netAdmin;

  openConntrack = (netns?: string): ConntrackHandle => {
    this.openedIn.push(netns);
    return this.dumper;
  };

  subscribeConntrackEvents = (
    options: ConntrackEventsOptions,
    onBatch: (batch: EventBatch) => void,
  ): ConntrackEventsHandle => this.events.subscribe(options, onBatch);

  readSysctl = (name: string, _netns?: string): string => {
    this.sysctlReads.push(name);
    const value = this.sysctls.get(name);
    if (value === undefined) throw new Error(`cannot open /proc/sys/${name}: No such file or directory`);
    return value;
  };

  writeSysctl = (name: string, value: string, netns?: string): void => {
    if (this.writeError) throw this.writeError;
    this.sysctlWrites.push([name, value, netns]);
    this.sysctls.set(name, value);
  };
}
