// Localize with each run replayed on a worker of its own: two runs that trained on
// machines unlike each other (their recorded cpu_model differs) are replayed each on a
// worker like its own, stage by stage (epoch, trace, dump: common/localize_stages.h).
// The coordinator folds both sides' answers: the first differing batch from their hashes,
// the first differing op from their traces, and the size of the difference from the two
// dumps the workers uploaded as blobs. Only a side's worker may answer it or upload its
// dump, a silent side is handed on and fails the whole once its attempts are used up,
// and a side's error fails the whole, naming the side.
#include <cstring>

#include "common/op_records.h"
#include "common/sha256.h"
#include "coordinator/service_test_fixture.h"

namespace repro::service_testing {
namespace {

v1::WorkerInfo Machine(const std::string& name, const std::string& cpu) {
  v1::WorkerInfo w;
  w.set_name(name);
  w.set_host("host-" + name);
  w.set_device("cpu");
  w.set_threads(2);
  (*w.mutable_capabilities())["cpu_model"] = cpu;
  (*w.mutable_capabilities())["torch"] = "1.13.1";
  return w;
}

v1::TracedOp Op(const std::string& name, const std::string& input, const std::string& output) {
  v1::TracedOp op;
  op.set_name(name);
  op.set_module("fc");
  op.set_phase("backward");
  op.add_inputs(input);
  v1::TracedValue* out = op.add_outputs();
  out->set_hash(output);
  out->set_dtype("Float");
  out->add_shape(2);
  return op;
}

// Two float values as an op's one output tensor.
OpOutputs Outputs(float x, float y) {
  TensorValues t;
  t.dtype = "Float";
  t.shape = {2};
  t.bytes.resize(8);
  std::memcpy(t.bytes.data(), &x, 4);
  std::memcpy(t.bytes.data() + 4, &y, 4);
  return OpOutputs{"aten::mm", "", {t}};
}

class LocalizeApartTest : public ServiceTest {
 protected:
  // Run A on worker alpha (cpu_model Alpha), run B on beta (Beta); alike until epoch 1.
  void FinishOnTwoMachines() {
    ASSERT_TRUE(RegisterWorker(Machine("alpha", "Alpha")).ok());
    ASSERT_TRUE(RegisterWorker(Machine("beta", "Beta")).ok());
    for (const auto& [worker, cpu, last, label] :
         {std::tuple{"alpha", "Alpha", 'e', &run_a_}, std::tuple{"beta", "Beta", 'f', &run_b_}}) {
      const v1::RunAssignment run = LeaseRun(worker);
      *label = absl::StrCat(run.arm(), "#", run.index());
      v1::RunResult result = ValidResult(0.5);
      result.mutable_epochs(1)->set_weights_hash(std::string(32, last));
      (*result.mutable_environment())["device"] = "cpu";
      (*result.mutable_environment())["cpu_model"] = cpu;
      (*result.mutable_environment())["torch"] = "1.13.1";
      v1::CompleteResponse resp;
      ASSERT_TRUE(Complete(worker, run, result, &resp).ok());
    }
  }
  v1::LocalizeResponse Ask() {
    v1::LocalizeRequest req;
    req.set_run_a(run_a_);
    req.set_run_b(run_b_);
    v1::LocalizeResponse resp;
    const grpc::Status s = control_->Localize(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }
  // The side job `worker` leases; the test fails when it gets none.
  v1::LocalizeSideJob Side(const std::string& worker) {
    v1::LeaseResponse lease;
    EXPECT_TRUE(Lease(worker, &lease).ok());
    EXPECT_TRUE(lease.has_localize_side()) << worker << ": " << lease.DebugString();
    return lease.localize_side();
  }
  grpc::Status Answer(const std::string& worker, const v1::LocalizeSideJob& job,
                      const v1::SideReplay& replay, const std::string& error = "") {
    v1::CompleteLocalizeRequest req;
    req.set_worker(worker);
    req.set_job_id(job.job_id());
    req.set_job_secret(job.job_secret());
    req.set_side(job.side());
    req.set_stage(job.stage());
    *req.mutable_replay() = replay;
    req.set_error(error);
    v1::CompleteLocalizeResponse resp;
    return workers_->CompleteLocalize(Ctx().get(), req, &resp);
  }
  // Uploads `bytes` as the dump of `job`'s side; its SHA-256.
  std::string UploadDump(const std::string& worker, const v1::LocalizeSideJob& job,
                         const std::string& bytes, grpc::Status* status) {
    const std::string sha = Sha256Hex(bytes.data(), bytes.size());
    grpc::ClientContext ctx;
    v1::PutBlobResponse resp;
    auto writer = workers_->PutBlob(&ctx, &resp);
    v1::PutBlobRequest req;
    req.set_worker(worker);
    req.set_localize_job_id(job.job_id());
    req.set_localize_side(job.side());
    req.set_lease_secret(job.job_secret());
    req.set_sha256(sha);
    req.set_size(static_cast<int64_t>(bytes.size()));
    req.set_data(bytes);
    writer->Write(req);
    writer->WritesDone();
    *status = writer->Finish();
    return sha;
  }
  std::string run_a_, run_b_;
};

v1::SideReplay Hashes(std::initializer_list<const char*> hashes) {
  v1::SideReplay r;
  for (const char* h : hashes) r.add_batch_hashes(h);
  r.set_seconds(1.5);
  r.set_wall_seconds(2);
  return r;
}

TEST_F(LocalizeApartTest, EachSideReplaysOnAWorkerLikeItsOwnAndTheCoordinatorFoldsThem) {
  FinishOnTwoMachines();
  v1::LocalizeResponse asked = Ask();
  EXPECT_EQ(asked.state(), "pending");
  EXPECT_EQ(asked.stage(), "epoch");
  EXPECT_EQ(asked.waiting(), "");

  // Stage epoch: beta may replay only run B, alpha only run A.
  v1::LocalizeSideJob b = Side("beta");
  EXPECT_EQ(b.side(), "b");
  EXPECT_EQ(b.run(), run_b_);
  EXPECT_EQ(b.stage(), "epoch");
  EXPECT_EQ(b.epoch(), 1);
  EXPECT_EQ(b.trace_batch(), -1);
  EXPECT_EQ(b.spec().model_kind(), "noop");
  v1::LocalizeSideJob a = Side("alpha");
  EXPECT_EQ(a.side(), "a");
  EXPECT_EQ(a.run(), run_a_);
  EXPECT_EQ(Answer("beta", a, Hashes({"h0"})).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(Answer("beta", b, Hashes({"h0", "h1", "f"})).ok());
  asked = Ask();
  EXPECT_EQ(asked.state(), "running");
  EXPECT_EQ(asked.stage(), "epoch");  // until both have answered
  // Run A's replay ends with the weights A recorded ('e' * 32); b's does not.
  ASSERT_TRUE(Answer("alpha", a, Hashes({"h0", "h1x", std::string(32, 'e').c_str()})).ok());
  asked = Ask();
  EXPECT_EQ(asked.stage(), "trace");

  // Stage trace of batch 1: op 1 has equal inputs and different outputs.
  a = Side("alpha");
  b = Side("beta");
  EXPECT_EQ(a.stage(), "trace");
  EXPECT_EQ(a.trace_batch(), 1);
  EXPECT_EQ(b.trace_batch(), 1);
  v1::SideReplay ta = Hashes({"h0", "h1x", "h2"}), tb = Hashes({"h0", "h1", "f"});
  *ta.add_trace() = Op("aten::addmm", "x", "same");
  *tb.add_trace() = Op("aten::addmm", "x", "same");
  *ta.add_trace() = Op("aten::mm", "g", "one");
  *tb.add_trace() = Op("aten::mm", "g", "other");
  ta.set_traced_batch_end_hash("h1x");
  tb.set_traced_batch_end_hash("h1");
  ta.set_trace_bytes(640);
  ta.set_batch_seconds(0.01);
  ta.set_traced_batch_seconds(0.02);
  ASSERT_TRUE(Answer("alpha", a, ta).ok());
  ASSERT_TRUE(Answer("beta", b, tb).ok());
  asked = Ask();
  EXPECT_EQ(asked.stage(), "dump");

  // Stage dump of op 1: each side uploads its outputs; a dump not uploaded is refused.
  a = Side("alpha");
  b = Side("beta");
  EXPECT_EQ(a.dump_op(), 1);
  v1::SideReplay da = Hashes({"h0", "h1x", "h2"}), db = Hashes({"h0", "h1", "f"});
  da.set_dump_sha256(std::string(64, '0'));
  EXPECT_EQ(Answer("alpha", a, da).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::Status up;
  UploadDump("alpha", b, EncodeOpOutputs(Outputs(1.0f, 2.0f)), &up);
  EXPECT_EQ(up.error_code(), grpc::StatusCode::PERMISSION_DENIED) << "b's dump from alpha";
  da.set_dump_sha256(UploadDump("alpha", a, EncodeOpOutputs(Outputs(1.0f, 2.0f)), &up));
  ASSERT_TRUE(up.ok()) << up.error_message();
  db.set_dump_sha256(
      UploadDump("beta", b, EncodeOpOutputs(Outputs(1.0f, std::nextafter(2.0f, 3.0f))), &up));
  ASSERT_TRUE(up.ok()) << up.error_message();
  ASSERT_TRUE(Answer("alpha", a, da).ok());
  ASSERT_TRUE(Answer("beta", b, db).ok());

  asked = Ask();
  ASSERT_EQ(asked.state(), "done") << asked.error();
  EXPECT_EQ(asked.stage(), "done");
  const v1::Localization& r = asked.result();
  EXPECT_EQ(r.epoch(), 1);
  EXPECT_EQ(r.batches(), 3);
  EXPECT_EQ(r.batch(), 1);
  EXPECT_EQ(r.a_reproduced(), 1);
  EXPECT_EQ(r.b_reproduced(), 0);
  EXPECT_EQ(r.op_kind(), "outputs");
  EXPECT_EQ(r.op_index(), 1);
  EXPECT_EQ(r.op_name(), "aten::mm");
  EXPECT_EQ(r.op_module(), "fc");
  EXPECT_EQ(r.op_phase(), "backward");
  EXPECT_TRUE(r.inputs_equal());
  EXPECT_EQ(r.values(), 2);
  EXPECT_EQ(r.differing_values(), 1);
  EXPECT_EQ(r.max_ulps(), 1u);
  EXPECT_FLOAT_EQ(r.max_abs(), std::nextafter(2.0f, 3.0f) - 2.0f);
  EXPECT_TRUE(r.trace_changed_nothing());
  EXPECT_EQ(r.trace_ops(), 2);
  EXPECT_EQ(r.trace_bytes(), 640);
  EXPECT_DOUBLE_EQ(r.replay_seconds(), 3);    // the two sides' epochs
  EXPECT_DOUBLE_EQ(r.seconds(), 12);          // three stages, two sides, 2 s each
  EXPECT_EQ(r.worker(), "alpha");
  EXPECT_EQ(r.worker_b(), "beta");
  // Done: nothing more is handed out, and a late answer is refused.
  v1::LeaseResponse lease;
  ASSERT_TRUE(Lease("alpha", &lease).ok());
  EXPECT_FALSE(lease.has_localize_side());
  EXPECT_FALSE(Answer("alpha", a, da).ok());
}

// Every run is done, but a worker that may replay a side is not told the experiment has
// finished while the localization is open: each stage needs both sides' workers again.
TEST_F(LocalizeApartTest, WorkersASideNeedsStayUntilItIsAnswered) {
  FinishOnTwoMachines();
  ASSERT_TRUE(RegisterWorker(Machine("gamma", "Gamma")).ok());
  v1::LeaseResponse lease;
  ASSERT_TRUE(Lease("beta", &lease).ok());
  EXPECT_TRUE(lease.finished()) << "no localization asked yet: " << lease.DebugString();
  Ask();
  const v1::LocalizeSideJob b = Side("beta");
  ASSERT_TRUE(Answer("beta", b, Hashes({"h0"})).ok());
  ASSERT_TRUE(Lease("beta", &lease).ok());
  EXPECT_GT(lease.retry_after_ms(), 0) << lease.DebugString();
  ASSERT_TRUE(Lease("gamma", &lease).ok());
  EXPECT_TRUE(lease.finished()) << "gamma replays neither run: " << lease.DebugString();
  const v1::LocalizeSideJob a = Side("alpha");
  ASSERT_TRUE(Answer("alpha", a, Hashes({"h0"})).ok());  // the replays do not part: done
  EXPECT_EQ(Ask().state(), "done");
  ASSERT_TRUE(Lease("beta", &lease).ok());
  EXPECT_TRUE(lease.finished()) << lease.DebugString();
}

// Runs of one machine replay on one worker like it; while only a worker of another make
// is here, the request says which run it may not replay and why.
TEST_F(LocalizeApartTest, RunsOfOneMachineWaitForAWorkerLikeIt) {
  ASSERT_TRUE(RegisterWorker(Machine("alpha", "Alpha")).ok());
  for (std::string* label : {&run_a_, &run_b_}) {
    const v1::RunAssignment run = LeaseRun("alpha");
    *label = absl::StrCat(run.arm(), "#", run.index());
    v1::RunResult result = ValidResult(0.5);
    result.mutable_epochs(1)->set_weights_hash(std::string(32, label == &run_a_ ? 'e' : 'f'));
    (*result.mutable_environment())["cpu_model"] = "Alpha";
    v1::CompleteResponse resp;
    ASSERT_TRUE(Complete("alpha", run, result, &resp).ok());
  }
  v1::LeaveRequest leave;
  leave.set_worker("alpha");
  leave.set_reason("drained");
  v1::LeaveResponse left;
  ASSERT_TRUE(workers_->Leave(Ctx().get(), leave, &left).ok());
  ASSERT_TRUE(RegisterWorker(Machine("beta", "Beta")).ok());
  v1::LocalizeResponse asked = Ask();
  EXPECT_EQ(asked.state(), "pending");
  EXPECT_EQ(asked.stage(), "");  // one machine: one worker replays both
  EXPECT_EQ(asked.waiting(), absl::StrCat("no worker here may replay both runs (one of its arm, on "
                                          "a machine like the one the run trained on): beta: ",
                                          run_a_, ": its cpu_model is \"Beta\", the run's was "
                                          "\"Alpha\""));
  v1::LeaseResponse lease;
  ASSERT_TRUE(Lease("beta", &lease).ok());
  EXPECT_FALSE(lease.has_localize()) << lease.DebugString();
  ASSERT_TRUE(RegisterWorker(Machine("alpha", "Alpha")).ok());
  ASSERT_TRUE(Lease("alpha", &lease).ok());
  EXPECT_TRUE(lease.has_localize()) << lease.DebugString();
}

TEST_F(LocalizeApartTest, ASilentSideIsHandedOnAndFailsTheWholeWhenItsAttemptsAreUsedUp) {
  FinishOnTwoMachines();
  Ask();
  for (int attempt = 1; attempt <= RunStore::kLocalizeAttempts; ++attempt) {
    const v1::LocalizeSideJob a = Side("alpha");
    EXPECT_EQ(a.side(), "a") << "attempt " << attempt;
    // Heartbeats hold it for as long as they come.
    AdvanceClock(kLeaseTtlMs - 1);
    v1::HeartbeatRequest beat;
    beat.set_worker("alpha");
    beat.set_localize_job_id(a.job_id());
    beat.set_localize_side("a");
    beat.set_job_secret(a.job_secret());
    v1::HeartbeatResponse alive;
    ASSERT_TRUE(workers_->Heartbeat(Ctx().get(), beat, &alive).ok());
    EXPECT_TRUE(alive.lease_valid());
    beat.set_localize_side("b");
    EXPECT_EQ(workers_->Heartbeat(Ctx().get(), beat, &alive).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
    AdvanceClock(kLeaseTtlMs + 1);  // then silence
  }
  v1::LeaseResponse lease;
  ASSERT_TRUE(Lease("alpha", &lease).ok());
  EXPECT_FALSE(lease.has_localize_side());
  const v1::LocalizeResponse asked = Ask();
  EXPECT_EQ(asked.state(), "failed");
  EXPECT_EQ(asked.error(), "the workers replaying side a stopped answering 3 times; the last was alpha");
}

TEST_F(LocalizeApartTest, ASidesErrorFailsTheWholeNamingTheSide) {
  FinishOnTwoMachines();
  Ask();
  const v1::LocalizeSideJob b = Side("beta");
  ASSERT_TRUE(Answer("beta", b, v1::SideReplay(), "out of memory").ok());
  const v1::LocalizeResponse asked = Ask();
  EXPECT_EQ(asked.state(), "failed");
  EXPECT_EQ(asked.error(), absl::StrCat(run_b_, " (side b, stage epoch) on worker beta: out of memory"));
  v1::LeaseResponse lease;
  ASSERT_TRUE(Lease("alpha", &lease).ok());
  EXPECT_FALSE(lease.has_localize_side()) << "side a of a failed localization";
}

}  // namespace
}  // namespace repro::service_testing
