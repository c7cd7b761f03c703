#include "common/errors.h"

#include <c10/util/Exception.h>

#include <new>

namespace ltf {

namespace {

// LibTorch's messages sometimes carry a C++ backtrace or an "Exception raised from" trailer even
// through what_without_backtrace(); users need neither.
std::string StripTrailer(std::string message) {
  for (const char* marker : {"\nException raised from ", "\nframe #0"}) {
    auto at = message.find(marker);
    if (at != std::string::npos) message.erase(at);
  }
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return message;
}

// LibTorch's words for an allocation that failed. The TorchScript interpreter rethrows what a
// model's operator threw as a std::runtime_error carrying the model's traceback (LibTorch 2.11 on
// an H100: "The following operation failed in the TorchScript interpreter. ... RuntimeError: CUDA
// out of memory. Tried to allocate 64.00 GiB ..."), so an out-of-memory error from inside a model
// arrives with its type lost: it is recognised by these words.
constexpr const char* kOutOfMemoryWords[] = {"CUDA out of memory", "DefaultCPUAllocator: not enough memory",
                                             "DefaultCPUAllocator: can't allocate memory"};

// The line of `message` that says what ran out, from those words on; "" when there is none.
std::string OutOfMemoryLine(const std::string& message) {
  for (const char* words : kOutOfMemoryWords) {
    const auto at = message.rfind(words);
    if (at == std::string::npos) continue;
    const auto end = message.find('\n', at);
    return message.substr(at, end == std::string::npos ? std::string::npos : end - at);
  }
  return "";
}

// OUT_OF_MEMORY with the allocator's line where `message` has one, else `fallback_code`.
ErrorInfo OutOfMemoryOr(std::string message, const char* fallback_code) {
  const std::string out_of_memory = OutOfMemoryLine(message);
  if (!out_of_memory.empty()) {
    return {code::kOutOfMemory, "out of memory: " + out_of_memory + " (try a smaller batch or input size)"};
  }
  return {fallback_code, std::move(message)};
}

}  // namespace

ErrorInfo ClassifyError(std::exception_ptr error, const char* fallback_code) noexcept {
  try {
    try {
      std::rethrow_exception(error);
    } catch (const NativeError& e) {
      return {e.code(), e.what()};
    } catch (const c10::OutOfMemoryError& e) {
      return {code::kOutOfMemory, "out of memory: " + StripTrailer(e.what_without_backtrace()) +
                                      " (try a smaller batch or input size)"};
    } catch (const c10::Error& e) {
      return OutOfMemoryOr(StripTrailer(e.what_without_backtrace()), fallback_code);
    } catch (const std::bad_alloc&) {
      return {code::kOutOfMemory, "out of host memory (try a smaller batch or input size)"};
    } catch (const std::exception& e) {
      return OutOfMemoryOr(StripTrailer(e.what()), fallback_code);
    } catch (...) {
      return {code::kInternal, "an unknown native exception was raised"};
    }
  } catch (...) {
    // Building the strings above can itself throw (bad_alloc): keep the noexcept promise.
    return {code::kInternal, "a native error could not be described"};
  }
}

}  // namespace ltf
