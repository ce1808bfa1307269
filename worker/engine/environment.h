// Where and how a run trained, for RunResult::environment: the host, its CPU and GPU,
// the software (LibTorch, CUDA, cuDNN, driver, compiler) and the determinism settings
// in force. Recorded so that two runs that differ can be told apart by machine.
//
// Keys (values are text): host, cpu_model, torch, compiler, threads (LibTorch's
// intra-op thread count in force), deterministic_algorithms and cudnn_benchmark
// ("true"/"false", as LibTorch has them set), device ("cpu"/"cuda"); and when the
// device is cuda: gpu_name (from the CUDA driver), driver (the NVIDIA driver version),
// cuda (the CUDA runtime LibTorch was built with), cudnn (the cuDNN version LibTorch
// loaded, or "none"). A value that cannot be found is "unknown"; nothing here fails a run.
//
// Thread safety: reads process-wide LibTorch settings; call from the run's thread.
#ifndef REPRO_WORKER_ENGINE_ENVIRONMENT_H_
#define REPRO_WORKER_ENGINE_ENVIRONMENT_H_

#include <map>
#include <string>

namespace repro::engine {

std::map<std::string, std::string> RunEnvironment(const std::string& device);

// What this worker can run, as it registers it for placement (common/placement.h): the
// environment's host, cpu_model, torch, compiler and device ("cuda" when LibTorch sees a
// GPU), `threads` (its --threads), and with CUDA gpu_name, gpu_memory_mb and gpu_uuid (of
// the current device, from the driver), driver, cuda and cudnn. No determinism switch:
// those are the plan's.
std::map<std::string, std::string> WorkerCapabilities(int threads);

// The pieces that need no LibTorch, exposed for tests.
std::string HostName();
// The first "model name" line of a /proc/cpuinfo-format file; "unknown" if none.
std::string CpuModel(const std::string& cpuinfo_path = "/proc/cpuinfo");
// The version in "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  ..."; empty
// if the file is absent or has no such line.
std::string NvidiaDriverFromProc(const std::string& path = "/proc/driver/nvidia/version");
// "gcc 12.2.0", "clang 14.0.6", ...: the compiler that built the engine.
std::string CompilerVersion();

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_ENVIRONMENT_H_
