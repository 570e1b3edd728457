#pragma once

#include <napi.h>

namespace netmon {
Napi::Object InitConntrack(Napi::Env env, Napi::Object exports);
}
