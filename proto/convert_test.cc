// The conversions between plain records and repro.v1 messages: every field crosses the
// wire and comes back, so a field added on one side only fails here.
#include "proto/convert.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>

#include "common/plan.h"
#include "common/run_spec.h"

namespace repro {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::util::MessageDifferencer;

// How many members an aggregate has: the largest N for which T{any x N} compiles.
struct AnyField {
  template <typename T>
  operator T() const;  // never defined: only used in unevaluated contexts
};
template <typename T, typename... Fields>
constexpr auto BraceConstructible(int) -> decltype(T{Fields{}...}, true) {
  return true;
}
template <typename T, typename... Fields>
constexpr bool BraceConstructible(long) {
  return false;
}
template <typename T, typename... Fields>
constexpr size_t FieldCount() {
  if constexpr (BraceConstructible<T, Fields..., AnyField>(0)) {
    return FieldCount<T, Fields..., AnyField>();
  } else {
    return sizeof...(Fields);
  }
}

// RunSpec's members: 36 on the wire, 3 set by the worker (export_dir, resume_state,
// fingerprints). A new member fails this until it is in repro.v1's RunSpec, in
// proto/convert.cc both ways and in RunSpecFor; then raise the counts.
constexpr int kWorkerOnlyFields = 3;
static_assert(FieldCount<RunSpec>() == 36 + kWorkerOnlyFields,
              "RunSpec gained or lost a field: carry it in repro.v1.RunSpec and "
              "proto/convert.cc, then update this count");

// Sets every field of a message to a value that is not its default, distinct per field.
void FillEveryField(Message* m) {
  const auto* d = m->GetDescriptor();
  const auto* r = m->GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->is_repeated()) {  // one element, itself filled
      ASSERT_EQ(f->cpp_type(), FieldDescriptor::CPPTYPE_MESSAGE) << f->name();
      FillEveryField(r->AddMessage(m, f));
      continue;
    }
    const int v = 100 + f->number();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: r->SetInt32(m, f, v); break;
      case FieldDescriptor::CPPTYPE_INT64: r->SetInt64(m, f, v); break;
      case FieldDescriptor::CPPTYPE_UINT64: r->SetUInt64(m, f, (uint64_t{1} << 63) + v); break;
      case FieldDescriptor::CPPTYPE_DOUBLE: r->SetDouble(m, f, v + 0.25); break;
      case FieldDescriptor::CPPTYPE_BOOL: r->SetBool(m, f, true); break;
      case FieldDescriptor::CPPTYPE_STRING: r->SetString(m, f, "value-" + f->name()); break;
      default: FAIL() << "unexpected type of " << f->name();
    }
  }
}

TEST(ConvertTest, RunSpecEveryWireFieldSurvivesTheRoundTrip) {
  v1::RunSpec wire;
  FillEveryField(&wire);
  ASSERT_EQ(wire.GetDescriptor()->field_count(), 36)
      << "repro.v1.RunSpec gained a field: add it to RunSpec and proto/convert.cc";
  // One field at a time, so the failure names the field that was dropped.
  for (int i = 0; i < wire.GetDescriptor()->field_count(); ++i) {
    const FieldDescriptor* f = wire.GetDescriptor()->field(i);
    v1::RunSpec one = wire;  // this field only (inputs' element is filled whole)
    for (int k = 0; k < wire.GetDescriptor()->field_count(); ++k) {
      if (k != i) one.GetReflection()->ClearField(&one, wire.GetDescriptor()->field(k));
    }
    v1::RunSpec back = ToProto(FromProto(one));
    // An empty lr_schedule reads as "constant" (old coordinators); a set one must survive.
    if (f->name() != "lr_schedule") back.clear_lr_schedule();
    if (f->name() != "model_init") back.clear_model_init();  // likewise: "" reads as "file"
    std::string diff;
    MessageDifferencer differ;
    differ.ReportDifferencesToString(&diff);
    EXPECT_TRUE(differ.Compare(one, back)) << f->name() << " is lost on the way: " << diff;
  }
}

