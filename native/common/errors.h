// The one exception chokepoint of the addon.
//
// Every native entry point (Guard, binding/js_errors.h) and every job or worker (Capture) runs its
// body through this file, so that no C++ exception ever crosses into Node-API, where it would
// abort the process (what torch-js's unguarded torch::jit::load does on a bad file). Failures
// become an ErrorInfo with a stable `code` and a message without LibTorch's C++ backtrace, which
// the binding turns into a JS Error and lib/errors.ts into an ExtractorError. No Node-API here.
#pragma once

#include <exception>
#include <optional>
#include <stdexcept>
#include <string>

namespace ltf {

// Error codes shared with lib/errors.ts. Keep the two lists in step.
namespace code {
inline constexpr const char* kModelNotFound = "MODEL_NOT_FOUND";
inline constexpr const char* kModelLoadFailed = "MODEL_LOAD_FAILED";
inline constexpr const char* kLayerNotFound = "LAYER_NOT_FOUND";
inline constexpr const char* kUnsupportedCut = "UNSUPPORTED_CUT";
inline constexpr const char* kInvalidInput = "INVALID_INPUT";
inline constexpr const char* kInvalidArgument = "INVALID_ARGUMENT";
inline constexpr const char* kDeviceUnavailable = "DEVICE_UNAVAILABLE";
inline constexpr const char* kDisposed = "DISPOSED";
inline constexpr const char* kForwardFailed = "FORWARD_FAILED";
inline constexpr const char* kOutOfMemory = "OUT_OF_MEMORY";
inline constexpr const char* kUnsafeModel = "UNSAFE_MODEL";
inline constexpr const char* kQueueFull = "QUEUE_FULL";
inline constexpr const char* kAborted = "ABORTED";
inline constexpr const char* kTimeout = "TIMEOUT";
inline constexpr const char* kInternal = "INTERNAL";
}  // namespace code

// An error raised by our own code, with the code it should carry to JavaScript.
class NativeError : public std::runtime_error {
 public:
  NativeError(std::string code, const std::string& message)
      : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

// What a failure turns into: plain strings, safe to carry from a worker thread to the main thread.
struct ErrorInfo {
  std::string code;
  std::string message;
};

// Classifies the exception in flight. `fallback_code` is the code for LibTorch's own errors in
// this context (MODEL_LOAD_FAILED while loading, FORWARD_FAILED while running).
ErrorInfo ClassifyError(std::exception_ptr error, const char* fallback_code) noexcept;

// Runs `fn` on any thread; returns what went wrong, if anything. Never throws.
template <typename F>
std::optional<ErrorInfo> Capture(const char* fallback_code, F&& fn) noexcept {
  try {
    fn();
    return std::nullopt;
  } catch (...) {
    return ClassifyError(std::current_exception(), fallback_code);
  }
}

}  // namespace ltf
