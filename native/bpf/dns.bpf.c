// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
// netmon's DNS tracer: cgroup_skb programs copy every DNS message a local socket sends (a query, to
// port 53) or receives (an answer, from port 53), over UDP or TCP, IPv4 or IPv6, into a ring buffer
// with the socket's cgroup and the time. User space parses the messages, pairs answers with their
// queries (latency) and follows TCP streams. Both programs always let the packet through.
//
// Records are written without waking the reader (BPF_RB_NO_WAKEUP): it drains the ring on a timer, so
// a flood of answers costs no wake-ups; what does not fit is counted, never blocks a packet. A record is
// the header and a payload area of a size class (0, 128, 512, 1536 or 4096 bytes) that holds what was
// copied; `captured` says how much of it is payload.
// Only UAPI types are used, like flows.bpf.c: no vmlinux.h, no CO-RE relocation.
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "dns.h"
#include "packet.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define DNS_PORT 53

// Sized by the loader (the receiver's ring_buffer_size: a power of two, a multiple of the page size).
struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 20);
} events SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct dns_config);
} config SEC(".maps");

// Losses, per CPU so CPUs never contend for them (index: enum dns_stat).
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, DNS_STAT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} stats SEC(".maps");

static __always_inline void stat_add(__u32 index, __u64 n) {
  __u64 *v = bpf_map_lookup_elem(&stats, &index);
  // This CPU's own slot, but a program on it may be interrupted by another (ingress in softirq): atomic.
  if (v) __sync_fetch_and_add(v, n);
}

// Writes the record straight into ring space reserved for it: a size class that holds `len` payload bytes
// (the reservation's size must be a constant), so no per-CPU scratch is shared with a program that
// interrupts this one (an ingress run in a softirq, on the CPU an egress run was on). Returns 1: the
// packet always goes on.
static __always_inline int emit(struct __sk_buff *skb, struct packet *p, int egress, __u32 payload_len,
                                __u32 len, const __u32 class) {
  struct dns_event *e = bpf_ringbuf_reserve(&events, sizeof(struct dns_event) + class, 0);
  if (!e) {
    stat_add(DNS_STAT_LOST, 1);
    stat_add(DNS_STAT_LOST_BYTES, payload_len);
    return 1;
  }
  if (len > class) len = class;  // it never is: the bound the verifier needs
  if (len > 0 && bpf_skb_load_bytes(skb, p->payload, (__u8 *)(e + 1), len)) {
    bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
    stat_add(DNS_STAT_MALFORMED, 1);
    return 1;
  }
  e->ktime_ns = bpf_ktime_get_ns();
  e->cgroup_id = bpf_skb_cgroup_id(skb);
  if (egress) {
    __builtin_memcpy(e->local, p->src, 16);
    __builtin_memcpy(e->remote, p->dst, 16);
    e->local_port = p->sport;
    e->remote_port = p->dport;
  } else {
    __builtin_memcpy(e->local, p->dst, 16);
    __builtin_memcpy(e->remote, p->src, 16);
    e->local_port = p->dport;
    e->remote_port = p->sport;
  }
  e->family = p->family;
  e->protocol = p->protocol;
  e->egress = egress;
  e->tcp_flags = p->tcp_flags;
  e->tcp_seq = p->tcp_seq;
  e->payload_len = payload_len > 0xffff ? 0xffff : payload_len;
  e->captured = len;
  bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
  stat_add(DNS_STAT_CAPTURED, 1);
  return 1;
}

// A socket connected to port 53 whose packet leaves for another port: a local NAT redirected the query
// (a sidecar's DNS capture, 10.96.0.10:53 → 127.0.0.1:15053). Its answer comes back from port 53.
static __always_inline int connected_to_dns(struct __sk_buff *skb) {
  struct bpf_sock *sk = skb->sk;
  if (sk) sk = bpf_sk_fullsock(sk);
  if (!sk) return 0;
  // dst_port is read as the 32-bit word it sits in: kernels before 5.18 refuse narrower loads of it.
  __u32 word = *(volatile __u32 *)&sk->dst_port;
  return bpf_ntohs((__u16)word) == DNS_PORT;
}

static __always_inline int trace(struct __sk_buff *skb, int egress) {
  struct packet p = {};
  if (parse(skb, &p) || !p.has_ports) return 1;  // the flow counter counts malformed packets
  if (p.protocol != IPPROTO_UDP && p.protocol != IPPROTO_TCP) return 1;
  // A query leaves for port 53; an answer arrives from it. The server's own side (a resolver on this
  // node receiving queries, sending answers) is not a lookup of its own and is left out.
  if (egress ? p.dport != DNS_PORT && !connected_to_dns(skb) : p.sport != DNS_PORT) return 1;
  // TCP handshakes' SYNs, FINs and RSTs are recorded without payload (user space follows a stream only
  // from its start, and forgets it at its end); bare acknowledgments carry nothing to record.
  int control = p.protocol == IPPROTO_TCP && (p.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_FIN | TCP_FLAG_RST));
  if (p.payload >= skb->len && !control) return 1;

  __u32 zero = 0;
  struct dns_config *cfg = bpf_map_lookup_elem(&config, &zero);
  if (!cfg) return 1;
  __u32 payload_len = p.payload < skb->len ? skb->len - p.payload : 0;
  __u32 len = payload_len < cfg->capture_bytes ? payload_len : cfg->capture_bytes;
  if (len == 0) return emit(skb, &p, egress, payload_len, 0, 0);
  if (len <= 128) return emit(skb, &p, egress, payload_len, len, 128);
  if (len <= 512) return emit(skb, &p, egress, payload_len, len, 512);
  if (len <= 1536) return emit(skb, &p, egress, payload_len, len, 1536);
  return emit(skb, &p, egress, payload_len, len, DNS_CAPTURE_MAX);
}

SEC("cgroup_skb/egress")
int dns_egress(struct __sk_buff *skb) { return trace(skb, 1); }

SEC("cgroup_skb/ingress")
int dns_ingress(struct __sk_buff *skb) { return trace(skb, 0); }
