// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
// netmon's flow counter: cgroup_skb programs on egress and ingress add every packet's IP length to the
// entry of its flow — local socket's cgroup, local and remote address and port — in the buffer that is
// active for this interval. User space swaps the buffer (see `active`) and drains the other one, so no
// increment is lost between a read and a reset. Both programs always let the packet through.
//
// Only UAPI types are used (struct __sk_buff, struct bpf_sock, the IP and transport headers read with
// bpf_skb_load_bytes), so the object needs no vmlinux.h and no CO-RE relocation: it loads unchanged on
// any kernel with cgroup_skb, map-in-map, batch map operations, BPF links and BPF atomics (5.12 and
// later).
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

// The two interval buffers. max_entries is set by the loader (the receiver's max_flows). No
// preallocation: kernel memory (charged to the agent's memory cgroup) grows with the flows really seen.
struct flow_buffer {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct flow_key);
  __type(value, struct flow_value);
} buffer_a SEC(".maps"), buffer_b SEC(".maps");

// Slot 0 holds the buffer packets are counted in. Replacing it from user space returns only after
// every program that could still hold the old buffer has finished (the kernel waits for an RCU grace
// period after any update of a map-of-maps), so the old buffer can then be read and emptied safely.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
  __uint(max_entries, 1);
  __type(key, __u32);
  __array(values, struct flow_buffer);
} active SEC(".maps") = {
    .values = {[0] = &buffer_a},
};

// Who opened each connection, kept across intervals (the buffers are emptied every read). Bounded by
// LRU eviction; an evicted entry only makes a later interval's orientation unknown (TCP) or taken
// from its next packet (UDP).
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 131072);
  __type(key, struct flow_key);
  __type(value, __u8);
} origins SEC(".maps");

// Losses, per CPU so CPUs never contend for them (index: enum flow_stat).
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, FLOW_STAT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} stats SEC(".maps");

static __always_inline void stat_add(__u32 index, __u64 n) {
  __u64 *v = bpf_map_lookup_elem(&stats, &index);
  // This CPU's own slot, but a program on it may be interrupted by another (ingress in softirq): atomic.
  if (v) __sync_fetch_and_add(v, n);
}

// The origin of a flow whose entry is being created in this interval's buffer: remembered from an
// earlier interval, or learnt from this packet — a TCP SYN without ACK, or the first packet seen of
// any other protocol (its sender opened the flow).
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

  // A connected socket names the flow as it sees it. Packets can differ: a Service address rewritten
  // by DNAT after the socket sent to it shows the backend on the way out and the Service address on
  // the way back. Keying both directions by the socket's view keeps one flow; the egress packet's
  // destination is kept beside it as the real peer.
  int translated = 0;
  struct bpf_sock *sk = skb->sk;
  if (sk) sk = bpf_sk_fullsock(sk);
  // dst_port is read as the 32-bit word it sits in: kernels before 5.18 refuse narrower loads of it.
  __u16 sk_dport = 0;
  if (sk) {
    __u32 word = *(volatile __u32 *)&sk->dst_port;
    sk_dport = bpf_ntohs((__u16)word);
  }
  if (sk && p.has_ports && sk_dport != 0 && sk->protocol == p.protocol) {
    __u8 local[16], remote[16];
    if (sk->family == 2 /* AF_INET */) {
      map_v4(local, sk->src_ip4);
      map_v4(remote, sk->dst_ip4);
    } else {
      __builtin_memcpy(local, sk->src_ip6, 16);
      __builtin_memcpy(remote, sk->dst_ip6, 16);
    }
    __u16 remote_port = sk_dport;
    if (egress && (!same_addr(remote, key.remote) || remote_port != key.remote_port))
      translated = 1;
    __builtin_memcpy(key.local, local, 16);
    __builtin_memcpy(key.remote, remote, 16);
    key.local_port = sk->src_port;
    key.remote_port = remote_port;
  }

  __u32 zero = 0;
  void *buffer = bpf_map_lookup_elem(&active, &zero);
  if (!buffer) return 1;
  struct flow_value *v = bpf_map_lookup_elem(buffer, &key);
  if (!v) {
    struct flow_value fresh = {};
    fresh.flags = origin_of(&key, &p, egress);
    long err = bpf_map_update_elem(buffer, &key, &fresh, BPF_NOEXIST);
    if (err && err != -17 /* EEXIST: another CPU created it */) {
      stat_add(FLOW_STAT_LOST_PACKETS, 1);
      stat_add(FLOW_STAT_LOST_BYTES, len);
      return 1;
    }
    v = bpf_map_lookup_elem(buffer, &key);
    if (!v) {
      stat_add(FLOW_STAT_LOST_PACKETS, 1);
      stat_add(FLOW_STAT_LOST_BYTES, len);
      return 1;
    }
  }

  if (egress) {
    __sync_fetch_and_add(&v->tx_bytes, len);
    __sync_fetch_and_add(&v->tx_packets, 1);
  } else {
    __sync_fetch_and_add(&v->rx_bytes, len);
    __sync_fetch_and_add(&v->rx_packets, 1);
  }

  // A SYN without ACK opens a TCP connection: its direction names the initiator, whatever an earlier
  // connection on the same tuple said.
  if (p.protocol == IPPROTO_TCP && (p.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN) {
    __u8 origin = egress ? FLOW_ORIGIN_LOCAL : FLOW_ORIGIN_REMOTE;
    bpf_map_update_elem(&origins, &key, &origin, BPF_ANY);
    __sync_fetch_and_and(&v->flags, ~(__u32)(FLOW_ORIGIN_LOCAL | FLOW_ORIGIN_REMOTE));
    __sync_fetch_and_or(&v->flags, origin);
  }

  if (translated && !(v->flags & FLOW_TRANSLATED)) {
    if (p.family == 4 || p.family == 6) __builtin_memcpy(v->wire_remote, p.dst, 16);
    v->wire_remote_port = p.dport;
    __sync_fetch_and_or(&v->flags, FLOW_TRANSLATED);
  }
  return 1;
}

SEC("cgroup_skb/egress")
int count_egress(struct __sk_buff *skb) { return count(skb, 1); }

SEC("cgroup_skb/ingress")
int count_ingress(struct __sk_buff *skb) { return count(skb, 0); }
