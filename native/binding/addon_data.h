// Per-environment state (one per main thread or worker_thread), never static JS state.
#pragma once

#include <napi.h>

#include <memory>

#include "binding/completions.h"

namespace ltf {

struct AddonData {
  Napi::FunctionReference native_extractor;
  std::shared_ptr<Completions> completions;  // results of forwards back to this JS thread
};

inline AddonData& GetAddonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

}  // namespace ltf
