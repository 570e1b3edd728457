// This host's own addresses: loopback, the addresses of its network interfaces, and the addresses the
// cluster's node record gives this node. Traffic between two of them never leaves the machine, so it is
// same_node and free whatever else would apply. Interfaces come and go (DHCP, container bridges, VPN
// tunnels, a secondary ENI), so they are read again now and then — at most once per `refresh_ms`, at a
// batch boundary — never per flow. Lookups read the batch's address column in place and allocate nothing.
//
// The interfaces are this node's only when the flows come from this machine. With k8s_metadata reading a
// snapshot, the flows are being analysed after the fact, usually elsewhere: the analysing machine's eth0
// says nothing about the node that recorded them, so by default only loopback and the node record count.
import os from 'node:os';
import { isV4Mapped, parseIp } from '@netmon/core';
import type { K8sMetadata } from '@netmon/extensions';

/** What os.networkInterfaces() returns; tests pass their own. */
export type InterfaceSource = () => NodeJS.Dict<os.NetworkInterfaceInfo[]>;

/** classify's `host_interfaces`: `auto` reads the interfaces unless k8s_metadata reads a snapshot. */
export type HostInterfaces = 'auto' | boolean;

export interface HostAddressesOptions {
  /** Where the interfaces' addresses come from (default: os.networkInterfaces). */
  interfaces?: InterfaceSource;
  /** Read the interfaces again when the last read is older than this (ms). */
  refreshMs?: number;
  now?: () => number;
}

/** How often the interfaces are read again: a new address counts as local within this long. */
export const INTERFACE_REFRESH_MS = 30_000;

/** How many addresses /status lists (the count is always there). */
export const STATUS_ADDRESSES = 16;

/**
 * Interfaces whose addresses are not this host's own. kube-proxy in IPVS mode binds every Service's
 * ClusterIP, external IPs and load-balancer IPs to the dummy `kube-ipvs0` so that IPVS accepts packets
 * for them, and kube-router's service proxy does the same on `kube-dummy-if`: thousands of addresses on
 * a big cluster. They are Services (k8s_metadata knows them by address), and a flow dialling one goes
 * wherever its backend is; counted as the host's, such a flow would be same_node whenever the receiver
 * does not see the translation.
 *
 * Kept, because the host itself answers at their addresses: bridges (`docker0`, `cni0`, `cbr0`,
 * `kube-bridge`: the bridge's address is the host's end of it; the containers behind it have addresses
 * of their own, which do not count); `cilium_host` (Cilium's router address in this node's pod range, the
 * source of the host's own traffic to pods); tunnel ends (`flannel.1`, `tunl0`, `vxlan.calico`,
 * `cilium_vxlan`, WireGuard); `nodelocaldns` (NodeLocal DNSCache's 169.254.20.10, and in iptables mode
 * the DNS ClusterIP: the cache answering there is a hostNetwork pod of this node, so the bytes stay here);
 * and the host side of pods' veths (link-local addresses).
 */
export const NOT_HOST_INTERFACES: ReadonlySet<string> = new Set(['kube-ipvs0', 'kube-dummy-if']);

/** One instance per k8s_metadata extension: classify and cost read the same set. */
const shared = new WeakMap<K8sMetadata, HostAddresses>();

export class HostAddresses {
  private set = new AddressSet(0, 0);
  private fromInterfaces: string[] = [];
  /** Addresses left out, by interface (NOT_HOST_INTERFACES), as of the last read. */
  private skipped: Record<string, number> = {};
  private fromNode: readonly string[] = [];
  private readAt = Number.NEGATIVE_INFINITY;
  private readonly interfaces: InterfaceSource;
  private readonly refreshMs: number;
  private readonly now: () => number;
  /** The `host_interfaces` in force, and the key that set it (undefined: the default, auto). */
  private setting: HostInterfaces = 'auto';
  private settingKey: string | undefined;
  /** Whether the interfaces count (decided by `sync`; until then they do). */
  private reading = true;
  /** The node record last followed: its store, generation and name. */
  private nodeStore: unknown;
  private nodeGeneration = -1;
  private nodeName: string | undefined;
  /** Why the interfaces could not be read last time (undefined: they could). */
  problem: string | undefined;

