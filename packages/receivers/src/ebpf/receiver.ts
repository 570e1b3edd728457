import {
  type BatchSink,
  type ComponentSettings,
  errorMessage,
  FlowBatch,
  FlowFlags,
  observeMetrics,
  type Receiver,
  type StringColumn,
} from '@netmon/core';
import { CgroupFlowFlags, type CgroupFlowsHandle, type CgroupFlowsRead } from '@netmon/native';
import { CgroupPods } from './cgroup-pods.js';
import type { EbpfReceiverConfig } from './config.js';
import {
  cgroupAttachPoint,
  type EbpfKernel,
  type ListeningPorts,
  parseInterfaceBytes,
  parseListening,
  parsePortRange,
} from './kernel.js';
import { EBPF_METRICS } from './metrics.js';
import { nodeKernel } from './node-kernel.js';

const TCP = 6;
const UDP = 17;
/** First retry of a failed read; each further one waits twice as long, until that reaches read_interval. */
const RETRY_BASE_MS = 500;
/**
 * How long a reading of the listening sockets is trusted. They only matter for flows whose opener no
 * packet told (connections older than the agent), and servers rarely come and go: reading four /proc
 * files per read would cost more than it tells.
 */
const LISTENING_TTL_MS = 30_000;

/** Attribute columns the receiver fills (the local socket's cgroup and the pod it belongs to). */
export const SRC_CGROUP_ID = 'src.cgroup.id';
export const DST_CGROUP_ID = 'dst.cgroup.id';
export const SRC_POD_UID = 'src.k8s.pod.uid';
export const DST_POD_UID = 'dst.k8s.pod.uid';

/**
 * Counts every packet of the sockets under a cgroup with the addon's eBPF programs (cgroup_skb egress
 * and ingress) and, every `read_interval`, hands on the interval's bytes per flow: a delta batch, so no
 * delta processor is needed after it.
 *
 * Orientation: src is the side that opened the connection when it is known — from the SYN or a
 * flow's first packet as the programs saw it, else (connections older than the agent) from the agent's
 * own listening sockets — and FlowFlags.InitiatorKnown says so; otherwise src is the local end and
 * FlowFlags.LocalRemote is set. The listening sockets are those of the agent's network namespace only. A connection whose two ends are both local sockets comes as one row,
 * initiator → responder, with both cgroups.
 */
export class EbpfReceiver implements Receiver {
  private handle?: CgroupFlowsHandle;
  private timer?: NodeJS.Timeout;
  private reading?: Promise<void>;
  private stopping = false;
  private stopped = false;
  private cgroupPath = '';
  private pods?: CgroupPods;
  /** Wall clock of the previous read: the start of the next interval. */
  private intervalStart = Date.now();
  private failedInARow = 0;
  // Self-metric totals.
  private reads = 0;
  private readFailures = 0;
  private lastFlows = 0;
  private lastReadSeconds = 0;
  private lostPackets = 0;
  private lostBytes = 0;
  private malformed = 0;
  private seenBytes = 0;
  private interfaceBytes = 0;
  private coverage: number | undefined;
  private lastInterfaceTotal: number | undefined;
  private interfaces: string[] = [];
  private warnedLoss = 0;
  private readonly missingInterfaces = new Set<string>();
  /** The listening sockets as last read, and when (performance.now()). */
  private listening?: ListeningPorts;
  private listeningReadAt = 0;
  /** net.ipv4.ip_local_port_range, read at start. */
  private ephemeral = parsePortRange(undefined);
  private watchdog?: NodeJS.Timeout;
  /** performance.now() when the read in flight started; undefined when none is. */
  private readStartedAt: number | undefined;
  private readonly unobserve: Array<() => void> = [];

  constructor(
    private readonly settings: ComponentSettings,
    private readonly config: EbpfReceiverConfig,
    private readonly next: BatchSink,
    private readonly kernel: EbpfKernel = nodeKernel,
  ) {
    this.registerMetrics();
  }

