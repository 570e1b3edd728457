#pragma once

#include <napi.h>

namespace netmon {
Napi::Object InitCgroupFlows(Napi::Env env, Napi::Object exports);
}