  constructor(opts: HostAddressesOptions = {}) {
    this.interfaces = opts.interfaces ?? os.networkInterfaces;
    this.refreshMs = opts.refreshMs ?? INTERFACE_REFRESH_MS;
    this.now = opts.now ?? Date.now;
  }

  /**
   * The set of the host `metadata` describes, shared by every classify and cost that use this extension,
   * so both agree on which ends are ours. `opts` apply when this call makes it (tests).
   */
  static of(metadata: K8sMetadata, opts?: HostAddressesOptions): HostAddresses {
    let host = shared.get(metadata);
    if (host === undefined) {
      host = new HostAddresses(opts);
      shared.set(metadata, host);
    }
    return host;
  }

  /**
   * Applies classify's `host_interfaces` (`key` names it). `auto` changes nothing. A value that differs
   * from the one another key set earlier is not applied: returns that key, for the caller to say so.
   */
  configure(setting: HostInterfaces, key: string): string | undefined {
    if (setting === 'auto') return undefined;
    if (this.settingKey !== undefined && this.setting !== setting) return this.settingKey;
    this.setting = setting;
    this.settingKey ??= key;
    return undefined;
  }

  /** Whether the interfaces count, and why (as of the last `sync`), for /status and the log. */
  interfacesCount(): { read: boolean; why: string } {
    const read = this.reading;
    const why =
      this.setting !== 'auto'
        ? `${this.settingKey}: ${read}`
        : read
          ? 'auto: the flows are taken to come from this machine'
          : "auto: k8s_metadata reads a snapshot, so the flows were recorded elsewhere and this machine's interfaces are not that node's; loopback and node_name's record still count";
    return { read, why };
  }

  /**
   * Once per batch: decides whether the interfaces count (the setting, else whether `metadata` reads a
   * snapshot), reads them when due, and follows this node's record when the nodes changed.
   */
  sync(metadata: K8sMetadata | undefined): void {
    const read = this.setting === 'auto' ? metadata?.offline !== true : this.setting;
    if (read !== this.reading) {
      this.reading = read;
      this.readAt = Number.NEGATIVE_INFINITY;
      if (!read) {
        this.fromInterfaces = [];
        this.skipped = {};
        this.problem = undefined;
        this.rebuild();
      }
    }
    if (read) this.refresh();
    if (metadata !== undefined) {
      const { store, nodeName } = metadata;
      if (
        store !== this.nodeStore ||
        store.nodeGeneration !== this.nodeGeneration ||
        nodeName !== this.nodeName
      ) {
        this.nodeStore = store;
        this.nodeGeneration = store.nodeGeneration;
        this.nodeName = nodeName;
        this.setNodeAddresses(nodeName === undefined ? [] : (store.node(nodeName)?.ips ?? []));
      }
    }
  }

  /** Reads the interfaces again when they count and the last read is older than `refreshMs`. */
  refresh(): void {
    if (!this.reading) return;
    const now = this.now();
    if (now - this.readAt < this.refreshMs) return;
    this.readAt = now;
    const found: string[] = [];
    const skipped: Record<string, number> = {};
    try {
      for (const [name, list] of Object.entries(this.interfaces())) {
        if (list === undefined) continue;
        if (NOT_HOST_INTERFACES.has(name)) {
          if (list.length > 0) skipped[name] = list.length;
          continue;
        }
        for (const a of list) found.push(a.address);
      }
      this.problem = undefined;
    } catch (err) {
      // Some sandboxes refuse getifaddrs: keep what was known, loopback and the node record still count.
      this.problem = err instanceof Error ? err.message : String(err);
      return;
    }
    this.skipped = skipped;
    if (sameList(found, this.fromInterfaces)) return;
    this.fromInterfaces = found;
    this.rebuild();
  }

