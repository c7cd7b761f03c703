// NativeExtractor: the JS object that owns a TruncatedModel. Created only by load()/loadAsync()
// (load.cc); lib/extractor.ts wraps it in the public Extractor class.
#pragma once

#include <napi.h>

#include <memory>

#include "truncate.h"

namespace ltf {

class NativeExtractor : public Napi::ObjectWrap<NativeExtractor> {
 public:
  // Defines the class and returns its constructor (kept in the per-environment AddonData).
  static Napi::Function Define(Napi::Env env);
  // A new JS NativeExtractor that owns `model`.
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<TruncatedModel> model);

  explicit NativeExtractor(const Napi::CallbackInfo& info);

 private:
  // describe(): { device, layer, kept, layers: [{ name, type }], parameterCount }. Sync.
  Napi::Value Describe(const Napi::CallbackInfo& info);
  // forwardSync(data: Float32Array, shape: number[]): { data, shape }. Sync, on the JS thread.
  Napi::Value ForwardSync(const Napi::CallbackInfo& info);
  // forward(data, shape): Promise<{ data, shape }>. The input is copied before this returns; the
  // forward runs on a libuv worker thread, which holds the model alive until it is done.
  Napi::Value Forward(const Napi::CallbackInfo& info);
  // dispose(): releases the model once running forwards finish. Idempotent.
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  // The model, or an error with code DISPOSED.
  std::shared_ptr<TruncatedModel> Model() const;

  std::shared_ptr<TruncatedModel> model_;
};

}  // namespace ltf