  /** Totals since start, as the self-metrics report them. */
  get counters() {
    return {
      reads: this.reads,
      readFailures: this.readFailures,
      flows: this.lastFlows,
      lostPackets: this.lostPackets,
      lostBytes: this.lostBytes,
      malformed: this.malformed,
      seenBytes: this.seenBytes,
      interfaceBytes: this.interfaceBytes,
      coverage: this.coverage,
    };
  }

  start(): void {
    const path = cgroupAttachPoint(
      this.kernel,
      this.config.cgroup_path,
      'ebpf',
      'or choose the netfilter collection mode (conntrack needs CAP_NET_ADMIN only)',
    );
    this.cgroupPath = path;
    try {
      this.handle = this.kernel.attach({ cgroupPath: path, maxFlows: this.config.max_flows });
    } catch (err) {
      throw new Error(`ebpf receiver: cannot attach to the cgroup ${path}: ${errorMessage(err)}`);
    }
    this.pods = new CgroupPods(path);
    this.ephemeral = parsePortRange(this.kernel.readProc('/proc/sys/net/ipv4/ip_local_port_range'));
    this.interfaces = this.coverageInterfaces();
    this.lastInterfaceTotal = this.interfaceTotal();
    this.intervalStart = Date.now();
    this.settings.status.describe(() => ({
      cgroup: this.cgroupPath,
      max_flows: this.config.max_flows,
      flows_last_read: this.lastFlows,
      lost_packets: this.lostPackets,
      coverage: this.coverageText(),
    }));
    this.settings.logger.info(
      {
        cgroup: path,
        read_interval_ms: this.config.read_interval,
        max_flows: this.config.max_flows,
        coverage_interfaces: this.interfaces,
      },
      `counting the sockets under ${path} with eBPF (cgroup_skb ingress and egress)`,
    );
    this.schedule(this.config.read_interval);
    this.watchdog = setInterval(() => this.checkOverdue(), Math.max(this.config.read_interval, 5_000));
    this.watchdog.unref();
  }

  private coverageText(): string {
    if (this.coverage !== undefined)
      return `${(this.coverage * 100).toFixed(1)}% of the bytes of ${this.interfaces.join(', ')}`;
    if (this.interfaces.length === 0) return 'unknown (no interface to compare with)';
    return this.seenBytes > 0
      ? 'unknown (the compared interfaces moved no bytes)'
      : 'unknown (no traffic yet)';
  }

  /**
   * A read that never returns (a wedged pool, a kernel that never ends the grace period) would leave the
   * status `ok` while nothing is counted: past three intervals (at least 30 s) the status says so.
   */
  private checkOverdue(): void {
    if (this.readStartedAt === undefined) return;
    const ms = performance.now() - this.readStartedAt;
    if (ms > Math.max(3 * this.config.read_interval, 30_000)) {
      this.settings.status.recoverableError(
        new Error(`an eBPF flow read of ${this.cgroupPath} has not returned for ${Math.round(ms / 1000)} s`),
      );
    }
  }