  /** The addresses the cluster's node record gives this node (InternalIP, ExternalIP). */
  setNodeAddresses(ips: readonly string[]): void {
    if (sameList(ips, this.fromNode)) return;
    this.fromNode = [...ips];
    this.rebuild();
  }

  /** Every address that counts besides loopback: the node record's first, then the interfaces'. */
  list(): string[] {
    return [...new Set([...this.fromNode, ...this.fromInterfaces])];
  }

  /** What /status shows: the first addresses and how many, whether the interfaces count, and why. */
  status(): Record<string, unknown> {
    const all = this.list();
    const { read, why } = this.interfacesCount();
    return {
      host_addresses: all.slice(0, STATUS_ADDRESSES),
      host_addresses_count: all.length,
      host_interfaces: `${read ? 'read' : 'not read'} (${why})`,
      ...(Object.keys(this.skipped).length > 0 ? { host_interfaces_skipped: this.skipped } : {}),
      ...(this.problem === undefined ? {} : { interfaces_unreadable: this.problem }),
    };
  }

  private rebuild(): void {
    const texts = [...this.fromInterfaces, ...this.fromNode];
    const buf = new Uint8Array(16 * texts.length);
    let n = 0;
    let v4 = 0;
    for (const text of texts) {
      if (parseIp(text, buf, 16 * n) === 0) continue;
      if (isV4Mapped(buf, 16 * n)) v4++;
      n++;
    }
    const set = new AddressSet(v4, n - v4);
    for (let k = 0; k < n; k++) set.add(buf, 16 * k);
    this.set = set;
  }

  /** Whether the address at buf[off..off+16) is this host's: loopback, an interface's, or the node's. */
  has(buf: Uint8Array, off: number): boolean {
    if (isV4Mapped(buf, off)) {
      // 127.0.0.0/8, also when an IPv6 socket reached it as ::ffff:127.x.y.z (the same 16 bytes).
      if (buf[off + 12] === 127) return true;
      return this.set.hasV4(word(buf, off + 12));
    }
    if (isLoopback6(buf, off)) return true;
    return this.set.hasV6(buf, off);
  }
}

/**
 * A set of addresses, made once per change and read per flow: open addressing with linear probing, at
 * most half full, so a lookup is a hash and one or two slot compares however many addresses there are (a
 * kube-proxy IPVS node carries thousands). IPv4 addresses are one int32 each (the IPv4-mapped prefix is
 * tested by the caller), IPv6 four; the all-zero key (0.0.0.0, `::`, nobody's) marks an empty slot.
 */
export class AddressSet {
  private readonly v4: Int32Array;
  private readonly v4Mask: number;
  /** 32 − log2(slots): a hash is the top bits of a multiplicative hash (Fibonacci hashing). */
  private readonly v4Shift: number;
  private readonly v6: Int32Array;
  private readonly v6Mask: number;
  private readonly v6Shift: number;
  private v4Size = 0;
  private v6Size = 0;

  /** Room for at most `v4` IPv4 and `v6` IPv6 addresses. */
  constructor(v4: number, v6: number) {
    const slots4 = tableSize(v4);
    const slots6 = tableSize(v6);
    this.v4 = new Int32Array(slots4);
    this.v4Mask = slots4 - 1;
    this.v4Shift = 32 - Math.log2(slots4);
    this.v6 = new Int32Array(4 * slots6);
    this.v6Mask = slots6 - 1;
    this.v6Shift = 32 - Math.log2(slots6);
  }

  get size(): number {
    return this.v4Size + this.v6Size;
  }

  /** Adds the address at buf[off..off+16); false when it was there already, or is 0.0.0.0 or `::`. */
  add(buf: Uint8Array, off: number): boolean {
    return isV4Mapped(buf, off) ? this.addV4(word(buf, off + 12)) : this.addV6(buf, off);
  }

  private addV4(key: number): boolean {
    if (key === 0) return false;
    if (2 * (this.v4Size + 1) > this.v4.length)
      throw new Error('AddressSet: more IPv4 addresses than sized for');
    const t = this.v4;
    let slot = hash1(key, this.v4Shift);
    while (t[slot] !== 0) {
      if (t[slot] === key) return false;
      slot = (slot + 1) & this.v4Mask;
    }
    t[slot] = key;
    this.v4Size++;
    return true;
  }

