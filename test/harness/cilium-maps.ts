// Cilium's four conntrack maps, made by bpftool on a bpffs of the test's own, in the exact layouts the
// Cilium datapath creates them with (https://github.com/cilium/cilium: bpf/lib/common.h for the structs,
// pkg/maps/ctmap/ctmap.go for the names and the map type): LRU hash maps, keys of 14 bytes
// (`struct ipv4_ct_tuple`) and 38 bytes (`ipv6_ct_tuple`), values of 56 bytes (`struct ct_entry`).
// Entries are written with `bpftool batch file`, so what a reader finds is what the kernel stores, and
// the bpffs is unmounted at the end, which frees every map on it. Also the kernel's clocks that entries'
// lifetimes count in: monotonic seconds and jiffies. Needs root.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseIp } from '@netmon/core';

/** The key's flags byte (bpf/lib/common.h `TUPLE_F_*`). */
export const TUPLE_F_OUT = 0;
export const TUPLE_F_IN = 1;
export const TUPLE_F_RELATED = 2;
export const TUPLE_F_SERVICE = 4;

/** Bits of the value's u16 flags at offset 36. */
export const CT_RX_CLOSING = 0x1;
export const CT_TX_CLOSING = 0x2;
export const CT_SEEN_NON_SYN = 0x10;

export const PROTO = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58 } as const;

/** The pinned names Cilium gives its global conntrack maps. */
export const CT_MAPS = {
  tcp4: { name: 'cilium_ct4_global', keySize: 14 },
  any4: { name: 'cilium_ct_any4_global', keySize: 14 },
  tcp6: { name: 'cilium_ct6_global', keySize: 38 },
  any6: { name: 'cilium_ct_any6_global', keySize: 38 },
} as const;
export type CtMap = keyof typeof CT_MAPS;

export const VALUE_SIZE = 56;

/** The raw fields of a key, in the order the datapath stores them. */
export interface TupleFields {
  daddr: string;
  saddr: string;
  dport: number;
  sport: number;
  nexthdr: number;
  flags: number;
}

/** A key's bytes: addresses and ports in network byte order, then nexthdr and flags. */
export function tupleKey(t: TupleFields): Uint8Array {
  const d = addressBytes(t.daddr);
  const s = addressBytes(t.saddr);
  if (d.length !== s.length) throw new Error(`${t.daddr} and ${t.saddr} are not of one family`);
  const a = d.length;
  const key = new Uint8Array(2 * a + 6);
  key.set(d, 0);
  key.set(s, a);
  const v = new DataView(key.buffer);
  v.setUint16(2 * a, t.dport);
  v.setUint16(2 * a + 2, t.sport);
  key[2 * a + 4] = t.nexthdr;
  key[2 * a + 5] = t.flags;
  return key;
}

/**
 * The key of a connection entry (OUT or IN, optionally RELATED), as bpf/lib/conntrack.h stores it after
 * reversing the tuple: the side that opened the connection in daddr with its port in sport, the side
 * that answered in saddr with its port in dport. ICMP echo: the identifier is the opener's port, 0 the other.
 */
export function connectionKey(c: {
  proto: number;
  opener: string;
  openerPort: number;
  responder: string;
  responderPort: number;
  flags: number;
}): Uint8Array {
  return tupleKey({
    daddr: c.opener,
    saddr: c.responder,
    dport: c.responderPort,
    sport: c.openerPort,
    nexthdr: c.proto,
    flags: c.flags,
  });
}

/**
 * The key of a load balancer's SERVICE entry (bpf/lib/lb.h stores the tuple in packet order with the
 * ports swapped): the frontend (VIP) in daddr, the client in saddr, the client's port in dport, the
 * service port in sport.
 */
export function serviceKey(s: {
  proto: number;
  vip: string;
  vipPort: number;
  client: string;
  clientPort: number;
}): Uint8Array {
  return tupleKey({
    daddr: s.vip,
    saddr: s.client,
    dport: s.clientPort,
    sport: s.vipPort,
    nexthdr: s.proto,
    flags: TUPLE_F_SERVICE,
  });
}

