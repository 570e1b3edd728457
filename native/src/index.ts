// Typed access to the C++ addon. Loaded lazily, on first use, so packages that only name the API (and
// machines without the build) never touch the binary until a kernel receiver starts.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One conntrack entry per row (both the dump and the event results). See native/README.md. */
export interface ConntrackColumns {
  length: number;
  /** 4 | 6 */
  family: Uint8Array;
  protocol: Uint8Array;
  /** Original direction as dialled, 16 bytes per row, IPv4 stored IPv4-mapped. */
  src: Uint8Array;
  dst: Uint8Array;
  /** ICMP: src port = echo id, dst port = type << 8 | code. */
  srcPort: Uint16Array;
  dstPort: Uint16Array;
  /** Reply direction: replySrc is the real backend after DNAT, replyDst the source after SNAT. */
  replySrc: Uint8Array;
  replyDst: Uint8Array;
  replySrcPort: Uint16Array;
  replyDstPort: Uint16Array;
  /** Original-direction counters (sent by src) and reply-direction ones; 0 when accounting is off. */
  txBytes: Float64Array;
  txPackets: Float64Array;
  rxBytes: Float64Array;
  rxPackets: Float64Array;
  /** The kernel's conntrack id, zone and mark (float64 so they drop into number attribute columns). */
  id: Float64Array;
  zone: Float64Array;
  mark: Float64Array;
  /** IPS_* status bits and seconds until the entry times out. */
  status: Uint32Array;
  timeout: Uint32Array;
  /** Flow start (ms since the epoch) when net.netfilter.nf_conntrack_timestamp is on, else 0. */
  startMs: Float64Array;
  /** When the row was read (ms since the epoch): the end of its dump, or its event's arrival. */
  seenMs: Float64Array;
  /** FlowFlags bits: InitiatorKnown (always: src opened it), Dnat, and Opened / Closed on NEW / DESTROY. */
  flags: Uint32Array;
  /** 0 dump row, 1 NEW, 2 DESTROY. */
  event: Uint8Array;
}

export interface DumpResult extends ConntrackColumns {
  /** Conntrack messages read, of which malformed (skipped) and filtered (protocol not wanted). */
  messages: number;
  malformed: number;
  filtered: number;
  /** Wall time of the kernel read and parse, without the JS hand-over. */
  durationMs: number;
}

export interface EventBatch extends ConntrackColumns {
  /**
   * Events were lost since the last batch — socket overflow, a malformed message, or JS not keeping up —
   * so the receiver should resync with a dump.
   */
  overflow: boolean;
  /** The number of the barrier this batch completes (see ConntrackEventsHandle.barrier), else 0. */
  barrier: number;
  /** Totals since the subscription started. */
  received: number;
  overflows: number;
  malformed: number;
  dropped: number;
  filtered: number;
}

export interface ConntrackHandle {
  /** family: 0 both, 2 IPv4, 10 IPv6. protocols: IANA numbers to keep, or null for all. */
  dump(family: number, protocols: readonly number[] | null): Promise<DumpResult>;
  close(): void;
}

export interface ConntrackEventsOptions {
  netns?: string;
  /** Also subscribe to NEW (DESTROY always). */
  newEvents: boolean;
  /** SO_RCVBUF(FORCE) of the event socket in bytes. */
  receiveBuffer: number;
  /** Hand a batch to JS at this many rows, or after flushMs with at least one. */
  batchSize: number;
  flushMs: number;
  /** 4 or 6 keeps only that family; 0 or absent, both. */
  family?: number;
  protocols?: readonly number[] | null;
}

export interface ConntrackEventsHandle {
  /**
   * Asks for everything the event socket holds now to be delivered, the last batch carrying the returned
   * number in `barrier`. Called after a dump: every event the dump caused (entries it reaped) is then in
   * JS before the dump's snapshot is passed on.
   */
  barrier(): number;
  /** Stops the thread; events still queued on the socket are delivered first. */
  close(): void;
}

