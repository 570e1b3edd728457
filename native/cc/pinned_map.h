#pragma once

#include <napi.h>

namespace netmon {
Napi::Object InitPinnedMap(Napi::Env env, Napi::Object exports);
}
