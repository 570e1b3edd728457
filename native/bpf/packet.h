// Packet parsing shared by the flow counter (flows.bpf.c), the DNS tracer (dns.bpf.c) and the
// benchmarks' variant of the counter (bench/ebpf/percpu.bpf.c), so all read packets the same way: the IP
// header, IPv6 extension headers, the transport ports and TCP flags, where the payload starts.
// cgroup_skb data starts at the IP header (no link-layer header).
#ifndef NETMON_BPF_PACKET_H
#define NETMON_BPF_PACKET_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10
#define IP_OFFSET_MASK 0x1fff


// Addresses are kept as 16 bytes, IPv4 IPv4-mapped (::ffff:a.b.c.d), as the flow batches hold them.
static __always_inline void map_v4(__u8 *to, __u32 addr) {
  __builtin_memset(to, 0, 10);
  to[10] = 0xff;
  to[11] = 0xff;
  __builtin_memcpy(to + 12, &addr, 4);
}

static __always_inline int same_addr(const __u8 *a, const __u8 *b) {
  __u64 a0, a1, b0, b1;
  __builtin_memcpy(&a0, a, 8);
  __builtin_memcpy(&a1, a + 8, 8);
  __builtin_memcpy(&b0, b, 8);
  __builtin_memcpy(&b1, b + 8, 8);
  return a0 == b0 && a1 == b1;
}

// Packet fields of one direction: the addresses and ports as they are on the wire.
struct packet {
  __u8 src[16];
  __u8 dst[16];
  __u16 sport;
  __u16 dport;
  __u8 family;
  __u8 protocol;
  __u8 tcp_flags;
  __u8 has_ports;
  // Where the transport payload starts (from the IP header), and the TCP sequence number of its first
  // byte: what the DNS tracer needs to copy a message and to put a TCP stream back together.
  __u16 payload;
  __u32 tcp_seq;
};

// Fills `p` from the packet; -1 when a header cannot be read.
static __always_inline int parse(struct __sk_buff *skb, struct packet *p) {
  __u8 version = 0;
  if (bpf_skb_load_bytes(skb, 0, &version, 1)) return -1;
  __u32 l4 = 0;
  version >>= 4;
  if (version == 4) {
    struct iphdr ip;
    if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip))) return -1;
    if (ip.ihl < 5) return -1;
    p->family = 4;
    p->protocol = ip.protocol;
    map_v4(p->src, ip.saddr);
    map_v4(p->dst, ip.daddr);
    // Only a packet's first fragment carries its ports.
    if (ip.frag_off & bpf_htons(IP_OFFSET_MASK)) return 0;
    l4 = ip.ihl * 4;
  } else if (version == 6) {
    struct ipv6hdr ip6;
    if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6))) return -1;
    p->family = 6;
    p->protocol = ip6.nexthdr;
    __builtin_memcpy(p->src, &ip6.saddr, 16);
    __builtin_memcpy(p->dst, &ip6.daddr, 16);
    l4 = sizeof(ip6);
    // Extension headers (hop-by-hop, routing, destination options, authentication) sit between the
    // IPv6 header and the transport one; a few are walked. A fragment header names the protocol, and
    // only the first fragment carries the ports, as for IPv4.
#pragma unroll
    for (int i = 0; i < 4; i++) {
      __u8 nh = p->protocol;
      __u8 ext[4];
      if (nh == IPPROTO_FRAGMENT) {
        if (bpf_skb_load_bytes(skb, l4, ext, 4)) return -1;
        p->protocol = ext[0];
        if (((ext[2] << 8) | ext[3]) & 0xfff8) return 0;  // fragment offset: not the first fragment
        l4 += 8;
        continue;
      }
      if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_ROUTING && nh != IPPROTO_DSTOPTS && nh != IPPROTO_AH) break;
      if (bpf_skb_load_bytes(skb, l4, ext, 2)) return -1;
      p->protocol = ext[0];
      l4 += nh == IPPROTO_AH ? (ext[1] + 2) * 4 : (ext[1] + 1) * 8;
    }
  } else {
    return -1;
  }
  if (p->protocol == IPPROTO_TCP) {
    // Ports and flags in one read: source and destination port, sequence and acknowledgment numbers,
    // data offset, flags (byte 13).
    __u8 tcp[14];
    if (bpf_skb_load_bytes(skb, l4, tcp, sizeof(tcp))) return -1;
    p->sport = (tcp[0] << 8) | tcp[1];
    p->dport = (tcp[2] << 8) | tcp[3];
    p->tcp_flags = tcp[13];
    p->tcp_seq = ((__u32)tcp[4] << 24) | ((__u32)tcp[5] << 16) | ((__u32)tcp[6] << 8) | tcp[7];
    p->payload = l4 + (tcp[12] >> 4) * 4;
    p->has_ports = 1;
  } else if (p->protocol == IPPROTO_UDP || p->protocol == IPPROTO_UDPLITE || p->protocol == IPPROTO_SCTP) {
    __u16 ports[2];
    if (bpf_skb_load_bytes(skb, l4, ports, 4)) return -1;
    p->sport = bpf_ntohs(ports[0]);
    p->dport = bpf_ntohs(ports[1]);
    p->payload = l4 + 8;  // UDP's header; UDP-Lite's is the same size, SCTP's payloads are not read
    p->has_ports = 1;
  }
  return 0;
}

#endif
