// Errors into JavaScript: the Node-API side of the exception chokepoint (common/errors.h).
#pragma once

#include <napi.h>

#include "common/errors.h"

namespace ltf {

// Builds the JS Error for a failure: message plus `code` property.
Napi::Error ToJsError(Napi::Env env, const ErrorInfo& info);

// Runs the body of a synchronous entry point on the JS thread. A Napi::Error passes through (the
// node-addon-api wrapper throws it into JavaScript); anything else is converted to one here.
template <typename F>
auto Guard(Napi::Env env, const char* fallback_code, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw ToJsError(env, ClassifyError(std::current_exception(), fallback_code));
  }
}

}  // namespace ltf