/** What a `struct ct_entry` holds, in either value layout. */
export interface EntryFields {
  /**
   * Cilium ≤ 1.15 (split): rx_packets, rx_bytes at 0 and 8, tx_packets, tx_bytes at 16 and 24, each
   * relative to the local endpoint. Cilium 1.16+ (total): `packets` and `bytes` at 16 and 24, counting
   * both directions; offset 0 reserved (or, 1.19+, a NAT address), 8 a SERVICE entry's backend id.
   */
  layout: 'split' | 'total';
  rxPackets?: number;
  rxBytes?: number;
  txPackets?: number;
  txBytes?: number;
  packets?: number;
  bytes?: number;
  /** total layout: the SERVICE entry's backend id at offset 8. */
  backendId?: number;
  /** total layout, Cilium 1.19+: the NAT address an egress entry keeps at offset 0. */
  natAddr?: string;
  /** In the entries' clock: monotonic seconds or jiffies >> 8. */
  lifetime: number;
  /** The u16 bitfield at 36 (CT_RX_CLOSING, CT_TX_CLOSING, …). */
  flags?: number;
  /** Network byte order at 38. */
  revNatIndex?: number;
  srcSecId?: number;
}

export function ctValue(e: EntryFields): Uint8Array {
  const value = new Uint8Array(VALUE_SIZE);
  const v = new DataView(value.buffer);
  const u64 = (off: number, n: number | undefined) => v.setBigUint64(off, BigInt(n ?? 0), true);
  if (e.layout === 'split') {
    u64(0, e.rxPackets);
    u64(8, e.rxBytes);
    u64(16, e.txPackets);
    u64(24, e.txBytes);
  } else {
    if (e.natAddr) value.set(addressBytes(e.natAddr), 0);
    u64(8, e.backendId);
    u64(16, e.packets);
    u64(24, e.bytes);
  }
  v.setUint32(32, e.lifetime, true);
  v.setUint16(36, e.flags ?? 0, true);
  v.setUint16(38, e.revNatIndex ?? 0);
  v.setUint32(44, e.srcSecId ?? 0, true);
  return value;
}

export interface MapEntry {
  key: Uint8Array;
  value: Uint8Array;
}

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');

function addressBytes(ip: string): Uint8Array {
  const bytes = new Uint8Array(16);
  const family = parseIp(ip, bytes, 0);
  if (family === 0) throw new Error(`not an IP address: ${ip}`);
  return family === 4 ? bytes.subarray(12, 16) : bytes;
}

