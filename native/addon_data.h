// Per-environment state (one per main thread or worker_thread), never static JS state.
#pragma once

#include <napi.h>

namespace ltf {

struct AddonData {
  Napi::FunctionReference native_extractor;
};

inline AddonData& GetAddonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

}  // namespace ltf
