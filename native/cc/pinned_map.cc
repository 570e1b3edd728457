// Reading a BPF map another program pinned (Cilium's conntrack maps): `readPinnedMap` opens the pin on
// the libuv pool, checks the map's key and value sizes against what the caller expects before reading a
// byte, and copies every entry out with batch lookups (falling back to a key walk on kernels or map
// types without them), handing keys and values back as two flat byte arrays. The map is opened per read,
// so a map the owner re-created (an agent restart) is the one read next time.
#include "pinned_map.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "adopt.h"
#include "bpf_object.h"

namespace netmon {
namespace {

// Entries per batch call: hash maps return whole buckets, so it must exceed the longest bucket.
constexpr uint32_t kBatch = 4096;

struct Info {
  uint32_t type = 0, keySize = 0, valueSize = 0, maxEntries = 0;
  std::string name;
};

class ReadWorker : public Napi::AsyncWorker {
 public:
  ReadWorker(Napi::Env env, std::string path, uint32_t keySize, uint32_t valueSize, uint32_t maxEntries)
      : Napi::AsyncWorker(env, "netmon:readPinnedMap"),
        deferred_(Napi::Promise::Deferred::New(env)),
        path_(std::move(path)),
        keySize_(keySize),
        valueSize_(valueSize),
        maxEntries_(maxEntries) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    auto t0 = std::chrono::steady_clock::now();
    int fd = bpf_obj_get(path_.c_str());
    if (fd < 0) {
      int err = errno;
      code_ = err == ENOENT ? "ENOENT" : err == EACCES || err == EPERM ? "EPERM" : "EIO";
      SetError(Errno("cannot open the pinned map " + path_, err));
      return;
    }
    bpf_map_info info;
    std::memset(&info, 0, sizeof info);
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) {
      int err = errno;
      close(fd);
      code_ = "EIO";
      SetError(Errno(path_ + " is not a BPF map", err));
      return;
    }
    info_.type = info.type;
    info_.keySize = info.key_size;
    info_.valueSize = info.value_size;
    info_.maxEntries = info.max_entries;
    info_.name = info.name;
    if (info.key_size != keySize_ || info.value_size != valueSize_) {
      close(fd);
      code_ = "ESIZE";
      SetError(path_ + " has key/value sizes " + std::to_string(info.key_size) + "/" +
               std::to_string(info.value_size) + ", not the " + std::to_string(keySize_) + "/" +
               std::to_string(valueSize_) + " this layout reads");
      return;
    }
    // Never more than the caller's bound, whatever the map holds (a map far larger than expected is read
    // in part, and said so).
    size_t limit = maxEntries_ > 0 ? maxEntries_ : info.max_entries;
    std::string err = Batch(fd, limit);
    if (err == "unsupported") err = Walk(fd, limit);
    close(fd);
    if (!err.empty()) {
      code_ = "EIO";
      SetError(err);
      return;
    }
    durationMs_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("count", Napi::Number::New(env, static_cast<double>(count_)));
    o.Set("keys", Adopt(env, keys_, napi_uint8_array));
    o.Set("values", Adopt(env, values_, napi_uint8_array));
    o.Set("truncated", Napi::Boolean::New(env, truncated_));
    o.Set("batched", Napi::Boolean::New(env, batched_));
    o.Set("durationMs", Napi::Number::New(env, durationMs_));
    o.Set("info", InfoObject(env));
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error& e) override {
    Napi::Error err = e;
    err.Set("code", Napi::String::New(Env(), code_));
    if (!info_.name.empty() || info_.keySize != 0) err.Set("info", InfoObject(Env()));
    deferred_.Reject(err.Value());
  }

 private:
  Napi::Object InfoObject(Napi::Env env) {
    Napi::Object i = Napi::Object::New(env);
    i.Set("type", Napi::Number::New(env, info_.type));
    i.Set("keySize", Napi::Number::New(env, info_.keySize));
    i.Set("valueSize", Napi::Number::New(env, info_.valueSize));
    i.Set("maxEntries", Napi::Number::New(env, info_.maxEntries));
    i.Set("name", Napi::String::New(env, info_.name));
    return i;
  }

