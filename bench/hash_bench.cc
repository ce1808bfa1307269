// hash_bench: how fast fingerprints hash (common/hash.h: XXH3-128) against what the
// machine's memory can deliver, side by side in one run (Google Benchmark).
//
//   HashBytes/N        repro::HashBytes over N bytes (a tensor's bytes)
//   ReadStream/N       the bandwidth ceiling for a hash: summing N bytes as 64-bit words
//                      (a read-only stream, as hashing is), vectorized by the compiler
//   Memcpy/N           memcpy of N bytes (bytes_per_second counts the N bytes copied;
//                      the memory moved is twice that: read and write)
//   BatchDigest/N      the per-batch fingerprint: XXH3-128 of N int64 sample indices
//   HashSequence/N     an epoch's digest from N batch digests
//
// Sizes: 64 KiB (fits L2), 4 MiB (about ResNet29v2's weights, in the last-level cache
// or not), 256 MiB (memory bound). bytes_per_second is the figure to compare.
//
//   build-bench/bench/hash_bench --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "common/hash.h"
#include "worker/engine/shuffle.h"

namespace {

std::vector<unsigned char> Buffer(size_t size) {
  std::vector<unsigned char> b(size);
  for (size_t i = 0; i < size; ++i) b[i] = static_cast<unsigned char>(i * 131 + 7);
  return b;
}

void HashBytes(benchmark::State& state) {
  const auto data = Buffer(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    std::string digest = repro::HashBytes(data.data(), data.size());
    benchmark::DoNotOptimize(digest);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

void ReadStream(benchmark::State& state) {
  const auto data = Buffer(static_cast<size_t>(state.range(0)));
  const size_t words = data.size() / sizeof(uint64_t);
  std::vector<uint64_t> w(words);
  std::memcpy(w.data(), data.data(), words * sizeof(uint64_t));
  for (auto _ : state) {
    // Four independent sums so the loop is bound by loads, not by one add chain.
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= words; i += 4) {
      s0 += w[i];
      s1 += w[i + 1];
      s2 += w[i + 2];
      s3 += w[i + 3];
    }
    benchmark::DoNotOptimize(s0 + s1 + s2 + s3);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

void Memcpy(benchmark::State& state) {
  const auto src = Buffer(static_cast<size_t>(state.range(0)));
  std::vector<unsigned char> dst(src.size());
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), src.size());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

void BatchDigest(benchmark::State& state) {
  std::vector<int64_t> indices(static_cast<size_t>(state.range(0)));
  std::iota(indices.begin(), indices.end(), 1000);
  for (auto _ : state) {
    std::string digest = repro::engine::BatchDigest(indices.data(), indices.size());
    benchmark::DoNotOptimize(digest);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0) * 8);
}

void HashSequence(benchmark::State& state) {
  std::vector<std::string> digests(static_cast<size_t>(state.range(0)),
                                   "0123456789abcdef0123456789abcdef");
  for (auto _ : state) {
    std::string digest = repro::HashSequence(digests);
    benchmark::DoNotOptimize(digest);
  }
}

constexpr int64_t kL2 = 64 << 10, kModel = 4 << 20, kMemory = 256 << 20;
BENCHMARK(HashBytes)->Arg(kL2)->Arg(kModel)->Arg(kMemory);
BENCHMARK(ReadStream)->Arg(kL2)->Arg(kModel)->Arg(kMemory);
BENCHMARK(Memcpy)->Arg(kL2)->Arg(kModel)->Arg(kMemory);
BENCHMARK(BatchDigest)->Arg(32)->Arg(128);
BENCHMARK(HashSequence)->Arg(469)->Arg(1563);

}  // namespace

BENCHMARK_MAIN();
