// The sizes of repro.v1 messages that the coordinator and its clients agree on.
//
// Thread safety: constants.
#ifndef REPRO_PROTO_LIMITS_H_
#define REPRO_PROTO_LIMITS_H_

#include <cstddef>

namespace repro {

// The ceiling of a StatusResponse (and WorkersResponse): reproctl accepts answers up to
// it, the coordinator refuses to send a larger one, naming it. Some 100,000 workers and
// running runs fit; gRPC's default of 4 MiB held about 6,000.
inline constexpr size_t kMaxStatusMessageBytes = 64 << 20;

}  // namespace repro

#endif  // REPRO_PROTO_LIMITS_H_
