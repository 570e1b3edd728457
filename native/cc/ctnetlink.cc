#include "ctnetlink.h"

#include <arpa/inet.h>
#include <endian.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/socket.h>
#include <time.h>

#include <cerrno>
#include <algorithm>
#include <atomic>
#include <cstring>
#include <utility>

#include "netns.h"

namespace netmon {

void Columns::Reserve(size_t n) {
  family.reserve(n);
  protocol.reserve(n);
  src.reserve(16 * n);
  dst.reserve(16 * n);
  srcPort.reserve(n);
  dstPort.reserve(n);
  replySrc.reserve(16 * n);
  replyDst.reserve(16 * n);
  replySrcPort.reserve(n);
  replyDstPort.reserve(n);
  txBytes.reserve(n);
  txPackets.reserve(n);
  rxBytes.reserve(n);
  rxPackets.reserve(n);
  id.reserve(n);
  zone.reserve(n);
  mark.reserve(n);
  status.reserve(n);
  timeout.reserve(n);
  startMs.reserve(n);
  seenMs.reserve(n);
  flags.reserve(n);
  event.reserve(n);
}

void Columns::Clear() { *this = Columns(); }

namespace {

// Attribute access inlined here rather than through libmnl's exported functions: a conntrack message has
// ~30 attributes and each mnl_attr_* call is a call through the PLT; inlined, the parse costs a fraction.
inline uint16_t AttrType(const nlattr* a) { return a->nla_type & NLA_TYPE_MASK; }
inline uint16_t AttrLen(const nlattr* a) { return a->nla_len - NLA_HDRLEN; }
inline const uint8_t* AttrData(const nlattr* a) { return reinterpret_cast<const uint8_t*>(a) + NLA_HDRLEN; }
// Callers check AttrLen first: a wrong-sized attribute makes the message malformed, it is never read.
inline uint8_t AttrU8(const nlattr* a) { return *AttrData(a); }
inline uint16_t AttrBe16(const nlattr* a) {
  uint16_t v;
  memcpy(&v, AttrData(a), 2);
  return ntohs(v);
}
inline uint32_t AttrBe32(const nlattr* a) {
  uint32_t v;
  memcpy(&v, AttrData(a), 4);
  return ntohl(v);
}
inline uint64_t AttrBe64(const nlattr* a) {
  uint64_t v;
  memcpy(&v, AttrData(a), 8);
  return be64toh(v);
}

// Calls f on each attribute in [start, start + len) and returns false when f does or when the attributes
// do not tile the range. A walk that merely stopped at an attribute that does not fit (as mnl_attr_ok
// would) keeps a row built from part of the message: a truncated CTA_COUNTERS_REPLY reads as rx 0, which
// the delta processor takes for a counter reset and counts everything again. So an attribute shorter than
// its own header or longer than what is left fails the message; fewer than NLA_HDRLEN bytes left over are
// the last attribute's alignment padding (the kernel counts it in the parent's length; it may be absent).
template <typename F>
inline bool ForEachAttr(const void* start, long len, F&& f) {
  const char* p = static_cast<const char*>(start);
  while (len >= static_cast<long>(NLA_HDRLEN)) {
    const auto* a = reinterpret_cast<const nlattr*>(p);
    if (a->nla_len < NLA_HDRLEN || a->nla_len > len) return false;
    if (!f(a)) return false;
    // Stepping past the end (the last attribute's padding cut off) would leave p outside the buffer.
    long step = static_cast<long>(NLA_ALIGN(a->nla_len));
    if (step >= len) return true;
    p += step;
    len -= step;
  }
  return true;
}
template <typename F>
inline bool ForEachNested(const nlattr* nest, F&& f) {
  return ForEachAttr(AttrData(nest), AttrLen(nest), std::forward<F>(f));
}

// What one tuple (CTA_TUPLE_ORIG / CTA_TUPLE_REPLY) says.
struct Tuple {
  uint8_t family = 0;  // 4 | 6, 0 = no address seen
  uint8_t src[16] = {0}, dst[16] = {0};
  bool hasProto = false;
  uint8_t proto = 0;
  uint16_t sport = 0, dport = 0;
  uint16_t icmpId = 0;
  uint8_t icmpType = 0, icmpCode = 0;
  bool isIcmp = false;
};

struct Counters {
  bool present = false;
  uint64_t packets = 0, bytes = 0;
};

void MapV4(const void* p, uint8_t out[16]) {
  memset(out, 0, 10);
  out[10] = 0xff;
  out[11] = 0xff;
  memcpy(out + 12, p, 4);
}

// Each parser returns false when the nest is malformed — an attribute of the wrong size, attributes that
// do not tile the nest, a piece the kernel always sends missing — and then the whole message is skipped.
bool ParseIp(const nlattr* nest, Tuple* t) {
  // The kernel puts both addresses, of one family; anything else would be a row with a made-up address.
  bool src = false, dst = false;
  uint8_t family = 0;
  bool ok = ForEachNested(nest, [&](const nlattr* a) {
    uint16_t type = AttrType(a), len = AttrLen(a);
    switch (type) {
      case CTA_IP_V4_SRC:
      case CTA_IP_V4_DST:
        if (len != 4 || family == 6) return false;
        family = 4;
        MapV4(AttrData(a), type == CTA_IP_V4_SRC ? t->src : t->dst);
        (type == CTA_IP_V4_SRC ? src : dst) = true;
        break;
      case CTA_IP_V6_SRC:
      case CTA_IP_V6_DST:
        if (len != 16 || family == 4) return false;
        family = 6;
        memcpy(type == CTA_IP_V6_SRC ? t->src : t->dst, AttrData(a), 16);
        (type == CTA_IP_V6_SRC ? src : dst) = true;
        break;
    }
    return true;
  });
  t->family = family;
  return ok && src && dst;
}

bool ParseProto(const nlattr* nest, Tuple* t) {
  bool ok = ForEachNested(nest, [&](const nlattr* a) {
    uint16_t len = AttrLen(a);
    switch (AttrType(a)) {
      case CTA_PROTO_NUM:
        if (len != 1) return false;
        t->proto = AttrU8(a);
        t->hasProto = true;
        break;
      case CTA_PROTO_SRC_PORT:
        if (len != 2) return false;
        t->sport = AttrBe16(a);
        break;
      case CTA_PROTO_DST_PORT:
        if (len != 2) return false;
        t->dport = AttrBe16(a);
        break;
      case CTA_PROTO_ICMP_ID:
      case CTA_PROTO_ICMPV6_ID:
        if (len != 2) return false;
        t->icmpId = AttrBe16(a);
        t->isIcmp = true;
        break;
      case CTA_PROTO_ICMP_TYPE:
      case CTA_PROTO_ICMPV6_TYPE:
        if (len != 1) return false;
        t->icmpType = AttrU8(a);
        t->isIcmp = true;
        break;
      case CTA_PROTO_ICMP_CODE:
      case CTA_PROTO_ICMPV6_CODE:
        if (len != 1) return false;
        t->icmpCode = AttrU8(a);
        t->isIcmp = true;
        break;
    }
    return true;
  });
  if (t->isIcmp) {
    t->sport = t->icmpId;
    t->dport = static_cast<uint16_t>(t->icmpType << 8 | t->icmpCode);
  }
  return ok && t->hasProto;
}

bool ParseTuple(const nlattr* nest, Tuple* t) {
  bool ip = false, proto = false;
  bool ok = ForEachNested(nest, [&](const nlattr* a) {
    switch (AttrType(a)) {
      case CTA_TUPLE_IP:
        return ip = ParseIp(a, t);
      case CTA_TUPLE_PROTO:
        return proto = ParseProto(a, t);
    }
    return true;
  });
  return ok && ip && proto;
}

bool ParseCounters(const nlattr* nest, Counters* c) {
  return ForEachNested(nest, [&](const nlattr* a) {
    uint16_t type = AttrType(a), len = AttrLen(a);
    switch (type) {
      case CTA_COUNTERS_PACKETS:
      case CTA_COUNTERS_BYTES:
        if (len != 8) return false;
        (type == CTA_COUNTERS_PACKETS ? c->packets : c->bytes) = AttrBe64(a);
        c->present = true;
        break;
      case CTA_COUNTERS32_PACKETS:
      case CTA_COUNTERS32_BYTES:
        if (len != 4) return false;
        (type == CTA_COUNTERS32_PACKETS ? c->packets : c->bytes) = AttrBe32(a);
        c->present = true;
        break;
    }
    return true;
  });
}

bool ParseStart(const nlattr* nest, double* startMs) {
  return ForEachNested(nest, [&](const nlattr* a) {
    if (AttrType(a) != CTA_TIMESTAMP_START) return true;
    if (AttrLen(a) != 8) return false;
    *startMs = static_cast<double>(AttrBe64(a) / 1000000ull);
    return true;
  });
}

}  // namespace

void ParseConntrackMessage(const nlmsghdr* nlh, uint8_t event, const ProtocolFilter& filter, Columns* out,
                           ParseStats* stats) {
  stats->messages++;
  if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(nfgenmsg)) {
    stats->malformed++;
    return;
  }
  Tuple orig, reply;
  bool hasOrig = false, hasReply = false;
  Counters txc, rxc;
  uint32_t status = 0, timeout = 0, id = 0, mark = 0;
  uint16_t zone = 0;
  double startMs = 0;
  bool ok = ForEachAttr(
      reinterpret_cast<const char*>(nlh) + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg)),
      static_cast<long>(nlh->nlmsg_len) - static_cast<long>(NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg))),
      [&](const nlattr* a) {
        uint16_t len = AttrLen(a);
        switch (AttrType(a)) {
          case CTA_TUPLE_ORIG:
            return hasOrig = ParseTuple(a, &orig);
          case CTA_TUPLE_REPLY:
            return hasReply = ParseTuple(a, &reply);
          case CTA_COUNTERS_ORIG:
            return ParseCounters(a, &txc);
          case CTA_COUNTERS_REPLY:
            return ParseCounters(a, &rxc);
          case CTA_STATUS:
            return len == 4 && (status = AttrBe32(a), true);
          case CTA_TIMEOUT:
            return len == 4 && (timeout = AttrBe32(a), true);
          case CTA_ID:
            return len == 4 && (id = AttrBe32(a), true);
          case CTA_MARK:
            return len == 4 && (mark = AttrBe32(a), true);
          case CTA_ZONE:
            return len == 2 && (zone = AttrBe16(a), true);
          case CTA_TIMESTAMP:
            return ParseStart(a, &startMs);
        }
        return true;
      });
  // The kernel sends both tuples, in one family, in every conntrack message (NEW, DESTROY and dumps
  // alike): without them there is no flow to put the counters on.
  if (!ok || !hasOrig || !hasReply || orig.family != reply.family) {
    stats->malformed++;
    return;
  }
  if (!filter.Keeps(orig.proto) || (filter.family != 0 && filter.family != orig.family)) {
    stats->filtered++;
    return;
  }
  out->family.push_back(orig.family);
  out->protocol.push_back(orig.proto);
  out->src.insert(out->src.end(), orig.src, orig.src + 16);
  out->dst.insert(out->dst.end(), orig.dst, orig.dst + 16);
  out->srcPort.push_back(orig.sport);
  out->dstPort.push_back(orig.dport);
  out->replySrc.insert(out->replySrc.end(), reply.src, reply.src + 16);
  out->replyDst.insert(out->replyDst.end(), reply.dst, reply.dst + 16);
  out->replySrcPort.push_back(reply.sport);
  out->replyDstPort.push_back(reply.dport);
  out->txBytes.push_back(static_cast<double>(txc.bytes));
  out->txPackets.push_back(static_cast<double>(txc.packets));
  out->rxBytes.push_back(static_cast<double>(rxc.bytes));
  out->rxPackets.push_back(static_cast<double>(rxc.packets));
  out->id.push_back(id);
  out->zone.push_back(zone);
  out->mark.push_back(mark);
  out->status.push_back(status);
  out->timeout.push_back(timeout);
  out->startMs.push_back(startMs);
  out->seenMs.push_back(0);  // set by the caller once the read is complete
  // DNAT: the reply comes from someone other than the dialled destination. ICMP replies change the
  // type (echo → echo reply), so only the address counts there.
  bool dnat = memcmp(orig.dst, reply.src, 16) != 0 || (!orig.isIcmp && orig.dport != reply.sport);
  // The original direction is the one of the first packet: conntrack always knows who opened it.
  uint32_t flags = kFlagInitiatorKnown | (dnat ? static_cast<uint32_t>(kFlagDnat) : 0u);
  if (event == kEventNew) flags |= kFlagOpened;
  if (event == kEventDestroy) flags |= kFlagClosed;
  out->flags.push_back(flags);
  out->event.push_back(event);
  out->length++;
}

double NowMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) * 1000.0 + static_cast<double>(ts.tv_nsec / 1000000);
}

NetlinkSocket::~NetlinkSocket() {
  if (nl) mnl_socket_close(nl);
}

std::string OpenNetlink(const std::string& netns, unsigned groups, int rcvbuf, std::unique_ptr<NetlinkSocket>* out) {
  auto sock = std::make_unique<NetlinkSocket>();
  std::string err = RunInNetns(netns, [&]() -> std::string {
    sock->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
    if (!sock->nl) return std::string("cannot open a netfilter netlink socket: ") + strerror(errno);
    if (rcvbuf > 0) {
      int fd = mnl_socket_get_fd(sock->nl);
      // FORCE ignores net.core.rmem_max (needs CAP_NET_ADMIN); fall back to the capped variant.
      if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) != 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
      }
    }
    if (groups == 0) {
      // A dump socket: a read that gets nothing for 30 s fails instead of holding a pool thread forever.
      timeval tv{30, 0};
      setsockopt(mnl_socket_get_fd(sock->nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    }
    if (mnl_socket_bind(sock->nl, groups, MNL_SOCKET_AUTOPID) < 0) {
      return std::string("cannot bind the netfilter netlink socket: ") + strerror(errno) +
             (errno == EPERM ? " (conntrack events need CAP_NET_ADMIN)" : "");
    }
    sock->portid = mnl_socket_get_portid(sock->nl);
    return "";
  });
  if (!err.empty()) return err;
  *out = std::move(sock);
  return "";
}

