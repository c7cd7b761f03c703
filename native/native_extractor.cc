#include "native_extractor.h"

#include "addon_data.h"
#include "device.h"
#include "errors.h"
#include "features.h"
#include "promise_worker.h"
#include "tensor_io.h"

namespace ltf {

namespace {

// A batch to run: a float32 tensor, or images to preprocess. Copied out of JS memory on the JS
// thread, so the caller may reuse its buffers as soon as the call returns.
struct Batch {
  torch::Tensor tensor;
  ImageBatch images;
};

std::vector<torch::Tensor> RunBatch(const CutModel& model, const Batch& batch) {
  return batch.tensor.defined() ? RunOnTensor(model, batch.tensor) : RunOnImages(model, batch.images);
}

class ForwardWorker : public PromiseWorker {
 public:
  ForwardWorker(Napi::Env env, std::shared_ptr<CutModel> model, Batch batch)
      : PromiseWorker(env, code::kForwardFailed), model_(std::move(model)), batch_(std::move(batch)) {}

 protected:
  void Run() override {
    outputs_ = RunBatch(*model_, batch_);
    batch_ = Batch();  // free the copy of the input before the result goes back
  }
  Napi::Value Result(Napi::Env env) override { return OutputsToJs(env, outputs_); }

 private:
  std::shared_ptr<CutModel> model_;
  Batch batch_;
  std::vector<torch::Tensor> outputs_;
};

using Boxed = std::shared_ptr<CutModel>;

// Queues a forward on a libuv worker (which waits for the model's executor) and returns its Promise.
Napi::Value QueueForward(Napi::Env env, std::shared_ptr<CutModel> model, Batch batch) {
  auto* worker = new ForwardWorker(env, std::move(model), std::move(batch));
  Napi::Promise promise = worker->Promise();
  worker->Queue();  // the worker deletes itself once it has settled the promise
  return promise;
}

Napi::Array Strings(Napi::Env env, const std::vector<std::string>& values) {
  auto array = Napi::Array::New(env, values.size());
  for (size_t i = 0; i < values.size(); ++i) array.Set(static_cast<uint32_t>(i), values[i]);
  return array;
}

Napi::Number Number(Napi::Env env, int64_t value) {
  return Napi::Number::New(env, static_cast<double>(value));
}

// What `optimize` does now (optimized_graph.h); level 'off' without it.
Napi::Object OptimizationToJs(Napi::Env env, const CutModel& model) {
  const OptimizationReport report = model.optimized ? model.optimized->Report() : OptimizationReport();
  auto result = Napi::Object::New(env);
  result.Set("level", model.optimized ? LevelName(report.level) : "off");
  auto shapes = Napi::Array::New(env, report.checked_shapes.size());
  for (size_t i = 0; i < report.checked_shapes.size(); ++i) {
    const auto& shape = report.checked_shapes[i];
    auto dims = Napi::Array::New(env, shape.size());
    for (size_t j = 0; j < shape.size(); ++j) dims.Set(static_cast<uint32_t>(j), Number(env, shape[j]));
    shapes.Set(static_cast<uint32_t>(i), dims);
  }
  result.Set("checkedShapes", shapes);
  result.Set("fallback", report.fallback.empty() ? env.Null() : Napi::String::New(env, report.fallback));
  auto onednn = Napi::Object::New(env);
  onednn.Set("convolutions", Number(env, report.onednn.convolutions));
  onednn.Set("winograd", Number(env, report.onednn.winograd));
  onednn.Set("fusedActivations", Number(env, report.onednn.fused_activations));
  onednn.Set("fusedResiduals", Number(env, report.onednn.fused_residuals));
  result.Set("onednn", onednn);
  return result;
}

}  // namespace

Napi::Function NativeExtractor::Define(Napi::Env env) {
  return DefineClass(env, "NativeExtractor",
                     {
                         InstanceMethod<&NativeExtractor::Describe>("describe"),
                         InstanceMethod<&NativeExtractor::ForwardSync>("forwardSync"),
                         InstanceMethod<&NativeExtractor::Forward>("forward"),
                         InstanceMethod<&NativeExtractor::ForwardImagesSync>("forwardImagesSync"),
                         InstanceMethod<&NativeExtractor::ForwardImages>("forwardImages"),
                         InstanceMethod<&NativeExtractor::Optimization>("optimization"),
                         InstanceMethod<&NativeExtractor::Dispose>("dispose"),
                     });
}

Napi::Object NativeExtractor::Wrap(Napi::Env env, std::shared_ptr<CutModel> model) {
  // The External only lives for the constructor call below, which moves the model out of it.
  Boxed boxed = std::move(model);
  return GetAddonData(env).native_extractor.New({Napi::External<Boxed>::New(env, &boxed)});
}

NativeExtractor::NativeExtractor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeExtractor>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "NativeExtractor is created by load() or loadAsync()");
  }
  model_ = std::move(*info[0].As<Napi::External<Boxed>>().Data());
}

std::shared_ptr<CutModel> NativeExtractor::Model() const {
  if (!model_) throw NativeError(code::kDisposed, "this extractor has been disposed");
  return model_;
}

Napi::Value NativeExtractor::Describe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kInternal, [&]() -> Napi::Value {
    const auto model = Model();
    auto layers = Napi::Array::New(env, model->layers.size());
    for (size_t i = 0; i < model->layers.size(); ++i) {
      auto layer = Napi::Object::New(env);
      layer.Set("name", model->layers[i].name);
      layer.Set("type", model->layers[i].type);
      layers.Set(static_cast<uint32_t>(i), layer);
    }
    auto result = Napi::Object::New(env);
    result.Set("device", DeviceName(model->device));
    result.Set("outputs", Strings(env, model->outputs));
    result.Set("kept", Strings(env, model->kept));
    result.Set("layers", layers);
    result.Set("parameterCount", Napi::Number::New(env, static_cast<double>(model->parameter_count)));
    result.Set("strategy", model->sequential ? "sequential" : "graph");
    result.Set("optimization", OptimizationToJs(env, *model));
    return result;
  });
}

Napi::Value NativeExtractor::Optimization(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kInternal, [&]() -> Napi::Value { return OptimizationToJs(env, *Model()); });
}

Napi::Value NativeExtractor::ForwardSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kForwardFailed, [&]() -> Napi::Value {
    const auto model = Model();
    return OutputsToJs(env, RunOnTensor(*model, InputFromJs(info[0], info[1], WantsPinnedInput(*model))));
  });
}

Napi::Value NativeExtractor::ForwardImagesSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kForwardFailed, [&]() -> Napi::Value {
    const auto model = Model();
    return OutputsToJs(env, RunOnImages(*model, ImagesFromJs(info[0], WantsPinnedInput(*model))));
  });
}

Napi::Value NativeExtractor::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kForwardFailed, [&]() -> Napi::Value {
    auto model = Model();
    const bool pinned = WantsPinnedInput(*model);
    return QueueForward(env, std::move(model), Batch{InputFromJs(info[0], info[1], pinned), {}});
  });
}

Napi::Value NativeExtractor::ForwardImages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kForwardFailed, [&]() -> Napi::Value {
    auto model = Model();
    const bool pinned = WantsPinnedInput(*model);
    return QueueForward(env, std::move(model), Batch{torch::Tensor(), ImagesFromJs(info[0], pinned)});
  });
}

Napi::Value NativeExtractor::Dispose(const Napi::CallbackInfo& info) {
  // Workers in flight hold their own reference: the memory goes when the last of them is done.
  model_.reset();
  return info.Env().Undefined();
}

}  // namespace ltf
