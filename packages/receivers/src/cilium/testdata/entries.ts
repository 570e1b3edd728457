// Cilium conntrack entries built byte for byte in Cilium's own layouts, independently of ../layout.ts, so
// a wrong offset or byte order there shows as a failing test rather than agreeing with itself. Sources
// (https://github.com/cilium/cilium): bpf/lib/common.h and bpf/lib/conntrack.h (struct ipv4_ct_tuple,
// ipv6_ct_tuple, ct_entry, TUPLE_F_*, how ct_create4/6 store a connection), pkg/maps/ctmap/types.go (the
// value's Go mirror and its flag bits).
//
// Key (packed): daddr, saddr (4 or 16 bytes each), dport, sport (network order), nexthdr, flags: 14 bytes
// for IPv4, 38 for IPv6. A connection's entry holds its tuple reversed: daddr:sport is the side that
// opened it, saddr:dport the side that answered, for OUT and IN entries alike. A SERVICE entry keeps the
// packet's order with the ports swapped: daddr the service VIP, saddr the client, dport the client's port,
// sport the service port.
//
// Value (56 bytes, host order = little-endian here): Cilium 1.15 and earlier ('split'): rx_packets@0,
// rx_bytes@8, tx_packets@16, tx_bytes@24, each relative to the local endpoint; 1.16 and later ('total'):
// reserved/backend id@0..16 (1.19+: a NAT address there), packets@16 and bytes@24 of both directions.
// Both: lifetime u32@32, flags u16@36 (bit 0 rx_closing, bit 1 tx_closing, bit 4 seen_non_syn),
// rev_nat_index@38 (network order), tx/rx_flags_seen@42/43, src_sec_id@44, last_tx/rx_report@48/52.
import { parseIp } from '@netmon/core';
import type { PinnedMapInfo, PinnedMapRead } from '@netmon/native';

export const TCP = 6;
export const UDP = 17;
export const ICMP = 1;
export const ICMPV6 = 58;

/** The key's flags byte (bpf/lib/common.h). OUT is 0; RELATED is OR-ed onto OUT or IN. */
export const TUPLE = { OUT: 0, IN: 1, RELATED: 2, SERVICE: 4 } as const;

/** Bits of the value's u16 flags (pkg/maps/ctmap/types.go). */
export const CT = { RX_CLOSING: 0x1, TX_CLOSING: 0x2, SEEN_NON_SYN: 0x10, NODE_PORT: 0x20 } as const;

/** TCP flags OR-ed into tx/rx_flags_seen. */
const FIN = 0x01;
const SYN = 0x02;
const ACK = 0x10;

/** One map entry: its key and value bytes. */
export interface CtEntry {
  key: Uint8Array;
  value: Uint8Array;
}

/** An address as the packet carries it: 4 bytes for IPv4, 16 for IPv6. */
export function addressBytes(ip: string): Uint8Array {
  const b = new Uint8Array(16);
  const family = parseIp(ip, b, 0);
  if (family === 0) throw new Error(`not an address: ${ip}`);
  return family === 4 ? b.subarray(12, 16) : b;
}

/** A connection as Cilium stores it, by who opened it. */
export interface Connection {
  opener: string;
  openerPort?: number;
  responder: string;
  responderPort?: number;
  /** IANA number; default TCP. */
  protocol?: number;
  /** TUPLE flags; default OUT (first seen leaving a local endpoint). */
  tuple?: number;
}

function tupleKey(
  daddr: string,
  saddr: string,
  dport: number,
  sport: number,
  protocol: number,
  flags: number,
): Uint8Array {
  const d = addressBytes(daddr);
  const s = addressBytes(saddr);
  if (d.length !== s.length) throw new Error(`one family per key: ${daddr}, ${saddr}`);
  const n = d.length;
  const key = new Uint8Array(2 * n + 6);
  const view = new DataView(key.buffer);
  key.set(d, 0);
  key.set(s, n);
  view.setUint16(2 * n, dport, false);
  view.setUint16(2 * n + 2, sport, false);
  key[2 * n + 4] = protocol;
  key[2 * n + 5] = flags;
  return key;
}

/** The key of a connection's entry: the reversed tuple (daddr = opener, sport = the opener's port). */
export function connectionKey(c: Connection): Uint8Array {
  return tupleKey(
    c.opener,
    c.responder,
    c.responderPort ?? 0,
    c.openerPort ?? 0,
    c.protocol ?? TCP,
    c.tuple ?? TUPLE.OUT,
  );
}

