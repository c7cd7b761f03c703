// One model's forwards: a FIFO of jobs and the one thread that runs them.
//
// LibTorch's OpenMP thread pool belongs to the thread that starts the parallel work: run each
// forward on whichever thread is free and each starts its own pool, whose idle threads then spin
// against the next forward's (measured on 2 cores: 20% fewer images per second at batch 1 than
// one thread running them all). So every forward of a model runs on the queue's own thread, one
// call after another, in the order they were queued. Nothing else waits for a job: a caller
// queues it and returns, and the job says how it ended through its `settle` (the Node boundary
// posts that to the JS thread). No libuv pool thread is held while a job waits or runs.
//
// Batching across calls: when the thread takes its next job, it also takes the jobs queued right
// behind it, as long as their rows add up to at most `max_batch`; consecutive ones whose inputs
// come out the same shape run as one forward, and the results are split. It never waits for more
// work: a lone call runs at once.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "common/errors.h"
#include "runtime/preprocess.h"

namespace ltf {

struct CutModel;

// How a job ended: the outputs (one per layer, rows of this job only), or why not.
struct Outcome {
  std::vector<torch::Tensor> outputs;
  std::optional<ErrorInfo> error;
};

struct ForwardJob {
  uint64_t id = 0;
  // Keeps the model alive while the job waits or runs (dispose() does not wait for it).
  std::shared_ptr<const CutModel> model;
  torch::Tensor tensor;  // a float32 batch [N, C, H, W], or
  ImageBatch images;     // images, preprocessed on the model's device
  // Called once, on the queue's thread (or on the caller's, when the job is cancelled or refused).
  std::function<void(Outcome)> settle;

  int64_t Rows() const;
};

// Process exit while a forward runs. exit() runs LibTorch's static destructors (its operator
// registry, the JIT's caches, oneDNN's kernels) while the queue's thread may still be inside
// them: a segfault in place of the exit code (measured: 5 of 5 exits with calls in flight ended
// 139). Nothing can stop a forward, and waiting for one that never returns would hang the exit.
// So when the main thread's process emits 'exit' (lib/binding.ts), PrepareExit stops every queue
// from starting anything more and waits for the forwards running, up to `wait`; if one is still
// running then, it ends the process at once with _exit and that exit code, skipping the
// destructors (and any 'exit' listener after this package's). An exit handler does the same, with
// exit()'s status, for an exit that does not come through this package's listener: libgomp's when
// it cannot start threads, or a main thread that never loaded the addon while workers use it
// (there, LibTorch's statics made after the addon loaded are destroyed before the handler runs).
void InstallExitGuard();
void PrepareExit(int code, int wait_ms);

class ForwardQueue {
 public:
  // Runs the jobs taken together, in order, settling each. Called on the queue's thread.
  using Runner = std::function<void(std::vector<ForwardJob>&)>;

  // `max_batch`: the most rows taken together; `max_queue`: the most jobs waiting (0: no limit).
  ForwardQueue(Runner runner, int64_t max_batch, int64_t max_queue);
  ForwardQueue(const ForwardQueue&) = delete;
  ForwardQueue& operator=(const ForwardQueue&) = delete;
  // Lets the jobs queued finish, then stops the thread. Returns at once when called from a job
  // of its own (the thread ends when that job does).
  ~ForwardQueue();

  // Queues `job`. Throws NativeError(QUEUE_FULL) when `max_queue` jobs are already waiting.
  void Push(ForwardJob job);
  // Removes a job that has not started; it is settled with ABORTED. False if it is running or done.
  bool Cancel(uint64_t id);
  // Jobs waiting (not the one running).
  size_t Waiting() const;

 private:
  struct State;
  static void Loop(std::shared_ptr<State> state);

  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace ltf
