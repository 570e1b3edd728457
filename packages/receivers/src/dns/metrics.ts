// The dns receiver's self-metrics, declared once: the receiver observes them, the README lists them.
import { defineMetrics } from '@netmon/core';

export const DNS_METRICS = defineMetrics({
  reads: {
    name: 'netmon_dns_reads',
    kind: 'counter',
    unit: '{read}',
    description: 'Drains of the ring buffer.',
  },
  readFailures: {
    name: 'netmon_dns_read_failures',
    kind: 'counter',
    unit: '{read}',
    description: 'Drains that failed.',
  },
  readDuration: {
    name: 'netmon_dns_read_duration',
    kind: 'gauge',
    unit: 's',
    description: 'Time of the last drain of the ring buffer (the kernel side; parsing not included).',
  },
  packets: {
    name: 'netmon_dns_packets',
    kind: 'counter',
    unit: '{packet}',
    description:
      'DNS packets read from the ring buffer (for TCP, the SYN, FIN and RST that start and end a stream too).',
    attributes: {
      direction:
        'query (leaving a local socket for port 53, or from a socket connected to port 53 that a local NAT redirected) or answer (arriving from port 53)',
    },
  },
  lostPackets: {
    name: 'netmon_dns_lost_packets',
    kind: 'counter',
    unit: '{packet}',
    description:
      'DNS packets the ring buffer had no room for (it filled between two reads): raise ring_buffer_size or shorten read_interval.',
  },
  lostBytes: {
    name: 'netmon_dns_lost_bytes',
    kind: 'counter',
    unit: 'By',
    description: 'Payload bytes of the packets counted in netmon_dns_lost_packets.',
  },
  malformed: {
    name: 'netmon_dns_malformed_messages',
    kind: 'counter',
    unit: '{message}',
    description:
      'DNS messages that could not be used, by reason: what the parser rejected (short_header, bad_name, pointer_loop, …; short_header also for a TCP message that starts where capture_bytes cut its segment, its 2-byte length not copied), unreadable (the kernel could not copy the payload), bad_record (a ring record of an impossible size, skipped by the addon: the BPF program and the addon are from different builds), tcp_gap (a TCP message lost: a segment that never came within 1 s — lost to a full ring buffer, or dropped on the network and not retransmitted while traced — or a connection that ended, idled out for a minute or was dropped for room mid-message), tcp_unframed (counted per TCP segment read past: its connection was traced from its middle, its SYN unseen, or lost its framing to a gap or cut; where a message starts is never guessed).',
    attributes: { reason: 'why the message was not used' },
  },
  skipped: {
    name: 'netmon_dns_skipped_messages',
    kind: 'counter',
    unit: '{message}',
    description:
      'Well-formed DNS messages that are not lookups, by reason: truncated (an answer with the TC bit: the client asks again over TCP, and that answer counts), opcode (NOTIFY, UPDATE, …), direction (a query arriving or an answer leaving on port 53: a resolver’s upstream side seen from an unusual socket), duplicate (another answer to a query already answered within query_timeout: musl asks every nameserver with one id, packets get duplicated; the first answer is the lookup), unsolicited (an answer whose query was not seen, once the receiver has run query_timeout: no client asked for it within query_timeout — a stray or spoofed packet from port 53, an answer slower than query_timeout after its query’s last sending, one whose query the full ring lost or that was pushed out of the 16,384 waiting queries — so it names no address).',
    attributes: { reason: 'why the message is not a lookup' },
  },
  lookups: {
    name: 'netmon_dns_lookups_read',
    kind: 'counter',
    unit: '{lookup}',
    description: 'Answers handed on as lookups (every response code).',
  },
  unmatched: {
    name: 'netmon_dns_unmatched_answers',
    kind: 'counter',
    unit: '{answer}',
    description:
      'Answers whose query was not seen, in the receiver’s first query_timeout (their query may have been sent before it started): handed on without latency. Later ones are skipped as unsolicited (netmon_dns_skipped_messages).',
  },
  unanswered: {
    name: 'netmon_dns_unanswered_queries',
    kind: 'counter',
    unit: '{query}',
    description: 'Queries no answer came for within query_timeout.',
  },
  pending: {
    name: 'netmon_dns_pending_queries',
    kind: 'gauge',
    unit: '{query}',
    description: 'Queries waiting for their answer.',
  },
});
