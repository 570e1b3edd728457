// JS bindings for the DNS tracer (bpf/dns.bpf.c): `CgroupDns` loads the object with libbpf, sizes its
// ring buffer, attaches its two cgroup_skb programs with BPF links, and `read()` drains the ring on the
// libuv pool, handing back the records as they are (struct dns_event + payload, back to back) for the
// receiver to decode: the messages are parsed in TypeScript, where a bad one costs a counter, not the
// process.
#include "cgroup_dns.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "../bpf/dns.h"
#include "adopt.h"
#include "bpf_object.h"

namespace netmon {
namespace {

static_assert(sizeof(dns_event) == 64, "dns_event must match the BPF program's layout");

// A callback's way to stop a drain when the read holds enough. libbpf has already moved past the
// record it hands the callback (and saves that position when the callback stops it), so the record that
// fills the budget is taken first, then the drain stops: none is skipped.
constexpr int kStop = -E2BIG;

struct Sink {
  std::vector<uint8_t>* out = nullptr;
  size_t budget = 0;
  uint64_t records = 0, bad = 0;
  bool full = false;
};

// A record is the header, `captured` payload bytes, and the rest of its size class (not copied).
int Collect(void* ctx, void* data, size_t size) {
  auto* sink = static_cast<Sink*>(ctx);
  const auto* event = static_cast<const dns_event*>(data);
  if (size < sizeof(dns_event) || event->captured > size - sizeof(dns_event)) {
    sink->bad++;  // cannot happen with a matching program; never handed on as a record
  } else {
    const auto* bytes = static_cast<const uint8_t*>(data);
    sink->out->insert(sink->out->end(), bytes, bytes + sizeof(dns_event) + event->captured);
    sink->records++;
  }
  if (sink->out->size() >= sink->budget) {
    sink->full = true;
    return kStop;
  }
  return 0;
}

struct Loaded {
  CgroupObject object;
  int eventsFd = -1, configFd = -1, statsFd = -1;
  ring_buffer* ring = nullptr;
  Sink sink;

  void Destroy() {
    if (ring) ring_buffer__free(ring);
    ring = nullptr;
    object.Destroy();
    eventsFd = configFd = statsFd = -1;
  }
};

std::string Load(const std::string& objectPath, const std::string& cgroupPath, uint32_t ringBytes,
                 uint32_t captureBytes, Loaded* out) {
  auto size = [ringBytes](bpf_object* obj) -> std::string {
    bpf_map* m = bpf_object__find_map_by_name(obj, "events");
    if (!m || bpf_map__set_max_entries(m, ringBytes) != 0) {
      return "cannot size the ring buffer to " + std::to_string(ringBytes) +
             " bytes (a power of two, a multiple of the page size)";
    }
    return "";
  };
  // The capture length is set before the programs are attached, so no packet is read without it.
  auto ready = [out, captureBytes](bpf_object*) -> std::string {
    uint32_t zero = 0;
    dns_config cfg = {captureBytes, 0};
    if (bpf_map_update_elem(out->configFd, &zero, &cfg, BPF_ANY) != 0) return Errno("cannot set the capture length", errno);
    return "";
  };
  std::string err = LoadOnCgroup(objectPath, cgroupPath, size,
                                 {
                                     {"events", 0, 0, &out->eventsFd},
                                     {"config", sizeof(uint32_t), sizeof(dns_config), &out->configFd},
                                     {"stats", sizeof(uint32_t), sizeof(uint64_t), &out->statsFd},
                                 },
                                 ready, {"dns_egress", "dns_ingress"}, &out->object);
  if (!err.empty()) return err;
  out->ring = ring_buffer__new(out->eventsFd, Collect, &out->sink, nullptr);
  if (!out->ring) {
    int e = errno;
    out->Destroy();
    return Errno("cannot map the ring buffer", e);
  }
  return "";
}

class CgroupDns : public Napi::ObjectWrap<CgroupDns> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "CgroupDns",
                       {InstanceMethod<&CgroupDns::Read>("read"), InstanceMethod<&CgroupDns::Close>("close")});
  }

  explicit CgroupDns(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CgroupDns>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) {
      Napi::TypeError::New(env, "CgroupDns({ objectPath, cgroupPath, ringBytes, captureBytes })")
          .ThrowAsJavaScriptException();
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    std::string objectPath = o.Get("objectPath").ToString().Utf8Value();
    std::string cgroupPath = o.Get("cgroupPath").ToString().Utf8Value();
    uint32_t ringBytes = o.Get("ringBytes").ToNumber().Uint32Value();
    uint32_t captureBytes = o.Get("captureBytes").ToNumber().Uint32Value();
    if (captureBytes < 1 || captureBytes > DNS_CAPTURE_MAX) {
      Napi::RangeError::New(env, "captureBytes must be 1 to " + std::to_string(DNS_CAPTURE_MAX))
          .ThrowAsJavaScriptException();
      return;
    }
    std::string err = Load(objectPath, cgroupPath, ringBytes, captureBytes, &bpf_);
    if (!err.empty()) Napi::Error::New(env, err).ThrowAsJavaScriptException();
    else open_ = true;
  }
  ~CgroupDns() override { bpf_.Destroy(); }

  Loaded& bpf() { return bpf_; }
  std::atomic<bool> busy{false};
  bool closeWhenIdle = false;

  void CloseNow() {
    bpf_.Destroy();
    open_ = false;
  }

 private:
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (busy) closeWhenIdle = true;  // the read in flight still uses the ring: closed when it ends
    else CloseNow();
    return info.Env().Undefined();
  }
  Loaded bpf_;
  bool open_ = false;
};

