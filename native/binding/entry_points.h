// Entry points that load a model. Each throws (or rejects with) an Error carrying a `code`:
// MODEL_NOT_FOUND, MODEL_LOAD_FAILED, UNSAFE_MODEL, LAYER_NOT_FOUND, UNSUPPORTED_CUT,
// DEVICE_UNAVAILABLE, INVALID_ARGUMENT. `source` is a path (string) or the model's bytes (Uint8Array), copied
// before the call returns.
#pragma once

#include <napi.h>

namespace ltf {

// load(source, layers: string[], options): NativeExtractor. Sync: blocks the JS thread.
Napi::Value Load(const Napi::CallbackInfo& info);
// loadAsync(source, layers, options): Promise<NativeExtractor>, loaded on a libuv worker thread.
Napi::Value LoadAsync(const Napi::CallbackInfo& info);
// listLayers(source, nested: boolean): [{ name, type }]: the top-level children, or every module
// call that can be cut at, in execution order. Sync.
Napi::Value ListLayersOf(const Napi::CallbackInfo& info);
// summarize(source, layers, inputShape: number[], allowUnsafe: boolean): { rows: [{ name, type,
// outputShape, parameters }], outputShapes, totalParameters }. Sync: loads the model and runs it
// once on zeros.
Napi::Value SummarizeOf(const Napi::CallbackInfo& info);

}  // namespace ltf
