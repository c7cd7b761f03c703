// The addon's entry: registers the functions lib/binding.ts declares.
#include <napi.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "binding/addon_data.h"
#include "binding/entry_points.h"
#include "binding/js_errors.h"
#include "binding/native_extractor.h"
#include "binding/test_hooks.h"
#include "graph/pointwise_fusion.h"
#include "onednn/onednn_conv.h"
#include "runtime/forward_queue.h"
#include "runtime/onednn_caches.h"
#include "runtime/process_settings.h"
#include "winograd/winograd_op.h"

#ifndef NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED
#error "Build with NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED: Electron's memory cage forbids external buffers"
#endif

namespace ltf {

namespace {

// runtime(): what this binary was built against and sees now, for diagnostics and test skips.
Napi::Value Runtime(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, code::kInternal, [&]() -> Napi::Value {
    auto result = Napi::Object::New(env);
    result.Set("torchVersion", TORCH_VERSION);
    result.Set("cudaAvailable", torch::cuda::is_available());
    result.Set("cudaDeviceCount", Napi::Number::New(env, static_cast<double>(torch::cuda::device_count())));
    result.Set("onednnFusion", OneDnnFusionEnabled());
    result.Set("pointwiseFusion", PointwiseFusionEnabled());
    result.Set("winograd", PointwiseFusionEnabled() && WinogradAvailable());
    const OneDnnCaches& caches = OneDnnCacheState();
    auto sizes = Napi::Array::New(env, caches.sizes.size());
    for (uint32_t i = 0; i < caches.sizes.size(); ++i) sizes.Set(i, static_cast<double>(caches.sizes[i]));
    auto onednn_caches = Napi::Object::New(env);
    onednn_caches.Set("sizes", sizes);
    onednn_caches.Set("source", caches.source);
    onednn_caches.Set("usable", caches.usable);
    onednn_caches.Set("reason", caches.reason);
    result.Set("onednnCaches", onednn_caches);
    return result;
  });
}

// prepareExit(code): the main thread's process is exiting with `code` (runtime/forward_queue.h): no
// forward starts any more, and one still running after a second ends the process at once.
Napi::Value PrepareExitOf(const Napi::CallbackInfo& info) {
  PrepareExit(info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0, /*wait_ms=*/1000);
  return info.Env().Undefined();
}

}  // namespace

}  // namespace ltf

// NODE_API_MODULE needs an unqualified function name.
static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace ltf;
  ConfigureProcess();
  auto* data = new AddonData();
  data->native_extractor = Napi::Persistent(NativeExtractor::Define(env));
  data->completions = Completions::Create(env);
  InstallExitGuard();
  env.SetInstanceData<AddonData>(data);  // deleted by Node when this environment is torn down

  exports.Set("load", Napi::Function::New<Load>(env, "load"));
  exports.Set("loadAsync", Napi::Function::New<LoadAsync>(env, "loadAsync"));
  exports.Set("listLayers", Napi::Function::New<ListLayersOf>(env, "listLayers"));
  exports.Set("summarize", Napi::Function::New<SummarizeOf>(env, "summarize"));
  exports.Set("runtime", Napi::Function::New<Runtime>(env, "runtime"));
  exports.Set("prepareExit", Napi::Function::New<PrepareExitOf>(env, "prepareExit"));
  exports.Set("_testThrow", Napi::Function::New<TestThrow>(env, "_testThrow"));
  exports.Set("_testOptimizeTolerance",
              Napi::Function::New<TestOptimizeTolerance>(env, "_testOptimizeTolerance"));
  exports.Set("_testCpuidCaches", Napi::Function::New<TestCpuidCaches>(env, "_testCpuidCaches"));
  exports.Set("_testThreadsHere", Napi::Function::New<TestThreadsHere>(env, "_testThreadsHere"));
  return exports;
}

NODE_API_MODULE(libtorch_features, Init)
