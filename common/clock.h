// Time as the coordinator and its tools see it: milliseconds since the Unix epoch, read
// through an injected Clock so that lease expiry, heartbeats and "seen 3s ago" are
// tested with a clock the test moves, never by sleeping (ARCHITECTURE.md, "Seams").
//
// Thread safety: SystemClockMs is thread-safe; a Clock is as safe as what it wraps.
#ifndef REPRO_COMMON_CLOCK_H_
#define REPRO_COMMON_CLOCK_H_

#include <chrono>
#include <cstdint>
#include <functional>

namespace repro {

// Milliseconds since the Unix epoch.
using Clock = std::function<int64_t()>;

inline int64_t SystemClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace repro

#endif  // REPRO_COMMON_CLOCK_H_
