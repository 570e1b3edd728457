import { duration } from '@netmon/core';
import { z } from 'zod';

/** Protocol names accepted in `protocols`, beside plain IANA numbers. */
export const PROTOCOL_NUMBERS: Readonly<Record<string, number>> = {
  icmp: 1,
  tcp: 6,
  udp: 17,
  dccp: 33,
  gre: 47,
  icmpv6: 58,
  sctp: 132,
  udplite: 136,
};

const protocol = z.union([
  z.number().int().min(0).max(255),
  z.enum(Object.keys(PROTOCOL_NUMBERS) as [string, ...string[]], {
    error: `expected an IANA protocol number 0..255 or one of ${Object.keys(PROTOCOL_NUMBERS).join(', ')}`,
  }),
]);

export const conntrackReceiverConfig = z.strictObject({
  read_interval: duration({ min: 100 })
    .prefault('5s')
    .describe(
      'How often the whole conntrack table is dumped. Each dump is a cumulative snapshot; the delta processor turns it into per-interval bytes.',
    ),
  events: z
    .boolean()
    .default(true)
    .describe(
      'Subscribe to conntrack NEW and DESTROY events, so connections that open and close between two reads are counted with their final bytes. Sets net.netfilter.nf_conntrack_events=1 in the namespace when it is not.',
    ),
  netns: z
    .string()
    .min(1)
    .optional()
    .describe(
      "Network namespace to read, as a path (/run/netns/NAME, /proc/PID/ns/net). Default: the agent's own namespace (the node's, with hostNetwork).",
    ),
  families: z
    .array(z.enum(['ipv4', 'ipv6']))
    .min(1, 'list at least one of ipv4, ipv6')
    .default(['ipv4', 'ipv6'])
    .describe('Address families to read.'),
  protocols: z
    .array(protocol)
    .default([])
    .describe(
      `Protocols to keep, by name (${Object.keys(PROTOCOL_NUMBERS).join(', ')}) or IANA number. Empty: every protocol.`,
    ),
  enable_accounting: z
    .boolean()
    .default(true)
    .describe(
      'Set net.netfilter.nf_conntrack_acct=1 in the namespace when it is off. Without accounting the kernel keeps no byte counters; it only counts connections created after it is switched on.',
    ),
  event_buffer_size: z
    .number()
    .int()
    .min(4096)
    .max(1 << 30)
    .default(8 << 20)
    .describe(
      'Receive buffer of the event socket, in bytes. When a burst overflows it the lost events are counted and a resync dump follows at once.',
    ),
});

export type ConntrackReceiverConfig = z.output<typeof conntrackReceiverConfig>;