export interface ParseResult extends ConntrackColumns {
  messages: number;
  malformed: number;
  /** Messages of another netlink subsystem. */
  skipped: number;
}

/**
 * One read of the eBPF flow counter: a row per flow seen from a local socket in the interval that just
 * ended, or per connection when both its ends are local sockets (merged, `flags` has CGROUP_FLOW_PAIRED).
 * See native/README.md.
 */
export interface CgroupFlowsRead {
  length: number;
  /** 4 | 6 */
  family: Uint8Array;
  protocol: Uint8Array;
  /** The local socket's address and the remote end's as the socket sees them, 16 bytes per row (IPv4-mapped). */
  local: Uint8Array;
  remote: Uint8Array;
  localPort: Uint16Array;
  remotePort: Uint16Array;
  /** With CGROUP_FLOW_TRANSLATED: where the egress packets really went (the backend after DNAT). */
  wireRemote: Uint8Array;
  wireRemotePort: Uint16Array;
  /** Sent (tx) and received (rx) by the local socket in the interval: IP length, header included. */
  txBytes: Float64Array;
  txPackets: Float64Array;
  rxBytes: Float64Array;
  rxPackets: Float64Array;
  /** cgroup v2 id of the local socket, and of the remote socket on paired rows (NaN otherwise). */
  cgroupId: Float64Array;
  peerCgroupId: Float64Array;
  /** CGROUP_FLOW_* bits. */
  flags: Uint32Array;
  /** Buffer entries read (before pairs were merged) and pairs merged. */
  entries: number;
  paired: number;
  /** Totals since load: packets (and their bytes) not counted because the buffer was full; unparseable packets. */
  lostPackets: number;
  lostBytes: number;
  malformed: number;
  /**
   * Set when the drain failed part-way: the rows are what was drained; the rest stayed in the kernel's
   * buffer and comes with a later read (nothing is lost).
   */
  drainError?: string;
  /** Time of the buffer swap (an RCU grace period) and of the whole read, without the JS hand-over. */
  swapMs: number;
  durationMs: number;
}

/** Bits of CgroupFlowsRead.flags. */
export const CgroupFlowFlags = {
  /** The local socket opened the flow (a SYN it sent; the first packet of another protocol). */
  OriginLocal: 1,
  /** The remote end opened it. */
  OriginRemote: 2,
  /** wireRemote/wireRemotePort hold the real peer. */
  Translated: 4,
  /** Both ends are local sockets: merged into one row, from the initiator's side when known (OriginLocal). */
  Paired: 8,
} as const;

export interface CgroupFlowsOptions {
  /** cgroup2 directory the programs attach to (its whole subtree is counted). */
  cgroupPath: string;
  /** Distinct flows one interval buffer holds. */
  maxFlows: number;
  /** The BPF object; default: the one built beside the addon. */
  objectPath?: string;
}

export interface CgroupFlowsHandle {
  /** Swaps the interval buffers and drains the one that was active. One read at a time. */
  read(): Promise<CgroupFlowsRead>;
  /** Detaches the programs (at once, or when the read in flight ends) and frees the maps. */
  close(): void;
}

/** One drain of the DNS tracer's ring buffer. */
export interface CgroupDnsRead {
  /** Records back to back, each a struct dns_event (DNS_EVENT) then `captured` payload bytes. */
  records: Uint8Array;
  count: number;
  /** The read stopped at its byte budget: the ring holds more. */
  more: boolean;
  /** Records of an impossible size (a program and addon from different sources), skipped. */
  badRecords: number;
  /** Totals since the programs were loaded: packets written to the ring, */
  captured: number;
  /** packets the ring had no room for, and their payload bytes, */
  lost: number;
  lostBytes: number;
  /** and DNS packets whose payload could not be read. */
  malformed: number;
  durationMs: number;
}

/**
 * Byte offsets in a DNS record's header (native/bpf/dns.h struct dns_event; numbers in host byte order,
 * ports included).
 */
