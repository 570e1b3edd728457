// JS bindings for the eBPF flow counter (bpf/flows.bpf.c): `CgroupFlows` loads the object with libbpf,
// attaches its two cgroup_skb programs with BPF links (gone with the process, kill -9 included; other
// programs on the same cgroup keep running), and `read()` swaps the interval buffers and drains the
// old one on the libuv pool, handing whole columns back.
#include "cgroup_flows.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "../bpf/flows.h"
#include "adopt.h"
#include "bpf_object.h"

namespace netmon {
namespace {

static_assert(sizeof(flow_key) == 48, "flow_key must match the BPF program's layout");
static_assert(sizeof(flow_value) == 56, "flow_value must match the BPF program's layout");

// Bits of the `flags` column handed to JS: the program's FLOW_* bits, plus PAIRED.
constexpr uint32_t kPaired = 8;  // both ends are local sockets and were merged into this row

// Entries per batch syscall. A hash map's batch calls return whole buckets, so this must exceed the
// longest bucket (a few entries); 4096 also keeps the syscall count low.
constexpr uint32_t kBatch = 4096;

struct Loaded {
  CgroupObject object;
  int activeFd = -1;
  int bufferFd[2] = {-1, -1};
  int statsFd = -1;
  int current = 0;  // buffer packets are counted in: 0 = buffer_a

  void Destroy() {
    object.Destroy();
    // The maps' fds belonged to the object.
    activeFd = statsFd = bufferFd[0] = bufferFd[1] = -1;
  }
};

std::string Load(const std::string& objectPath, const std::string& cgroupPath, uint32_t maxFlows, Loaded* out) {
  // Every map sized from max_flows: the two buffers hold one interval each (allocated as flows appear);
  // the origins outlive intervals, and as an LRU map are preallocated, so they get max_flows too.
  auto size = [maxFlows](bpf_object* obj) -> std::string {
    for (const char* name : {"buffer_a", "buffer_b"}) {
      bpf_map* m = bpf_object__find_map_by_name(obj, name);
      if (!m || bpf_map__set_max_entries(m, maxFlows) != 0) return std::string("cannot size the map ") + name;
    }
    bpf_map* origins = bpf_object__find_map_by_name(obj, "origins");
    if (!origins || bpf_map__set_max_entries(origins, std::max<uint32_t>(1024, maxFlows)) != 0) {
      return "cannot size the map origins";
    }
    return "";
  };
  return LoadOnCgroup(objectPath, cgroupPath, size,
                      {
                          {"active", sizeof(uint32_t), sizeof(uint32_t), &out->activeFd},
                          {"buffer_a", sizeof(flow_key), sizeof(flow_value), &out->bufferFd[0]},
                          {"buffer_b", sizeof(flow_key), sizeof(flow_value), &out->bufferFd[1]},
                          {"stats", sizeof(uint32_t), sizeof(uint64_t), &out->statsFd},
                      },
                      nullptr, {"count_egress", "count_ingress"}, &out->object);
}

// ---------------------------------------------------------------------------------------------------
// One read: the raw entries of the drained buffer, then merged into rows.

struct Entry {
  flow_key key;
  flow_value value;
};

struct Rows {
  size_t length = 0;
  std::vector<uint8_t> family, protocol, local, remote, wireRemote;
  std::vector<uint16_t> localPort, remotePort, wireRemotePort;
  std::vector<double> txBytes, txPackets, rxBytes, rxPackets, cgroupId, peerCgroupId;
  std::vector<uint32_t> flags;

  void Reserve(size_t n) {
    for (auto* v : {&family, &protocol}) v->reserve(n);
    for (auto* v : {&local, &remote, &wireRemote}) v->reserve(16 * n);
    for (auto* v : {&localPort, &remotePort, &wireRemotePort}) v->reserve(n);
    for (auto* v : {&txBytes, &txPackets, &rxBytes, &rxPackets, &cgroupId, &peerCgroupId}) v->reserve(n);
    flags.reserve(n);
  }

