// Entry points that load models: load (sync), loadAsync (Promise), listLayers (sync).
#include "load.h"

#include "device.h"
#include "errors.h"
#include "native_extractor.h"
#include "promise_worker.h"
#include "truncate.h"

namespace ltf {

namespace {

// What load()/loadAsync() take, read on the JS thread (lib/options.ts has validated them).
struct LoadRequest {
  std::string path;
  std::string layer;
  std::string device;
};

LoadRequest ReadRequest(const Napi::CallbackInfo& info) {
  if (info.Length() != 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsString()) {
    throw Napi::TypeError::New(info.Env(), "load(path, layer, device) takes three strings");
  }
  return {info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value(),
          info[2].As<Napi::String>().Utf8Value()};
}

std::shared_ptr<TruncatedModel> Build(const LoadRequest& request) {
  // The device is resolved first, so that a missing GPU is reported before a long load.
  const torch::Device device = ResolveDevice(request.device);
  return Truncate(request.path, request.layer, device);
}

class LoadWorker : public PromiseWorker {
 public:
  LoadWorker(Napi::Env env, LoadRequest request)
      : PromiseWorker(env, code::kModelLoadFailed), request_(std::move(request)) {}

 protected:
  void Run() override { model_ = Build(request_); }
  Napi::Value Result(Napi::Env env) override { return NativeExtractor::Wrap(env, std::move(model_)); }

 private:
  LoadRequest request_;
  std::shared_ptr<TruncatedModel> model_;
};

}  // namespace

Napi::Value Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kModelLoadFailed,
               [&]() -> Napi::Value { return NativeExtractor::Wrap(env, Build(ReadRequest(info))); });
}

Napi::Value LoadAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kModelLoadFailed, [&]() -> Napi::Value {
    auto* worker = new LoadWorker(env, ReadRequest(info));
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
  });
}

Napi::Value ListLayersOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kModelLoadFailed, [&]() -> Napi::Value {
    if (info.Length() != 1 || !info[0].IsString()) {
      throw Napi::TypeError::New(env, "listLayers(path) takes a string");
    }
    const auto layers = ListLayers(LoadModule(info[0].As<Napi::String>().Utf8Value()));
    auto result = Napi::Array::New(env, layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
      auto layer = Napi::Object::New(env);
      layer.Set("name", layers[i].name);
      layer.Set("type", layers[i].type);
      result.Set(static_cast<uint32_t>(i), layer);
    }
    return result;
  });
}

}  // namespace ltf
