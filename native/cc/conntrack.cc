// JS bindings for conntrack: `Conntrack` (table dumps on the libuv pool) and `ConntrackEvents` (a thread
// of our own on the NEW/DESTROY multicast groups, handing whole batches to JS).
#include "conntrack.h"

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "adopt.h"
#include "ctnetlink.h"
#include "netns.h"

namespace netmon {
namespace {

Napi::Object ColumnsToJs(Napi::Env env, Columns& c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("length", Napi::Number::New(env, static_cast<double>(c.length)));
  o.Set("family", Adopt(env, c.family, napi_uint8_array));
  o.Set("protocol", Adopt(env, c.protocol, napi_uint8_array));
  o.Set("src", Adopt(env, c.src, napi_uint8_array));
  o.Set("dst", Adopt(env, c.dst, napi_uint8_array));
  o.Set("srcPort", Adopt(env, c.srcPort, napi_uint16_array));
  o.Set("dstPort", Adopt(env, c.dstPort, napi_uint16_array));
  o.Set("replySrc", Adopt(env, c.replySrc, napi_uint8_array));
  o.Set("replyDst", Adopt(env, c.replyDst, napi_uint8_array));
  o.Set("replySrcPort", Adopt(env, c.replySrcPort, napi_uint16_array));
  o.Set("replyDstPort", Adopt(env, c.replyDstPort, napi_uint16_array));
  o.Set("txBytes", Adopt(env, c.txBytes, napi_float64_array));
  o.Set("txPackets", Adopt(env, c.txPackets, napi_float64_array));
  o.Set("rxBytes", Adopt(env, c.rxBytes, napi_float64_array));
  o.Set("rxPackets", Adopt(env, c.rxPackets, napi_float64_array));
  o.Set("id", Adopt(env, c.id, napi_float64_array));
  o.Set("zone", Adopt(env, c.zone, napi_float64_array));
  o.Set("mark", Adopt(env, c.mark, napi_float64_array));
  o.Set("status", Adopt(env, c.status, napi_uint32_array));
  o.Set("timeout", Adopt(env, c.timeout, napi_uint32_array));
  o.Set("startMs", Adopt(env, c.startMs, napi_float64_array));
  o.Set("seenMs", Adopt(env, c.seenMs, napi_float64_array));
  o.Set("flags", Adopt(env, c.flags, napi_uint32_array));
  o.Set("event", Adopt(env, c.event, napi_uint8_array));
  c.length = 0;
  return o;
}

ProtocolFilter FilterArg(const Napi::Value& v) {
  ProtocolFilter f;
  if (!v.IsArray()) return f;
  auto list = v.As<Napi::Array>();
  for (auto& w : f.bits) w = 0;
  for (uint32_t i = 0; i < list.Length(); i++) {
    uint32_t p = list.Get(i).As<Napi::Number>().Uint32Value() & 0xff;
    f.bits[p >> 6] |= 1ull << (p & 63);
  }
  return f;
}

std::string StringOpt(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
}

double NumberOpt(const Napi::Object& o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback;
}

// ---------------------------------------------------------------------------------------------------
// Conntrack: new Conntrack({ netns? }); dump(family, protocols | null): Promise<columns>; close()

class Conntrack : public Napi::ObjectWrap<Conntrack> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Conntrack",
                       {InstanceMethod<&Conntrack::Dump>("dump"), InstanceMethod<&Conntrack::Close>("close")});
  }

  explicit Conntrack(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Conntrack>(info) {
    Napi::Object opts = info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(info.Env());
    std::string err = OpenNetlink(StringOpt(opts, "netns"), 0, 0, &sock_);
    if (!err.empty()) Napi::Error::New(info.Env(), err).ThrowAsJavaScriptException();
  }

  NetlinkSocket* socket() { return sock_.get(); }
  std::atomic<bool> busy{false};
  // Rows of the last dump plus an eighth: reserving it up front spares ~20 column reallocations per dump.
  size_t sizeHint = 0;

 private:
  Napi::Value Dump(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (busy) {
      Napi::Error::New(info.Env(), "a dump is still running; await it before close()").ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    sock_.reset();
    return info.Env().Undefined();
  }
  std::unique_ptr<NetlinkSocket> sock_;
};

class DumpWorker : public Napi::AsyncWorker {
 public:
  DumpWorker(Napi::Env env, Conntrack* owner, Napi::Object self, uint8_t family, ProtocolFilter filter)
      : Napi::AsyncWorker(env, "netmon:conntrackDump"),
        deferred_(Napi::Promise::Deferred::New(env)),
        owner_(owner),
        family_(family),
        filter_(filter),
        hint_(owner->sizeHint) {
    self_ = Napi::Persistent(self);  // keeps the socket alive while the pool thread reads it
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    auto t0 = std::chrono::steady_clock::now();
    cols_.Reserve(hint_);
    std::string err = DumpTable(owner_->socket(), family_, filter_, &cols_, &stats_);
    durationMs_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (!err.empty()) SetError(err);
  }
  void OnOK() override {
    owner_->busy = false;
    owner_->sizeHint = cols_.length + cols_.length / 8;
    Napi::Env env = Env();
    Napi::Object o = ColumnsToJs(env, cols_);
    o.Set("messages", Napi::Number::New(env, static_cast<double>(stats_.messages)));
    o.Set("malformed", Napi::Number::New(env, static_cast<double>(stats_.malformed)));
    o.Set("filtered", Napi::Number::New(env, static_cast<double>(stats_.filtered)));
    o.Set("durationMs", Napi::Number::New(env, durationMs_));
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error& e) override {
    owner_->busy = false;
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference self_;
  Conntrack* owner_;
  uint8_t family_;
  ProtocolFilter filter_;
  size_t hint_;
  Columns cols_;
  ParseStats stats_;
  double durationMs_ = 0;
};

Napi::Value Conntrack::Dump(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!sock_) {
    Napi::Error::New(env, "conntrack handle is closed").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  bool expected = false;
  if (!busy.compare_exchange_strong(expected, true)) {
    Napi::Error::New(env, "a dump is already running on this handle").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint8_t family = info[0].IsNumber() ? static_cast<uint8_t>(info[0].As<Napi::Number>().Uint32Value()) : 0;
  auto* worker = new DumpWorker(env, this, info.This().As<Napi::Object>(), family, FilterArg(info[1]));
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

// ---------------------------------------------------------------------------------------------------
// ConntrackEvents: new ConntrackEvents({ netns?, newEvents, receiveBuffer, batchSize, flushMs, family?,
// protocols? }, onBatch); barrier(): number; close(). onBatch(columns & { overflow, barrier, received,
// overflows, malformed, dropped, filtered }) — counters are totals since the subscription started.

struct EventBatch {
  Columns cols;
  bool overflow = false;
  uint64_t barrier = 0;
  uint64_t received = 0, overflows = 0, malformed = 0, dropped = 0, filtered = 0;
};

class ConntrackEvents;

// Links the thread-safe function's finalizer to its subscription. The finalizer may run after the
// subscription is gone (close(), then the object collected) or before (the environment tears down with
// the subscription open); both run on the JS thread, and whichever comes first unlinks the other.
struct EventsControl {
  ConntrackEvents* owner;
};

void CallJs(Napi::Env env, Napi::Function callback, EventsControl* ctx, EventBatch* batch);
using EventsTsfn = Napi::TypedThreadSafeFunction<EventsControl, EventBatch, CallJs>;

void CallJs(Napi::Env env, Napi::Function callback, EventsControl*, EventBatch* batch) {
  if (env != nullptr && callback != nullptr) {
    Napi::Object o = ColumnsToJs(env, batch->cols);
    o.Set("overflow", Napi::Boolean::New(env, batch->overflow));
    o.Set("barrier", Napi::Number::New(env, static_cast<double>(batch->barrier)));
    o.Set("received", Napi::Number::New(env, static_cast<double>(batch->received)));
    o.Set("overflows", Napi::Number::New(env, static_cast<double>(batch->overflows)));
    o.Set("malformed", Napi::Number::New(env, static_cast<double>(batch->malformed)));
    o.Set("dropped", Napi::Number::New(env, static_cast<double>(batch->dropped)));
    o.Set("filtered", Napi::Number::New(env, static_cast<double>(batch->filtered)));
    callback.Call({o});
  }
  delete batch;
}

class ConntrackEvents : public Napi::ObjectWrap<ConntrackEvents> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ConntrackEvents",
                       {InstanceMethod<&ConntrackEvents::Close>("close"),
                        InstanceMethod<&ConntrackEvents::Barrier>("barrier")});
  }

  explicit ConntrackEvents(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ConntrackEvents>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject() || !info[1].IsFunction()) {
      Napi::TypeError::New(env, "new ConntrackEvents(options, onBatch)").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object opts = info[0].As<Napi::Object>();
    netns_ = StringOpt(opts, "netns");
    bool wantNew = opts.Get("newEvents").ToBoolean();
    rcvbuf_ = static_cast<int>(NumberOpt(opts, "receiveBuffer", 8 << 20));
    batchSize_ = static_cast<size_t>(NumberOpt(opts, "batchSize", 4096));
    flushMs_ = static_cast<int>(NumberOpt(opts, "flushMs", 200));
    filter_ = FilterArg(opts.Get("protocols"));
    filter_.family = static_cast<uint8_t>(NumberOpt(opts, "family", 0));
    groups_ = 1u << (NFNLGRP_CONNTRACK_DESTROY - 1);
    if (wantNew) groups_ |= 1u << (NFNLGRP_CONNTRACK_NEW - 1);

    // Open the socket here, synchronously (inside the namespace, on a short-lived thread), so a missing
    // privilege is an exception at subscribe time.
    std::string err = OpenNetlink(netns_, groups_, rcvbuf_, &sock_);
    if (err.empty()) {
      wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (wake_ < 0) err = std::string("eventfd: ") + strerror(errno);
    }
    if (!err.empty()) {
      Napi::Error::New(env, err).ThrowAsJavaScriptException();
      return;
    }
    // The finalizer runs when the environment tears down with the subscription still open (exit without
    // close()): it stops the thread before the function it calls is freed.
    control_ = new EventsControl{this};
    tsfn_ = EventsTsfn::New(env, info[1].As<Napi::Function>(), "netmon:conntrackEvents", 64, 1, control_,
                            [](Napi::Env, void*, EventsControl* control) {
                              if (ConntrackEvents* self = control->owner) {
                                self->tsfnGone_ = true;
                                self->control_ = nullptr;
                                self->Stop();
                              }
                              delete control;
                            });
    tsfn_.Unref(env);  // an idle subscription must not keep the process alive; close() ends it
    running_ = true;
    thread_ = std::thread([this] { Run(); });
  }

  ~ConntrackEvents() override { Stop(); }

 private:
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop();
    return info.Env().Undefined();
  }

  // barrier(): asks the thread to read everything the socket holds now and deliver it, followed by (or
  // in) a batch whose `barrier` is the returned number. A dump's NLMSG_DONE comes after every event the
  // dump itself caused (entries it reaped) was queued on this socket, so once the barrier arrives every
  // such DESTROY has been handed to JS: the receiver passes the snapshot on only then.
  Napi::Value Barrier(const Napi::CallbackInfo& info) {
    if (!running_) return Napi::Number::New(info.Env(), 0);  // closed: nothing will come
    uint64_t n = ++barrierRequested_;
    Wake();
    return Napi::Number::New(info.Env(), static_cast<double>(n));
  }

  void Wake() {
    uint64_t one = 1;
    ssize_t ignored = write(wake_, &one, sizeof(one));
    (void)ignored;
  }

  void Stop() {
    if (!running_) return;
    running_ = false;
    Wake();
    thread_.join();
    if (control_) control_->owner = nullptr;  // its finalizer, still to come, must not call us back
    if (!tsfnGone_) tsfn_.Release();
    close(wake_);
    wake_ = -1;
    sock_.reset();
  }

  void Deliver(std::unique_ptr<EventBatch> batch, uint64_t barrier = 0) {
    size_t rows = batch->cols.length;
    batch->received = received_;
    batch->overflows = overflows_;
    batch->malformed = stats_.malformed;
    batch->filtered = stats_.filtered;
    batch->dropped = dropped_;
    batch->overflow = overflowPending_;
    batch->barrier = barrier;
    napi_status s = tsfn_.NonBlockingCall(batch.get());
    if (s == napi_ok) {
      batch.release();
      overflowPending_ = false;
    } else {
      // JS is not keeping up: the rows are lost. Say so, and ask for a resync with the next batch.
      dropped_ += rows;
      overflowPending_ = true;
    }
  }

  // Events were lost: the next batch says so (the receiver resyncs), and goes out within flushMs even
  // when it holds no rows — filtered events arriving meanwhile must not keep postponing it.
  void MarkLoss(const EventBatch* batch, std::chrono::steady_clock::time_point* deadline) {
    if (!overflowPending_ && batch->cols.length == 0) {
      *deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(flushMs_);
    }
    overflowPending_ = true;
  }

  // Reads every datagram queued on the socket (until EAGAIN or a full batch) into `batch`.
  void Drain(int fd, std::vector<char>& buf, EventBatch* batch, std::chrono::steady_clock::time_point* deadline) {
    for (;;) {
      ssize_t n = recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
      if (n < 0) {
        if (errno == ENOBUFS) {
          // The socket's receive buffer overflowed: events were lost. The receiver resyncs.
          overflows_++;
          MarkLoss(batch, deadline);
          continue;
        }
        if (errno == EINTR) continue;
        return;  // EAGAIN: drained
      }
      int remaining = static_cast<int>(n);
      for (auto* h = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(h, remaining);
           h = mnl_nlmsg_next(h, &remaining)) {
        if ((h->nlmsg_type >> 8) != NFNL_SUBSYS_CTNETLINK) continue;
        uint8_t type = h->nlmsg_type & 0xff;
        uint8_t event = type == IPCTNL_MSG_CT_DELETE ? kEventDestroy : type == IPCTNL_MSG_CT_NEW ? kEventNew : 0;
        if (event == 0) continue;
        received_++;
        size_t before = batch->cols.length;
        uint64_t malformedBefore = stats_.malformed;
        ParseConntrackMessage(h, event, filter_, &batch->cols, &stats_);
        if (batch->cols.length > before) {
          batch->cols.seenMs.back() = NowMs();
          // The first row of a batch starts its flush clock (unless a loss already did).
          if (before == 0 && !overflowPending_) {
            *deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(flushMs_);
          }
        }
        // A malformed event is a lost event (maybe a DESTROY with final counters): resync too.
        if (stats_.malformed != malformedBefore) MarkLoss(batch, deadline);
      }
      if (remaining > 0) {
        stats_.malformed++;  // a trailing partial message
        MarkLoss(batch, deadline);
      }
      if (batch->cols.length >= batchSize_) return;
    }
  }

  void Run() {
    int fd = mnl_socket_get_fd(sock_->nl);
    std::vector<char> buf(1 << 16);
    auto batch = std::make_unique<EventBatch>();
    auto deadline = std::chrono::steady_clock::now();
    auto fresh = [&] {
      batch = std::make_unique<EventBatch>();
      deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(flushMs_);
    };
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_, POLLIN, 0}};
    for (;;) {
      int timeout = -1;
      if (batch->cols.length > 0 || overflowPending_) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        timeout = left.count() < 0 ? 0 : static_cast<int>(left.count());
      }
      int rc = poll(fds, 2, timeout);
      if (rc < 0 && errno != EINTR) {
        // Cannot wait for events any more: say that events are being lost, and end.
        overflowPending_ = true;
        Deliver(std::move(batch));
        return;
      }
      if (rc > 0 && (fds[1].revents & POLLIN)) {
        uint64_t count;
        ssize_t ignored = read(wake_, &count, sizeof(count));
        (void)ignored;
      }
      if (!running_) break;
      // POLLERR alone is how an overflow (ENOBUFS) shows when nothing else is queued behind it.
      if (rc > 0 && (fds[0].revents & (POLLIN | POLLERR))) Drain(fd, buf, batch.get(), &deadline);
      uint64_t barrier = barrierRequested_.load();
      if (barrier > barrierDone_) {
        // Everything queued before the barrier was asked for, then the marker (in the last batch).
        while (true) {
          Drain(fd, buf, batch.get(), &deadline);
          if (batch->cols.length < batchSize_) break;
          Deliver(std::move(batch));
          fresh();
        }
        barrierDone_ = barrier;
        Deliver(std::move(batch), barrier);
        fresh();
        continue;
      }
      bool due = std::chrono::steady_clock::now() >= deadline;
      if (batch->cols.length >= batchSize_ || ((batch->cols.length > 0 || overflowPending_) && due)) {
        Deliver(std::move(batch));
        fresh();
      }
    }
    // Closing: what the socket still holds is handed over too, however many batches that takes.
    if (tsfnGone_) return;
    for (;;) {
      Drain(fd, buf, batch.get(), &deadline);
      if (batch->cols.length == 0) break;
      bool full = batch->cols.length >= batchSize_;
      Deliver(std::move(batch));
      fresh();
      if (!full) break;
    }
  }

  std::string netns_;
  unsigned groups_ = 0;
  int rcvbuf_ = 0;
  size_t batchSize_ = 4096;
  int flushMs_ = 200;
  ProtocolFilter filter_;
  std::unique_ptr<NetlinkSocket> sock_;
  int wake_ = -1;
  EventsTsfn tsfn_;
  EventsControl* control_ = nullptr;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> tsfnGone_{false};
  std::atomic<uint64_t> barrierRequested_{0};
  // Owned by the events thread.
  uint64_t barrierDone_ = 0;
  ParseStats stats_;
  uint64_t received_ = 0, overflows_ = 0, dropped_ = 0;
  bool overflowPending_ = false;
};