std::string DumpTable(NetlinkSocket* sock, uint8_t family, const ProtocolFilter& filter, Columns* out,
                      ParseStats* stats) {
  char req[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(req);
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  // A fresh sequence number per request: leftovers of an aborted earlier dump are told apart and skipped.
  static std::atomic<uint32_t> nextSeq{static_cast<uint32_t>(time(nullptr))};
  uint32_t seq = ++nextSeq;
  nlh->nlmsg_seq = seq;
  auto* nfh = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfh->nfgen_family = family;
  nfh->version = NFNETLINK_V0;
  nfh->res_id = 0;
  if (mnl_socket_sendto(sock->nl, nlh, nlh->nlmsg_len) < 0) {
    return std::string("cannot send the conntrack dump request: ") + strerror(errno);
  }
  // The kernel fills at most 32 KiB per read of a dump; a 64 KiB buffer never truncates one.
  std::vector<char> buf(1 << 16);
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(sock->nl, buf.data(), buf.size());
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN) return "conntrack dump timed out: the kernel sent nothing for 30 s";
      return std::string("conntrack dump failed while reading: ") + strerror(err);
    }
    int remaining = static_cast<int>(n);
    for (auto* h = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(h, remaining);
         h = mnl_nlmsg_next(h, &remaining)) {
      if (h->nlmsg_seq != seq || h->nlmsg_pid != sock->portid) continue;  // not ours
      if (h->nlmsg_type == NLMSG_DONE) {
        double now = NowMs();
        std::fill(out->seenMs.begin(), out->seenMs.end(), now);
        return "";
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        if (h->nlmsg_len < NLMSG_HDRLEN + sizeof(int)) return "the kernel sent a truncated netlink error";
        auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(h));
        if (e->error == 0) continue;
        int err = -e->error;
        return std::string("the kernel refused the conntrack dump: ") + strerror(err) +
               (err == EPERM ? " (reading conntrack needs CAP_NET_ADMIN: run as root or grant the capability)" : "");
      }
      if ((h->nlmsg_type >> 8) == NFNL_SUBSYS_CTNETLINK && (h->nlmsg_type & 0xff) == IPCTNL_MSG_CT_NEW) {
        ParseConntrackMessage(h, kEventNone, filter, out, stats);
      }
    }
  }
}

}  // namespace netmon
