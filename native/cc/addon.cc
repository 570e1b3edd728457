// @netmon/native: all kernel access of netmon in one addon, so one place owns the threads, sockets and
// namespaces it touches.
#include <napi.h>

#include "cgroup_dns.h"
#include "cgroup_flows.h"
#include "conntrack.h"
#include "netns.h"
#include "pinned_map.h"

namespace {

std::string NetnsArg(const Napi::Value& v) { return v.IsString() ? v.As<Napi::String>().Utf8Value() : ""; }

// readSysctl(netns: string | null, name: string): string — name relative to /proc/sys.
Napi::Value ReadSysctl(const Napi::CallbackInfo& info) {
  std::string value;
  std::string err = netmon::ReadSysctl(NetnsArg(info[0]), info[1].As<Napi::String>().Utf8Value(), &value);
  if (!err.empty()) {
    Napi::Error::New(info.Env(), err).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return Napi::String::New(info.Env(), value);
}

// writeSysctl(netns: string | null, name: string, value: string): void
Napi::Value WriteSysctl(const Napi::CallbackInfo& info) {
  std::string err = netmon::WriteSysctl(NetnsArg(info[0]), info[1].As<Napi::String>().Utf8Value(),
                                        info[2].As<Napi::String>().Utf8Value());
  if (!err.empty()) Napi::Error::New(info.Env(), err).ThrowAsJavaScriptException();
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("readSysctl", Napi::Function::New(env, ReadSysctl, "readSysctl"));
  exports.Set("writeSysctl", Napi::Function::New(env, WriteSysctl, "writeSysctl"));
  netmon::InitCgroupFlows(env, exports);
  netmon::InitCgroupDns(env, exports);
  netmon::InitPinnedMap(env, exports);
  return netmon::InitConntrack(env, exports);
}

}  // namespace

NODE_API_MODULE(netmon_native, Init)