  private addV6(buf: Uint8Array, off: number): boolean {
    const w0 = word(buf, off);
    const w1 = word(buf, off + 4);
    const w2 = word(buf, off + 8);
    const w3 = word(buf, off + 12);
    if ((w0 | w1 | w2 | w3) === 0) return false;
    if (2 * (this.v6Size + 1) > this.v6Mask + 1)
      throw new Error('AddressSet: more IPv6 addresses than sized for');
    const t = this.v6;
    let slot = hash4(w0, w1, w2, w3, this.v6Shift);
    for (;;) {
      const b = 4 * slot;
      if ((t[b] | t[b + 1] | t[b + 2] | t[b + 3]) === 0) break;
      if (t[b] === w0 && t[b + 1] === w1 && t[b + 2] === w2 && t[b + 3] === w3) return false;
      slot = (slot + 1) & this.v6Mask;
    }
    const b = 4 * slot;
    t[b] = w0;
    t[b + 1] = w1;
    t[b + 2] = w2;
    t[b + 3] = w3;
    this.v6Size++;
    return true;
  }

  /** Whether the IPv4 address `key` (its four bytes as an int32, big-endian) is in the set. */
  hasV4(key: number): boolean {
    const t = this.v4;
    let slot = hash1(key, this.v4Shift);
    for (;;) {
      const k = t[slot];
      if (k === key) return k !== 0;
      if (k === 0) return false;
      slot = (slot + 1) & this.v4Mask;
    }
  }

  /** Whether the IPv6 address at buf[off..off+16) is in the set (an IPv4-mapped one never is). */
  hasV6(buf: Uint8Array, off: number): boolean {
    const w0 = word(buf, off);
    const w1 = word(buf, off + 4);
    const w2 = word(buf, off + 8);
    const w3 = word(buf, off + 12);
    const t = this.v6;
    let slot = hash4(w0, w1, w2, w3, this.v6Shift);
    for (;;) {
      const b = 4 * slot;
      const s0 = t[b];
      const s1 = t[b + 1];
      const s2 = t[b + 2];
      const s3 = t[b + 3];
      if (s0 === w0 && s1 === w1 && s2 === w2 && s3 === w3) return (s0 | s1 | s2 | s3) !== 0;
      if ((s0 | s1 | s2 | s3) === 0) return false;
      slot = (slot + 1) & this.v6Mask;
    }
  }

  /** Whether the address at buf[off..off+16) is in the set. */
  has(buf: Uint8Array, off: number): boolean {
    return isV4Mapped(buf, off) ? this.hasV4(word(buf, off + 12)) : this.hasV6(buf, off);
  }
}

/** Slots for `expected` keys: a power of two, at least twice as many (a probe then ends within a few). */
function tableSize(expected: number): number {
  let slots = 8;
  while (slots < 2 * expected) slots *= 2;
  return slots;
}

function word(buf: Uint8Array, off: number): number {
  return (buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3];
}

/**
 * Fibonacci hashing: the top bits of the key times 2^32/φ, so neighbouring addresses (a Service range, a
 * pod range) land far apart; one multiplication per word.
 */
const PHI = 0x9e3779b1;

function hash1(k: number, shift: number): number {
  return Math.imul(k, PHI) >>> shift;
}

function hash4(w0: number, w1: number, w2: number, w3: number, shift: number): number {
  let h = Math.imul(w0, PHI);
  h = Math.imul(h ^ (h >>> 15) ^ w1, PHI);
  h = Math.imul(h ^ (h >>> 15) ^ w2, PHI);
  h = Math.imul(h ^ (h >>> 15) ^ w3, PHI);
  return h >>> shift;
}

/** ::1 */
function isLoopback6(buf: Uint8Array, off: number): boolean {
  for (let k = 0; k < 15; k++) if (buf[off + k] !== 0) return false;
  return buf[off + 15] === 1;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
