#include "native_extractor.h"

#include "addon_data.h"
#include "device.h"
#include "errors.h"
#include "promise_worker.h"
#include "tensor_io.h"

namespace ltf {

namespace {

class ForwardWorker : public PromiseWorker {
 public:
  ForwardWorker(Napi::Env env, std::shared_ptr<TruncatedModel> model, torch::Tensor input)
      : PromiseWorker(env, code::kForwardFailed), model_(std::move(model)), input_(std::move(input)) {}

 protected:
  void Run() override {
    output_ = ltf::Forward(*model_, input_);
    input_ = torch::Tensor();  // free the copy of the input before the result goes back
  }
  Napi::Value Result(Napi::Env env) override { return OutputToJs(env, output_); }

 private:
  std::shared_ptr<TruncatedModel> model_;
  torch::Tensor input_;
  torch::Tensor output_;
};

using Boxed = std::shared_ptr<TruncatedModel>;

}  // namespace

Napi::Function NativeExtractor::Define(Napi::Env env) {
  return DefineClass(env, "NativeExtractor",
                     {
                         InstanceMethod<&NativeExtractor::Describe>("describe"),
                         InstanceMethod<&NativeExtractor::ForwardSync>("forwardSync"),
                         InstanceMethod<&NativeExtractor::Forward>("forward"),
                         InstanceMethod<&NativeExtractor::Dispose>("dispose"),
                     });
}

Napi::Object NativeExtractor::Wrap(Napi::Env env, std::shared_ptr<TruncatedModel> model) {
  // The External only lives for the constructor call below, which moves the model out of it.
  Boxed boxed = std::move(model);
  return GetAddonData(env).native_extractor.New({Napi::External<Boxed>::New(env, &boxed)});
}

NativeExtractor::NativeExtractor(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<NativeExtractor>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "NativeExtractor is created by load() or loadAsync()");
  }
  model_ = std::move(*info[0].As<Napi::External<Boxed>>().Data());
}

std::shared_ptr<TruncatedModel> NativeExtractor::Model() const {
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
    auto kept = Napi::Array::New(env, model->kept.size());
    for (size_t i = 0; i < model->kept.size(); ++i) kept.Set(static_cast<uint32_t>(i), model->kept[i]);

    auto result = Napi::Object::New(env);
    result.Set("device", DeviceName(model->device));
    result.Set("layer", model->layer);
    result.Set("kept", kept);
    result.Set("layers", layers);
    result.Set("parameterCount", Napi::Number::New(env, static_cast<double>(model->parameter_count)));
    return result;
  });
}

Napi::Value NativeExtractor::ForwardSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kForwardFailed, [&]() -> Napi::Value {
    const auto model = Model();
    torch::Tensor input = InputFromJs(info[0], info[1]);
    return OutputToJs(env, ltf::Forward(*model, input));
  });
}

Napi::Value NativeExtractor::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kForwardFailed, [&]() -> Napi::Value {
    auto model = Model();
    torch::Tensor input = InputFromJs(info[0], info[1]);
    auto* worker = new ForwardWorker(env, std::move(model), std::move(input));
    Napi::Promise promise = worker->Promise();
    worker->Queue();  // the worker deletes itself once it has settled the promise
    return promise;
  });
}

Napi::Value NativeExtractor::Dispose(const Napi::CallbackInfo& info) {
  // Workers in flight hold their own reference: the memory goes when the last of them is done.
  model_.reset();
  return info.Env().Undefined();
}

}  // namespace ltf