/** The key of a load balancer's SERVICE entry: VIP, client, client port, service port (lb.h, lb4_local). */
export function serviceKey(s: {
  vip: string;
  servicePort: number;
  client: string;
  clientPort: number;
  protocol?: number;
}): Uint8Array {
  return tupleKey(s.vip, s.client, s.clientPort, s.servicePort, s.protocol ?? TCP, TUPLE.SERVICE);
}

/** What both value layouts share. */
export interface ValueTail {
  /** In the entries' clock unit (ktime seconds or jiffies >> 8); default 0. */
  lifetime?: number;
  /** CT bits; default seen_non_syn (an established TCP connection). */
  flags?: number;
  /** Network order in the value; default 0. */
  revNatIndex?: number;
  srcSecId?: number;
}

function value(tail: ValueTail): { value: Uint8Array; view: DataView } {
  const v = new Uint8Array(56);
  const view = new DataView(v.buffer);
  view.setUint32(32, tail.lifetime ?? 0, true);
  const flags = tail.flags ?? CT.SEEN_NON_SYN;
  view.setUint16(36, flags, true);
  view.setUint16(38, tail.revNatIndex ?? 0, false);
  // TCP flags seen each way: an entry both sides closed has seen FIN both ways.
  const closed = (flags & (CT.RX_CLOSING | CT.TX_CLOSING)) === (CT.RX_CLOSING | CT.TX_CLOSING);
  v[42] = SYN | ACK | (closed ? FIN : 0);
  v[43] = SYN | ACK | (closed ? FIN : 0);
  view.setUint32(44, tail.srcSecId ?? 0, true);
  // The last reports lag the lifetime by the timeout; any value below it will do here.
  view.setUint32(48, Math.max(0, (tail.lifetime ?? 0) - 60), true);
  view.setUint32(52, Math.max(0, (tail.lifetime ?? 0) - 60), true);
  return { value: v, view };
}

const setU64 = (view: DataView, offset: number, n: number) =>
  view.setBigUint64(offset, BigInt(n), true);

/**
 * A value in the split layout (Cilium 1.15 and earlier): rx and tx relative to the local endpoint. An OUT
 * entry's endpoint opened the connection (tx: what the opener sent); an IN entry's endpoint answered (rx:
 * what the opener sent).
 */
export function splitValue(
  c: { rxPackets?: number; rxBytes?: number; txPackets?: number; txBytes?: number } & ValueTail,
): Uint8Array {
  const { value: v, view } = value(c);
  setU64(view, 0, c.rxPackets ?? 0);
  setU64(view, 8, c.rxBytes ?? 0);
  setU64(view, 16, c.txPackets ?? 0);
  setU64(view, 24, c.txBytes ?? 0);
  return v;
}

/**
 * A value in the total layout (Cilium 1.16 and later): packets and bytes of both directions together. The
 * first 16 bytes are zero (1.16–1.18 connection entries), or hold what `head` says: a SERVICE entry's
 * backend id at 8, or (1.19+) a NAT address.
 */
export function totalValue(
  c: { packets?: number; bytes?: number; backendId?: number; natAddress?: string } & ValueTail,
): Uint8Array {
  const { value: v, view } = value(c);
  if (c.natAddress !== undefined) v.set(addressBytes(c.natAddress), 0);
  if (c.backendId !== undefined) setU64(view, 8, c.backendId);
  setU64(view, 16, c.packets ?? 0);
  setU64(view, 24, c.bytes ?? 0);
  return v;
}

/** A PinnedMapRead as the addon returns it: keys and values back to back. */
export function mapRead(
  entries: readonly CtEntry[],
  opts: { truncated?: boolean; keySize?: number; maxEntries?: number; name?: string } = {},
): PinnedMapRead {
  const keySize = opts.keySize ?? entries[0]?.key.length ?? 14;
  const keys = new Uint8Array(keySize * entries.length);
  const values = new Uint8Array(56 * entries.length);
  entries.forEach((e, i) => {
    if (e.key.length !== keySize) throw new Error(`entry ${i}: a ${e.key.length}-byte key in a ${keySize}`);
    keys.set(e.key, keySize * i);
    values.set(e.value, 56 * i);
  });
  const info: PinnedMapInfo = {
    type: 9,
    keySize,
    valueSize: 56,
    maxEntries: opts.maxEntries ?? 65536,
    name: (opts.name ?? 'cilium_ct4_glob').slice(0, 15),
  };
  return {
    count: entries.length,
    keys,
    values,
    truncated: opts.truncated ?? false,
    batched: true,
    durationMs: 0.5,
    info,
  };
}
