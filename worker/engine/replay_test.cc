// Tests of replaying an epoch batch by batch and of op traces (replay.h, op_trace.h), on
// a few hundred Fashion-MNIST images and small CIFAR-format files: a replay ends where
// TrainRun's epoch ends, from the start and from a checkpoint; replays and traces of the
// same spec are identical and the tracer changes no weight; and the same spec on 1 and 2
// intra-op threads parts at a batch whose trace names the op where it starts, which the
// test checks by rerunning that op alone.
#include "worker/engine/replay.h"

#include <ATen/Parallel.h>

#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "data/data_test_support.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/engine/engine.h"
#include "worker/engine/fingerprint.h"
#include "worker/engine/op_trace.h"

namespace repro::engine {
namespace {

using ::testing::HasSubstr;

RunSpec Small() {
  RunSpec spec;
  spec.dataset_path = REPRO_FASHION_MNIST;
  spec.train_limit = 256;
  spec.test_limit = 100;
  spec.batch_size = 64;  // 4 batches per epoch
  spec.epochs = 3;
  spec.init_seed = 1;
  spec.shuffle_seed = 2;
  spec.augment_seed = 3;
  spec.threads = 1;
  return spec;
}

ReplayResult MustReplay(const RunSpec& spec, const ReplayRequest& request) {
  auto r = ReplayEpoch(spec, request);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *std::move(r) : ReplayResult{};
}

ReplayRequest Traced(int epoch, int64_t batch, std::optional<int64_t> dump_op = {}) {
  ReplayRequest request;
  request.epoch = epoch;
  request.trace_batch = batch;
  request.dump_op = dump_op;
  return request;
}

// ---------------------------------------------------------------- batch hashes

// With augmentation and the plateau policy in play, so that a replay must rebuild the
// learning rate and the draws exactly as the run had them.
TEST(ReplayTest, LastBatchHashIsTheRunsEpochHashFromTheStartAndFromACheckpoint) {
  RunSpec spec = Small();
  spec.augment = true;
  spec.plateau = true;
  spec.plateau_patience = 0;
  spec.checkpoint_every = 1;
  std::vector<std::string> checkpoints;
  Callbacks callbacks;
  callbacks.on_checkpoint = [&](int, const std::string& state) { checkpoints.push_back(state); };
  auto run = TrainRun(spec, callbacks);
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(checkpoints.size(), 2u);

  ReplayRequest request;
  const ReplayResult first = MustReplay(spec, request);
  EXPECT_EQ(first.start_hash, run->initial_hash);
  ASSERT_EQ(first.batch_hashes.size(), 4u);
  EXPECT_EQ(first.batch_hashes.back(), run->epochs[0].weights_hash);

  request.epoch = 2;
  const ReplayResult from_start = MustReplay(spec, request);
  EXPECT_EQ(from_start.start_hash, run->epochs[1].weights_hash);
  ASSERT_EQ(from_start.batch_hashes.size(), 4u);
  EXPECT_EQ(from_start.batch_hashes.back(), run->epochs[2].weights_hash);

  request.checkpoint = checkpoints[1];  // after epoch 1
  const ReplayResult resumed = MustReplay(spec, request);
  EXPECT_EQ(resumed.start_hash, run->epochs[1].weights_hash);
  EXPECT_EQ(resumed.batch_hashes, from_start.batch_hashes);

  request.epoch = 1;  // a checkpoint from after the epoch is no start for it
  auto late = ReplayEpoch(spec, request);
  ASSERT_EQ(late.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(late.status().message(), HasSubstr("from after epoch 1"));
}

TEST(ReplayTest, RequestsThatDoNotFitTheRunAreRejected) {
  const RunSpec spec = Small();
  ReplayRequest request;
  request.epoch = 3;
  EXPECT_THAT(ReplayEpoch(spec, request).status().message(), HasSubstr("no epoch 3"));
  EXPECT_THAT(ReplayEpoch(spec, Traced(0, 4)).status().message(), HasSubstr("no batch 4"));
  request.epoch = 0;
  request.dump_op = 1;
  EXPECT_THAT(ReplayEpoch(spec, request).status().message(), HasSubstr("needs a traced batch"));
  request.dump_op.reset();
  request.end_after_trace = true;
  EXPECT_THAT(ReplayEpoch(spec, request).status().message(), HasSubstr("needs a traced batch"));
  request.end_after_trace = false;
  request.checkpoint = "not a checkpoint";
  EXPECT_THAT(ReplayEpoch(spec, request).status().message(), HasSubstr("not a repro checkpoint"));
}

TEST(ReplayTest, FirstDifferentBatchIsTheFirstMismatchOrWhereOneListEnds) {
  EXPECT_EQ(FirstDifferentBatch({"a", "b"}, {"a", "b"}), std::nullopt);
  EXPECT_EQ(FirstDifferentBatch({"a", "b", "c"}, {"a", "x", "c"}), 1);
  EXPECT_EQ(FirstDifferentBatch({"a", "b"}, {"a"}), 1);
  EXPECT_EQ(FirstDifferentBatch({}, {"a"}), 0);
}

// ---------------------------------------------------------------- traces

std::set<std::string> Names(const std::vector<OpRecord>& trace, OpPhase phase) {
  std::set<std::string> names;
  for (const OpRecord& r : trace) {
    if (r.phase == phase) names.insert(r.name);
  }
  return names;
}

std::string ModuleOfFirst(const std::vector<OpRecord>& trace, const std::string& name,
                          OpPhase phase) {
  for (const OpRecord& r : trace) {
    if (r.name == name && r.phase == phase) return r.module;
  }
  return "(none)";
}

TEST(ReplayTest, TwoReplaysGiveIdenticalHashesAndTracesAndTheTracerChangesNothing) {
  const RunSpec spec = Small();
  const ReplayResult a = MustReplay(spec, Traced(1, 2));
  const ReplayResult b = MustReplay(spec, Traced(1, 2));
  ASSERT_EQ(a.batch_hashes.size(), 4u);
  EXPECT_EQ(a.batch_hashes, b.batch_hashes);
  EXPECT_EQ(CompareTraces(a.trace, b.trace).kind, OpDivergence::Kind::kNone);
  EXPECT_EQ(a.trace.size(), b.trace.size());
  EXPECT_TRUE(TraceChangedNothing(a, 2)) << a.traced_batch_end_hash;
  EXPECT_TRUE(TraceChangedNothing(b, 2));
  EXPECT_GT(a.trace_bytes, 0);
  EXPECT_GT(a.traced_batch_seconds, 0);
  // Ended after the traced batch, the replay traces the same and hashes up to it.
  ReplayRequest shorter = Traced(1, 2);
  shorter.end_after_trace = true;
  const ReplayResult c = MustReplay(spec, shorter);
  EXPECT_EQ(c.batch_hashes,
            std::vector<std::string>(a.batch_hashes.begin(), a.batch_hashes.begin() + 3));
  EXPECT_EQ(CompareTraces(a.trace, c.trace).kind, OpDivergence::Kind::kNone);
  EXPECT_EQ(c.traced_batch_end_hash, a.traced_batch_end_hash);
  EXPECT_TRUE(TraceChangedNothing(c, 2));

  // Every phase, and the modules found from the parameters.
  EXPECT_THAT(Names(a.trace, OpPhase::kForward),
              ::testing::IsSupersetOf({"aten::conv2d", "aten::relu", "aten::max_pool2d",
                                       "aten::addmm", "aten::cross_entropy_loss"}));
  EXPECT_THAT(Names(a.trace, OpPhase::kBackward),
              ::testing::Contains("aten::convolution_backward"));
  EXPECT_FALSE(Names(a.trace, OpPhase::kUpdate).empty());
  EXPECT_EQ(ModuleOfFirst(a.trace, "aten::conv2d", OpPhase::kForward), "conv1");
  EXPECT_EQ(ModuleOfFirst(a.trace, "aten::addmm", OpPhase::kForward), "fc1");
  EXPECT_EQ(ModuleOfFirst(a.trace, "aten::convolution_backward", OpPhase::kBackward), "conv2");
  std::printf("trace of a small-cnn batch of 64: %zu ops, %lld bytes; step %.4f s "
              "traced, %.4f s untraced; epoch replay %.3f s\n",
              a.trace.size(), static_cast<long long>(a.trace_bytes),
              a.traced_batch_seconds, a.batch_seconds, a.seconds);
}

// The traced step is stepped again untraced from the state before it, which must be put
// back exactly, also before the run's very first step (no optimizer state, no gradients
// yet) and at the epoch's last batch.
TEST(ReplayTest, TracingABatchChangesNoBatchHash) {
  const RunSpec spec = Small();
  const ReplayResult plain = MustReplay(spec, ReplayRequest{});
  for (const int64_t batch : {0, 3}) {
    const ReplayResult traced = MustReplay(spec, Traced(0, batch));
    EXPECT_EQ(traced.batch_hashes, plain.batch_hashes) << "batch " << batch;
    EXPECT_TRUE(TraceChangedNothing(traced, batch)) << "batch " << batch;
  }
}

// ResNet20v1 on small CIFAR-format files: the module paths of a nested model, and
// batch norm, whose running statistics (buffers) the step updates too.
class ReplayResNetTest : public data::test_support::CifarTest {};

TEST_F(ReplayResNetTest, TraceNamesNestedModulesAndChangesNothing) {
  WriteDataset(8, 8);  // 40 training images: 5 batches of 8
  RunSpec spec;
  spec.dataset_kind = "cifar10";
  spec.dataset_path = dir_.string();
  spec.model_kind = "resnet";
  spec.model_version = 1;
  spec.model_depth = 20;
  spec.l2 = 1e-4;
  spec.batch_size = 8;
  spec.threads = 1;
  const ReplayResult a = MustReplay(spec, Traced(0, 1));
  const ReplayResult b = MustReplay(spec, Traced(0, 1));
  ASSERT_EQ(a.batch_hashes.size(), 5u);
  EXPECT_TRUE(TraceChangedNothing(a, 1));
  EXPECT_EQ(CompareTraces(a.trace, b.trace).kind, OpDivergence::Kind::kNone);
  std::set<std::string> modules;
  for (const OpRecord& r : a.trace) modules.insert(r.module);
  EXPECT_THAT(modules, ::testing::IsSupersetOf({"conv1", "bn1", "stage1.block0.conv1",
                                                "stage1.block0.shortcut", "stage2.block2.bn2",
                                                "fc"}));
  EXPECT_EQ(ModuleOfFirst(a.trace, "aten::batch_norm", OpPhase::kForward), "bn1");
  std::printf("trace of a ResNet20v1 batch of 8: %zu ops, %lld bytes; step %.4f s traced, "
              "%.4f s untraced\n",
              a.trace.size(), static_cast<long long>(a.trace_bytes), a.traced_batch_seconds,
              a.batch_seconds);
}

// ---------------------------------------------------------------- 1 against 2 threads

// The dump is the traced op: its tensors hash as the record says.
void ExpectDumpOf(const OpDump& dump, const OpRecord& record) {
  EXPECT_EQ(dump.name, record.name);
  ASSERT_EQ(dump.inputs.size(), record.inputs.size());
  for (size_t i = 0; i < dump.inputs.size(); ++i) {
    const c10::IValue& in = dump.inputs[i];
    if (in.isTensor() && in.toTensor().defined()) {
      EXPECT_EQ(HashTensor(in.toTensor()), record.inputs[i]) << "input " << i;
    }
  }
  ASSERT_EQ(dump.outputs.size(), record.outputs.size());  // no list outputs here
  for (size_t i = 0; i < dump.outputs.size(); ++i) {
    const at::Tensor out = dump.outputs[i].toTensor();
    EXPECT_EQ(out.defined() ? HashTensor(out) : "", record.outputs[i].hash) << "output " << i;
  }
}

// The values of `a`'s and `b`'s outputs that differ; -1 when they cannot be compared.
int64_t Differing(const OpDump& a, const OpDump& b) {
  auto difference = CompareOutputs(a, b);
  EXPECT_TRUE(difference.ok()) << difference.status();
  return difference.ok() ? difference->differing : -1;
}

// `dump` with its outputs from running the op again alone on `threads` threads.
OpDump Rerun(const OpDump& dump, int threads) {
  at::set_num_threads(threads);
  auto outputs = RerunOp(dump);
  EXPECT_TRUE(outputs.ok()) << outputs.status();
  OpDump rerun = dump;
  rerun.outputs = outputs.ok() ? *std::move(outputs) : std::vector<c10::IValue>{};
  return rerun;
}

// The same spec on 1 and on 2 intra-op threads parts on Debian's LibTorch 1.13, with these
// seeds at batch 1: batch 0's gradients of conv1 already differ in their last bits, but
// Adam's first step, lr * g / (|g| + eps), rounds such differences away (with other seeds
// they part at batch 0). The trace of the batch where the hashes part names the first
// op whose outputs differ; the test then
// checks, from dumps of that op on both sides, that it really is where the difference
// arises: every op before it has equal outputs, it got equal inputs, and run again alone
// on those inputs it gives each side's outputs by the thread count alone.
TEST(ReplayTest, OneAgainstTwoThreadsPartAtAnOpThatIsTheSource) {
  RunSpec one = Small();
  one.epochs = 1;
  RunSpec two = one;
  two.threads = 2;
  const ReplayResult a = MustReplay(one, ReplayRequest{});
  const ReplayResult b = MustReplay(two, ReplayRequest{});
  EXPECT_EQ(a.start_hash, b.start_hash);
  const std::optional<int64_t> batch = FirstDifferentBatch(a.batch_hashes, b.batch_hashes);
  ASSERT_TRUE(batch.has_value()) << "1 and 2 threads gave the same weights";

  const ReplayResult ta = MustReplay(one, Traced(0, *batch));
  const ReplayResult tb = MustReplay(two, Traced(0, *batch));
  EXPECT_TRUE(TraceChangedNothing(ta, *batch));
  EXPECT_TRUE(TraceChangedNothing(tb, *batch));
  const OpDivergence d = CompareTraces(ta.trace, tb.trace);
  ASSERT_EQ(d.kind, OpDivergence::Kind::kOutputs) << d.name << " / " << d.name_b;
  for (int64_t i = 0; i < d.index; ++i) {
    ASSERT_EQ(ta.trace[i].outputs, tb.trace[i].outputs) << "op " << i << " " << ta.trace[i].name;
  }
  EXPECT_TRUE(d.inputs_equal);

  const ReplayResult da = MustReplay(one, Traced(0, *batch, d.index));
  const ReplayResult db = MustReplay(two, Traced(0, *batch, d.index));
  ASSERT_TRUE(da.dump.has_value() && db.dump.has_value());
  ExpectDumpOf(*da.dump, ta.trace[d.index]);
  ExpectDumpOf(*db.dump, tb.trace[d.index]);
  auto difference = CompareOutputs(*da.dump, *db.dump);
  ASSERT_TRUE(difference.ok()) << difference.status();
  EXPECT_GT(difference->differing, 0);
  EXPECT_GT(difference->max_ulps, 0u);

  // The op alone, on side a's inputs (which are b's): 1 thread gives a's outputs, 2 b's.
  const OpDump on_one = Rerun(*da.dump, 1), on_two = Rerun(*da.dump, 2);
  at::set_num_threads(1);
  EXPECT_EQ(Differing(on_one, *da.dump), 0);
  EXPECT_EQ(Differing(on_two, *db.dump), 0);
  EXPECT_GT(Differing(on_one, on_two), 0);
  std::printf("1 vs 2 threads: batch %lld, op %lld of %zu: %s in %s (%s), inputs %s, "
              "%lld of %lld values differ, max %.3g (%llu ulps)\n",
              static_cast<long long>(*batch), static_cast<long long>(d.index), ta.trace.size(),
              d.name.c_str(), d.module.c_str(), PhaseName(d.phase),
              d.inputs_equal ? "equal" : "different",
              static_cast<long long>(difference->differing),
              static_cast<long long>(difference->elements), difference->max_abs,
              static_cast<unsigned long long>(difference->max_ulps));
}

}  // namespace
}  // namespace repro::engine
