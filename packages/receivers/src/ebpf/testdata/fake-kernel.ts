// A stand-in for the node access the eBPF receiver has (the EbpfKernel seam in ../kernel.ts): the addon's
// flow counter, serving queued reads in the addon's column layout, plus /proc files and the set of virtual
// interfaces. The receiver's own logic (scheduling, orientation, pod columns, losses, coverage, status)
// runs on it without a kernel; the programs themselves are tested on a real cgroup in test/kernel/.
import { parseIp } from '@netmon/core';
import {
  CgroupFlowFlags,
  type CgroupFlowsHandle,
  type CgroupFlowsOptions,
  type CgroupFlowsRead,
} from '@netmon/native';
import type { EbpfKernel } from '../kernel.js';
import { CAPS_ROOT, procStatus } from './proc.js';

/** One row as the addon hands it over: the local socket's view of a flow. */
export interface Row {
  /** IANA number; default 6 (TCP). */
  protocol?: number;
  local: string;
  remote: string;
  localPort?: number;
  remotePort?: number;
  /** Where the egress packets really went (the backend after DNAT); giving it sets Translated. */
  wireRemote?: string;
  wireRemotePort?: number;
  /** Sent and received by the local socket. */
  tx?: number;
  rx?: number;
  txPackets?: number;
  rxPackets?: number;
  /** cgroup v2 id of the local socket; default 1. */
  cgroupId?: number;
  /** cgroup v2 id of the other socket when both ends are local; giving it sets Paired. */
  peerCgroupId?: number;
  /** CgroupFlowFlags bits (OriginLocal, OriginRemote; Translated and Paired follow from the fields above). */
  flags?: number;
}

/** Totals and timings of a read, as the addon reports them beside the rows. */
export interface ReadTotals {
  lostPackets?: number;
  lostBytes?: number;
  malformed?: number;
  durationMs?: number;
  /** The drain stopped part-way with this error (the rows are what was drained). */
  drainError?: string;
}

/** The addon's columns for `rows`: IPv4 as IPv4-mapped, 16 bytes a row; peerCgroupId NaN when unpaired. */
export function flowsRead(rows: readonly Row[], totals: ReadTotals = {}): CgroupFlowsRead {
  const n = rows.length;
  const r: CgroupFlowsRead = {
    length: n,
    family: new Uint8Array(n),
    protocol: new Uint8Array(n),
    local: new Uint8Array(16 * n),
    remote: new Uint8Array(16 * n),
    localPort: new Uint16Array(n),
    remotePort: new Uint16Array(n),
    wireRemote: new Uint8Array(16 * n),
    wireRemotePort: new Uint16Array(n),
    txBytes: new Float64Array(n),
    txPackets: new Float64Array(n),
    rxBytes: new Float64Array(n),
    rxPackets: new Float64Array(n),
    cgroupId: new Float64Array(n),
    peerCgroupId: new Float64Array(n),
    flags: new Uint32Array(n),
    entries: 0,
    paired: 0,
    lostPackets: totals.lostPackets ?? 0,
    lostBytes: totals.lostBytes ?? 0,
    malformed: totals.malformed ?? 0,
    swapMs: 0.05,
    durationMs: totals.durationMs ?? 1,
  };
  if (totals.drainError !== undefined) r.drainError = totals.drainError;
  rows.forEach((row, i) => {
    const family = parseIp(row.local, r.local, 16 * i);
    if (family === 0 || parseIp(row.remote, r.remote, 16 * i) !== family) throw new Error(`bad row ${i}`);
    // The programs record every egress packet's destination: the dialled address when nothing rewrote it.
    if (parseIp(row.wireRemote ?? row.remote, r.wireRemote, 16 * i) !== family)
      throw new Error(`bad row ${i}`);
    r.family[i] = family;
    r.protocol[i] = row.protocol ?? 6;
    r.localPort[i] = row.localPort ?? 0;
    r.remotePort[i] = row.remotePort ?? 0;
    r.wireRemotePort[i] = row.wireRemotePort ?? row.remotePort ?? 0;
    r.txBytes[i] = row.tx ?? 0;
    r.rxBytes[i] = row.rx ?? 0;
    r.txPackets[i] = row.txPackets ?? 0;
    r.rxPackets[i] = row.rxPackets ?? 0;
    r.cgroupId[i] = row.cgroupId ?? 1;
    r.peerCgroupId[i] = row.peerCgroupId ?? Number.NaN;
    r.flags[i] =
      (row.flags ?? 0) |
      (row.wireRemote !== undefined ? CgroupFlowFlags.Translated : 0) |
      (row.peerCgroupId !== undefined ? CgroupFlowFlags.Paired : 0);
    r.entries += row.peerCgroupId !== undefined ? 2 : 1;
    if (row.peerCgroupId !== undefined) r.paired++;
  });
  return r;
}