  async shutdown(): Promise<void> {
    if (this.stopped) return;
    this.stopping = true;
    clearTimeout(this.timer);
    clearInterval(this.watchdog);
    await this.reading;
    // One last read, so the bytes counted since the previous one reach the exporters before they stop.
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
      this.readStartedAt = started;
      this.reading = this.read().finally(() => {
        this.reading = undefined;
        this.readStartedAt = undefined;
        const wait = this.config.read_interval - (performance.now() - started);
        const retry = this.failedInARow > 0 ? RETRY_BASE_MS * 2 ** (this.failedInARow - 1) : Infinity;
        this.schedule(Math.max(0, Math.min(wait, retry)));
      });
    }, delayMs);
  }

  /** One read: never throws, whatever fails (the kernel read, or what is made of its rows). */
  private async read(): Promise<void> {
    const handle = this.handle;
    if (!handle) return;
    // The interval ends at the swap, which the read starts with: the time after it would add the drain.
    const now = Date.now();
    let result: CgroupFlowsRead;
    try {
      result = await handle.read();
    } catch (err) {
      this.failedInARow++;
      this.readFailed(`eBPF flow read failed: ${errorMessage(err)}`, 'eBPF flow read failed', {
        err: errorMessage(err),
        failed_in_a_row: this.failedInARow,
      });
      return;
    }
    this.failedInARow = 0;
    try {
      this.reads++;
      this.lastFlows = result.length;
      this.lastReadSeconds = result.durationMs / 1000;
      this.malformed = result.malformed;
      this.noteLosses(result);
      const batch = this.toBatch(result, this.intervalStart, now);
      this.intervalStart = now;
      this.measureCoverage(batch);
      this.settings.logger.debug(
        {
          flows: result.length,
          entries: result.entries,
          paired: result.paired,
          ms: Math.round(result.durationMs),
        },
        'eBPF read',
      );
      this.next.consume(batch);
    } catch (err) {
      // The rows were drained from the kernel: they cannot be read again.
      this.intervalStart = now;
      this.readFailed(
        `eBPF flows read but not handed on (lost): ${errorMessage(err)}`,
        'eBPF flows read but not handed on: they are lost',
        { err: errorMessage(err), flows: result.length },
      );
      return;
    }
    if (result.drainError !== undefined) {
      // The rest of the buffer stays in the kernel and comes with a later read: nothing is lost.
      this.readFailures++;
      const message = `eBPF flow read drained the buffer part-way (${result.drainError}): ${result.length} flows handed on, the rest comes with a later read`;
      this.settings.status.recoverableError(new Error(message));
      this.settings.logger.warn({ err: result.drainError, flows: result.length }, message);
      return;
    }
    this.settings.status.ok();
  }

  private readFailed(status: string, log: string, fields: Record<string, unknown>): void {
    this.readFailures++;
    this.settings.status.recoverableError(new Error(status));
    this.settings.logger.error(fields, log);
  }

  private noteLosses(result: CgroupFlowsRead): void {
    this.lostPackets = result.lostPackets;
    this.lostBytes = result.lostBytes;
    if (this.lostPackets > this.warnedLoss) {
      // Once per growth, not per read: a lasting overflow logs at most every read, each with the total.
      this.settings.logger.warn(
        { lost_packets: this.lostPackets, lost_bytes: this.lostBytes, max_flows: this.config.max_flows },
        `the eBPF flow buffer was full (max_flows ${this.config.max_flows} distinct flows in one read interval) or the kernel had no memory for a new entry: packets of further flows were not counted. Raise max_flows or shorten read_interval`,
      );
      this.warnedLoss = this.lostPackets;
    }
  }

  /**
   * The addon's rows as a delta FlowBatch, oriented in place (the arrays are the addon's and adopted
   * without a copy): rows the remote end opened get their ends, counters and cgroups swapped.
   */
  toBatch(r: CgroupFlowsRead, from: number, to: number): FlowBatch {
    const n = r.length;
    const flags = r.flags;
    const out = new Uint32Array(n);
    let listening: ListeningPorts | undefined;
    const { low, high } = this.ephemeral;
    for (let i = 0; i < n; i++) {
      const f = flags[i];
      let remoteOpened = (f & CgroupFlowFlags.OriginRemote) !== 0;
      let known = (f & (CgroupFlowFlags.OriginLocal | CgroupFlowFlags.OriginRemote)) !== 0;
      const proto = r.protocol[i];
      // Connections older than the agent (no packet told who opened them): a local listening socket on
      // our port means the peer dialled us. A bound, unconnected UDP socket is a server only outside the
      // ephemeral range: an unconnected client that called sendto looks the same in /proc/net/udp.
      if (!known && (proto === TCP || proto === UDP)) {
        listening ??= this.listeningPorts();
        const tcp = proto === TCP;
        const ports = tcp ? listening.tcp : listening.udp;
        const serves = (port: number) => ports.has(port) && (tcp || port < low || port > high);
        if (serves(r.localPort[i])) {
          remoteOpened = true;
          known = true;
        } else if ((f & CgroupFlowFlags.Paired) !== 0 && serves(r.remotePort[i])) {
          known = true;
        }
      }
      let bits = known ? FlowFlags.InitiatorKnown : FlowFlags.LocalRemote;
      if (remoteOpened) swapEnds(r, i);
      else if (f & CgroupFlowFlags.Translated) bits |= FlowFlags.Dnat;
      out[i] = bits;
    }
    const timeStart = new Float64Array(n).fill(from);
    const timeEnd = new Float64Array(n).fill(to);
    const batch = FlowBatch.wrap(
      {
        length: n,
        family: r.family,
        protocol: r.protocol,
        srcAddr: r.local,
        dstAddr: r.remote,
        srcPort: r.localPort,
        dstPort: r.remotePort,
        backendAddr: r.wireRemote,
        backendPort: r.wireRemotePort,
        txBytes: r.txBytes,
        rxBytes: r.rxBytes,
        txPackets: r.txPackets,
        rxPackets: r.rxPackets,
        flags: out,
        timeStart,
        timeEnd,
      },
      'delta',
    );
    batch.origin = this.settings.id;
    if (n > 0) {
      batch.adoptNumberColumn(SRC_CGROUP_ID, r.cgroupId);
      batch.adoptNumberColumn(DST_CGROUP_ID, r.peerCgroupId);
      this.podColumns(batch, r.cgroupId, r.peerCgroupId);
    }
    return batch;
  }

  /** Pod UIDs by cgroup: looked up once per distinct cgroup of the batch, not per row. */
  private podColumns(batch: FlowBatch, src: Float64Array, dst: Float64Array): void {
    const pods = this.pods;
    if (!pods) return;
    for (const [ids, key] of [
      [src, SRC_POD_UID],
      [dst, DST_POD_UID],
    ] as const) {
      // Column code per cgroup id; 0 for a cgroup that is no pod's.
      const codes = new Map<number, number>();
      let col: StringColumn | undefined;
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i];
        if (Number.isNaN(id)) continue;
        let code = codes.get(id);
        if (code === undefined) {
          const uid = pods.podUid(id);
          if (uid !== undefined) col ??= batch.ensureColumn(key, 'string') as StringColumn;
          code = uid === undefined || col === undefined ? 0 : col.code(uid);
          codes.set(id, code);
        }
        if (code !== 0 && col) col.codes[i] = code;
      }
    }
  }

  /** The agent's listening sockets, read again only when the last reading is LISTENING_TTL_MS old. */
  private listeningPorts(): ListeningPorts {
    const now = performance.now();
    if (this.listening && now - this.listeningReadAt < LISTENING_TTL_MS) return this.listening;
    const ports: ListeningPorts = { tcp: new Set(), udp: new Set() };
    for (const proto of ['tcp', 'udp'] as const) {
      for (const file of [`/proc/net/${proto}`, `/proc/net/${proto}6`]) {
        const text = this.kernel.readProc(file);
        if (text) parseListening(text, proto, ports[proto]);
      }
    }
    this.listening = ports;
    this.listeningReadAt = now;
    return ports;
  }

  private coverageInterfaces(): string[] {
    if (this.config.coverage_interfaces) return this.config.coverage_interfaces;
    const all = parseInterfaceBytes(this.kernel.readProc('/proc/net/dev') ?? '');
    return [...all.keys()].filter((name) => !this.kernel.isVirtualInterface(name)).sort();
  }

  private interfaceTotal(): number | undefined {
    if (this.interfaces.length === 0) return undefined;
    const all = parseInterfaceBytes(this.kernel.readProc('/proc/net/dev') ?? '');
    let sum = 0;
    for (const name of this.interfaces) {
      const bytes = all.get(name);
      if (bytes !== undefined) sum += bytes;
      else if (!this.missingInterfaces.has(name)) {
        this.missingInterfaces.add(name);
        this.settings.logger.warn(
          { interface: name },
          `coverage_interfaces names ${name}, which is not in /proc/net/dev of the agent's network namespace: it counts as 0 bytes`,
        );
      }
    }
    return sum;
  }

  /**
   * Bytes that left or reached this host through a compared interface, against what the receiver
   * counted for remote ends outside the host (loopback and pairs of local sockets never cross one).
   */
  private measureCoverage(batch: FlowBatch): void {
    let seen = 0;
    const { family, srcAddr, dstAddr, txBytes, rxBytes } = batch;
    // Both ends are local sockets (a merged pair) exactly when both cgroup columns hold an id: such a
    // connection never crosses an interface. A row the remote end opened has its one id under dst.
    const srcCg = batch.column(SRC_CGROUP_ID);
    const dstCg = batch.column(DST_CGROUP_ID);
    for (let i = 0; i < batch.length; i++) {
      if (
        srcCg?.kind === 'number' &&
        dstCg?.kind === 'number' &&
        !Number.isNaN(srcCg.values[i]) &&
        !Number.isNaN(dstCg.values[i])
      )
        continue;
      if (isLoopback(srcAddr, dstAddr, i, family[i])) continue;
      seen += txBytes[i] + rxBytes[i];
    }
    const total = this.interfaceTotal();
    if (total === undefined || this.lastInterfaceTotal === undefined) return;
    const crossed = Math.max(0, total - this.lastInterfaceTotal);
    this.lastInterfaceTotal = total;
    this.seenBytes += seen;
    this.interfaceBytes += crossed;
    if (crossed > 0) this.coverage = seen / crossed;
  }

  private registerMetrics(): void {
    const observed = observeMetrics(this.settings.meter, EBPF_METRICS, (r) => {
      r.reads(this.reads);
      r.readFailures(this.readFailures);
      r.flows(this.lastFlows);
      r.readDuration(this.lastReadSeconds);
      r.lostPackets(this.lostPackets);
      r.lostBytes(this.lostBytes);
      r.malformed(this.malformed);
      r.seenBytes(this.seenBytes);
      r.interfaceBytes(this.interfaceBytes);
      if (this.coverage !== undefined) r.coverage(this.coverage);
    });
    this.unobserve.push(observed.close);
  }
}

