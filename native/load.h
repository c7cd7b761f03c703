// Entry points that load a model. Each throws (or rejects with) an Error carrying a `code`:
// MODEL_NOT_FOUND, MODEL_LOAD_FAILED, LAYER_NOT_FOUND, UNSUPPORTED_CUT, DEVICE_UNAVAILABLE.
#pragma once

#include <napi.h>

namespace ltf {

// load(path, layer, device): NativeExtractor. Sync: blocks the JS thread for the whole load.
Napi::Value Load(const Napi::CallbackInfo& info);
// loadAsync(path, layer, device): Promise<NativeExtractor>. Loads on a libuv worker thread.
Napi::Value LoadAsync(const Napi::CallbackInfo& info);
// listLayers(path): [{ name, type }], the model's top-level children. Sync.
Napi::Value ListLayersOf(const Napi::CallbackInfo& info);

}  // namespace ltf
