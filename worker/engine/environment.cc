#include "worker/engine/environment.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <dlfcn.h>
#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "worker/engine/engine.h"

namespace repro::engine {
namespace {

constexpr char kUnknown[] = "unknown";

std::string Trim(const std::string& text) {
  size_t begin = 0, end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  return text.substr(begin, end - begin);
}

// What the CUDA driver says of device `ordinal`: its name, memory and UUID.
struct GpuInfo {
  std::string name;       // "" when the driver cannot be asked
  int64_t memory_mb = 0;
  std::string uuid;       // "GPU-8f2c...", as nvidia-smi writes it
};

// The CUDA driver API through dlopen, so that this file needs no CUDA headers and the
// CPU build links no CUDA library.
GpuInfo GpuFromDriver(int ordinal) {
  GpuInfo info;
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) return info;
  using InitFn = int (*)(unsigned);
  using DeviceGetFn = int (*)(int*, int);
  using DeviceGetNameFn = int (*)(char*, int, int);
  using TotalMemFn = int (*)(size_t*, int);
  using UuidFn = int (*)(unsigned char*, int);  // CUuuid: 16 bytes
  auto init = reinterpret_cast<InitFn>(dlsym(lib, "cuInit"));
  auto device_get = reinterpret_cast<DeviceGetFn>(dlsym(lib, "cuDeviceGet"));
  auto device_get_name = reinterpret_cast<DeviceGetNameFn>(dlsym(lib, "cuDeviceGetName"));
  auto total_mem = reinterpret_cast<TotalMemFn>(dlsym(lib, "cuDeviceTotalMem_v2"));
  auto uuid = reinterpret_cast<UuidFn>(dlsym(lib, "cuDeviceGetUuid"));
  int device = 0;
  char buffer[256] = {};
  if (init != nullptr && device_get != nullptr && device_get_name != nullptr && init(0) == 0 &&
      device_get(&device, ordinal) == 0) {
    if (device_get_name(buffer, static_cast<int>(sizeof buffer) - 1, device) == 0) info.name = buffer;
    size_t bytes = 0;
    if (total_mem != nullptr && total_mem(&bytes, device) == 0) {
      info.memory_mb = static_cast<int64_t>(bytes >> 20);
    }
    unsigned char id[16] = {};
    if (uuid != nullptr && uuid(id, device) == 0) {
      info.uuid = "GPU-";
      for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) info.uuid += '-';
        absl::StrAppend(&info.uuid, absl::Hex(id[i], absl::kZeroPad2));
      }
    }
  }
  dlclose(lib);
  return info;
}

// The driver version through NVML (libnvidia-ml), for hosts without /proc/driver/nvidia.
std::string DriverFromNvml() {
  void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) return "";
  using InitFn = int (*)();
  using VersionFn = int (*)(char*, unsigned);
  auto init = reinterpret_cast<InitFn>(dlsym(lib, "nvmlInit_v2"));
  auto version = reinterpret_cast<VersionFn>(dlsym(lib, "nvmlSystemGetDriverVersion"));
  auto shutdown = reinterpret_cast<InitFn>(dlsym(lib, "nvmlShutdown"));
  std::string out;
  if (init != nullptr && version != nullptr && init() == 0) {
    char buffer[96] = {};
    if (version(buffer, sizeof buffer - 1) == 0) out = buffer;
    if (shutdown != nullptr) shutdown();
  }
  dlclose(lib);
  return out;
}

// cuDNN encodes 8.9.2 as 8902 and 9.1.0 as 90100.
std::string CudnnVersionText(long v) {
  if (v >= 90000) return absl::StrCat(v / 10000, ".", (v % 10000) / 100, ".", v % 100);
  return absl::StrCat(v / 1000, ".", (v % 1000) / 100, ".", v % 100);
}

// CUDA encodes 12.4 as 12040.
std::string CudaVersionText(long v) { return absl::StrCat(v / 1000, ".", (v % 1000) / 10); }