/** Exchanges a row's two ends in place: addresses, ports, counters and cgroups. */
function swapEnds(r: CgroupFlowsRead, i: number): void {
  const a = r.local;
  const b = r.remote;
  for (let k = 16 * i; k < 16 * i + 16; k++) {
    const t = a[k];
    a[k] = b[k];
    b[k] = t;
  }
  let t = r.localPort[i];
  r.localPort[i] = r.remotePort[i];
  r.remotePort[i] = t;
  t = r.txBytes[i];
  r.txBytes[i] = r.rxBytes[i];
  r.rxBytes[i] = t;
  t = r.txPackets[i];
  r.txPackets[i] = r.rxPackets[i];
  r.rxPackets[i] = t;
  t = r.cgroupId[i];
  r.cgroupId[i] = r.peerCgroupId[i];
  r.peerCgroupId[i] = t;
}

/** 127.0.0.0/8 (IPv4-mapped) or ::1 at either end. */
function isLoopback(src: Uint8Array, dst: Uint8Array, i: number, family: number): boolean {
  const o = 16 * i;
  if (family === 4) return src[o + 12] === 127 || dst[o + 12] === 127;
  const one = (a: Uint8Array) => {
    for (let k = 0; k < 15; k++) if (a[o + k] !== 0) return false;
    return a[o + 15] === 1;
  };
  return one(src) || one(dst);
}
