// Entry points for the tests only.
#pragma once

#include <napi.h>

namespace ltf {

// testThrow(kind: 'c10' | 'oom' | 'bad_alloc' | 'std' | 'native' | 'other', async: boolean).
Napi::Value TestThrow(const Napi::CallbackInfo& info);

}  // namespace ltf
