// testThrow(kind, async): throws one kind of C++ exception through the chokepoint, on the JS
// thread or on a worker, so that test/reliability.test.ts can check that each becomes a JS Error
// with the right code and never aborts the process. Not part of the public API.
#include "binding/test_hooks.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <cstdio>
#include <new>
#include <stdexcept>

#include "binding/js_errors.h"
#include "binding/promise_worker.h"
#include "graph/optimized_graph.h"
#include "runtime/onednn_caches.h"

namespace ltf {

namespace {

[[noreturn]] void ThrowKind(const std::string& kind) {
  if (kind == "c10") TORCH_CHECK(false, "a c10::Error from TORCH_CHECK");
  if (kind == "oom")
    throw c10::OutOfMemoryError({__func__, __FILE__, static_cast<uint32_t>(__LINE__)},
                                "CUDA out of memory (test)");
  // What the TorchScript interpreter makes of an operator's OutOfMemoryError: a std::runtime_error
  // with the model's traceback before the allocator's words (LibTorch 2.11 on CUDA).
  if (kind == "oom_in_model")
    throw std::runtime_error(
        "The following operation failed in the TorchScript interpreter.\n"
        "Traceback of TorchScript, serialized code (most recent call last):\n"
        "  File \"code/__torch__/torch/nn/modules/batchnorm.py\", line 38, in forward\n"
        "RuntimeError: CUDA out of memory. Tried to allocate 64.00 GiB (test).\n");
  if (kind == "bad_alloc") throw std::bad_alloc();
  if (kind == "std") throw std::runtime_error("a std::runtime_error");
  if (kind == "native") throw NativeError(code::kLayerNotFound, "a NativeError with its own code");
  throw 42;  // not an exception class at all
}

class ThrowWorker : public PromiseWorker {
 public:
  ThrowWorker(Napi::Env env, std::string kind)
      : PromiseWorker(env, code::kForwardFailed), kind_(std::move(kind)) {}

 protected:
  void Run() override { ThrowKind(kind_); }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

 private:
  std::string kind_;
};

}  // namespace

Napi::Value TestThrow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kForwardFailed, [&]() -> Napi::Value {
    const std::string kind = info[0].As<Napi::String>().Utf8Value();
    if (!info[1].ToBoolean().Value()) ThrowKind(kind);
    auto* worker = new ThrowWorker(env, kind);
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
  });
}

Napi::Value TestOptimizeTolerance(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kInternal, [&]() -> Napi::Value {
    SetOptimizeToleranceForTests(
        info[0].IsNumber() ? std::optional<double>(info[0].As<Napi::Number>().DoubleValue()) : std::nullopt);
    return env.Undefined();
  });
}

Napi::Value TestCpuidCaches(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kInternal, [&]() -> Napi::Value {
    const std::string vendor = info[0].As<Napi::String>().Utf8Value();
    const Napi::Object table = info[1].As<Napi::Object>();
    auto replay = [&](uint32_t leaf, uint32_t subleaf) {
      char key[32];
      std::snprintf(key, sizeof key, "%x.%u", leaf, subleaf);
      std::vector<uint32_t> registers(4, 0);
      if (!table.Has(key)) return registers;
      const auto row = table.Get(key).As<Napi::Array>();
      for (uint32_t i = 0; i < 4 && i < row.Length(); ++i) {
        registers[i] = static_cast<uint32_t>(row.Get(i).As<Napi::Number>().Int64Value());
      }
      return registers;
    };
    const auto sizes = CpuidDataCacheSizes(vendor, replay);
    auto result = Napi::Array::New(env, sizes.size());
    for (uint32_t i = 0; i < sizes.size(); ++i) result.Set(i, static_cast<double>(sizes[i]));
    return result;
  });
}

Napi::Value TestThreadsHere(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kInternal,
               [&]() -> Napi::Value { return Napi::Number::New(env, at::get_num_threads()); });
}

}  // namespace ltf