TEST(ConvertTest, InputFilesAndTheModelsInitTravelInPlanOrder) {
  auto plan = ParsePlan(R"(experiment: byo
runs: 2
epochs: 1
dataset: {kind: arrays, train: {x: tx.npy, y: ty.npy}, test: {x: vx.npy, y: vy.npy}}
model: {kind: torchscript, path: net.pt, init: seeded}
)",
                        "plan.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (size_t i = 0; i < plan->inputs.size(); ++i) {
    plan->inputs[i].sha256 = std::string(64, static_cast<char>('a' + i));
    plan->inputs[i].size = 1000 + static_cast<int64_t>(i);
  }
  const RunSpec spec = RunSpecFor(*plan, plan->arms[0], SeedsFor(*plan, plan->arms[0], 0));
  const RunSpec got = FromProto(ToProto(spec));
  EXPECT_EQ(got.model_kind, "torchscript");
  EXPECT_EQ(got.model_init, "seeded");
  EXPECT_EQ(got.dataset_kind, "arrays");
  ASSERT_EQ(got.inputs.size(), 5u);
  const char* roles[] = {"train_x", "train_y", "test_x", "test_y", "model"};
  const char* paths[] = {"tx.npy", "ty.npy", "vx.npy", "vy.npy", "net.pt"};
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(got.inputs[i].role, roles[i]);
    EXPECT_EQ(got.inputs[i].path, paths[i]);
    EXPECT_EQ(got.inputs[i].sha256, plan->inputs[i].sha256);
    EXPECT_EQ(got.inputs[i].size, 1000 + static_cast<int64_t>(i));
  }
}

TEST(ConvertTest, RunSpecFromPlanKeepsEveryValueToTheEngine) {
  // A plan in which every value differs from RunSpec's defaults.
  auto plan = ParsePlan(R"(experiment: x
runs: 3
epochs: 7
base_seed: 11
checkpoint_every: 2
dataset: {kind: cifar10, path: /data/c, train_limit: 500, test_limit: 50}
model: {kind: resnet, version: 1, depth: 20, l2: 0.0002}
training: {batch_size: 32, optimizer: sgd, lr: 0.01, momentum: 0.5, lr_schedule: keras-cifar10,
           reduce_on_plateau: {factor: 0.5, patience: 3, min_lr: 0.00001},
           augment: {shift: 0.2, flip: false}}
determinism: {deterministic_algorithms: false, cudnn_benchmark: true, threads: 4, device: cuda}
fingerprints: {batch_digests: true, predictions: false}
exports: {weights: [initial, final, epochs]}
arms:
  a: {seed: per_run}
)",
                        "plan.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  const RunSeeds seeds = SeedsFor(*plan, plan->arms[0], 2);
  const RunSpec spec = RunSpecFor(*plan, plan->arms[0], seeds);
  const RunSpec got = FromProto(ToProto(spec));
  const RunSpec defaults;
  // Every wire field: from the plan, unlike the default, and unchanged by the wire.
#define EXPECT_CARRIED(field, expected)                      \
  EXPECT_EQ(spec.field, expected) << #field " from the plan"; \
  EXPECT_NE(spec.field, defaults.field) << #field;           \
  EXPECT_EQ(got.field, spec.field) << #field " over the wire"
  EXPECT_CARRIED(dataset_kind, "cifar10");
  EXPECT_CARRIED(dataset_path, "/data/c");
  EXPECT_CARRIED(train_limit, 500);
  EXPECT_CARRIED(test_limit, 50);
  EXPECT_CARRIED(model_kind, "resnet");
  EXPECT_CARRIED(model_version, 1);
  EXPECT_CARRIED(model_depth, 20);
  EXPECT_CARRIED(l2, 0.0002);
  EXPECT_CARRIED(batch_size, 32);
  EXPECT_CARRIED(optimizer, "sgd");
  EXPECT_CARRIED(lr, 0.01);
  EXPECT_CARRIED(momentum, 0.5);
  EXPECT_CARRIED(epochs, 7);
  EXPECT_CARRIED(lr_schedule, "keras-cifar10");
  EXPECT_CARRIED(plateau, true);
  EXPECT_CARRIED(plateau_factor, 0.5);
  EXPECT_CARRIED(plateau_patience, 3);
  EXPECT_CARRIED(plateau_min_lr, 0.00001);
  EXPECT_CARRIED(augment, true);
  EXPECT_CARRIED(augment_shift, 0.2);
  EXPECT_CARRIED(augment_flip, false);
  EXPECT_CARRIED(init_seed, 13u);
  EXPECT_CARRIED(shuffle_seed, 13u);
  EXPECT_CARRIED(augment_seed, 13u);
  EXPECT_CARRIED(deterministic_algorithms, false);
  EXPECT_CARRIED(cudnn_benchmark, true);
  EXPECT_CARRIED(threads, 4);
  EXPECT_CARRIED(device, "cuda");
  EXPECT_CARRIED(keep_batch_digests, true);
  EXPECT_CARRIED(keep_predictions, false);
  EXPECT_CARRIED(export_initial, true);
  EXPECT_CARRIED(export_final, true);
  EXPECT_CARRIED(export_every_epoch, true);
  EXPECT_CARRIED(checkpoint_every, 2);
#undef EXPECT_CARRIED
  // 34 wire fields checked above; the worker-only ones stay the worker's.
  EXPECT_EQ(got.export_dir, "");
  EXPECT_EQ(got.resume_state, "");
  EXPECT_TRUE(got.fingerprints);
}

