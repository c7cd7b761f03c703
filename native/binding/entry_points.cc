#include "binding/entry_points.h"

#include "binding/js_errors.h"
#include "binding/native_extractor.h"
#include "binding/promise_worker.h"
#include "common/limits.h"
#include "graph/graph_cut.h"
#include "graph/summary.h"
#include "model/cut_model.h"
#include "model/safety_check.h"

namespace ltf {

namespace {

// lib/options.ts has validated every argument; these checks only keep a bypassed call from
// reading garbage.
Napi::TypeError Bad(Napi::Env env, const std::string& what) {
  return Napi::TypeError::New(env, "internal: " + what + " (call through the libtorch-features API)");
}

ModelSource ReadSource(const Napi::Value& value) {
  ModelSource source;
  if (value.IsString()) {
    source.path = value.As<Napi::String>().Utf8Value();
  } else if (value.IsTypedArray() && value.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
    const auto bytes = value.As<Napi::Uint8Array>();
    source.bytes =
        std::make_shared<const std::string>(reinterpret_cast<const char*>(bytes.Data()), bytes.ByteLength());
  } else {
    throw Bad(value.Env(), "source must be a path or a Uint8Array");
  }
  return source;
}

std::vector<std::string> ReadStrings(const Napi::Value& value) {
  if (!value.IsArray()) throw Bad(value.Env(), "layers must be an array");
  const auto array = value.As<Napi::Array>();
  std::vector<std::string> strings;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    const Napi::Value item = array.Get(i);
    if (!item.IsString()) throw Bad(value.Env(), "layers must be strings");
    // Counted as JavaScript counts (UTF-16 units), as lib/options.ts checked it.
    if (item.As<Napi::String>().Utf16Value().size() > static_cast<size_t>(limits::kMaxLayerName)) {
      throw Bad(value.Env(),
                "a layer name is longer than " + std::to_string(limits::kMaxLayerName) + " characters");
    }
    strings.push_back(item.As<Napi::String>().Utf8Value());
  }
  return strings;
}

std::vector<double> ReadNumbers(const Napi::Value& value) {
  std::vector<double> numbers;
  if (value.IsNull() || value.IsUndefined()) return numbers;
  const auto array = value.As<Napi::Array>();
  for (uint32_t i = 0; i < array.Length(); ++i)
    numbers.push_back(array.Get(i).As<Napi::Number>().DoubleValue());
  return numbers;
}

ModelOptions ReadOptions(const Napi::Value& value) {
  if (!value.IsObject()) throw Bad(value.Env(), "options must be an object");
  const auto object = value.As<Napi::Object>();
  ModelOptions options;
  options.device = object.Get("device").As<Napi::String>().Utf8Value();
  const std::string dtype = object.Get("dtype").As<Napi::String>().Utf8Value();
  options.dtype = dtype == "float16" ? torch::kHalf : dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat;
  options.channels_last = object.Get("channelsLast").As<Napi::Boolean>().Value();
  options.pool = object.Get("pool").As<Napi::String>().Utf8Value();
  options.l2_normalize = object.Get("normalize").As<Napi::String>().Utf8Value() == "l2";
  options.optimize = object.Get("optimize").As<Napi::Boolean>().Value();
  options.winograd = object.Get("winograd").As<Napi::Boolean>().Value();
  options.tf32 = object.Get("tf32").As<Napi::Boolean>().Value();
  options.threads = object.Get("threads").As<Napi::Number>().Int32Value();
  options.allow_unsafe_operations = object.Get("allowUnsafeOperations").As<Napi::Boolean>().Value();
  options.max_batch = object.Get("maxBatch").As<Napi::Number>().Int64Value();
  options.max_queue = object.Get("maxQueue").As<Napi::Number>().Int64Value();
  const Napi::Value preprocess = object.Get("preprocess");
  if (preprocess.IsObject()) {
    const auto p = preprocess.As<Napi::Object>();
    options.preprocess.resize = p.Get("resize").As<Napi::Number>().Int64Value();
    options.preprocess.crop = p.Get("crop").As<Napi::Number>().Int64Value();
    options.preprocess.mean = ReadNumbers(p.Get("mean"));
    options.preprocess.std = ReadNumbers(p.Get("std"));
  } else {
    options.preprocess = Preprocess{0, 0, {}, {}};
  }
  return options;
}

struct LoadRequest {
  ModelSource source;
  std::vector<std::string> layers;
  ModelOptions options;
};

LoadRequest ReadRequest(const Napi::CallbackInfo& info) {
  if (info.Length() != 3) throw Bad(info.Env(), "load(source, layers, options) takes three arguments");
  return {ReadSource(info[0]), ReadStrings(info[1]), ReadOptions(info[2])};
}

class LoadWorker : public PromiseWorker {
 public:
  LoadWorker(Napi::Env env, LoadRequest request)
      : PromiseWorker(env, code::kModelLoadFailed), request_(std::move(request)) {}

