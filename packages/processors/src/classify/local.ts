// This host's own addresses: loopback, the addresses of its network interfaces, and the addresses the
// cluster's node record gives this node. Traffic between two of them never leaves the machine, so it is
// same_node and free whatever else would apply. Interfaces come and go (DHCP, container bridges, VPN
// tunnels, a secondary ENI), so they are read again now and then — at most once per `refresh_ms`, at a
// batch boundary — never per flow. Lookups read the batch's address column in place and allocate nothing.
import os from 'node:os';
import { isV4Mapped, parseIp } from '@netmon/core';

/** What os.networkInterfaces() returns; tests pass their own. */
export type InterfaceSource = () => NodeJS.Dict<os.NetworkInterfaceInfo[]>;

export interface HostAddressesOptions {
  /** Where the interfaces' addresses come from (default: os.networkInterfaces). */
  interfaces?: InterfaceSource;
  /** Read the interfaces again when the last read is older than this (ms). */
  refreshMs?: number;
  now?: () => number;
}

/** How often the interfaces are read again: a new address counts as local within this long. */
export const INTERFACE_REFRESH_MS = 30_000;

export class HostAddresses {
  /**
   * IPv4 addresses as int32 (127.0.0.0/8 is tested apart). A host has a handful: a scan of small
   * integers beats a Set of numbers above 2^31, which V8 hashes as doubles (this runs twice per flow).
   */
  private v4 = new Int32Array(0);
  /** IPv6 addresses, 16 bytes each, compared in place (a host has a handful). */
  private v6: Uint8Array[] = [];
  private fromInterfaces: string[] = [];
  private fromNode: readonly string[] = [];
  private readAt = Number.NEGATIVE_INFINITY;
  private readonly interfaces: InterfaceSource;
  private readonly refreshMs: number;
  private readonly now: () => number;
  /** Why the interfaces could not be read last time (undefined: they could). */
  problem: string | undefined;

  constructor(opts: HostAddressesOptions = {}) {
    this.interfaces = opts.interfaces ?? os.networkInterfaces;
    this.refreshMs = opts.refreshMs ?? INTERFACE_REFRESH_MS;
    this.now = opts.now ?? Date.now;
  }

  /** Reads the interfaces again when the last read is older than `refreshMs`. Call once per batch. */
  refresh(): void {
    const now = this.now();
    if (now - this.readAt < this.refreshMs) return;
    this.readAt = now;
    let found: string[];
    try {
      found = Object.values(this.interfaces())
        .flatMap((list) => list ?? [])
        .map((a) => a.address);
      this.problem = undefined;
    } catch (err) {
      // Some sandboxes refuse getifaddrs: keep what was known, loopback and the node record still count.
      this.problem = err instanceof Error ? err.message : String(err);
      return;
    }
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

  /** The addresses read from the interfaces and the node record (for /status); 127/8 and ::1 count too. */
  list(): string[] {
    return [...new Set([...this.fromInterfaces, ...this.fromNode])];
  }

  private rebuild(): void {
    const v4 = new Set<number>();
    const v6: Uint8Array[] = [];
    const buf = new Uint8Array(16);
    for (const text of [...this.fromInterfaces, ...this.fromNode]) {
      const family = parseIp(text, buf, 0);
      if (family === 4) v4.add((buf[12] << 24) | (buf[13] << 16) | (buf[14] << 8) | buf[15]);
      else if (family === 6 && !v6.some((a) => equal16(a, buf, 0))) v6.push(buf.slice());
    }
    this.v4 = Int32Array.from(v4);
    this.v6 = v6;
  }

  /** Whether the address at buf[off..off+16) is this host's: loopback, an interface's, or the node's. */
  has(buf: Uint8Array, off: number): boolean {
    if (isV4Mapped(buf, off)) {
      const a = buf[off + 12];
      // 127.0.0.0/8, also when an IPv6 socket reached it as ::ffff:127.x.y.z (the same 16 bytes).
      if (a === 127) return true;
      const key = (a << 24) | (buf[off + 13] << 16) | (buf[off + 14] << 8) | buf[off + 15];
      const v4 = this.v4;
      for (let k = 0; k < v4.length; k++) if (v4[k] === key) return true;
      return false;
    }
    if (isLoopback6(buf, off)) return true;
    const v6 = this.v6;
    for (let k = 0; k < v6.length; k++) if (equal16(v6[k], buf, off)) return true;
    return false;
  }
}

/** ::1 */
function isLoopback6(buf: Uint8Array, off: number): boolean {
  for (let k = 0; k < 15; k++) if (buf[off + k] !== 0) return false;
  return buf[off + 15] === 1;
}

function equal16(a: Uint8Array, buf: Uint8Array, off: number): boolean {
  for (let k = 0; k < 16; k++) if (a[k] !== buf[off + k]) return false;
  return true;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
