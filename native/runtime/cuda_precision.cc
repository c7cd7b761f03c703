#include "runtime/cuda_precision.h"

#include <ATen/Context.h>

#include <condition_variable>
#include <mutex>

namespace ltf {

namespace {

struct Tf32State {
  std::mutex mutex;
  std::condition_variable changed;
  int running = 0;          // forwards inside a scope, all with the choice `allow`
  bool allow = false;       // the flag as the running forwards hold it
  int waiting[2] = {0, 0};  // forwards waiting to enter, by choice
};

Tf32State& State() {
  static auto* state = new Tf32State();  // never destroyed: forwards may outlive static teardown
  return *state;
}

}  // namespace

Tf32Scope::Tf32Scope(bool allow) : allow_(allow) {
  auto& state = State();
  std::unique_lock<std::mutex> lock(state.mutex);
  ++state.waiting[allow];
  state.changed.wait(
      lock, [&] { return state.running == 0 || (state.allow == allow && state.waiting[!allow] == 0); });
  --state.waiting[allow];
  if (state.running == 0) {
    state.allow = allow;
    // Only when it differs: LibTorch 2.9 and later warn (once) that this setter is the old API.
    if (at::globalContext().allowTF32CuDNN() != allow) at::globalContext().setAllowTF32CuDNN(allow);
  }
  ++state.running;
}

Tf32Scope::~Tf32Scope() {
  auto& state = State();
  {
    std::lock_guard<std::mutex> lock(state.mutex);
    --state.running;
  }
  state.changed.notify_all();
}

}  // namespace ltf
