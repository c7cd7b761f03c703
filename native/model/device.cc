#include "model/device.h"

#include "common/errors.h"

namespace ltf {

namespace {

std::string NoCudaReason() {
  // A CPU-only LibTorch (Debian's libtorch-dev, the "cpu" archive) has no CUDA at all; a CUDA
  // build with no visible GPU (no driver, CUDA_VISIBLE_DEVICES empty) reports zero devices.
  return torch::cuda::device_count() == 0 && !torch::cuda::is_available()
             ? "this LibTorch sees no CUDA device (it may be a CPU-only build, or no GPU is "
               "visible: check the driver and CUDA_VISIBLE_DEVICES)"
             : "CUDA is not available";
}

}  // namespace

torch::Device ResolveDevice(const std::string& request) {
  if (request == "auto") {
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  }
  if (request == "cpu") return torch::Device(torch::kCPU);

  int index = 0;
  if (request != "cuda") {
    // lib/options.ts has checked the form "cuda:N".
    index = std::stoi(request.substr(5));
  }
  if (!torch::cuda::is_available()) {
    throw NativeError(code::kDeviceUnavailable,
                      "device '" + request + "' was requested but " + NoCudaReason() +
                          "; use device: 'cpu', or leave device out to pick CUDA only when present");
  }
  const auto count = static_cast<int>(torch::cuda::device_count());
  if (index >= count) {
    throw NativeError(code::kDeviceUnavailable,
                      "device '" + request + "' was requested but only " + std::to_string(count) +
                          " CUDA device(s) are visible (cuda:0 to cuda:" + std::to_string(count - 1) + ")");
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

std::string DeviceName(const torch::Device& device) {
  if (device.is_cpu()) return "cpu";
  return device.str();  // "cuda:0"
}

}  // namespace ltf
