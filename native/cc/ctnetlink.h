// ctnetlink over libmnl: table dumps and NEW/DESTROY event messages parsed straight into columns.
//
// Our own parser rather than libnetfilter_conntrack: it writes each attribute into its column in one
// pass, with no per-entry object (nf_conntrack) to allocate, fill and query back — this is the hot path
// of the conntrack receiver, and the reason a dump beats `conntrack -L`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct mnl_socket;
struct nlmsghdr;

namespace netmon {

// Event kinds in Columns::event.
enum : uint8_t { kEventNone = 0, kEventNew = 1, kEventDestroy = 2 };

// Bits of Columns::flags, the same values as FlowFlags in @netmon/core.
enum : uint32_t { kFlagInitiatorKnown = 1u << 0, kFlagClosed = 1u << 2, kFlagOpened = 1u << 3, kFlagDnat = 1u << 4 };

// One conntrack entry per row. Addresses are 16 bytes, IPv4 stored IPv4-mapped (::ffff:a.b.c.d).
// ICMP/ICMPv6 have no ports: src port = echo id, dst port = type << 8 | code (the NetFlow convention).
struct Columns {
  size_t length = 0;
  std::vector<uint8_t> family;    // 4 | 6
  std::vector<uint8_t> protocol;  // IANA number
  std::vector<uint8_t> src, dst;  // original direction, as dialled
  std::vector<uint16_t> srcPort, dstPort;
  std::vector<uint8_t> replySrc, replyDst;  // reply direction: replySrc = real backend after DNAT
  std::vector<uint16_t> replySrcPort, replyDstPort;
  std::vector<double> txBytes, txPackets, rxBytes, rxPackets;  // original / reply direction counters
  std::vector<double> id, zone, mark;                          // float64: they become number attributes
  std::vector<uint32_t> status, timeout;                       // IPS_* bits; seconds left
  std::vector<double> startMs;                                 // CTA_TIMESTAMP_START in ms, 0 when off
  std::vector<double> seenMs;  // wall clock (ms) when read: the end of a dump, the arrival of an event
  std::vector<uint32_t> flags;                                 // kFlag*
  std::vector<uint8_t> event;                                  // kEvent*

  void Reserve(size_t n);
  void Clear();
};

struct ParseStats {
  uint64_t messages = 0;   // conntrack messages seen
  uint64_t malformed = 0;  // messages that failed validation (skipped, counted)
  uint64_t filtered = 0;   // entries skipped by the protocol filter
};

// Which rows to keep: bit p of `bits` keeps IANA protocol p (all set by default); `family` 4 or 6 keeps
// only that address family (0: both).
struct ProtocolFilter {
  uint64_t bits[4] = {~0ull, ~0ull, ~0ull, ~0ull};
  uint8_t family = 0;
  bool Keeps(uint8_t p) const { return (bits[p >> 6] >> (p & 63)) & 1; }
};

// Parses one ctnetlink conntrack message into a new row (or counts it as malformed / filtered).
void ParseConntrackMessage(const nlmsghdr* nlh, uint8_t event, const ProtocolFilter& filter, Columns* out,
                           ParseStats* stats);

// Wall-clock time in ms since the epoch.
double NowMs();

// A ctnetlink socket opened in a network namespace (empty path: the process's own).
// groups: 0 for a dump socket, else NFNLGRP_* bits for events.
struct NetlinkSocket {
  mnl_socket* nl = nullptr;
  unsigned portid = 0;
  ~NetlinkSocket();
};
std::string OpenNetlink(const std::string& netns, unsigned groups, int rcvbuf, std::unique_ptr<NetlinkSocket>* out);

// Dumps the conntrack table: family 0 (both), AF_INET or AF_INET6. Appends to `out`.
std::string DumpTable(NetlinkSocket* sock, uint8_t family, const ProtocolFilter& filter, Columns* out,
                      ParseStats* stats);

}  // namespace netmon