function bpftool(args: string[]): string {
  try {
    return execFileSync('bpftool', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`bpftool ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

/** A bpffs of the test's own; each `node()` in it is one node's maps directory (Cilium's tc/globals). */
export class CiliumBpffs {
  private constructor(
    readonly mount: string,
    private readonly work: string,
  ) {}

  static create(): CiliumBpffs {
    const mount = mkdtempSync(path.join(tmpdir(), 'netmon-cilium-bpffs-'));
    execFileSync('mount', ['-t', 'bpf', 'bpf', mount]);
    return new CiliumBpffs(mount, mkdtempSync(path.join(tmpdir(), 'netmon-cilium-batch-')));
  }

  /** A fresh maps directory `<mount>/<name>/tc/globals`, with no map in it yet. */
  node(name: string): CiliumNode {
    const dir = path.join(this.mount, name, 'tc', 'globals');
    mkdirSync(dir, { recursive: true });
    return new CiliumNode(dir, path.join(this.work, name));
  }

  /** Unmounting frees every map pinned on the bpffs: nothing else holds them. */
  destroy(): void {
    try {
      execFileSync('umount', [this.mount]);
    } finally {
      rmSync(this.mount, { recursive: true, force: true });
      rmSync(this.work, { recursive: true, force: true });
    }
  }
}

/** One node's pinned conntrack maps. */
export class CiliumNode {
  private batches = 0;

  constructor(
    readonly dir: string,
    private readonly work: string,
  ) {
    mkdirSync(work, { recursive: true });
  }

  pin(map: CtMap | string): string {
    return path.join(this.dir, map in CT_MAPS ? CT_MAPS[map as CtMap].name : map);
  }

  /**
   * Creates a map as Cilium does (LRU hash, 56-byte values), its key size the layout's unless given.
   * An LRU map evicts before it is full (its free lists are per CPU): the tests' maps have room to spare.
   */
  create(map: CtMap, opts: { keySize?: number; maxEntries?: number } = {}): string {
    const pin = this.pin(map);
    const name = path.basename(pin);
    bpftool([
      'map',
      'create',
      pin,
      'type',
      'lru_hash',
      'key',
      String(opts.keySize ?? CT_MAPS[map].keySize),
      'value',
      String(VALUE_SIZE),
      'entries',
      String(opts.maxEntries ?? 4096),
      // The kernel keeps 15 characters of a map's name (Cilium's show as e.g. cilium_ct4_glob).
      'name',
      name.slice(0, 15),
    ]);
    return pin;
  }

  /** The four maps, empty. */
  createAll(): void {
    for (const map of Object.keys(CT_MAPS) as CtMap[]) this.create(map);
  }

  /** Writes entries (new or replacing) with one `bpftool batch file`. */
  put(map: CtMap, entries: MapEntry[]): void {
    this.batch(
      entries.map(
        (e) => `map update pinned ${this.pin(map)} key hex ${hex(e.key)} value hex ${hex(e.value)}`,
      ),
    );
  }

  delete(map: CtMap, keys: Uint8Array[]): void {
    this.batch(keys.map((k) => `map delete pinned ${this.pin(map)} key hex ${hex(k)}`));
  }

  /** Removes the pin (as Cilium does when it replaces a map of another layout); the map goes with it. */
  unpin(map: CtMap): void {
    const pin = this.pin(map);
    if (existsSync(pin)) unlinkSync(pin);
  }

  /** The entries the kernel holds, read back by bpftool: the oracle for what the maps contain. */
  dump(map: CtMap): Array<{ key: Uint8Array; value: Uint8Array }> {
    const out = JSON.parse(bpftool(['map', 'dump', 'pinned', this.pin(map), '-j'])) as Array<{
      key: string[];
      value: string[];
    }>;
    const bytes = (h: string[]) => Uint8Array.from(h, (x) => Number.parseInt(x, 16));
    return out.map((e) => ({ key: bytes(e.key), value: bytes(e.value) }));
  }

  private batch(lines: string[]): void {
    if (lines.length === 0) return;
    const file = path.join(this.work, `batch-${++this.batches}.txt`);
    writeFileSync(file, `${lines.join('\n')}\n`);
    bpftool(['batch', 'file', file]);
  }
}

// ---------------------------------------------------------------------------------------------------
// The clocks entries' lifetimes count in (bpf/lib/mono.h): seconds of CLOCK_MONOTONIC (bpf_ktime_get_ns,
// the default) or jiffies >> 8 (with --enable-bpf-clock-probe).

/** CLOCK_MONOTONIC in whole seconds: libuv's hrtime reads that clock, as bpf_ktime_get_ns does. */
export function monotonicSeconds(): number {
  return Math.floor(Number(process.hrtime.bigint()) / 1e9);
}

/**
 * The kernel's jiffies now: /proc/schedstat's `timestamp` line (what Cilium's agent and netmon read), or
 * — on a kernel built without CONFIG_SCHEDSTATS, which has no /proc/schedstat — /proc/timer_list's
 * `jiffies:` line, the same counter.
 */
export function kernelJiffies(): { jiffies: number; source: '/proc/schedstat' | '/proc/timer_list' } {
  if (existsSync('/proc/schedstat')) {
    const m = /^timestamp (\d+)$/m.exec(readFileSync('/proc/schedstat', 'utf8'));
    if (m) return { jiffies: Number(m[1]), source: '/proc/schedstat' };
  }
  const m = /^jiffies: (\d+)$/m.exec(readFileSync('/proc/timer_list', 'utf8'));
  if (!m) throw new Error('neither /proc/schedstat nor /proc/timer_list gives the jiffies count');
  return { jiffies: Number(m[1]), source: '/proc/timer_list' };
}

/**
 * The kernel's HZ, measured: jiffies against the monotonic clock over `ms`, snapped to the values a
 * kernel can be built with. Throws when the rate is far from all of them (the machine stalled).
 */
export async function measureKernelHz(ms = 400): Promise<{ hz: number; raw: number }> {
  const a = { j: kernelJiffies().jiffies, ns: Number(process.hrtime.bigint()) };
  await new Promise((r) => setTimeout(r, ms));
  const b = { j: kernelJiffies().jiffies, ns: Number(process.hrtime.bigint()) };
  const raw = (b.j - a.j) / ((b.ns - a.ns) / 1e9);
  const hz = [100, 250, 300, 1000].reduce((best, h) => (Math.abs(h - raw) < Math.abs(best - raw) ? h : best));
  if (Math.abs(hz - raw) / hz > 0.1) throw new Error(`jiffies advanced at ${raw.toFixed(1)}/s: no kernel HZ`);
  return { hz, raw };
}

/** jiffies >> 8 now: the datapath's bpf_mono_now() in jiffies mode. */
export function monoJiffiesNow(): number {
  return Math.floor(kernelJiffies().jiffies / 256);
}

/** A lifetime `seconds` from now in jiffies >> 8 (bpf_sec_to_mono: (s × HZ) >> 8), negative: passed. */
export function jiffiesLifetime(seconds: number, hz: number): number {
  return monoJiffiesNow() + Math.trunc((seconds * hz) / 256);
}