// parseMessages(buffer): the parser on a buffer of netlink messages, as a dump's datagrams would hold
// them — for tests and fuzzing without a kernel. Returns the columns and the stats of a dump.
Napi::Value ParseMessages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) {
    Napi::TypeError::New(env, "parseMessages(buffer: Uint8Array)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto buf = info[0].As<Napi::Uint8Array>();
  Columns cols;
  ParseStats stats;
  ProtocolFilter all;
  int remaining = static_cast<int>(buf.ByteLength());
  uint64_t skipped = 0;
  for (auto* h = reinterpret_cast<const nlmsghdr*>(buf.Data()); mnl_nlmsg_ok(h, remaining);
       h = mnl_nlmsg_next(h, &remaining)) {
    if ((h->nlmsg_type >> 8) != NFNL_SUBSYS_CTNETLINK) {
      skipped++;
      continue;
    }
    uint8_t type = h->nlmsg_type & 0xff;
    ParseConntrackMessage(h, type == IPCTNL_MSG_CT_DELETE ? kEventDestroy : kEventNone, all, &cols, &stats);
  }
  if (remaining > 0) stats.malformed++;  // a trailing partial message
  Napi::Object o = ColumnsToJs(env, cols);
  o.Set("messages", Napi::Number::New(env, static_cast<double>(stats.messages)));
  o.Set("malformed", Napi::Number::New(env, static_cast<double>(stats.malformed)));
  o.Set("skipped", Napi::Number::New(env, static_cast<double>(skipped)));
  return o;
}

}  // namespace

Napi::Object InitConntrack(Napi::Env env, Napi::Object exports) {
  exports.Set("parseMessages", Napi::Function::New(env, ParseMessages, "parseMessages"));
  exports.Set("Conntrack", Conntrack::Define(env));
  exports.Set("ConntrackEvents", ConntrackEvents::Define(env));
  return exports;
}

}  // namespace netmon