TEST(ConvertTest, RunSpecFromAnOldCoordinatorTrainsAtAConstantRate) {
  v1::RunSpec wire;  // no lr_schedule: sent by a coordinator that predates the field
  EXPECT_EQ(FromProto(wire).lr_schedule, "constant");
}

TEST(ConvertTest, ResultRoundTrip) {
  RunResult r;
  r.test_loss = 0.5;
  r.test_accuracy = 0.875;
  r.data_x_hash = "x";
  r.data_y_hash = "y";
  r.initial_hash = "i";
  r.final_hash = "f";
  r.initial_tensors = {{"conv1.weight", "a"}, {"conv1.bias", "b"}};
  r.final_tensors = {{"conv1.weight", "c"}};
  EpochRecord e;
  e.epoch = 1;
  e.loss = 1.5;
  e.accuracy = 0.25;
  e.val_loss = 1.75;
  e.val_accuracy = 0.5;
  e.seconds = 3.5;
  e.lr = 0.001;
  e.batch_digest = "bd";
  e.weights_hash = "wh";
  e.batch_digests = {"b0", "b1"};
  r.epochs = {e};
  r.environment = {{"host", "h"}, {"device", "cpu"}};
  r.predictions = {1, 2, 3, 9};
  r.weights = {{"initial", std::string(64, 'a'), 10}, {"final", std::string(64, 'b'), 12}};
  r.diverged = "diverged: loss nan at epoch 1, batch 3";
  const v1::RunResult wire = ToProto(r);
  const RunResult back = FromProto(wire);
  // The record has no operator==: compare through the wire, field by field.
  EXPECT_TRUE(MessageDifferencer::Equals(wire, ToProto(back)));
  EXPECT_EQ(back.test_loss, 0.5);
  EXPECT_EQ(back.final_tensors.size(), 1u);
  EXPECT_EQ(back.epochs.at(0).batch_digests, e.batch_digests);
  EXPECT_EQ(back.epochs.at(0).lr, 0.001);
  EXPECT_EQ(back.environment, r.environment);
  EXPECT_EQ(back.predictions, r.predictions);
  ASSERT_EQ(back.weights.size(), 2u);
  EXPECT_EQ(back.weights[1].name, "final");
  EXPECT_EQ(back.weights[1].sha256, std::string(64, 'b'));
  EXPECT_EQ(back.weights[1].size, 12);
  EXPECT_EQ(back.diverged, r.diverged);
  // Every field of the wire's result and epoch is set by ToProto of a full record.
  for (const Message* m : {static_cast<const Message*>(&wire),
                           static_cast<const Message*>(&wire.epochs(0))}) {
    std::vector<const FieldDescriptor*> set;
    m->GetReflection()->ListFields(*m, &set);
    EXPECT_EQ(static_cast<int>(set.size()), m->GetDescriptor()->field_count())
        << m->GetDescriptor()->name() << " has a field ToProto never fills";
  }
}

