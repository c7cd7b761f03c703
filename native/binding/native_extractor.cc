#include "binding/native_extractor.h"

#include "binding/addon_data.h"
#include "binding/completions.h"
#include "binding/js_errors.h"
#include "model/device.h"
#include "runtime/forward.h"
#include "runtime/forward_queue.h"

#include <future>
#include "binding/tensor_io.h"

namespace ltf {

namespace {

using Boxed = std::shared_ptr<CutModel>;

// Queues `job` on the model's forward queue and returns its Promise, settled on the JS thread
// through the environment's Completions. The input was copied out of JS memory before this.
Napi::Value QueueForward(Napi::Env env, std::shared_ptr<CutModel> model, ForwardJob job) {
  auto deferred = Napi::Promise::Deferred::New(env);
  auto completions = GetAddonData(env).completions;
  job.model = model;
  job.settle = [completions, deferred](Outcome outcome) {
    completions->Post([deferred, outcome = std::move(outcome)](Napi::Env env) {
      if (outcome.error) {
        deferred.Reject(ToJsError(env, *outcome.error).Value());
        return;
      }
      try {
        deferred.Resolve(Guard(env, code::kForwardFailed, [&] { return OutputsToJs(env, outcome.outputs); }));
      } catch (const Napi::Error& e) {
        deferred.Reject(e.Value());
      }
    });
  };
  completions->Begin(env);
  try {
    model->queue->Push(std::move(job));
  } catch (...) {
    completions->Cancel(env);
    throw;
  }
  return deferred.Promise();
}

// Queues `job` and waits for it on the calling (JS) thread: in order behind the calls queued
// before it, on the model's own thread like every forward.
std::vector<torch::Tensor> RunNow(std::shared_ptr<CutModel> model, ForwardJob job) {
  std::promise<Outcome> done;
  auto outcome = done.get_future();
  job.model = model;
  job.settle = [&done](Outcome result) { done.set_value(std::move(result)); };
  model->queue->Push(std::move(job));
  Outcome result = outcome.get();
  if (result.error) throw NativeError(result.error->code, result.error->message);
  return std::move(result.outputs);
}

// The job id JavaScript gives (for cancel()), or 0.
uint64_t ReadId(const Napi::Value& value) {
  return value.IsNumber() ? static_cast<uint64_t>(value.As<Napi::Number>().Int64Value()) : 0;
}

ForwardJob TensorJob(const Napi::CallbackInfo& info, const CutModel& model) {
  ForwardJob job;
  job.tensor = InputFromJs(info[0], info[1], WantsPinnedInput(model));
  job.id = ReadId(info[2]);
  return job;
}

ForwardJob ImagesJob(const Napi::CallbackInfo& info, const CutModel& model) {
  ForwardJob job;
  job.images = ImagesFromJs(info[0], WantsPinnedInput(model));
  job.id = ReadId(info[1]);
  return job;
}

Napi::Array Strings(Napi::Env env, const std::vector<std::string>& values) {
  auto array = Napi::Array::New(env, values.size());
  for (size_t i = 0; i < values.size(); ++i) array.Set(static_cast<uint32_t>(i), values[i]);
  return array;
}

Napi::Number Number(Napi::Env env, int64_t value) {
  return Napi::Number::New(env, static_cast<double>(value));
}

// What `optimize` does now (graph/optimized_graph.h); level 'off' without it.
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
                         InstanceMethod<&NativeExtractor::Properties>("describe"),
                         InstanceMethod<&NativeExtractor::ForwardSync>("forwardSync"),
                         InstanceMethod<&NativeExtractor::Forward>("forward"),
                         InstanceMethod<&NativeExtractor::ForwardImagesSync>("forwardImagesSync"),
                         InstanceMethod<&NativeExtractor::ForwardImages>("forwardImages"),
                         InstanceMethod<&NativeExtractor::Optimization>("optimization"),
                         InstanceMethod<&NativeExtractor::Cancel>("cancel"),
                         InstanceMethod<&NativeExtractor::Waiting>("waiting"),
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

// After dispose() the queue may still hold this extractor's calls: they can be cancelled still.
std::shared_ptr<CutModel> NativeExtractor::QueueHolder() const {
  return model_ ? model_ : last_model_.lock();
}

std::shared_ptr<CutModel> NativeExtractor::Model() const {
  if (!model_) throw NativeError(code::kDisposed, "this extractor has been disposed");
  return model_;
}

Napi::Value NativeExtractor::Properties(const Napi::CallbackInfo& info) {
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
    return OutputsToJs(env, RunNow(model, TensorJob(info, *model)));
  });
}

Napi::Value NativeExtractor::ForwardImagesSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kForwardFailed, [&]() -> Napi::Value {
    const auto model = Model();
    return OutputsToJs(env, RunNow(model, ImagesJob(info, *model)));
  });
}

Napi::Value NativeExtractor::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kForwardFailed, [&]() -> Napi::Value {
    auto model = Model();
    ForwardJob job = TensorJob(info, *model);
    return QueueForward(env, std::move(model), std::move(job));
  });
}

Napi::Value NativeExtractor::ForwardImages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kForwardFailed, [&]() -> Napi::Value {
    auto model = Model();
    ForwardJob job = ImagesJob(info, *model);
    return QueueForward(env, std::move(model), std::move(job));
  });
}

Napi::Value NativeExtractor::Cancel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kInternal, [&]() -> Napi::Value {
    const auto model = QueueHolder();
    return Napi::Boolean::New(env, model && model->queue->Cancel(ReadId(info[0])));
  });
}

Napi::Value NativeExtractor::Waiting(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kInternal, [&]() -> Napi::Value {
    const auto model = QueueHolder();
    return Napi::Number::New(env, model ? static_cast<double>(model->queue->Waiting()) : 0);
  });
}

Napi::Value NativeExtractor::Dispose(const Napi::CallbackInfo& info) {
  // Jobs queued or running hold their own reference: the memory goes when the last of them is
  // done (on the queue's thread, which then ends). Nothing here waits for them.
  last_model_ = model_;
  model_.reset();
  return info.Env().Undefined();
}

}  // namespace ltf
