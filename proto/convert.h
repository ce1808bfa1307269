// Conversions between the wire messages (repro.v1) and the plain records in
// common/records.h, so the engine and the store never see protobuf types.
//
// Thread safety: pure functions.
#ifndef REPRO_PROTO_CONVERT_H_
#define REPRO_PROTO_CONVERT_H_

#include "common/records.h"
#include "repro/v1/repro.pb.h"

namespace repro {

v1::Epoch ToProto(const EpochRecord& epoch);
EpochRecord FromProto(const v1::Epoch& epoch);
v1::RunResult ToProto(const RunResult& result);
RunResult FromProto(const v1::RunResult& result);

}  // namespace repro

#endif  // REPRO_PROTO_CONVERT_H_
