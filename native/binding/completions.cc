#include "binding/completions.h"

namespace ltf {

struct Completions::Delivery {
  std::shared_ptr<Completions> owner;
  std::function<void(Napi::Env)> done;
};

std::shared_ptr<Completions> Completions::Create(Napi::Env env) {
  auto self = std::make_shared<Completions>();
  self->function_ = Function::New(env, "libtorch-features", /*maxQueueSize=*/0, /*initialThreadCount=*/1);
  self->function_->Unref(env);
  // Registered after the function's own hook, so it runs first.
  napi_add_env_cleanup_hook(env, Teardown, new std::shared_ptr<Completions>(self));
  return self;
}

void Completions::Teardown(void* arg) {
  auto* self = static_cast<std::shared_ptr<Completions>*>(arg);
  {
    std::lock_guard<std::mutex> lock((*self)->mutex_);
    if ((*self)->function_) {
      (*self)->function_->Abort();
      (*self)->function_.reset();
    }
  }
  delete self;
}

void Completions::Begin(Napi::Env env) {
  if (pending_++ == 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (function_) function_->Ref(env);
  }
}

void Completions::Cancel(Napi::Env env) { End(env); }

void Completions::End(Napi::Env env) {
  if (pending_ > 0 && --pending_ == 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (function_) function_->Unref(env);
  }
}

bool Completions::Post(std::function<void(Napi::Env)> done) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!function_) return false;
  // The delivery keeps this alive until it has run (it ends the job there).
  auto* delivery = new Delivery{shared_from_this(), std::move(done)};
  if (function_->NonBlockingCall(delivery) != napi_ok) {
    delete delivery;
    return false;
  }
  return true;
}

void Completions::CallJs(Napi::Env env, Napi::Function, std::nullptr_t*, Delivery* delivery) {
  std::unique_ptr<Delivery> owned(delivery);
  if (env == nullptr) return;  // the environment is going: nobody left to tell
  // Nothing may escape into Node-API from here: an exception would abort the process.
  try {
    Napi::HandleScope scope(env);
    owned->done(env);
  } catch (...) {
  }
  try {
    owned->owner->End(env);
  } catch (...) {
  }
}

}  // namespace ltf