void AddCuda(std::map<std::string, std::string>& env) {
  env["gpu_name"] = kUnknown;
  env["driver"] = kUnknown;
  env["cuda"] = kUnknown;
  env["cudnn"] = kUnknown;
  try {
    const at::CUDAHooksInterface& hooks = at::detail::getCUDAHooks();
    if (!hooks.hasCUDA()) return;
    const std::string name = GpuFromDriver(static_cast<int>(hooks.current_device())).name;
    if (!name.empty()) env["gpu_name"] = name;
    env["cuda"] = CudaVersionText(hooks.versionCUDART());
    env["cudnn"] = hooks.hasCuDNN() ? CudnnVersionText(hooks.versionCuDNN()) : "none";
  } catch (...) {
    // A LibTorch without the query: keep "unknown".
  }
  std::string driver = NvidiaDriverFromProc();
  if (driver.empty()) driver = DriverFromNvml();
  if (!driver.empty()) env["driver"] = driver;
}

}  // namespace

std::string HostName() {
  char buffer[256] = {};
  if (gethostname(buffer, sizeof buffer - 1) != 0) return kUnknown;
  return buffer;
}

std::string CpuModel(const std::string& cpuinfo_path) {
  std::ifstream in(cpuinfo_path);
  std::string line;
  while (std::getline(in, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (Trim(line.substr(0, colon)) == "model name") {
      const std::string value = Trim(line.substr(colon + 1));
      if (!value.empty()) return value;
    }
  }
  return kUnknown;
}

std::string NvidiaDriverFromProc(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const size_t at = line.find("Kernel Module");
    if (line.rfind("NVRM version:", 0) != 0 || at == std::string::npos) continue;
    // "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug ..." or, for
    // the open modules, "... Open Kernel Module for x86_64  580.159.04  Release Build ...":
    // the version is the first word made of digits and dots.
    std::istringstream words(line.substr(at + 13));
    std::string word;
    while (words >> word) {
      const bool version = std::isdigit(static_cast<unsigned char>(word[0])) &&
                           word.find_first_not_of("0123456789.") == std::string::npos &&
                           word.find('.') != std::string::npos;
      if (version) return word;
    }
    return "";
  }
  return "";
}

std::string CompilerVersion() {
#if defined(__clang__)
  return absl::StrCat("clang ", __clang_major__, ".", __clang_minor__, ".", __clang_patchlevel__);
#elif defined(__GNUC__)
  return absl::StrCat("gcc ", __VERSION__);
#else
  return kUnknown;
#endif
}

std::map<std::string, std::string> RunEnvironment(const std::string& device) {
  std::map<std::string, std::string> env;
  env["host"] = HostName();
  env["cpu_model"] = CpuModel();
  env["torch"] = TorchVersion();
  env["compiler"] = CompilerVersion();
  env["threads"] = absl::StrCat(at::get_num_threads());
  env["deterministic_algorithms"] =
      at::globalContext().deterministicAlgorithms() ? "true" : "false";
  env["cudnn_benchmark"] = at::globalContext().benchmarkCuDNN() ? "true" : "false";
  env["device"] = device;
  if (device == "cuda") AddCuda(env);
  return env;
}

std::map<std::string, std::string> WorkerCapabilities(int threads) {
  const bool cuda = CudaAvailable();
  std::map<std::string, std::string> caps = RunEnvironment(cuda ? "cuda" : "cpu");
  // A run's determinism switches are the plan's, not the worker's.
  caps.erase("deterministic_algorithms");
  caps.erase("cudnn_benchmark");
  caps["threads"] = absl::StrCat(threads);
  if (cuda) {
    int ordinal = 0;
    try {
      ordinal = static_cast<int>(at::detail::getCUDAHooks().current_device());
    } catch (...) {
    }
    const GpuInfo gpu = GpuFromDriver(ordinal);
    if (gpu.memory_mb > 0) caps["gpu_memory_mb"] = absl::StrCat(gpu.memory_mb);
    if (!gpu.uuid.empty()) caps["gpu_uuid"] = gpu.uuid;
  }
  return caps;
}

}  // namespace repro::engine
