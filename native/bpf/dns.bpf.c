// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
// netmon's DNS tracer: cgroup_skb programs copy every DNS message a local socket sends (a query, to
// port 53) or receives (an answer, from port 53), over UDP or TCP, IPv4 or IPv6, into a ring buffer
// with the socket's cgroup and the time. User space parses the messages, pairs answers with their
// queries (latency) and follows TCP streams. Both programs always let the packet through.
//
// Records are written without waking the reader (BPF_RB_NO_WAKEUP): it drains the ring on a timer, so
// a flood of answers costs no wake-ups; what does not fit is counted, never blocks a packet.
// Only UAPI types are used, like flows.bpf.c: no vmlinux.h, no CO-RE relocation.
#include <linux/bpf.h>
#include <linux/in.h>
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

// The record is built here, not on the 512-byte BPF stack: header and payload, copied to the ring in
// one call.
struct scratch {
  struct dns_event event;
  __u8 data[DNS_CAPTURE_MAX];
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct scratch);
} scratch SEC(".maps");

static __always_inline void stat_add(__u32 index, __u64 n) {
  __u64 *v = bpf_map_lookup_elem(&stats, &index);
  // This CPU's own slot, but a program on it may be interrupted by another (ingress in softirq): atomic.
  if (v) __sync_fetch_and_add(v, n);
}

static __always_inline int trace(struct __sk_buff *skb, int egress) {
  struct packet p = {};
  if (parse(skb, &p) || !p.has_ports) return 1;  // the flow counter counts malformed packets
  if (p.protocol != IPPROTO_UDP && p.protocol != IPPROTO_TCP) return 1;
  // A query leaves for port 53; an answer arrives from it. The server's own side (a resolver on this
  // node receiving queries, sending answers) is not a lookup of its own and is left out.
  if ((egress ? p.dport : p.sport) != DNS_PORT) return 1;
  // TCP handshakes and bare acknowledgments carry no message bytes; a bare FIN or RST is still recorded
  // (header only), so user space forgets the connection's stream at once.
  int closing = p.protocol == IPPROTO_TCP && (p.tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST));
  if (p.payload >= skb->len && !closing) return 1;

  __u32 zero = 0;
  struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
  struct dns_config *cfg = bpf_map_lookup_elem(&config, &zero);
  if (!s || !cfg) return 1;
  __u32 payload_len = p.payload < skb->len ? skb->len - p.payload : 0;
  __u32 len = payload_len < cfg->capture_bytes ? payload_len : cfg->capture_bytes;
  // Bounds the verifier can see: 0 ≤ len ≤ DNS_CAPTURE_MAX.
  if (len > DNS_CAPTURE_MAX) len = DNS_CAPTURE_MAX;
  if (len > 0 && bpf_skb_load_bytes(skb, p.payload, s->data, len)) {
    stat_add(DNS_STAT_MALFORMED, 1);
    return 1;
  }

  struct dns_event *e = &s->event;
  e->ktime_ns = bpf_ktime_get_ns();
  e->cgroup_id = bpf_skb_cgroup_id(skb);
  if (egress) {
    __builtin_memcpy(e->local, p.src, 16);
    __builtin_memcpy(e->remote, p.dst, 16);
    e->local_port = p.sport;
    e->remote_port = p.dport;
  } else {
    __builtin_memcpy(e->local, p.dst, 16);
    __builtin_memcpy(e->remote, p.src, 16);
    e->local_port = p.dport;
    e->remote_port = p.sport;
  }
  e->family = p.family;
  e->protocol = p.protocol;
  e->egress = egress;
  e->tcp_flags = p.tcp_flags;
  e->tcp_seq = p.tcp_seq;
  e->payload_len = payload_len > 0xffff ? 0xffff : payload_len;
  e->captured = len;
  if (bpf_ringbuf_output(&events, s, sizeof(struct dns_event) + len, BPF_RB_NO_WAKEUP)) {
    stat_add(DNS_STAT_LOST, 1);
    stat_add(DNS_STAT_LOST_BYTES, payload_len);
    return 1;
  }
  stat_add(DNS_STAT_CAPTURED, 1);
  return 1;
}

SEC("cgroup_skb/egress")
int dns_egress(struct __sk_buff *skb) { return trace(skb, 1); }

SEC("cgroup_skb/ingress")
int dns_ingress(struct __sk_buff *skb) { return trace(skb, 0); }
