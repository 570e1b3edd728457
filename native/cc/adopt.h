// Columns handed to JS without a copy, shared by every binding that returns typed arrays.
#pragma once

#include <napi.h>

#include <vector>

namespace netmon {

// The vector's memory becomes the ArrayBuffer's; it is freed when JS drops the array.
template <typename T>
Napi::Value Adopt(Napi::Env env, std::vector<T>& v, napi_typedarray_type type) {
  auto* owned = new std::vector<T>(std::move(v));
  if (owned->empty()) owned->reserve(1);  // a zero-length external buffer still needs a valid pointer
  auto buffer = Napi::ArrayBuffer::New(
      env, owned->data(), owned->size() * sizeof(T),
      [](Napi::Env, void*, std::vector<T>* hint) { delete hint; }, owned);
  return Napi::TypedArrayOf<T>::New(env, owned->size(), buffer, 0, type);
}

}  // namespace netmon
