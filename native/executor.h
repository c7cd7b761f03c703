// A thread of its own for one model's forwards.
//
// LibTorch's OpenMP thread pool belongs to the thread that starts the parallel work: run each
// forward on whichever of libuv's four threads is free and each starts its own pool, whose idle
// threads then spin against the next forward's (measured on 2 cores: 20% fewer images per second
// at batch 1 than one thread running them all). So every forward of a model runs here, one at a
// time, each using all of LibTorch's intra-op threads; callers wait for it.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

namespace ltf {

class Executor {
 public:
  Executor() : thread_([this] { Loop(); }) {}
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Finishes the jobs queued, then stops the thread.
  ~Executor() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_one();
    if (std::this_thread::get_id() == thread_.get_id()) {
      thread_.detach();  // released from one of its own jobs: cannot join itself
    } else {
      thread_.join();
    }
  }

  // Runs `job` on the executor's thread and waits for its result; rethrows what it throws.
  template <typename F>
  auto Run(F&& job) -> decltype(job()) {
    std::packaged_task<decltype(job())()> task(std::forward<F>(job));
    auto result = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.emplace_back([&task] { task(); });
    }
    ready_.notify_one();
    return result.get();
  }

 private:
  void Loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, nothing left
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;  // last: started once the members it uses exist
};

}  // namespace ltf
