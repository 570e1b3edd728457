// The DNS tracer's record layout, shared by the BPF program (dns.bpf.c), the addon that reads the ring
// buffer (cc/cgroup_dns.cc) and, byte for byte, the dns receiver's decoder in TypeScript.
#ifndef NETMON_BPF_DNS_H
#define NETMON_BPF_DNS_H

#include <linux/types.h>

// Largest DNS payload copied from one packet.
#define DNS_CAPTURE_MAX 4096

// One captured packet: this header, then `captured` bytes of its transport payload (a DNS message, or
// for TCP a segment of the length-prefixed stream; none for a TCP SYN, FIN or RST), in a ring record that
// may be longer (a size class).
struct dns_event {
  __u64 ktime_ns;   // bpf_ktime_get_ns(): CLOCK_MONOTONIC
  __u64 cgroup_id;  // cgroup v2 id of the local socket
  __u8 local[16];   // local and remote address, IPv4 as ::ffff:a.b.c.d
  __u8 remote[16];
  __u16 local_port;
  __u16 remote_port;  // 53: the server's port
  __u8 family;        // 4 or 6
  __u8 protocol;      // IPPROTO_UDP or IPPROTO_TCP
  __u8 egress;        // 1: leaving the local socket (a query), 0: arriving at it (an answer)
  __u8 tcp_flags;
  __u32 tcp_seq;       // TCP: sequence number of the payload's first byte
  __u16 payload_len;   // transport payload bytes in the packet
  __u16 captured;      // of which copied after this header (payload_len cut to capture_bytes)
};

// The loader's settings, in the one-entry array `config`.
struct dns_config {
  __u32 capture_bytes;  // at most DNS_CAPTURE_MAX
  __u32 pad;
};

// Counters of the per-CPU array `stats`.
enum dns_stat {
  DNS_STAT_CAPTURED = 0,     // packets written to the ring buffer
  DNS_STAT_LOST = 1,         // packets the ring buffer had no room for
  DNS_STAT_LOST_BYTES = 2,   // their payload bytes
  DNS_STAT_MALFORMED = 3,    // port-53 packets whose payload could not be read
  DNS_STAT_COUNT = 4,
};

#endif
