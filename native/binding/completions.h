// How work finished on another thread reaches the JS thread: one Node-API thread-safe function
// per environment (main thread or worker_thread), fed from any thread.
//
// Node 20's thread-safe functions are freed when their environment is torn down (a worker
// terminated, say) even while another thread still holds them, and a call after that is a
// use-after-free (fixed in Node 24.14 / 25.4). So this one is released by a cleanup hook of ours,
// which runs before Node's own (hooks run last-registered first), under the lock that every post
// takes: a forward that ends after its environment is gone finds no function, and its result is
// dropped. While no job is pending the function is unreferenced: an idle extractor does not keep
// the process alive, a pending call does.
#pragma once

#include <napi.h>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>

namespace ltf {

class Completions : public std::enable_shared_from_this<Completions> {
 public:
  // On the JS thread, once per environment (binding/addon.cc).
  static std::shared_ptr<Completions> Create(Napi::Env env);

  // JS thread: a job is on its way; the event loop stays alive until its Post has run.
  void Begin(Napi::Env env);
  // JS thread: the job announced by Begin will not Post after all (it was refused).
  void Cancel(Napi::Env env);
  // Any thread: runs `done` on the JS thread, then ends the job. False once the environment is
  // gone (then `done` is dropped, unrun).
  bool Post(std::function<void(Napi::Env)> done);

 private:
  struct Delivery;
  static void CallJs(Napi::Env env, Napi::Function, std::nullptr_t*, Delivery* delivery);
  using Function = Napi::TypedThreadSafeFunction<std::nullptr_t, Delivery, &Completions::CallJs>;
  static void Teardown(void* self);
  void End(Napi::Env env);

  std::mutex mutex_;
  std::optional<Function> function_;  // until the environment's teardown
  size_t pending_ = 0;                // JS thread only
};

}  // namespace ltf