class ReadWorker : public Napi::AsyncWorker {
 public:
  ReadWorker(Napi::Env env, CgroupDns* owner, Napi::Object self, size_t budget)
      : Napi::AsyncWorker(env, "netmon:cgroupDnsRead"),
        deferred_(Napi::Promise::Deferred::New(env)),
        owner_(owner),
        budget_(budget) {
    self_ = Napi::Persistent(self);
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    Loaded& b = owner_->bpf();
    auto t0 = std::chrono::steady_clock::now();
    Sink& sink = b.sink;
    sink = Sink{&bytes_, budget_};
    int rc = ring_buffer__consume(b.ring);
    if (rc < 0 && rc != kStop) {
      SetError(Errno("cannot read the DNS ring buffer", -rc));
      return;
    }
    records_ = sink.records;
    bad_ = sink.bad;
    more_ = sink.full;
    sink.out = nullptr;
    SumPerCpu(b.statsFd, DNS_STAT_COUNT, stats_);
    durationMs_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }

  void OnOK() override {
    Done();
    Napi::Env env = Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("records", Adopt(env, bytes_, napi_uint8_array));
    o.Set("count", Napi::Number::New(env, static_cast<double>(records_)));
    o.Set("more", Napi::Boolean::New(env, more_));
    o.Set("badRecords", Napi::Number::New(env, static_cast<double>(bad_)));
    o.Set("captured", Napi::Number::New(env, static_cast<double>(stats_[DNS_STAT_CAPTURED])));
    o.Set("lost", Napi::Number::New(env, static_cast<double>(stats_[DNS_STAT_LOST])));
    o.Set("lostBytes", Napi::Number::New(env, static_cast<double>(stats_[DNS_STAT_LOST_BYTES])));
    o.Set("malformed", Napi::Number::New(env, static_cast<double>(stats_[DNS_STAT_MALFORMED])));
    o.Set("durationMs", Napi::Number::New(env, durationMs_));
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
  CgroupDns* owner_;
  size_t budget_;
  std::vector<uint8_t> bytes_;
  uint64_t records_ = 0, bad_ = 0;
  bool more_ = false;
  uint64_t stats_[DNS_STAT_COUNT] = {};
  double durationMs_ = 0;
};

// read(maxBytes): at most about maxBytes of records (at least one), oldest first; `more` says the ring
// held more.
Napi::Value CgroupDns::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!open_ || closeWhenIdle) {
    Napi::Error::New(env, "the DNS tracer is closed").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  bool expected = false;
  if (!busy.compare_exchange_strong(expected, true)) {
    Napi::Error::New(env, "a read is already running on this handle").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // At least one record per read, at most 64 MiB; anything else (NaN, negative) means the default.
  double asked = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0;
  size_t budget = asked >= 1 && asked <= (64u << 20) ? static_cast<size_t>(asked) : (4u << 20);
  auto* worker = new ReadWorker(env, this, info.This().As<Napi::Object>(), budget);
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

}  // namespace

Napi::Object InitCgroupDns(Napi::Env env, Napi::Object exports) {
  exports.Set("CgroupDns", CgroupDns::Define(env));
  return exports;
}

}  // namespace netmon
