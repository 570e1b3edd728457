// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
// Bench-only variant of native/bpf/flows.bpf.c, for bench/ebpf/buffers.mjs: the same parsing
// (native/bpf/packet.h) and the same key, but the counters live in one BPF_MAP_TYPE_PERCPU_HASH that is
// never swapped. Each CPU adds to its own copy of the value with plain (non-atomic) adds; user space reads the map with lookup_batch, sums
// the CPUs' copies, subtracts the previous reading to get the interval's bytes, and deletes entries
// that stayed idle. Only the counting differs from the receiver's program, so the bench measures the
// buffer strategy and nothing else. `pass` is an empty program: what BPF_PROG_TEST_RUN itself costs.
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "flows.h"
#include "packet.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
  __uint(max_entries, 65536);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct flow_key);
  __type(value, struct flow_value);
} flows SEC(".maps");

// Kept as in the receiver's program so both pay the same per-flow work. A cumulative map could carry
// the origin in the value instead (entries outlive reads), dropping this map.
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 131072);
  __type(key, struct flow_key);
  __type(value, __u8);
} origins SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, FLOW_STAT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} stats SEC(".maps");

static __always_inline void stat_add(__u32 index, __u64 n) {
  __u64 *v = bpf_map_lookup_elem(&stats, &index);
  if (v) *v += n;
}


static __always_inline __u32 origin_of(struct flow_key *key, struct packet *p, int egress) {
  __u8 *known = bpf_map_lookup_elem(&origins, key);
  if (known) return *known;
  __u8 origin = 0;
  if (p->protocol != IPPROTO_TCP)
    origin = egress ? FLOW_ORIGIN_LOCAL : FLOW_ORIGIN_REMOTE;
  if (origin) bpf_map_update_elem(&origins, key, &origin, BPF_NOEXIST);
  return origin;
}

static __always_inline int count(struct __sk_buff *skb, int egress) {
  struct packet p = {};
  __u64 len = skb->len;
  if (parse(skb, &p)) {
    stat_add(FLOW_STAT_MALFORMED, 1);
    return 1;
  }

  struct flow_key key = {};
  key.cgroup_id = bpf_skb_cgroup_id(skb);
  key.family = p.family;
  key.protocol = p.protocol;
  if (egress) {
    __builtin_memcpy(key.local, p.src, 16);
    __builtin_memcpy(key.remote, p.dst, 16);
    key.local_port = p.sport;
    key.remote_port = p.dport;
  } else {
    __builtin_memcpy(key.local, p.dst, 16);
    __builtin_memcpy(key.remote, p.src, 16);
    key.local_port = p.dport;
    key.remote_port = p.sport;
  }

  int translated = 0;
  struct bpf_sock *sk = skb->sk;
  if (sk) sk = bpf_sk_fullsock(sk);
  if (sk && p.has_ports && sk->dst_port != 0 && sk->protocol == p.protocol) {
    __u8 local[16], remote[16];
    if (sk->family == 2 /* AF_INET */) {
      map_v4(local, sk->src_ip4);
      map_v4(remote, sk->dst_ip4);
    } else {
      __builtin_memcpy(local, sk->src_ip6, 16);
      __builtin_memcpy(remote, sk->dst_ip6, 16);
    }
    __u16 remote_port = bpf_ntohs(sk->dst_port);
    if (egress && (!same_addr(remote, key.remote) || remote_port != key.remote_port))
      translated = 1;
    __builtin_memcpy(key.local, local, 16);
    __builtin_memcpy(key.remote, remote, 16);
    key.local_port = sk->src_port;
    key.remote_port = remote_port;
  }

  // The difference from the receiver's program: no map-of-maps lookup, and this CPU's copy of the value.
  struct flow_value *v = bpf_map_lookup_elem(&flows, &key);
  if (!v) {
    struct flow_value fresh = {};
    fresh.flags = origin_of(&key, &p, egress);
    long err = bpf_map_update_elem(&flows, &key, &fresh, BPF_NOEXIST);
    if (err && err != -17 /* EEXIST */) {
      stat_add(FLOW_STAT_LOST_PACKETS, 1);
      stat_add(FLOW_STAT_LOST_BYTES, len);
      return 1;
    }
    v = bpf_map_lookup_elem(&flows, &key);
    if (!v) {
      stat_add(FLOW_STAT_LOST_PACKETS, 1);
      stat_add(FLOW_STAT_LOST_BYTES, len);
      return 1;
    }
  }

  // Plain adds: no other CPU writes this copy. A program that interrupts this one on the same CPU (the
  // ingress program in a softirq during a process-context egress) writes the rx fields, not these.
  if (egress) {
    v->tx_bytes += len;
    v->tx_packets += 1;
  } else {
    v->rx_bytes += len;
    v->rx_packets += 1;
  }

  if (p.protocol == IPPROTO_TCP && (p.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN) {
    __u8 origin = egress ? FLOW_ORIGIN_LOCAL : FLOW_ORIGIN_REMOTE;
    bpf_map_update_elem(&origins, &key, &origin, BPF_ANY);
    v->flags = (v->flags & ~(__u32)(FLOW_ORIGIN_LOCAL | FLOW_ORIGIN_REMOTE)) | origin;
  }

  if (translated && !(v->flags & FLOW_TRANSLATED)) {
    if (p.family == 4 || p.family == 6) __builtin_memcpy(v->wire_remote, p.dst, 16);
    v->wire_remote_port = p.dport;
    v->flags |= FLOW_TRANSLATED;
  }
  return 1;
}

SEC("cgroup_skb/egress")
int count_egress(struct __sk_buff *skb) { return count(skb, 1); }

SEC("cgroup_skb/ingress")
int count_ingress(struct __sk_buff *skb) { return count(skb, 0); }

SEC("cgroup_skb/egress")
int pass(struct __sk_buff *skb) { return 1; }