TEST(ConvertTest, StatusRoundTrip) {
  ExperimentStatus s;
  s.experiment = "e";
  s.epochs = 3;
  s.complete = false;
  s.eta_seconds = 12.5;
  s.runs = RunCounts{1, 2, 3, 4};
  s.arms = {ArmProgress{"same_seed", 10, RunCounts{1, 2, 3, 4}, "no worker is here"}};
  s.running = {RunningRun{"same_seed", 4, "w1", 1, 3, 17, 100}};
  s.workers = {WorkerRecord{"w1", "host", "1.13.1", "cpu", 2, 123456789, "same_seed#4",
                            {{"cpu_model", "EPYC"}}, {{"pool", "a"}}, 99, "left: drained"}};
  s.database_bytes = 8 << 20;
  s.wal_bytes = 4 << 20;
  s.weights = WeightsUsage{6, 600, 200};
  LocalizationState open;
  open.run_a = "one#0";
  open.run_b = "two#0";
  open.state = "running";
  open.epoch = 2;
  open.worker = "w2";
  open.stage = "trace";
  s.localizing = {open};
  const v1::StatusResponse wire = ToProto(s);
  EXPECT_TRUE(MessageDifferencer::Equals(wire, ToProto(FromProto(wire))));
  const ExperimentStatus back = FromProto(wire);
  EXPECT_EQ(back.runs.failed, 4);
  EXPECT_EQ(back.arms.at(0).runs.running, 2);
  EXPECT_EQ(back.running.at(0).batches, 100);
  EXPECT_EQ(back.workers.at(0).last_seen_ms, 123456789);
  EXPECT_EQ(back.workers.at(0).current_run, "same_seed#4");
  EXPECT_EQ(back.workers.at(0).capabilities.at("cpu_model"), "EPYC");
  EXPECT_EQ(back.workers.at(0).labels.at("pool"), "a");
  EXPECT_EQ(back.workers.at(0).gone_ms, 99);
  EXPECT_EQ(back.workers.at(0).gone_reason, "left: drained");
  EXPECT_EQ(back.arms.at(0).waiting, "no worker is here");
  EXPECT_EQ(back.eta_seconds, 12.5);
  EXPECT_EQ(back.database_bytes, 8 << 20);
  EXPECT_EQ(back.wal_bytes, 4 << 20);
  EXPECT_EQ(back.weights.files, 6);
  EXPECT_EQ(back.weights.bytes, 600);
  EXPECT_EQ(back.weights.stored_bytes, 200);
  ASSERT_EQ(back.localizing.size(), 1u);
  EXPECT_EQ(back.localizing[0].run_b, "two#0");
  EXPECT_EQ(back.localizing[0].epoch, 2);
  EXPECT_EQ(back.localizing[0].worker, "w2");
  EXPECT_EQ(back.localizing[0].stage, "trace");
}

