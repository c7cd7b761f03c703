// NativeExtractor: the JS object that owns a CutModel. Created only by load()/loadAsync()
// (binding/entry_points.cc); lib/extractor.ts wraps it in the public Extractor class.
#pragma once

#include <napi.h>

#include <memory>

#include "model/cut_model.h"

namespace ltf {

class NativeExtractor : public Napi::ObjectWrap<NativeExtractor> {
 public:
  // Defines the class and returns its constructor (kept in the per-environment AddonData).
  static Napi::Function Define(Napi::Env env);
  // A new JS NativeExtractor that owns `model`.
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<CutModel> model);

  explicit NativeExtractor(const Napi::CallbackInfo& info);

 private:
  // describe(): { device, outputs, kept, layers: [{ name, type }], parameterCount, strategy,
  // optimization }. Sync.
  Napi::Value Properties(const Napi::CallbackInfo& info);
  // optimization(): { level, checkedShapes, fallback, onednn }: what `optimize` does now. Sync.
  Napi::Value Optimization(const Napi::CallbackInfo& info);
  // forwardSync(data: Float32Array, shape: number[], id?): [{ data, shape }], one per output.
  // Queued behind the calls already waiting, and waited for on the calling thread.
  Napi::Value ForwardSync(const Napi::CallbackInfo& info);
  // forward(data, shape, id): Promise of the same. The input is copied before this returns; the
  // job joins the model's queue (runtime/forward_queue.h) and no thread waits for it but the queue's.
  Napi::Value Forward(const Napi::CallbackInfo& info);
  // forwardImagesSync(images, id?) / forwardImages(images, id): the same for uint8 HWC images,
  // which are preprocessed on the model's device.
  Napi::Value ForwardImagesSync(const Napi::CallbackInfo& info);
  Napi::Value ForwardImages(const Napi::CallbackInfo& info);
  // cancel(id): removes the queued call `id` (it rejects with ABORTED); false if it has started
  // or finished. waiting(): calls queued, not counting the one running.
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value Waiting(const Napi::CallbackInfo& info);
  // dispose(): releases the model once the calls queued and running finish. Idempotent.
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  // The model, or an error with code DISPOSED.
  std::shared_ptr<CutModel> Model() const;
  // The model, or after dispose() the model while calls of this extractor still hold it.
  std::shared_ptr<CutModel> QueueHolder() const;

  std::shared_ptr<CutModel> model_;
  std::weak_ptr<CutModel> last_model_;  // after dispose(), while its calls are still queued
};

}  // namespace ltf