export const DNS_EVENT = {
  size: 64,
  /** u64, CLOCK_MONOTONIC ns (process.hrtime's clock). */
  ktime: 0,
  /** u64 cgroup v2 id of the local socket. */
  cgroup: 8,
  /** 16 bytes each, IPv4 as ::ffff:a.b.c.d. */
  local: 16,
  remote: 32,
  /** u16 each. */
  localPort: 48,
  remotePort: 50,
  /** u8: 4 | 6. */
  family: 52,
  /** u8: 17 | 6. */
  protocol: 53,
  /** u8: 1 leaving the local socket (a query), 0 arriving (an answer). */
  egress: 54,
  tcpFlags: 55,
  /** u32: TCP sequence number of the payload's first byte. */
  tcpSeq: 56,
  /** u16: payload bytes in the packet, and how many of them follow the header. */
  payloadLen: 60,
  captured: 62,
} as const;

/** Largest payload the tracer copies from one packet. */
export const DNS_CAPTURE_MAX = 4096;

export interface CgroupDnsOptions {
  /** cgroup2 directory the programs attach to (its whole subtree is traced). */
  cgroupPath: string;
  /** Ring buffer size: a power of two, a multiple of the page size. */
  ringBytes: number;
  /** Payload bytes copied per packet, 1 to DNS_CAPTURE_MAX. */
  captureBytes: number;
  /** The BPF object; default: the one built beside the addon. */
  objectPath?: string;
}

export interface CgroupDnsHandle {
  /** Drains up to about `maxBytes` (default 4 MiB) of records. One read at a time. */
  read(maxBytes?: number): Promise<CgroupDnsRead>;
  /** Detaches the programs (at once, or when the read in flight ends) and frees the ring. */
  close(): void;
}

/** What the kernel says about a BPF map (bpf_map_info). */
export interface PinnedMapInfo {
  /** BPF_MAP_TYPE_* (1 hash, 9 LRU hash, …). */
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  name: string;
}

/** Every entry of a pinned map: keys and values back to back, `keySize` and `valueSize` bytes each. */
export interface PinnedMapRead {
  count: number;
  keys: Uint8Array;
  values: Uint8Array;
  /** More entries than `maxEntries` were in the map: the rest was not read. */
  truncated: boolean;
  /** Read with batch lookups (kernel 5.6 and later), else one key at a time. */
  batched: boolean;
  durationMs: number;
  info: PinnedMapInfo;
}

export interface PinnedMapOptions {
  /** The pin on a bpffs (e.g. /sys/fs/bpf/tc/globals/cilium_ct4_global). */
  path: string;
  /** The sizes the caller's layout has; a map with others is refused before anything is read. */
  keySize: number;
  valueSize: number;
  /** Entries read at most (default: the map's max_entries). */
  maxEntries?: number;
}

/**
 * Why a pinned-map read failed, as the error's `code`: ENOENT (no such pin), EPERM (not allowed:
 * CAP_BPF or CAP_SYS_ADMIN, and the bpffs readable), ESIZE (key or value size not the layout's; the
 * error's `info` has the map's), EIO (anything else).
 */
export type PinnedMapErrorCode = 'ENOENT' | 'EPERM' | 'ESIZE' | 'EIO';

interface Addon {
  parseMessages(buffer: Uint8Array): ParseResult;
  readSysctl(netns: string | null, name: string): string;
  writeSysctl(netns: string | null, name: string, value: string): void;
  Conntrack: new (options: { netns?: string }) => ConntrackHandle;
  CgroupFlows: new (options: Required<CgroupFlowsOptions>) => CgroupFlowsHandle;
  CgroupDns: new (options: Required<CgroupDnsOptions>) => CgroupDnsHandle;
  readPinnedMap(options: PinnedMapOptions): Promise<PinnedMapRead>;
  ConntrackEvents: new (
    options: ConntrackEventsOptions,
    onBatch: (batch: EventBatch) => void,
  ) => ConntrackEventsHandle;
}

