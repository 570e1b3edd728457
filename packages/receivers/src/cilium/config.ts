import { duration } from '@netmon/core';
import { z } from 'zod';

/** How the first 16 bytes (and the counters) of Cilium's `struct ct_entry` are laid out. */
export const VALUE_LAYOUTS = ['auto', 'split', 'total'] as const;
export type ValueLayoutChoice = (typeof VALUE_LAYOUTS)[number];

/** What the entries' `lifetime` counts in. */
export const CLOCK_SOURCES = ['auto', 'ktime', 'jiffies'] as const;
export type ClockSourceChoice = (typeof CLOCK_SOURCES)[number];

const mapName = (name: string, what: string) =>
  z
    .string()
    .regex(/^[A-Za-z0-9_.-]*$/, 'expected a map file name (letters, digits, _ . -), or "" to leave it out')
    .default(name)
    .describe(`Pinned name of ${what} in maps_dir; "" leaves it out.`);

export const ciliumReceiverConfig = z.strictObject({
  maps_dir: z
    .string()
    .min(1)
    .default('/sys/fs/bpf/tc/globals')
    .describe(
      "The bpffs directory Cilium pins its maps in. In a pod, mount the host's /sys/fs/bpf (hostPath, read-only is enough) and give its path here. It must be on a bpf file system: one that exists elsewhere is refused at validation (unless auto mode may pick another receiver) and at start.",
    ),
  read_interval: duration({ min: 100 })
    .prefault('5s')
    .describe(
      'How often the maps are read. Each read emits every live connection with its cumulative counters (a full snapshot): put the delta processor after this receiver.',
    ),
  map_names: z
    .strictObject({
      tcp4: mapName('cilium_ct4_global', 'the IPv4 TCP conntrack map'),
      any4: mapName(
        'cilium_ct_any4_global',
        'the IPv4 conntrack map of every other protocol (UDP, ICMP, SCTP)',
      ),
      tcp6: mapName('cilium_ct6_global', 'the IPv6 TCP conntrack map'),
      any6: mapName('cilium_ct_any6_global', 'the IPv6 conntrack map of every other protocol'),
    })
    .prefault({})
    .describe('The four conntrack maps read, by pinned name.'),
  value_layout: z
    .enum(VALUE_LAYOUTS)
    .default('auto')
    .describe(
      "How the entries' counters are laid out, which changed with Cilium 1.16. split (Cilium 1.15 and earlier): rx and tx packets and bytes, so each connection has both directions' bytes. total (1.16 and later): one packets/bytes pair counting both directions together, which netmon reports as tx (the initiator's side) with rx 0, flagged in /status. auto: an entry whose first two counters look like rx packets and bytes (20 bytes to 1 MiB a packet, which covers BIG TCP's packets of up to 512 KiB) says split, one with anything else there says total; decided once by a clear majority (four to one) of up to 64 entries that tell, and shown in /status.",
    ),
  clock_source: z
    .enum(CLOCK_SOURCES)
    .default('auto')
    .describe(
      "What the entries' lifetime counts in: ktime (seconds of the monotonic clock, Cilium's default) or jiffies (jiffies >> 8, with --enable-bpf-clock-probe). auto: the one under which the entries' lifetimes lie just ahead of now. The kernel's HZ is measured (jiffies of /proc/schedstat against the monotonic clock), never assumed. Used to tell entries Cilium's garbage collector has not yet removed from live ones.",
    ),
  require_counters: z
    .boolean()
    .default(false)
    .describe(
      "Refuse to start when the connections in the maps all have zero counters: Cilium counts packets and bytes only with its conntrack accounting on (--bpf-conntrack-accounting, Helm bpf.ctAccounting: true; off by default since 1.15), and without it this receiver would report connections without a byte. The flows receiver's auto mode sets it, so it moves on to ebpf or netfilter on such a node; false (a mode named cilium) starts and says so in the log and /status. Maps without any connection yet tell nothing and start either way.",
    ),
  max_entries: z
    .number()
    .int()
    .min(1)
    .max(1 << 24)
    .optional()
    .describe(
      "Entries read per map at most. Default: the map's own size. A map holding more is read in part, and /status and netmon_cilium_truncated_reads say so.",
    ),
});

export type CiliumReceiverConfig = z.output<typeof ciliumReceiverConfig>;