TEST(ConvertTest, AdaptiveStatusRoundTripsWithItsUndefinedFigures) {
  ExperimentStatus s;
  s.experiment = "e";
  EXPECT_FALSE(ToProto(s).has_adaptive());  // a fixed run count
  EXPECT_FALSE(FromProto(ToProto(s)).adaptive.has_value());

  AdaptiveState& a = s.adaptive.emplace(AdaptiveRule(10, 200, 10, 0.1, "loss", "different_seeds"));
  AdaptiveLook first;
  first.arms = {{"same_seed", 10, 10, 0.91, 0.7, 1.18, false, 180},
                {"threads_2", 9, 10, std::nullopt, std::nullopt, std::nullopt, false,
                 std::nullopt}};
  first.decision = "more";
  first.added = {{"same_seed", 10}, {"threads_2", 10}, {"different_seeds", 10}};
  AdaptiveLook second;
  second.arms = {{"same_seed", 20, 20, 0.0, 0.0, 0.0, true, std::nullopt}};
  second.decision = "reached";
  a.looks = {first, second};

  const v1::StatusResponse wire = ToProto(s);
  ASSERT_TRUE(wire.has_adaptive());
  EXPECT_TRUE(MessageDifferencer::Equals(wire, ToProto(FromProto(wire))));
  // Undefined is unset on the wire, and a ratio of 0 is set.
  EXPECT_FALSE(wire.adaptive().looks(0).arms(1).has_ratio());
  EXPECT_FALSE(wire.adaptive().looks(0).arms(1).has_runs_needed());
  EXPECT_TRUE(wire.adaptive().looks(1).arms(0).has_ratio());
  const ExperimentStatus back = FromProto(wire);
  ASSERT_TRUE(back.adaptive.has_value());
  const AdaptiveState& b = *back.adaptive;
  EXPECT_EQ(b.min, 10);
  EXPECT_EQ(b.max, 200);
  EXPECT_EQ(b.step, 10);
  EXPECT_EQ(b.ratio_ci_width, 0.1);
  EXPECT_EQ(b.metric, "loss");
  EXPECT_EQ(b.reference, "different_seeds");
  EXPECT_EQ(b.looks_planned, 20);
  EXPECT_EQ(b.level, 0.9975);
  ASSERT_EQ(b.looks.size(), 2u);
  EXPECT_EQ(b.looks[0].decision, "more");
  EXPECT_EQ(b.looks[0].added, first.added);
  ASSERT_EQ(b.looks[0].arms.size(), 2u);
  const AdaptiveArmLook& same = b.looks[0].arms[0];
  EXPECT_EQ(same.arm, "same_seed");
  EXPECT_EQ(same.runs, 10);
  EXPECT_EQ(same.reference_runs, 10);
  EXPECT_EQ(same.ratio, 0.91);
  EXPECT_EQ(same.low, 0.7);
  EXPECT_EQ(same.high, 1.18);
  EXPECT_FALSE(same.settled);
  EXPECT_EQ(same.runs_needed, 180);
  const AdaptiveArmLook& undefined = b.looks[0].arms[1];
  EXPECT_EQ(undefined.runs, 9);
  EXPECT_FALSE(undefined.ratio || undefined.low || undefined.high || undefined.runs_needed);
  EXPECT_EQ(b.looks[1].arms[0].ratio, 0.0);
  EXPECT_TRUE(b.looks[1].arms[0].settled);
  EXPECT_EQ(b.stopped(), "reached");
}

// A request about a lease as AboutLease fills it: the worker daemon sends every call
// about its lease through it, so the lease's secret goes with each.
template <typename Request>
void ExpectAboutLease(const v1::RunAssignment& run) {
  const Request req = AboutLease<Request>("w", run);
  const std::string type = Request::descriptor()->name();
  EXPECT_EQ(req.worker(), "w") << type;
  EXPECT_EQ(req.run_id(), run.run_id()) << type;
  EXPECT_EQ(req.lease_id(), run.lease_id()) << type;
  EXPECT_EQ(req.lease_secret(), run.lease_secret()) << type;
}

TEST(ConvertTest, AboutLeaseCarriesTheLeaseAndItsSecretInEveryLeaseCall) {
  v1::RunAssignment run;
  run.set_run_id(7);
  run.set_lease_id(42);
  run.set_lease_secret("0123456789abcdef0123456789abcdef");
  ExpectAboutLease<v1::HeartbeatRequest>(run);
  ExpectAboutLease<v1::ReportEpochRequest>(run);
  ExpectAboutLease<v1::CompleteRequest>(run);
  ExpectAboutLease<v1::FailRequest>(run);
  ExpectAboutLease<v1::ReleaseRequest>(run);
  ExpectAboutLease<v1::SaveCheckpointRequest>(run);
}

}  // namespace
}  // namespace repro
