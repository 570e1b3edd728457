#pragma once

#include <napi.h>

namespace netmon {
Napi::Object InitCgroupDns(Napi::Env env, Napi::Object exports);
}
