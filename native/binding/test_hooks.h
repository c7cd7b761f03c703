// Entry points for the tests only.
#pragma once

#include <napi.h>

namespace ltf {

// testThrow(kind: 'c10' | 'oom' | 'bad_alloc' | 'std' | 'native' | 'other', async: boolean).
Napi::Value TestThrow(const Napi::CallbackInfo& info);

// testOptimizeTolerance(value: number | null): the tolerance of optimize's check for extractors
// made afterwards (a negative one makes every level disagree); null restores the dtype's own.
Napi::Value TestOptimizeTolerance(const Napi::CallbackInfo& info);

// testCpuidCaches(vendor, registers): the per-core cache sizes runtime/onednn_caches.h reads from
// CPUID registers replayed from `registers` ({ 'leaf-in-hex.subleaf': [eax, ebx, ecx, edx] };
// leaves not listed read as zeros), so that both sides of the detection are tested on any CPU.
Napi::Value TestCpuidCaches(const Napi::CallbackInfo& info);

// testThreadsHere(): LibTorch's intra-op thread count on the calling (JS) thread, the size of the
// OpenMP team it would start (runtime/process_settings.h: 1 once it has loaded a model).
Napi::Value TestThreadsHere(const Napi::CallbackInfo& info);

}  // namespace ltf
