import { duration } from '@netmon/core';
import { z } from 'zod';

/** The largest payload the tracer copies from one packet (native/bpf/dns.h DNS_CAPTURE_MAX). */
export const CAPTURE_MAX = 4096;

const SIZE = /^(\d+)\s*(B|KiB|MiB)?$/;
const UNIT: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 * 1024 };

/** A ring buffer size: bytes, or a string such as 512KiB or 4MiB; a power of two from 4KiB to 256MiB. */
const ringSize = z
  .union([z.number().int(), z.string()], { error: 'expected a size such as 1MiB, 512KiB or 65536' })
  .transform((value, ctx) => {
    const m = typeof value === 'string' ? SIZE.exec(value.trim()) : null;
    const bytes = typeof value === 'number' ? value : m ? Number(m[1]) * UNIT[m[2] ?? 'B'] : Number.NaN;
    if (
      !Number.isSafeInteger(bytes) ||
      bytes < 4096 ||
      bytes > 256 * 1024 * 1024 ||
      (bytes & (bytes - 1)) !== 0
    ) {
      ctx.addIssue({
        code: 'custom',
        message: `"${value}" is not a ring buffer size: it must be a power of two from 4KiB to 256MiB (the kernel maps it in whole pages), e.g. 1MiB`,
      });
      return z.NEVER;
    }
    return bytes;
  });

export const dnsReceiverConfig = z.strictObject({
  cgroup_path: z
    .string()
    .optional()
    .describe(
      "cgroup2 directory to attach to: DNS messages of the sockets in it and in every cgroup below it are traced. Unset or empty: the cgroup2 hierarchy's root, so every lookup of the node is seen (found as the ebpf receiver finds it; in a container, mount the host's cgroup2 and name it here). A directory that is not cgroup2 but has a cgroup2 `unified` child (a hybrid host's /sys/fs/cgroup, mounted into a pod) stands for that child.",
    ),
  read_interval: duration({ min: 50 })
    .prefault('1s')
    .describe(
      'How often the ring buffer is drained and the lookups since the last read are handed on. Names reach the dns_cache extension at this pace: keep it well below the flow receivers’ read interval, so a connection made right after its lookup is named in its first interval.',
    ),
  ring_buffer_size: ringSize
    .prefault('1MiB')
    .describe(
      "Size of the ring buffer the kernel writes DNS messages into between reads (a power of two, 4KiB to 256MiB; kernel memory charged to the agent). Each packet takes 72 bytes (the ring's 8-byte record header and the tracer's 64) plus the smallest payload area of 0, 128, 512, 1536 or 4096 bytes that holds what was copied of it (at most capture_bytes). A typical lookup, a query of up to 128 bytes and an answer of up to 512, takes 200 + 584 = 784 bytes, so the default 1MiB holds about 1,300 lookups per read interval (about 2,600 when answers fit 128 bytes, about 580 when they need 1536). Messages that find it full are counted in netmon_dns_lost_packets, never block the packet.",
    ),
  capture_bytes: z
    .number()
    .int()
    .min(12)
    .max(CAPTURE_MAX)
    .default(1500)
    .describe(
      `Bytes of each DNS message copied (up to ${CAPTURE_MAX}). A longer answer is cut there: the records complete before the cut are kept. The default covers the 1232-byte EDNS answers resolvers send by default, whole.`,
    ),
  optional: z
    .boolean()
    .default(false)
    .describe(
      'When the tracer cannot run on this host (no eBPF privileges, no cgroup2 hierarchy it could see every socket from, a kernel that refuses the programs): false refuses to start, saying why; true logs why once, shows it in /status and runs without DNS (flows keep working, without domain names); a cgroup_path that is missing or not cgroup2 is then such a reason at start, not a configuration error.',
    ),
  query_timeout: duration({ min: 100 })
    .prefault('5s')
    .describe(
      'How long a query waits for its answer. An answer gets its latency from the query it answers; a query still unanswered after this is counted in netmon_dns_unanswered_queries and forgotten. An answer whose query was not seen within it is no lookup (skipped as unsolicited: it would name an address no client asked for), except in the receiver’s first query_timeout, when its query may predate the start.',
    ),
});

export type DnsReceiverConfig = z.output<typeof dnsReceiverConfig>;