/** What a read does: resolve with a result, reject with an error, or settle when the promise does. */
export type ReadStep = CgroupFlowsRead | Error | Promise<CgroupFlowsRead>;

export class FakeFlowsHandle implements CgroupFlowsHandle {
  /** Each read, with the (fake) clock's time. */
  readonly reads: number[] = [];
  /** Steps taken in order; when empty, `fallback` answers. */
  readonly script: ReadStep[] = [];
  fallback: () => ReadStep = () => flowsRead([]);
  /** Called at each read, before it answers (e.g. /proc files that change with the interval). */
  onRead?: () => void;
  closed = false;
  /** close() while a read was running (the addon then detaches when it ends: allowed, but noted). */
  closedWhileBusy = false;
  /** Reads the addon refused, as the receiver must never provoke them. */
  readonly refused: string[] = [];
  private busy = false;

  constructor(readonly options: CgroupFlowsOptions) {}

  read(): Promise<CgroupFlowsRead> {
    // The addon's refusals are synchronous throws, not rejected promises.
    if (this.closed) return this.refuse('the eBPF flow counter is closed');
    if (this.busy) return this.refuse('a read is already running on this handle');
    this.reads.push(Date.now());
    this.onRead?.();
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

export class FakeKernel implements EbpfKernel {
  /** Every attach call's options, in order. */
  readonly attached: CgroupFlowsOptions[] = [];
  /** The handle the last attach returned. */
  handle?: FakeFlowsHandle;
  /** Set: attach throws it (the addon's errors: EPERM, a missing BPF object, a path that is no cgroup). */
  attachError?: Error;
  /** Steps the next handle's reads take (queued before start). */
  readonly script: ReadStep[] = [];
  fallback: () => ReadStep = () => flowsRead([]);
  /** /proc files by path; a missing one, or one set to undefined, cannot be read. */
  readonly files = new Map<string, string | undefined>([['/proc/self/status', procStatus(CAPS_ROOT)]]);
  /** Paths exists() says are there (e.g. a mount's cgroup.type, which makes it no hierarchy root). */
  readonly present = new Set<string>();
  /** Every readProc path, in order. */
  readonly procReads: string[] = [];
  /** Interfaces isVirtualInterface says are virtual. */
  readonly virtual = new Set<string>(['lo']);

  attach = (options: CgroupFlowsOptions): CgroupFlowsHandle => {
    this.attached.push(options);
    if (this.attachError) throw this.attachError;
    const handle = new FakeFlowsHandle(options);
    handle.script.push(...this.script.splice(0));
    handle.fallback = () => this.fallback();
    this.handle = handle;
    return handle;
  };

  readProc = (path: string): string | undefined => {
    this.procReads.push(path);
    return this.files.get(path);
  };

  exists = (path: string): boolean => this.present.has(path);

  isVirtualInterface = (name: string): boolean => this.virtual.has(name);

  /** How many times `path` was read since `from` (an index into procReads). */
  readsOf(path: string, from = 0): number {
    return this.procReads.slice(from).filter((p) => p === path).length;
  }
}