  // Batch lookups: "" when done, "unsupported" when the kernel or map type has none, else an error.
  std::string Batch(int fd, size_t limit) {
    std::vector<uint8_t> keys(static_cast<size_t>(kBatch) * keySize_), values(static_cast<size_t>(kBatch) * valueSize_);
    uint64_t token = 0;
    bool first = true;
    for (;;) {
      uint32_t n = kBatch;
      int rc = bpf_map_lookup_batch(fd, first ? nullptr : &token, &token, keys.data(), values.data(), &n, nullptr);
      int err = rc != 0 ? errno : 0;
      if (rc != 0 && err != ENOENT) {
        // 524 is the kernel's internal ENOTSUPP, which batch operations return for map types without them.
        if (first && (err == EINVAL || err == ENOTSUP || err == EOPNOTSUPP || err == 524)) return "unsupported";
        return Errno("batch lookup of " + path_ + " failed", err);
      }
      batched_ = true;
      if (!Take(keys.data(), values.data(), n, limit)) return "";
      if (rc != 0) return "";  // ENOENT: that was the last batch
      first = false;
    }
  }

  // One key after the other, for kernels before 5.6.
  std::string Walk(int fd, size_t limit) {
    std::vector<uint8_t> key(keySize_), next(keySize_), value(valueSize_);
    void* at = nullptr;
    for (;;) {
      if (bpf_map_get_next_key(fd, at, next.data()) != 0) {
        if (errno == ENOENT) return "";
        return Errno("walking " + path_ + " failed", errno);
      }
      // An entry deleted between the two calls is skipped, as the owner's garbage collector meant.
      if (bpf_map_lookup_elem(fd, next.data(), value.data()) == 0) {
        if (!Take(next.data(), value.data(), 1, limit)) return "";
      }
      key.swap(next);
      at = key.data();
    }
  }

  // Appends n entries; false once `limit` entries are held (the rest is left: truncated).
  bool Take(const uint8_t* keys, const uint8_t* values, uint32_t n, size_t limit) {
    size_t room = limit > count_ ? limit - count_ : 0;
    size_t take = std::min<size_t>(n, room);
    keys_.insert(keys_.end(), keys, keys + take * keySize_);
    values_.insert(values_.end(), values, values + take * valueSize_);
    count_ += take;
    if (take < n) truncated_ = true;
    return !truncated_;
  }

  Napi::Promise::Deferred deferred_;
  std::string path_;
  uint32_t keySize_, valueSize_, maxEntries_;
  Info info_;
  std::vector<uint8_t> keys_, values_;
  size_t count_ = 0;
  bool truncated_ = false, batched_ = false;
  double durationMs_ = 0;
  std::string code_;
};

// readPinnedMap({ path, keySize, valueSize, maxEntries? }): Promise<{ count, keys, values, truncated,
// batched, durationMs, info }>; rejects with `code` ENOENT (no such pin), EPERM, ESIZE (sizes differ) or EIO.
Napi::Value ReadPinnedMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) {
    Napi::TypeError::New(env, "readPinnedMap({ path, keySize, valueSize, maxEntries? })").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object o = info[0].As<Napi::Object>();
  std::string path = o.Get("path").ToString().Utf8Value();
  uint32_t keySize = o.Get("keySize").ToNumber().Uint32Value();
  uint32_t valueSize = o.Get("valueSize").ToNumber().Uint32Value();
  uint32_t maxEntries = o.Has("maxEntries") ? o.Get("maxEntries").ToNumber().Uint32Value() : 0;
  if (keySize == 0 || valueSize == 0 || keySize > 512 || valueSize > 4096) {
    Napi::RangeError::New(env, "keySize 1..512 and valueSize 1..4096").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* worker = new ReadWorker(env, path, keySize, valueSize, maxEntries);
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

}  // namespace

Napi::Object InitPinnedMap(Napi::Env env, Napi::Object exports) {
  exports.Set("readPinnedMap", Napi::Function::New(env, ReadPinnedMap, "readPinnedMap"));
  return exports;
}

}  // namespace netmon