  void Push(const Entry& e, uint32_t rowFlags, double peerCgroup) {
    const flow_key& k = e.key;
    const flow_value& v = e.value;
    family.push_back(k.family);
    protocol.push_back(k.protocol);
    local.insert(local.end(), k.local, k.local + 16);
    remote.insert(remote.end(), k.remote, k.remote + 16);
    wireRemote.insert(wireRemote.end(), v.wire_remote, v.wire_remote + 16);
    localPort.push_back(k.local_port);
    remotePort.push_back(k.remote_port);
    wireRemotePort.push_back(v.wire_remote_port);
    txBytes.push_back(static_cast<double>(v.tx_bytes));
    txPackets.push_back(static_cast<double>(v.tx_packets));
    rxBytes.push_back(static_cast<double>(v.rx_bytes));
    rxPackets.push_back(static_cast<double>(v.rx_packets));
    cgroupId.push_back(static_cast<double>(k.cgroup_id));
    peerCgroupId.push_back(peerCgroup);
    flags.push_back(rowFlags);
    length++;
  }
};

// A connection as seen from one end, without the cgroup: (family, protocol, this end, other end).
struct Ends {
  uint8_t family, protocol;
  uint16_t thisPort, otherPort;
  uint8_t thisAddr[16], otherAddr[16];
  bool operator==(const Ends& o) const { return std::memcmp(this, &o, sizeof(Ends)) == 0; }
};
// FNV-1a over a key's packed bytes (the keys are zeroed before they are filled, padding included):
// small, and good enough for tables rebuilt every read.
template <typename T>
struct BytesHash {
  size_t operator()(const T& key) const {
    const auto* p = reinterpret_cast<const uint8_t*>(&key);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof(T); i++) h = (h ^ p[i]) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};
using EndsHash = BytesHash<Ends>;
struct Addr16 {
  uint8_t b[16];
  bool operator==(const Addr16& o) const { return std::memcmp(b, o.b, 16) == 0; }
};
struct Addr16Hash {
  size_t operator()(const Addr16& a) const {
    uint64_t x, y;
    std::memcpy(&x, a.b, 8);
    std::memcpy(&y, a.b + 8, 8);
    return static_cast<size_t>((x * 0x9E3779B97F4A7C15ull) ^ y);
  }
};

Ends EndsOf(const Entry& e, bool mirror) {
  Ends x;
  std::memset(&x, 0, sizeof x);
  x.family = e.key.family;
  x.protocol = e.key.protocol;
  // The remote end as the packets reached it: after DNAT, the backend, which is the address the other
  // local socket sees as its own.
  bool translated = (e.value.flags & FLOW_TRANSLATED) != 0;
  const uint8_t* remote = translated ? e.value.wire_remote : e.key.remote;
  uint16_t remotePort = translated ? e.value.wire_remote_port : e.key.remote_port;
  if (!mirror) {
    std::memcpy(x.thisAddr, e.key.local, 16);
    std::memcpy(x.otherAddr, remote, 16);
    x.thisPort = e.key.local_port;
    x.otherPort = remotePort;
  } else {
    std::memcpy(x.thisAddr, remote, 16);
    std::memcpy(x.otherAddr, e.key.local, 16);
    x.thisPort = remotePort;
    x.otherPort = e.key.local_port;
  }
  return x;
}

bool IsLoopback(const uint8_t* a, uint8_t family) {
  if (family == 4) return a[12] == 127;
  static const uint8_t one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return std::memcmp(a, one, 16) == 0;
}

// One end of a connection as a key without the cgroup: (family, protocol, address, port).
struct End {
  uint8_t family, protocol;
  uint16_t port;
  uint8_t addr[16];
  bool operator==(const End& o) const { return std::memcmp(this, &o, sizeof(End)) == 0; }
};
using EndHash = BytesHash<End>;

End LocalEnd(const Entry& e) {
  End x;
  std::memset(&x, 0, sizeof x);
  x.family = e.key.family;
  x.protocol = e.key.protocol;
  x.port = e.key.local_port;
  std::memcpy(x.addr, e.key.local, 16);
  return x;
}
End RemoteEnd(const Entry& e) {
  End x;
  std::memset(&x, 0, sizeof x);
  x.family = e.key.family;
  x.protocol = e.key.protocol;
  x.port = e.key.remote_port;
  std::memcpy(x.addr, e.key.remote, 16);
  return x;
}

// How many entries share a key, and the first of them: a key held by two entries (the same addresses and
// ports in two network namespaces, e.g. two pods on loopback) is ambiguous and never paired.
template <typename K, typename H>
using Index = std::unordered_map<K, std::pair<uint32_t, uint32_t>, H>;

template <typename K, typename H>
int64_t Unique(const Index<K, H>& index, const K& key) {
  auto it = index.find(key);
  return it != index.end() && it->second.second == 1 ? static_cast<int64_t>(it->second.first) : -1;
}

// Which of two views of one connection opened it: the one whose own entry or whose peer's says so. When
// neither knows (a connection older than the agent), the end with the higher port is taken for the
// client (an ephemeral port against a service port), so the row keeps one orientation from read to read,
// but is not marked known.
struct Opener {
  bool firstIsA;
  bool known;
};
Opener WhoOpened(const Entry& a, const Entry& b) {
  bool aOpened = (a.value.flags & FLOW_ORIGIN_LOCAL) || (b.value.flags & FLOW_ORIGIN_REMOTE);
  bool bOpened = (b.value.flags & FLOW_ORIGIN_LOCAL) || (a.value.flags & FLOW_ORIGIN_REMOTE);
  if (aOpened != bOpened) return {aOpened, true};
  if (a.key.local_port != b.key.local_port) return {a.key.local_port > b.key.local_port, false};
  return {std::memcmp(a.key.local, b.key.local, 16) <= 0, false};
}

// A connection whose two ends are both local sockets shows up twice, once per socket (egress of one is
// ingress of the other), and becomes one row, seen from the initiator, with its peer's cgroup in
// peerCgroupId. Each direction's bytes are those its sender's egress counted, as conntrack counts at the
// output hook: a large send that leaves as one segmentation-offload packet may reach the receiver as
// several, each with its own headers (over loopback), and one place per direction never counts a packet
// twice, even one in flight at the buffer swap.
//
// Two ways the views meet:
//  1. Mirrors: each end's remote is the other's local (the remote as the packets reached it, for a socket
//     whose own namespace rewrote the destination).
//  2. A Service address rewritten on the node, outside both sockets' namespaces (kube-proxy's DNAT between
//     two pods of one node): the client's socket sees the Service address, the server's sees the client.
//     The server's remote is the client's local; the row keeps the Service as dst and the server's own
//     end as the backend. (Seen the other way round — the client's address rewritten, SNAT — the client
//     sees the server as it is, and the row is the client's own.)
// Only unambiguous matches pair: a key two entries share is left alone, and such ends are reported each on
// its own.
void Merge(const std::vector<Entry>& entries, Rows* rows, uint64_t* paired) {
  const uint32_t n = static_cast<uint32_t>(entries.size());
  std::vector<int64_t> peer(n, -1);
  // Only entries whose remote is some entry's local can pair.
  std::unordered_set<Addr16, Addr16Hash> locals;
  for (const auto& e : entries) {
    Addr16 a;
    std::memcpy(a.b, e.key.local, 16);
    locals.insert(a);
  }
  std::vector<uint32_t> candidates;
  for (uint32_t i = 0; i < n; i++) {
    const Entry& e = entries[i];
    Addr16 r, w;
    std::memcpy(r.b, e.key.remote, 16);
    std::memcpy(w.b, e.value.wire_remote, 16);
    if (locals.count(r) || ((e.value.flags & FLOW_TRANSLATED) && locals.count(w))) candidates.push_back(i);
  }
  auto add = [](auto& index, const auto& key, uint32_t i) {
    auto it = index.find(key);
    if (it == index.end()) index.emplace(key, std::make_pair(i, 1u));
    else it->second.second++;
  };

  // 1. Mirrors.
  Index<Ends, EndsHash> byEnds;
  for (uint32_t i : candidates) add(byEnds, EndsOf(entries[i], false), i);
  for (uint32_t i : candidates) {
    if (peer[i] >= 0 || Unique(byEnds, EndsOf(entries[i], false)) < 0) continue;
    int64_t j = Unique(byEnds, EndsOf(entries[i], true));
    if (j < 0 || j == i || peer[j] >= 0) continue;
    peer[i] = j;
    peer[j] = i;
  }

  // 2. A Service address rewritten between the two sockets: an entry s sees c's local end as its remote.
  //    c's own remote (the Service) is no local address, so c is looked for among all entries, but only
  //    at the ends some s sees. Never over loopback: a rewrite between namespaces involves routable ends.
  Index<End, EndHash> byRemote, byLocal;
  for (uint32_t i : candidates) {
    if (peer[i] < 0) add(byRemote, RemoteEnd(entries[i]), i);
  }
  std::vector<uint8_t> viaService(n, 0);
  if (!byRemote.empty()) {
    for (uint32_t i = 0; i < n; i++) {
      if (peer[i] >= 0 || IsLoopback(entries[i].key.local, entries[i].key.family)) continue;
      End local = LocalEnd(entries[i]);
      if (byRemote.count(local)) add(byLocal, local, i);
    }
    for (const auto& [end, first] : byLocal) {
      if (first.second != 1) continue;
      uint32_t c = first.first;
      int64_t s = Unique(byRemote, end);
      if (s < 0 || s == c || peer[s] >= 0 || peer[c] >= 0) continue;
      peer[c] = s;
      peer[s] = c;
      viaService[c] = 1;  // c saw a rewritten address; s saw c's own
    }
  }

  rows->Reserve(n);
  for (uint32_t i = 0; i < n; i++) {
    const Entry& e = entries[i];
    if (peer[i] < 0) {
      rows->Push(e, e.value.flags & (FLOW_ORIGIN_LOCAL | FLOW_ORIGIN_REMOTE | FLOW_TRANSLATED), NAN);
      continue;
    }
    uint32_t j = static_cast<uint32_t>(peer[i]);
    if (j < i) continue;  // the pair was written at its first entry
    const Entry& f = entries[j];
    Opener o = WhoOpened(e, f);
    const Entry& first = o.firstIsA ? e : f;
    const Entry& second = o.firstIsA ? f : e;
    Entry merged = first;
    merged.value.rx_bytes = second.value.tx_bytes;
    merged.value.rx_packets = second.value.tx_packets;
    uint32_t flags = (o.known ? FLOW_ORIGIN_LOCAL : 0) | kPaired | (first.value.flags & FLOW_TRANSLATED);
    bool firstSawService = (&first == &e) ? viaService[i] : viaService[j];
    if (firstSawService) {
      // dst stays the Service address the client dialled; the backend is the server's own end.
      std::memcpy(merged.value.wire_remote, second.key.local, 16);
      merged.value.wire_remote_port = second.key.local_port;
      flags |= FLOW_TRANSLATED;
    }
    rows->Push(merged, flags, static_cast<double>(second.key.cgroup_id));
    (*paired)++;
  }
}

// ---------------------------------------------------------------------------------------------------
// CgroupFlows: new CgroupFlows({ objectPath, cgroupPath, maxFlows }); read(): Promise<columns & totals>;
// close()

class CgroupFlows : public Napi::ObjectWrap<CgroupFlows> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "CgroupFlows",
                       {InstanceMethod<&CgroupFlows::Read>("read"), InstanceMethod<&CgroupFlows::Close>("close")});
  }

  explicit CgroupFlows(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CgroupFlows>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) {
      Napi::TypeError::New(env, "CgroupFlows({ objectPath, cgroupPath, maxFlows })").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    std::string objectPath = o.Get("objectPath").ToString().Utf8Value();
    std::string cgroupPath = o.Get("cgroupPath").ToString().Utf8Value();
    uint32_t maxFlows = o.Get("maxFlows").ToNumber().Uint32Value();
    std::string err = Load(objectPath, cgroupPath, maxFlows, &bpf_);
    if (!err.empty()) Napi::Error::New(env, err).ThrowAsJavaScriptException();
    else open_ = true;
  }
  ~CgroupFlows() override { bpf_.Destroy(); }

  Loaded& bpf() { return bpf_; }
  std::atomic<bool> busy{false};
  bool closeWhenIdle = false;
  size_t sizeHint = 0;

  void CloseNow() {
    bpf_.Destroy();
    open_ = false;
  }

 private:
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (busy) closeWhenIdle = true;  // the read in flight still uses the maps: closed when it ends
    else CloseNow();
    return info.Env().Undefined();
  }
  Loaded bpf_;
  bool open_ = false;
};

