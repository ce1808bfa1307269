// Conversions between the wire messages (repro.v1) and the plain records in
// common/records.h and common/experiment_view.h, so the engine, the store and the
// analyses never see protobuf types. Each record crosses the wire through this file only.
//
// Thread safety: pure functions.
#ifndef REPRO_PROTO_CONVERT_H_
#define REPRO_PROTO_CONVERT_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/experiment_view.h"
#include "common/localize_stages.h"
#include "common/records.h"
#include "common/run_spec.h"
#include "repro/v1/repro.pb.h"

namespace repro {

// Every field of RunSpec but those its header marks "set by the worker".
v1::RunSpec ToProto(const RunSpec& spec);
RunSpec FromProto(const v1::RunSpec& spec);
v1::Epoch ToProto(const EpochRecord& epoch);
EpochRecord FromProto(const v1::Epoch& epoch);
v1::RunResult ToProto(const RunResult& result);
RunResult FromProto(const v1::RunResult& result);
v1::WorkerStatus ToProto(const WorkerRecord& worker);
WorkerRecord FromProto(const v1::WorkerStatus& worker);
// What a worker registered, as the store keeps it; last_seen_ms, current_run and gone
// are the coordinator's to set.
WorkerRecord FromProto(const v1::WorkerInfo& worker);
v1::Localization ToProto(const LocalizationResult& localization);
LocalizationResult FromProto(const v1::Localization& localization);
// A side's replay of a stage; the dump crosses as a blob (PutBlob), named by its SHA-256
// here, so FromProto leaves `dump` empty. INVALID_ARGUMENT for a phase that is none.
v1::SideReplay ToProto(const SideReplay& replay, const std::string& dump_sha256);
absl::StatusOr<SideReplay> FromProto(const v1::SideReplay& replay);
v1::StatusResponse ToProto(const ExperimentStatus& status);
ExperimentStatus FromProto(const v1::StatusResponse& status);

// A request of `worker` about its lease of `run` (worker, run_id, lease_id and the
// lease's secret set): every worker call but Register and Lease.
template <typename Request>
Request AboutLease(const std::string& worker, const v1::RunAssignment& run) {
  Request req;
  req.set_worker(worker);
  req.set_run_id(run.run_id());
  req.set_lease_id(run.lease_id());
  req.set_lease_secret(run.lease_secret());
  return req;
}

}  // namespace repro

#endif  // REPRO_PROTO_CONVERT_H_
