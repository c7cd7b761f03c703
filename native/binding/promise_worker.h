// The base of every asynchronous entry point: work on a libuv worker thread, a Promise on the JS
// side. Run() goes through the exception chokepoint (Capture), so a worker can never let a C++
// exception escape; the Promise is rejected with an Error that carries a `code`.
#pragma once

#include <napi.h>

#include <optional>

#include "binding/js_errors.h"

namespace ltf {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* fallback_code)
      : Napi::AsyncWorker(env, "libtorch-features"),
        deferred_(Napi::Promise::Deferred::New(env)),
        fallback_code_(fallback_code) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  // The work, on a worker thread: no Napi calls here.
  virtual void Run() = 0;
  // The value the Promise resolves to, on the JS thread.
  virtual Napi::Value Result(Napi::Env env) = 0;

 private:
  void Execute() final {
    error_ = Capture(fallback_code_, [this] { Run(); });
  }

  void OnOK() final {
    // Every Napi call here can fail, and throw, when the environment is being torn down (a
    // worker_thread terminated while this job ran): then there is no one left to tell, and an
    // exception escaping this callback would abort the process.
    try {
      Napi::Env env = Env();
      Napi::HandleScope scope(env);
      if (error_) {
        deferred_.Reject(ToJsError(env, *error_).Value());
        return;
      }
      try {
        deferred_.Resolve(Guard(env, fallback_code_, [&] { return Result(env); }));
      } catch (const Napi::Error& e) {
        deferred_.Reject(e.Value());
      }
    } catch (...) {
    }
  }

  // Only reached if Napi::AsyncWorker itself reports an error; Execute() never calls SetError.
  void OnError(const Napi::Error& e) final {
    try {
      deferred_.Reject(e.Value());
    } catch (...) {
    }
  }

  Napi::Promise::Deferred deferred_;
  const char* fallback_code_;
  std::optional<ErrorInfo> error_;
};

}  // namespace ltf