export const ADDON_PATH = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  'build',
  'Release',
  'netmon_native.node',
);

/** The eBPF flow counter, built by clang beside the addon. */
export const FLOWS_BPF_OBJECT = join(dirname(ADDON_PATH), 'flows.bpf.o');

/** The DNS tracer, built beside it. */
export const DNS_BPF_OBJECT = join(dirname(ADDON_PATH), 'dns.bpf.o');

let addon: Addon | undefined;

/** The addon, loaded on first call. Throws an error that says how to build it when it is missing. */
export function native(): Addon {
  if (addon) return addon;
  if (process.platform !== 'linux') {
    throw new Error(`the kernel receivers need Linux (this is ${process.platform})`);
  }
  if (!existsSync(ADDON_PATH)) {
    throw new Error(
      `the native addon is not built (${ADDON_PATH} is missing): run 'make build', or 'npm rebuild @netmon/native'`,
    );
  }
  addon = createRequire(import.meta.url)(ADDON_PATH) as Addon;
  return addon;
}

/** Opens a ctnetlink socket in the namespace at `netns` (default: the agent's own) for table dumps. */
export function openConntrack(netns?: string): ConntrackHandle {
  return new (native().Conntrack)({ netns });
}

/** Subscribes to conntrack DESTROY (and NEW) events on a thread of the addon's own. */
export function subscribeConntrackEvents(
  options: ConntrackEventsOptions,
  onBatch: (batch: EventBatch) => void,
): ConntrackEventsHandle {
  return new (native().ConntrackEvents)(options, onBatch);
}

/**
 * Runs the ctnetlink parser over a buffer of netlink messages (as one datagram of a dump holds them):
 * for tests and fuzzing, no kernel or privilege needed.
 */
export function parseConntrackMessages(buffer: Uint8Array): ParseResult {
  return native().parseMessages(buffer);
}

/** A sysctl under /proc/sys (`net/netfilter/nf_conntrack_acct`) as the namespace at `netns` sees it. */
export function readSysctl(name: string, netns?: string): string {
  return native().readSysctl(netns ?? null, name);
}

export function writeSysctl(name: string, value: string, netns?: string): void {
  native().writeSysctl(netns ?? null, name, value);
}

/**
 * Loads the eBPF flow counter and attaches it to a cgroup (BPF links: detached when the handle closes
 * or the process dies). Needs CAP_BPF and CAP_NET_ADMIN, or CAP_SYS_ADMIN.
 */
export function attachCgroupFlows(options: CgroupFlowsOptions): CgroupFlowsHandle {
  const objectPath = builtObject(options.objectPath ?? FLOWS_BPF_OBJECT);
  return new (native().CgroupFlows)({ ...options, objectPath });
}

/**
 * Loads the DNS tracer and attaches it to a cgroup (BPF links, as attachCgroupFlows). Needs CAP_BPF and
 * CAP_NET_ADMIN, or CAP_SYS_ADMIN.
 */
export function attachCgroupDns(options: CgroupDnsOptions): CgroupDnsHandle {
  const objectPath = builtObject(options.objectPath ?? DNS_BPF_OBJECT);
  return new (native().CgroupDns)({ ...options, objectPath });
}

function builtObject(path: string): string {
  if (!existsSync(path)) {
    throw new Error(
      `the BPF object is not built (${path} is missing): run 'make build', or 'npm rebuild @netmon/native' (needs clang and libbpf-dev)`,
    );
  }
  return path;
}

/**
 * Reads every entry of a map another program pinned, on the libuv pool, after checking its key and value
 * sizes (rejects with a `code`: PinnedMapErrorCode). The pin is opened per read, so a map its owner
 * re-created is the one read next.
 */
export function readPinnedMap(options: PinnedMapOptions): Promise<PinnedMapRead> {
  return native().readPinnedMap(options);
}
