// Shared by the BPF program (flows.bpf.c) and the addon that reads its maps (cc/cgroup_flows.cc): the
// layouts of the buffers' keys and values. The addon checks the sizes the kernel reports for the maps
// against these before it reads a byte.
#ifndef NETMON_BPF_FLOWS_H
#define NETMON_BPF_FLOWS_H

#ifdef __bpf__
#include <linux/types.h>
#else
#include <linux/types.h>
#endif

// A flow as one local socket sees it. Addresses are 16 bytes, IPv4 stored IPv4-mapped; ports in host
// order (0 for protocols without ports and for non-first fragments).
struct flow_key {
  __u64 cgroup_id;  // cgroup v2 id of the local socket (the inode of its cgroup directory)
  __u8 local[16];
  __u8 remote[16];
  __u16 local_port;
  __u16 remote_port;
  __u8 family;  // 4 | 6
  __u8 protocol;
  __u8 pad[2];
};

struct flow_value {
  __u64 tx_bytes;  // sent by the local socket (IP length: header and payload)
  __u64 tx_packets;
  __u64 rx_bytes;  // received by it
  __u64 rx_packets;
  __u8 wire_remote[16];  // with FLOW_TRANSLATED: the peer the packets really went to (after DNAT)
  __u16 wire_remote_port;
  __u16 pad;
  __u32 flags;  // FLOW_* bits
};

enum {
  FLOW_ORIGIN_LOCAL = 1,   // the local socket opened the flow
  FLOW_ORIGIN_REMOTE = 2,  // the remote end did
  FLOW_TRANSLATED = 4,     // wire_remote holds the destination the egress packets carried
};

enum flow_stat {
  FLOW_STAT_LOST_PACKETS = 0,  // the interval buffer was full
  FLOW_STAT_LOST_BYTES = 1,
  FLOW_STAT_MALFORMED = 2,  // IP or transport header unreadable
  FLOW_STAT_COUNT = 3,
};

#endif
