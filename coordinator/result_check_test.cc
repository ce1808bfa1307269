// ResultCheck alone: every number a worker reports is checked where it enters, and every
// field of a result is held to what the plan and its data allow. service_test.cc sends
// the same kinds of reports through the service and checks that nothing is stored.
#include "coordinator/result_check.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

namespace repro {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kTrain = 1000;  // 8 batches of 128, the last one partial
constexpr int64_t kTest = 100;
constexpr int kEpochs = 3;

Plan TestPlan() {
  Plan plan;
  plan.experiment = "checks";
  plan.runs = 2;
  plan.epochs = kEpochs;
  plan.batch_digests = true;
  plan.predictions = true;
  plan.training.batch_size = 128;
  return plan;
}

EpochRecord GoodEpoch(int epoch) {
  EpochRecord e;
  e.epoch = epoch;
  e.loss = 0.5;
  e.accuracy = 0.8;
  e.val_loss = 0.6;
  e.val_accuracy = 0.75;
  e.seconds = 2;
  e.lr = 0.001;
  e.batch_digest = std::string(32, 'b');
  e.weights_hash = std::string(32, 'c');
  e.batch_digests.assign(8, std::string(32, 'd'));
  return e;
}

RunResult GoodResult() {
  RunResult r;
  r.test_loss = 0.6;
  r.test_accuracy = 0.75;
  const std::string hash(32, 'a');
  r.data_x_hash = r.data_y_hash = r.initial_hash = r.final_hash = hash;
  r.initial_tensors = {{"conv1.weight", hash}, {"conv1.bias", hash}};
  r.final_tensors = r.initial_tensors;
  for (int e = 0; e < kEpochs; ++e) r.epochs.push_back(GoodEpoch(e));
  r.environment = {{"host", "vm"}, {"device", "cpu"}};
  r.predictions.assign(kTest, 3);
  return r;
}

// The message of a refused result, which must be INVALID_ARGUMENT.
std::string Refusal(const ResultCheck& check, const RunResult& r) {
  const absl::Status s = check.CheckResult(r);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  return std::string(s.message());
}

class ResultCheckTest : public ::testing::Test {
 protected:
  const ResultCheck check_{TestPlan(), kTrain, kTest};
};

TEST_F(ResultCheckTest, AResultThatFitsThePlanPasses) {
  EXPECT_TRUE(check_.CheckResult(GoodResult()).ok()) << check_.CheckResult(GoodResult());
  EXPECT_TRUE(check_.CheckEpoch(GoodEpoch(2)).ok());
  EXPECT_TRUE(check_.CheckProgress(0, 0, 0).ok());  // batches not known yet
  EXPECT_TRUE(check_.CheckProgress(2, 8, 8).ok());
}

TEST(ResultCheckWeightsTest, OnlyTheFilesThePlanExportsEachOnceByHashAndSize) {
  Plan plan = TestPlan();
  plan.export_initial = plan.export_final = plan.export_every_epoch = true;
  const ResultCheck check(plan, kTrain, kTest);
  const auto file = [](const std::string& name) {
    return WeightsFile{name, std::string(64, 'f'), 1234};
  };
  RunResult all = GoodResult();
  all.weights = {file("initial"), file("epoch-0"), file("epoch-1"), file("epoch-2"), file("final")};
  EXPECT_TRUE(check.CheckResult(all).ok()) << check.CheckResult(all);
  RunResult none = GoodResult();  // a worker without --artifacts exports nothing
  EXPECT_TRUE(check.CheckResult(none).ok());

  struct Case {
    WeightsFile file;
    const char* message;
  } cases[] = {
      {file("epoch-3"), "weights[1].name \"epoch-3\" is not a file the plan exports"},
      {file("epoch-01"), "weights[1].name \"epoch-01\" is not"},
      {file("../../etc/passwd"), "weights[1].name \"../../etc/passwd\" is not"},
      {file("initial"), "weights[1].name \"initial\" comes twice"},
      {WeightsFile{"final", "F00", 1}, "weights[1].sha256 \"F00\" is not 64 lower-case hex"},
      {WeightsFile{"final", std::string(64, 'f'), 0}, "weights[1].size 0 is not a file's size"},
  };
  for (const Case& c : cases) {
    RunResult r = GoodResult();
    r.weights = {file("initial"), c.file};
    EXPECT_THAT(Refusal(check, r), HasSubstr(c.message)) << c.file.name;
  }
}

TEST_F(ResultCheckTest, NumbersThatAreNoNumbersOrOutOfRangeAreNamedWithTheirValue) {
  const double nan = std::nan("");
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    void (*spoil)(RunResult&, double);
    double value;
    const char* message;
  } cases[] = {
      {[](RunResult& r, double v) { r.test_loss = v; }, nan, "test_loss nan is not a finite number >= 0"},
      {[](RunResult& r, double v) { r.test_loss = v; }, -1, "test_loss -1 is not a finite number >= 0"},
      {[](RunResult& r, double v) { r.test_accuracy = v; }, inf, "test_accuracy inf is outside [0, 1]"},
      {[](RunResult& r, double v) { r.test_accuracy = v; }, -0.5, "test_accuracy -0.5 is outside [0, 1]"},
      {[](RunResult& r, double v) { r.test_accuracy = v; }, 1.5, "test_accuracy 1.5 is outside [0, 1]"},
      {[](RunResult& r, double v) { r.epochs[1].loss = v; }, nan, "epoch 1's loss nan"},
      {[](RunResult& r, double v) { r.epochs[1].accuracy = v; }, nan, "epoch 1's accuracy nan"},
      {[](RunResult& r, double v) { r.epochs[2].val_loss = v; }, inf, "epoch 2's val_loss inf"},
      {[](RunResult& r, double v) { r.epochs[0].val_accuracy = v; }, 2, "epoch 0's val_accuracy 2"},
      {[](RunResult& r, double v) { r.epochs[0].seconds = v; }, -3, "epoch 0's seconds -3"},
      {[](RunResult& r, double v) { r.epochs[0].lr = v; }, 0, "epoch 0's lr 0 is not a finite number > 0"},
      {[](RunResult& r, double v) { r.epochs[0].lr = v; }, -inf, "epoch 0's lr -inf"},
  };
  for (const Case& c : cases) {
    RunResult r = GoodResult();
    c.spoil(r, c.value);
    EXPECT_THAT(Refusal(check_, r), HasSubstr(c.message));
  }
  EpochRecord e = GoodEpoch(0);
  e.loss = nan;
  EXPECT_THAT(std::string(check_.CheckEpoch(e).message()), HasSubstr("epoch 0's loss nan"));
}