class ReadWorker : public Napi::AsyncWorker {
 public:
  ReadWorker(Napi::Env env, CgroupFlows* owner, Napi::Object self)
      : Napi::AsyncWorker(env, "netmon:cgroupFlowsRead"),
        deferred_(Napi::Promise::Deferred::New(env)),
        owner_(owner),
        hint_(owner->sizeHint) {
    self_ = Napi::Persistent(self);
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    Loaded& b = owner_->bpf();
    auto t0 = std::chrono::steady_clock::now();
    // 1. Count the next interval in the other buffer. The update returns after an RCU grace period:
    //    no program still adds to the old buffer.
    int next = 1 - b.current;
    uint32_t zero = 0;
    uint32_t nextFd = static_cast<uint32_t>(b.bufferFd[next]);
    if (bpf_map_update_elem(b.activeFd, &zero, &nextFd, BPF_ANY) != 0) {
      SetError(Errno("cannot swap the flow buffers", errno));
      return;
    }
    int drained = b.current;
    b.current = next;
    auto t1 = std::chrono::steady_clock::now();
    swapMs_ = std::chrono::duration<double, std::milli>(t1 - t0).count();

    // 2. Read and empty the old buffer.
    std::vector<Entry> entries;
    entries.reserve(hint_);
    std::vector<flow_key> keys(kBatch);
    std::vector<flow_value> values(kBatch);
    uint64_t token = 0;
    bool first = true;
    for (;;) {
      uint32_t count = kBatch;
      int rc = bpf_map_lookup_and_delete_batch(b.bufferFd[drained], first ? nullptr : &token, &token, keys.data(),
                                               values.data(), &count, nullptr);
      int err = rc != 0 ? errno : 0;
      if (rc != 0 && err != ENOENT) {
        // What was drained is out of the map: hand it on. The rest stays in the buffer, which becomes
        // the active one at the next swap and is drained, with the interval after, at the read after.
        if (entries.empty()) {
          SetError(Errno("cannot read the flow buffer", err));
          return;
        }
        drainError_ = Errno("the flow buffer was drained only in part", err);
        break;
      }
      for (uint32_t i = 0; i < count; i++) entries.push_back({keys[i], values[i]});
      if (rc != 0) break;  // ENOENT: that was the last batch
      first = false;
    }
    entriesRead_ = entries.size();

    // 3. Losses, summed over CPUs.
    SumPerCpu(b.statsFd, FLOW_STAT_COUNT, stats_);

    // 4. One row per connection end, or per connection when both ends are here.
    Merge(entries, &rows_, &paired_);
    durationMs_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }

