// A stand-in for the node access of the real cilium receiver (its CiliumKernel seam): IPv4 TCP conntrack
// entries in Cilium's layouts (a 14-byte `struct ipv4_ct_tuple` key, the 56-byte `struct ct_entry`
// value with split counters, https://github.com/cilium/cilium bpf/lib/common.h), served as the addon's
// pinned-map reader would, so the flows receiver runs the real cilium receiver without a bpffs.
import type { PinnedMapRead } from '@netmon/native';
import type { CiliumKernel } from '../../cilium/kernel.js';

export interface CiliumConnection {
  /** The side that opened it. */
  opener: [string, number];
  answerer: [string, number];
  /** Bytes the opener sent, and the bytes sent back. */
  tx: number;
  rx: number;
}

const MONOTONIC_S = 1000;

function ipv4(text: string): number[] {
  return text.split('.').map(Number);
}

/** An OUT entry (first seen leaving the local endpoint that opened it), alive for another 100 s. */
export function ctEntry(c: CiliumConnection): { key: Uint8Array; value: Uint8Array } {
  const key = new Uint8Array(14);
  // Cilium stores the tuple reversed: daddr is the opener, sport its port (network byte order).
  key.set(ipv4(c.opener[0]), 0);
  key.set(ipv4(c.answerer[0]), 4);
  key[8] = c.answerer[1] >> 8;
  key[9] = c.answerer[1] & 0xff;
  key[10] = c.opener[1] >> 8;
  key[11] = c.opener[1] & 0xff;
  key[12] = 6; // TCP
  key[13] = 0; // TUPLE_F_OUT
  const value = new Uint8Array(56);
  const v = new DataView(value.buffer);
  // split layout: rx_packets, rx_bytes, tx_packets, tx_bytes, relative to the local endpoint (the opener).
  v.setBigUint64(0, BigInt(Math.ceil(c.rx / 1000)), true);
  v.setBigUint64(8, BigInt(c.rx), true);
  v.setBigUint64(16, BigInt(Math.ceil(c.tx / 1000)), true);
  v.setBigUint64(24, BigInt(c.tx), true);
  v.setUint32(32, MONOTONIC_S + 100, true);
  return { key, value };
}

const NAMES = ['cilium_ct4_global', 'cilium_ct_any4_global', 'cilium_ct6_global', 'cilium_ct_any6_global'];

/**
 * A node whose `dir` holds Cilium's four conntrack maps, by Cilium's names: the IPv4 TCP one with
 * `connections`, the others empty. Every other path is missing.
 */
export function fakeCiliumKernel(
  dir: string,
  connections: CiliumConnection[],
): CiliumKernel & { reads: string[] } {
  const reads: string[] = [];
  const pinned = (path: string) => NAMES.some((n) => path === `${dir}/${n}`);
  return {
    reads,
    async readMap(options): Promise<PinnedMapRead> {
      reads.push(options.path);
      if (!pinned(options.path))
        throw Object.assign(new Error(`no such pinned map: ${options.path}`), { code: 'ENOENT' });
      const entries = options.path === `${dir}/cilium_ct4_global` ? connections.map(ctEntry) : [];
      const keys = new Uint8Array(options.keySize * entries.length);
      const values = new Uint8Array(56 * entries.length);
      entries.forEach((e, i) => {
        keys.set(e.key, 14 * i);
        values.set(e.value, 56 * i);
      });
      return {
        count: entries.length,
        keys,
        values,
        truncated: false,
        batched: true,
        durationMs: 0.1,
        info: { type: 9, keySize: options.keySize, valueSize: 56, maxEntries: 65536, name: 'cilium_ct' },
      };
    },
    // No /proc/schedstat: HZ unknown, lifetimes in ktime seconds are still told apart.
    readProc: () => undefined,
    exists: (path) => path === dir || pinned(path),
    monotonicNs: () => MONOTONIC_S * 1e9,
    sleep: async () => {},
  };
}