TEST_F(ResultCheckTest, EveryListIsHeldToWhatThePlanAndItsDataGive) {
  RunResult flood = GoodResult();
  flood.predictions.assign(60'000'000, 1);  // 60 MB for a test split of 100
  EXPECT_THAT(Refusal(check_, flood), HasSubstr("predictions has 60000000 entries where 100 are expected"));
  RunResult short_predictions = GoodResult();
  short_predictions.predictions.pop_back();
  EXPECT_THAT(Refusal(check_, short_predictions), HasSubstr("predictions has 99 entries"));
  RunResult bad_class = GoodResult();
  bad_class.predictions[7] = 200;
  EXPECT_THAT(Refusal(check_, bad_class), HasSubstr("predictions[7] is class 200"));

  RunResult tensors = GoodResult();
  tensors.initial_tensors.assign(100'000, TensorHash{"w", std::string(32, 'a')});
  tensors.final_tensors = tensors.initial_tensors;
  EXPECT_THAT(Refusal(check_, tensors), HasSubstr("initial_tensors has 100000 entries where 1 to 10000"));
  RunResult long_name = GoodResult();
  long_name.final_tensors[1].name.assign(10'000'000, 'n');  // 10 MB
  EXPECT_THAT(Refusal(check_, long_name),
              HasSubstr("final_tensors[1].name \"nnnn"));
  RunResult fewer = GoodResult();
  fewer.final_tensors.pop_back();
  EXPECT_THAT(Refusal(check_, fewer), HasSubstr("final_tensors has 1 entries, initial_tensors 2"));
  RunResult bad_hash = GoodResult();
  bad_hash.initial_tensors[0].hash = "A";
  EXPECT_THAT(Refusal(check_, bad_hash), HasSubstr("initial_tensors[0].hash \"A\" is not 32"));

  RunResult digests = GoodResult();
  digests.epochs[1].batch_digests.push_back(std::string(32, 'd'));  // 9 where 8 batches
  EXPECT_THAT(Refusal(check_, digests), HasSubstr("epoch 1's batch_digests has 9 entries where 8"));
  RunResult environment = GoodResult();
  for (int i = 0; i < 100; ++i) environment.environment["k" + std::to_string(i)] = "v";
  EXPECT_THAT(Refusal(check_, environment), HasSubstr("environment has 102 entries"));
  RunResult control = GoodResult();
  control.environment["host"] = "vm\n\x1b[2Jforged";
  EXPECT_THAT(Refusal(check_, control), HasSubstr("environment host \"vm\\n\\x1b[2Jforged\""));
  RunResult weights = GoodResult();
  weights.weights = {{"final", std::string(64, 'f'), 100}};  // the plan exports nothing
  EXPECT_THAT(Refusal(check_, weights), HasSubstr("weights has 1 entries where 0 are expected"));

  RunResult order = GoodResult();
  order.epochs[1].epoch = 2;
  EXPECT_THAT(Refusal(check_, order), HasSubstr("epochs lists epoch 2 at position 1"));
  RunResult missing = GoodResult();
  missing.epochs.pop_back();
  EXPECT_THAT(Refusal(check_, missing), HasSubstr("has 2 epochs, the plan has 3"));
}

TEST_F(ResultCheckTest, ADivergedRunStopsEarlyWithoutPredictions) {
  RunResult diverged = GoodResult();
  diverged.diverged = "diverged: loss nan at epoch 1, batch 4";
  diverged.epochs.resize(1);
  diverged.predictions.clear();
  diverged.test_loss = diverged.test_accuracy = 0;
  EXPECT_TRUE(check_.CheckResult(diverged).ok()) << check_.CheckResult(diverged);

  RunResult with_predictions = diverged;
  with_predictions.predictions.assign(kTest, 1);
  EXPECT_THAT(Refusal(check_, with_predictions), HasSubstr("predictions has 100 entries where 0"));
  RunResult every_epoch = GoodResult();
  every_epoch.diverged = diverged.diverged;
  every_epoch.predictions.clear();
  EXPECT_THAT(Refusal(check_, every_epoch), HasSubstr("diverged with 3 epochs recorded"));
  RunResult other_text = diverged;
  other_text.diverged = "lease expired";
  EXPECT_THAT(Refusal(check_, other_text), HasSubstr("does not start with \"diverged: \""));
}

TEST_F(ResultCheckTest, HeartbeatProgressFitsThePlansBatches) {
  EXPECT_THAT(std::string(check_.CheckProgress(0, 3, 9).message()),
              HasSubstr("heartbeat batches per epoch 9 is not the plan's 8"));
  EXPECT_THAT(std::string(check_.CheckProgress(0, 9, 8).message()),
              HasSubstr("heartbeat batch 9 is outside 0 to 8"));
  EXPECT_THAT(std::string(check_.CheckProgress(3, 0, 8).message()),
              HasSubstr("heartbeat epoch 3 is outside the plan's 3 epochs"));
}

TEST(ResultCheckClassesTest, PredictionsAreBelowTheClassesOfTheData) {
  // Kind arrays with K = 3 (the data check's DatasetSizes::classes).
  const ResultCheck three(TestPlan(), kTrain, kTest, 3);
  RunResult r = GoodResult();
  r.predictions.assign(kTest, 2);
  EXPECT_TRUE(three.CheckResult(r).ok()) << three.CheckResult(r);
  r.predictions[5] = 3;
  EXPECT_THAT(Refusal(three, r), HasSubstr("predictions[5] is class 3; the data set has 3"));
  // K = 256 (the most), or not known (arrays under --skip-data-check): any byte.
  for (int64_t classes : {int64_t{256}, int64_t{0}}) {
    const ResultCheck any(TestPlan(), kTrain, kTest, classes);
    r.predictions[5] = 255;
    EXPECT_TRUE(any.CheckResult(r).ok()) << any.CheckResult(r);
  }
}

TEST(ResultCheckUnknownDataTest, WithoutTheDataCheckListsAreBoundedNotExact) {
  Plan plan = TestPlan();
  const ResultCheck check(plan, 0, 0);  // --skip-data-check, no limits in the plan
  RunResult r = GoodResult();
  r.predictions.assign(12345, 0);
  r.epochs[0].batch_digests.assign(3, std::string(32, 'd'));
  EXPECT_TRUE(check.CheckResult(r).ok()) << check.CheckResult(r);
  r.predictions.assign(kMaxUnknownSplit + 1, 0);
  EXPECT_THAT(std::string(check.CheckResult(r).message()), HasSubstr("predictions has 1000001"));
  EXPECT_TRUE(check.CheckProgress(0, 50, 100).ok());

  plan.predictions = false;
  plan.batch_digests = false;
  const ResultCheck keeps_none(plan, kTrain, kTest);
  RunResult unasked = GoodResult();
  EXPECT_THAT(std::string(keeps_none.CheckResult(unasked).message()),
              HasSubstr("epoch 0's batch_digests has 8 entries where 0 are expected"));
  for (EpochRecord& e : unasked.epochs) e.batch_digests.clear();
  EXPECT_THAT(std::string(keeps_none.CheckResult(unasked).message()),
              HasSubstr("predictions has 100 entries where 0 are expected"));
}

}  // namespace
}  // namespace repro