 protected:
  void Run() override { model_ = BuildCutModel(request_.source, request_.layers, request_.options); }
  Napi::Value Result(Napi::Env env) override { return NativeExtractor::Wrap(env, std::move(model_)); }

 private:
  LoadRequest request_;
  std::shared_ptr<CutModel> model_;
};

Napi::Object Layer(Napi::Env env, const std::string& name, const std::string& type,
                   const std::string& kind = "module") {
  auto layer = Napi::Object::New(env);
  layer.Set("name", name);
  layer.Set("type", type);
  layer.Set("kind", kind);
  return layer;
}

Napi::Array Shape(Napi::Env env, const std::vector<int64_t>& shape) {
  auto array = Napi::Array::New(env, shape.size());
  for (size_t i = 0; i < shape.size(); ++i)
    array.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(shape[i])));
  return array;
}

}  // namespace

Napi::Value Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kModelLoadFailed, [&]() -> Napi::Value {
    LoadRequest request = ReadRequest(info);
    return NativeExtractor::Wrap(env, BuildCutModel(request.source, request.layers, request.options));
  });
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
    torch::jit::Module module = LoadModule(ReadSource(info[0]), info[2].ToBoolean().Value());
    Napi::Array result = Napi::Array::New(env);
    if (info[1].ToBoolean().Value()) {
      module.eval();
      for (const auto& call : ListCalls(module))
        result.Set(result.Length(), Layer(env, call.name, call.type, call.kind));
    } else {
      for (const auto& layer : ListLayers(module))
        result.Set(result.Length(), Layer(env, layer.name, layer.type));
    }
    return result;
  });
}

Napi::Value SummarizeOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kForwardFailed, [&]() -> Napi::Value {
    torch::jit::Module module = LoadModule(ReadSource(info[0]), info[3].ToBoolean().Value());
    module.eval();
    std::vector<int64_t> shape;
    for (double dim : ReadNumbers(info[2])) shape.push_back(static_cast<int64_t>(dim));
    const Summary summary = Summarize(module, ReadStrings(info[1]), shape);

    auto rows = Napi::Array::New(env, summary.rows.size());
    for (size_t i = 0; i < summary.rows.size(); ++i) {
      auto row = Layer(env, summary.rows[i].name, summary.rows[i].type);
      row.Set("outputShape", Shape(env, summary.rows[i].output_shape));
      row.Set("parameters", Napi::Number::New(env, static_cast<double>(summary.rows[i].parameters)));
      rows.Set(static_cast<uint32_t>(i), row);
    }
    auto outputs = Napi::Array::New(env, summary.output_shapes.size());
    for (size_t i = 0; i < summary.output_shapes.size(); ++i)
      outputs.Set(static_cast<uint32_t>(i), Shape(env, summary.output_shapes[i]));
    auto result = Napi::Object::New(env);
    result.Set("rows", rows);
    result.Set("outputShapes", outputs);
    result.Set("totalParameters", Napi::Number::New(env, static_cast<double>(summary.total_parameters)));
    return result;
  });
}

}  // namespace ltf