  void OnOK() override {
    Done();
    owner_->sizeHint = entriesRead_ + entriesRead_ / 8;
    Napi::Env env = Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("length", Napi::Number::New(env, static_cast<double>(rows_.length)));
    o.Set("family", Adopt(env, rows_.family, napi_uint8_array));
    o.Set("protocol", Adopt(env, rows_.protocol, napi_uint8_array));
    o.Set("local", Adopt(env, rows_.local, napi_uint8_array));
    o.Set("remote", Adopt(env, rows_.remote, napi_uint8_array));
    o.Set("localPort", Adopt(env, rows_.localPort, napi_uint16_array));
    o.Set("remotePort", Adopt(env, rows_.remotePort, napi_uint16_array));
    o.Set("wireRemote", Adopt(env, rows_.wireRemote, napi_uint8_array));
    o.Set("wireRemotePort", Adopt(env, rows_.wireRemotePort, napi_uint16_array));
    o.Set("txBytes", Adopt(env, rows_.txBytes, napi_float64_array));
    o.Set("txPackets", Adopt(env, rows_.txPackets, napi_float64_array));
    o.Set("rxBytes", Adopt(env, rows_.rxBytes, napi_float64_array));
    o.Set("rxPackets", Adopt(env, rows_.rxPackets, napi_float64_array));
    o.Set("cgroupId", Adopt(env, rows_.cgroupId, napi_float64_array));
    o.Set("peerCgroupId", Adopt(env, rows_.peerCgroupId, napi_float64_array));
    o.Set("flags", Adopt(env, rows_.flags, napi_uint32_array));
    o.Set("entries", Napi::Number::New(env, static_cast<double>(entriesRead_)));
    o.Set("paired", Napi::Number::New(env, static_cast<double>(paired_)));
    o.Set("lostPackets", Napi::Number::New(env, static_cast<double>(stats_[FLOW_STAT_LOST_PACKETS])));
    o.Set("lostBytes", Napi::Number::New(env, static_cast<double>(stats_[FLOW_STAT_LOST_BYTES])));
    o.Set("malformed", Napi::Number::New(env, static_cast<double>(stats_[FLOW_STAT_MALFORMED])));
    o.Set("swapMs", Napi::Number::New(env, swapMs_));
    o.Set("durationMs", Napi::Number::New(env, durationMs_));
    if (!drainError_.empty()) o.Set("drainError", Napi::String::New(env, drainError_));
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error& e) override {
    Done();
    deferred_.Reject(e.Value());
  }

 private:
  void Done() {
    owner_->busy = false;
    if (owner_->closeWhenIdle) owner_->CloseNow();
  }
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference self_;
  CgroupFlows* owner_;
  size_t hint_;
  Rows rows_;
  uint64_t entriesRead_ = 0, paired_ = 0;
  uint64_t stats_[FLOW_STAT_COUNT] = {};
  double swapMs_ = 0, durationMs_ = 0;
  std::string drainError_;
};

Napi::Value CgroupFlows::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!open_ || closeWhenIdle) {
    Napi::Error::New(env, "the eBPF flow counter is closed").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  bool expected = false;
  if (!busy.compare_exchange_strong(expected, true)) {
    Napi::Error::New(env, "a read is already running on this handle").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* worker = new ReadWorker(env, this, info.This().As<Napi::Object>());
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

}  // namespace

Napi::Object InitCgroupFlows(Napi::Env env, Napi::Object exports) {
  exports.Set("CgroupFlows", CgroupFlows::Define(env));
  return exports;
}

}  // namespace netmon
