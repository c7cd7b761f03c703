#include "runtime/forward_queue.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include <unistd.h>

namespace ltf {

namespace {

// Whether the process is exiting, and how many forwards run: one lock for both, so that no
// forward starts after the exit handler has counted.
std::mutex exit_mutex;
std::condition_variable stopped;
bool exiting = false;
int running = 0;

void OnExit(int status, void*) {
  int busy = 0;
  {
    std::lock_guard<std::mutex> lock(exit_mutex);
    exiting = true;
    busy = running;
  }
  if (busy > 0) {
    std::fflush(nullptr);
    _exit(status);
  }
}

// Marks a forward as started; false when the process is exiting (then nothing more may start).
bool Start() {
  std::lock_guard<std::mutex> lock(exit_mutex);
  if (exiting) return false;
  ++running;
  return true;
}

void Stop() {
  {
    std::lock_guard<std::mutex> lock(exit_mutex);
    --running;
  }
  stopped.notify_all();
}

}  // namespace

void InstallExitGuard() {
  static std::once_flag once;
#ifdef __GLIBC__
  std::call_once(once, [] { on_exit(OnExit, nullptr); });  // glibc's atexit with the exit status
#else
  std::call_once(once, [] { std::atexit([] { OnExit(1, nullptr); }); });
#endif
}

void PrepareExit(int code, int wait_ms) {
  std::unique_lock<std::mutex> lock(exit_mutex);
  exiting = true;
  if (stopped.wait_for(lock, std::chrono::milliseconds(wait_ms), [] { return running == 0; })) return;
  lock.unlock();
  std::fflush(nullptr);
  _exit(code);
}

int64_t ForwardJob::Rows() const {
  if (tensor.defined()) return tensor.dim() > 0 ? tensor.size(0) : 1;
  return images.stacked.defined() ? images.stacked.size(0) : static_cast<int64_t>(images.images.size());
}

// Everything the thread touches, shared with it: a queue destroyed from one of its own jobs
// lets its thread run on without touching freed memory.
struct ForwardQueue::State {
  Runner runner;
  int64_t max_batch = 1;
  size_t max_queue = 0;
  mutable std::mutex mutex;
  std::condition_variable ready;
  std::deque<ForwardJob> jobs;
  bool stopping = false;
};

ForwardQueue::ForwardQueue(Runner runner, int64_t max_batch, int64_t max_queue)
    : state_(std::make_shared<State>()) {
  state_->runner = std::move(runner);
  state_->max_batch = std::max<int64_t>(1, max_batch);
  state_->max_queue = static_cast<size_t>(std::max<int64_t>(0, max_queue));
  thread_ = std::thread(Loop, state_);
}

ForwardQueue::~ForwardQueue() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stopping = true;
  }
  state_->ready.notify_one();
  if (std::this_thread::get_id() == thread_.get_id()) {
    thread_.detach();  // released from one of its own jobs: cannot join itself
  } else {
    thread_.join();
  }
}

void ForwardQueue::Push(ForwardJob job) {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    if (state_->max_queue > 0 && state_->jobs.size() >= state_->max_queue) {
      throw NativeError(code::kQueueFull, "this extractor already has " +
                                              std::to_string(state_->jobs.size()) +
                                              " calls waiting (maxQueue); try again when some have finished");
    }
    state_->jobs.push_back(std::move(job));
  }
  state_->ready.notify_one();
}

bool ForwardQueue::Cancel(uint64_t id) {
  std::optional<ForwardJob> removed;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    auto found = std::find_if(state_->jobs.begin(), state_->jobs.end(),
                              [id](const ForwardJob& job) { return job.id == id; });
    if (found == state_->jobs.end()) return false;
    removed = std::move(*found);
    state_->jobs.erase(found);
  }
  removed->settle(Outcome{{}, ErrorInfo{code::kAborted, "the call was aborted before it started"}});
  return true;
}

size_t ForwardQueue::Waiting() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->jobs.size();
}

void ForwardQueue::Loop(std::shared_ptr<State> state) {
  for (;;) {
    std::vector<ForwardJob> taken;
    {
      std::unique_lock<std::mutex> lock(state->mutex);
      state->ready.wait(lock, [&] { return state->stopping || !state->jobs.empty(); });
      if (state->jobs.empty()) return;  // stopping, nothing left
      // The next job, and those right behind it while the rows fit in one batch.
      int64_t rows = 0;
      while (!state->jobs.empty()) {
        const int64_t next = state->jobs.front().Rows();
        if (!taken.empty() && rows + next > state->max_batch) break;
        rows += next;
        taken.push_back(std::move(state->jobs.front()));
        state->jobs.pop_front();
      }
    }
    if (!Start()) return;  // the process is exiting: LibTorch is going away
    try {
      state->runner(taken);
    } catch (...) {
      // The runner settles each job itself; one it could not reach is told so here.
      for (auto& job : taken) {
        if (job.settle)
          job.settle(Outcome{{}, ErrorInfo{code::kInternal, "the forward queue failed unexpectedly"}});
      }
    }
    Stop();
    // The jobs (and with them, perhaps, the last reference to the model that owns this queue)
    // go here, on this thread: from now on only `state` is touched.
    taken.clear();
  }
}

}  // namespace ltf
