#include "common/plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace repro {
namespace {

using ::testing::HasSubstr;

constexpr char kQuick[] = R"(experiment: fashion-quick
runs: 4
epochs: 1
base_seed: 7
dataset: {kind: fashion-mnist, path: /data/fm, train_limit: 10000, test_limit: 2000}
model: {kind: small-cnn}
training: {batch_size: 128, optimizer: adam, lr: 0.001}
determinism: {deterministic_algorithms: true, threads: 1, device: cpu}
)";

std::string ErrorOf(std::string_view text) {
  auto plan = ParsePlan(text, "p.yaml");
  EXPECT_FALSE(plan.ok()) << "plan unexpectedly valid:\n" << text;
  return plan.ok() ? "" : std::string(plan.status().message());
}

TEST(PlanTest, ParsesTheDesignExampleWithDefaultArms) {
  auto plan = ParsePlan(kQuick, "quick.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->experiment, "fashion-quick");
  EXPECT_EQ(plan->runs, 4);
  EXPECT_EQ(plan->dataset.path, "/data/fm");
  EXPECT_EQ(plan->dataset.train_limit, 10000);
  EXPECT_EQ(plan->training.batch_size, 128);
  EXPECT_DOUBLE_EQ(plan->training.lr, 0.001);
  ASSERT_EQ(plan->arms.size(), 2u);
  EXPECT_EQ(plan->arms[0].name, "same_seed");
  EXPECT_EQ(plan->arms[1].name, "different_seeds");
  // same_seed: every run uses base_seed; different_seeds: run i uses base_seed + i.
  EXPECT_EQ(SeedsFor(*plan, plan->arms[0], 3).init, 7u);
  EXPECT_EQ(SeedsFor(*plan, plan->arms[0], 3).shuffle, 7u);
  EXPECT_EQ(SeedsFor(*plan, plan->arms[1], 3).init, 10u);
  EXPECT_EQ(SeedsFor(*plan, plan->arms[1], 3).shuffle, 10u);
}

TEST(PlanTest, ArmsFixOrVaryEachSourceAndOverrideDeterminism) {
  auto plan = ParsePlan(std::string(kQuick) + R"(arms:
  init_only: {init: per_run, shuffle: fixed}
  shuffle_only: {seed: fixed, shuffle: per_run, determinism: {threads: 2}}
)", "p.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->arms.size(), 2u);
  EXPECT_EQ(plan->arms[0].name, "init_only");
  EXPECT_EQ(SeedsFor(*plan, plan->arms[0], 2).init, 9u);
  EXPECT_EQ(SeedsFor(*plan, plan->arms[0], 2).shuffle, 7u);
  EXPECT_EQ(SeedsFor(*plan, plan->arms[1], 2).init, 7u);
  EXPECT_EQ(SeedsFor(*plan, plan->arms[1], 2).shuffle, 9u);
  EXPECT_EQ(plan->arms[0].determinism.threads, 1);
  EXPECT_EQ(plan->arms[1].determinism.threads, 2);
}

TEST(PlanTest, CanonicalFormIgnoresFormattingButNotContent) {
  auto a = ParsePlan(kQuick, "a.yaml");
  auto b = ParsePlan(std::string("# a comment\n") + kQuick, "b.yaml");
  auto c = ParsePlan(std::string(kQuick) + "max_attempts: 5\n", "c.yaml");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(CanonicalPlan(*a), CanonicalPlan(*b));
  EXPECT_NE(CanonicalPlan(*a), CanonicalPlan(*c));
}

TEST(PlanTest, AnArmMayAskWhereItsRunsPartWithoutChangingTheCanonicalPlan) {
  auto asks = ParsePlan(std::string(kQuick) + "arms:\n  a: {seed: fixed, localize: true}\n  b: {seed: fixed}\n",
                        "p.yaml");
  auto plain = ParsePlan(std::string(kQuick) + "arms:\n  a: {seed: fixed}\n  b: {seed: fixed}\n", "p.yaml");
  ASSERT_TRUE(asks.ok() && plain.ok()) << asks.status() << plain.status();
  EXPECT_TRUE(asks->arms[0].localize);
  EXPECT_FALSE(asks->arms[1].localize);
  EXPECT_EQ(CanonicalPlan(*asks), CanonicalPlan(*plain));
  EXPECT_TRUE(absl::StrContains(ErrorOf(std::string(kQuick) + "arms:\n  a: {localize: maybe}\n"),
                                "arms.a.localize"));
}

TEST(PlanTest, TheCanonicalFormRecordsEachInputsHashAndSize) {
  auto plan = ParsePlan("experiment: x\nruns: 1\nepochs: 1\nmodel: {kind: torchscript, path: m.pt}\n",
                        "p.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->inputs.size(), 1u);
  plan->inputs[0].sha256 = std::string(64, 'c');
  plan->inputs[0].size = 12345;
  const std::vector<InputFile> recorded = InputsOfCanonicalPlan(CanonicalPlan(*plan));
  ASSERT_EQ(recorded.size(), 1u);
  EXPECT_EQ(recorded[0].role, "model");
  EXPECT_EQ(recorded[0].sha256, std::string(64, 'c'));
  EXPECT_EQ(recorded[0].size, 12345);
  EXPECT_TRUE(recorded[0].path.empty());
  EXPECT_TRUE(InputsOfCanonicalPlan("input:model{sha256:x}\ninput:{size:1}\n").empty());
}

TEST(PlanTest, SyntaxErrorNamesLineAndColumn) {
  const std::string error = ErrorOf("experiment: x\nruns: [1, 2\nepochs: 1\n");
  EXPECT_TRUE(absl::StartsWith(error, "p.yaml:")) << error;
  EXPECT_TRUE(absl::StrContains(error, "YAML syntax error")) << error;
}

TEST(PlanTest, UnknownKeyIsNamedWithItsPosition) {
  const std::string error = ErrorOf("experiment: x\nruns: 1\nepochs: 1\nepoch_count: 3\n");
  EXPECT_TRUE(absl::StartsWith(error, "p.yaml:4:1: epoch_count: unknown key")) << error;
}

TEST(PlanTest, UnknownNestedKeyIsNamedWithItsPath) {
  const std::string error =
      ErrorOf("experiment: x\nruns: 1\nepochs: 1\ntraining:\n  batchsize: 3\n");
  EXPECT_TRUE(absl::StartsWith(error, "p.yaml:5:3: training.batchsize: unknown key")) << error;
}

TEST(PlanTest, NegativeRunsAreOutOfRange) {
  const std::string error = ErrorOf("experiment: x\nruns: -1\nepochs: 1\n");
  EXPECT_EQ(error, "p.yaml:2:7: runs: must be between 1 and 100000, got -1");
}

TEST(PlanTest, EpochsAsWordIsNotAnInteger) {
  EXPECT_EQ(ErrorOf("experiment: x\nruns: 1\nepochs: \"ten\"\n"),
            "p.yaml:3:9: epochs: expected an integer, got the string \"ten\"");
  EXPECT_EQ(ErrorOf("experiment: x\nruns: 1\nepochs: ten\n"),
            "p.yaml:3:9: epochs: expected an integer, got \"ten\"");
  EXPECT_EQ(ErrorOf("experiment: x\nruns: 1\nepochs: 1.5\n"),
            "p.yaml:3:9: epochs: expected an integer, got \"1.5\"");
}

TEST(PlanTest, MissingRequiredKey) {
  EXPECT_TRUE(absl::StrContains(ErrorOf("experiment: x\nruns: 1\n"), "epochs: missing"));
}

TEST(PlanTest, BadValuesAreNamed) {
  EXPECT_TRUE(absl::StrContains(
      ErrorOf("experiment: x\nruns: 1\nepochs: 1\nmodel: {kind: vgg}\n"),
      "model.kind: expected one of small-cnn, resnet, torchscript, noop, got \"vgg\""));
  EXPECT_TRUE(absl::StrContains(
      ErrorOf("experiment: x\nruns: 1\nepochs: 1\ntraining: {lr: 0}\n"), "training.lr: must be"));
  EXPECT_TRUE(absl::StrContains(
      ErrorOf("experiment: x\nruns: 1\nepochs: 1\narms: {a: {seed: sometimes}}\n"),
      "arms.a.seed: expected one of fixed, per_run"));
  EXPECT_TRUE(absl::StrContains(ErrorOf("experiment: ../etc\nruns: 1\nepochs: 1\n"),
                                "not a valid name"));
  EXPECT_TRUE(absl::StrContains(
      ErrorOf("experiment: x\nruns: 1\nepochs: 1\nruns: 2\n"), "key given twice"));
  EXPECT_TRUE(absl::StrContains(ErrorOf(""), "empty"));
  EXPECT_TRUE(absl::StrContains(ErrorOf("- a\n- b\n"), "expected a mapping"));
}

TEST(PlanTest, OptimizerIsOneOfTheEnginesThree) {
  for (const char* name : {"adam", "adam-keras", "sgd"}) {
    auto plan = ParsePlan(absl::StrCat("experiment: x\nruns: 1\nepochs: 1\ntraining: {optimizer: ",
                                       name, "}\n"),
                          "p.yaml");
    ASSERT_TRUE(plan.ok()) << name << ": " << plan.status();
    EXPECT_EQ(plan->training.optimizer, name);
  }
  EXPECT_EQ(ErrorOf("experiment: x\nruns: 1\nepochs: 1\ntraining: {optimizer: adamw}\n"),
            "p.yaml:4:23: training.optimizer: expected one of adam, adam-keras, sgd, "
            "got \"adamw\"");
}

TEST(PlanTest, ArraysAndTorchScriptNameTheirFilesByRole) {
  auto plan = ParsePlan(
      "experiment: byo\nruns: 1\nepochs: 1\n"
      "dataset: {kind: arrays, train: {x: a/tx.npy, y: ty.npy}, test: {x: vx.npy, y: vy.npy}}\n"
      "model: {kind: torchscript, path: net.pt}\n",
      "p.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->dataset.kind, "arrays");
  EXPECT_EQ(plan->model.init, "file");
  ASSERT_EQ(plan->inputs.size(), 5u);
  EXPECT_EQ(plan->inputs[0].role, "train_x");
  EXPECT_EQ(plan->inputs[0].path, "a/tx.npy");
  EXPECT_EQ(plan->inputs[4].role, "model");
  EXPECT_EQ(plan->inputs[4].path, "net.pt");
  const std::string head = "experiment: x\nruns: 1\nepochs: 1\n";
  EXPECT_THAT(ErrorOf(head + "dataset: {kind: arrays, train: {x: a.npy, y: b.npy}}\n"),
              HasSubstr("dataset.test: is required for dataset.kind arrays"));
  EXPECT_THAT(ErrorOf(head + "dataset: {kind: arrays, path: /d, train: {x: a, y: b}, test: {x: c, y: d}}\n"),
              HasSubstr("dataset.path: does not apply to kind arrays"));
  EXPECT_THAT(ErrorOf(head + "dataset: {kind: arrays, train: {x: a.npy}, test: {x: c, y: d}}\n"),
              HasSubstr("dataset.train.y: is required"));
  EXPECT_THAT(ErrorOf(head + "dataset: {kind: cifar10, path: /d, train: {x: a, y: b}}\n"),
              HasSubstr("dataset.train: applies to dataset.kind arrays only"));
  EXPECT_THAT(ErrorOf(head + "model: {kind: torchscript}\n"),
              HasSubstr("model.path: is required for model.kind torchscript"));
  EXPECT_THAT(ErrorOf(head + "model: {kind: torchscript, path: m.pt, init: random}\n"),
              HasSubstr("model.init: expected one of file, seeded"));
  EXPECT_THAT(ErrorOf(head + "model: {kind: resnet, path: m.pt}\n"),
              HasSubstr("model.path: applies to model.kind torchscript only"));
}

TEST(PlanTest, NoopModelParses) {
  auto plan = ParsePlan("experiment: fleet-check\nruns: 100\nepochs: 1\nmodel: {kind: noop}\n",
                        "noop.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->model.kind, "noop");
  EXPECT_TRUE(absl::StrContains(
      ErrorOf("experiment: x\nruns: 1\nepochs: 1\nmodel: {kind: noop, depth: 20}\n"),
      "model.depth: applies to model.kind resnet only"));
}

TEST(PlanTest, AnAdaptiveRunCountParsesWithItsDefaults) {
  auto plan = ParsePlan(
      "experiment: a\nepochs: 1\nmodel: {kind: noop}\n"
      "runs: {min: 10, max: 200, until: {ratio_ci_width: 0.1}}\n", "a.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->runs, 10);  // the first round
  ASSERT_TRUE(plan->adaptive.has_value());
  EXPECT_EQ(plan->adaptive->max, 200);
  EXPECT_EQ(plan->adaptive->step, 10);  // min, unless given
  EXPECT_EQ(plan->adaptive->ratio_ci_width, 0.1);
  EXPECT_EQ(plan->adaptive->metric, "accuracy");
  EXPECT_EQ(plan->adaptive->reference, "different_seeds");
  // 10, 20, ..., 200: twenty looks; a last partial round counts as one.
  EXPECT_EQ(plan->adaptive->Looks(plan->runs), 20);
  plan->adaptive->step = 30;
  EXPECT_EQ(plan->adaptive->Looks(plan->runs), 8);  // 10, 40, ..., 190, 200

  auto fixed = ParsePlan("experiment: a\nepochs: 1\nruns: 10\n", "f.yaml");
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  EXPECT_FALSE(fixed->adaptive.has_value());
  // The rule is part of the experiment; a plain count keeps its old canonical form.
  EXPECT_THAT(CanonicalPlan(*plan), HasSubstr("runs:10{max:200,step:30,until:{ratio_ci_width:0.1"));
  EXPECT_THAT(CanonicalPlan(*fixed), HasSubstr("\nruns:10\nepochs:1\n"));
}

TEST(PlanTest, AnAdaptiveRunCountIsRefusedWithWhatIsWrong) {
  const std::string head = "experiment: a\nepochs: 1\n";
  auto runs = [&](const std::string& r, const std::string& more = "") {
    return ErrorOf(head + "runs: " + r + "\n" + more);
  };
  EXPECT_THAT(runs("{min: 10, until: {ratio_ci_width: 0.1}}"), HasSubstr("runs.max: missing"));
  EXPECT_THAT(runs("{min: 1, max: 5, until: {ratio_ci_width: 0.1}}"),
              HasSubstr("runs.min: must be between 2 and 100000, got 1"));
  EXPECT_THAT(runs("{min: 10, max: 5, until: {ratio_ci_width: 0.1}}"),
              HasSubstr("runs.max: must be at least runs.min (10), got 5"));
  EXPECT_THAT(runs("{min: 10, max: 20, step: 0, until: {ratio_ci_width: 0.1}}"),
              HasSubstr("runs.step: must be between 1 and 100000, got 0"));
  EXPECT_THAT(runs("{min: 10, max: 20, until: {ratio_ci_width: 0}}"),
              HasSubstr("runs.until.ratio_ci_width: must be greater than 0"));
  EXPECT_THAT(runs("{min: 10, max: 20, until: {}}"), HasSubstr("runs.until.ratio_ci_width: missing"));
  EXPECT_THAT(runs("{min: 10, max: 20, until: {ratio_ci_width: 0.1, metric: f1}}"),
              HasSubstr("runs.until.metric: expected one of accuracy, loss"));
  EXPECT_THAT(runs("{min: 10, max: 20, until: {ratio_ci_width: 0.1, reference: nope}}"),
              HasSubstr("runs.until.reference: names no arm (\"nope\"); the arms are same_seed, "
                        "different_seeds"));
  EXPECT_THAT(runs("{min: 10, max: 20, until: {ratio_ci_width: 0.1}}",
                   "arms: {a: {seed: fixed}, b: {seed: per_run}}\n"),
              HasSubstr("runs.until.reference: missing, and the plan has no arm different_seeds"));
  EXPECT_THAT(runs("{min: 10, max: 20, until: {ratio_ci_width: 0.1, reference: a}}",
                   "arms: {a: {seed: fixed}}\n"),
              HasSubstr("runs.until: an adaptive run count compares arms, and this plan has one arm"));
  EXPECT_THAT(runs("{min: 10, max: 20, until: {ratio_ci_width: 0.1}, rounds: 3}"),
              HasSubstr("runs.rounds: unknown key"));
  // What is bounded is what the plan may grow to.
  EXPECT_THAT(runs("{min: 10, max: 100000, until: {ratio_ci_width: 0.1}}",
                   "arms: {a: {}, b: {}, different_seeds: {}, d: {}, e: {}, f: {}, g: {}, h: {}, "
                   "i: {}, j: {}, k: {}}\n"),
              HasSubstr("100000 runs in each of 11 arms is 1100000 runs"));
}

// What the README points users to must parse as it stands.
TEST(PlanTest, EveryExamplePlanParses) {
  int plans = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(REPRO_EXAMPLES)) {
    if (entry.path().extension() != ".yaml") continue;
    auto text = ReadPlanFile(entry.path().string());
    ASSERT_TRUE(text.ok()) << text.status();
    auto plan = ParsePlan(*text, entry.path().string());
    EXPECT_TRUE(plan.ok()) << plan.status();
    ++plans;
  }
  EXPECT_GE(plans, 6);
  auto adaptive = ParsePlan(*ReadPlanFile(std::string(REPRO_EXAMPLES) + "/adaptive.yaml"), "a");
  ASSERT_TRUE(adaptive.ok());
  EXPECT_EQ(adaptive->adaptive->Looks(adaptive->runs), 8);
}

TEST(PlanTest, TheStudysRecipeParses) {
  auto plan = ParsePlan(R"(experiment: cifar
runs: 50
epochs: 200
dataset: {kind: cifar10, path: /data/cifar}
model: {kind: resnet, version: 2, depth: 29}
training: {batch_size: 32, optimizer: adam-keras, lr: 0.001, lr_schedule: keras-cifar10,
           reduce_on_plateau: true, augment: false}
determinism: {deterministic_algorithms: false, cudnn_benchmark: true, device: cuda}
exports: {weights: [initial, final]}
arms:
  augment_only: {seed: fixed, augment: per_run}
)", "cifar.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->model.kind, "resnet");
  EXPECT_EQ(plan->model.depth, 29);
  EXPECT_DOUBLE_EQ(plan->model.l2, 1e-4);  // Keras's default for its ResNets
  EXPECT_EQ(plan->training.optimizer, "adam-keras");
  EXPECT_EQ(plan->training.lr_schedule, "keras-cifar10");
  EXPECT_TRUE(plan->training.plateau);
  EXPECT_NEAR(plan->training.plateau_factor, 0.316227766, 1e-9);
  EXPECT_FALSE(plan->training.augment);
  EXPECT_TRUE(plan->determinism.cudnn_benchmark);
  EXPECT_TRUE(plan->export_initial && plan->export_final && !plan->export_every_epoch);
  const RunSeeds seeds = SeedsFor(*plan, plan->arms[0], 4);
  EXPECT_EQ(seeds.init, 0u);
  EXPECT_EQ(seeds.shuffle, 0u);
  EXPECT_EQ(seeds.augment, 4u);
}

TEST(PlanTest, ResNetDepthMustFitItsVersion) {
  EXPECT_TRUE(absl::StrContains(
      ErrorOf("experiment: x\nruns: 1\nepochs: 1\nmodel: {kind: resnet, version: 2, depth: 21}\n"),
      "model.depth: ResNet v2 needs a depth of 9n+2 (for example 29), got 21"));
  auto v1 = ParsePlan("experiment: x\nruns: 1\nepochs: 1\nmodel: {kind: resnet, version: 1}\n", "p");
  ASSERT_TRUE(v1.ok()) << v1.status();
  EXPECT_EQ(v1->model.depth, 20);
  EXPECT_TRUE(absl::StrContains(
      ErrorOf("experiment: x\nruns: 1\nepochs: 1\nmodel: {kind: small-cnn, depth: 20}\n"),
      "model.depth: applies to model.kind resnet only"));
  EXPECT_TRUE(absl::StrContains(
      ErrorOf("experiment: x\nruns: 1\nepochs: 1\nexports: {weights: [everything]}\n"),
      "exports.weights: expected one of initial, final, epochs"));
}

// Anchors and aliases as a user writes them: one block shared by several arms.
TEST(PlanTest, AnchorsAndAliasesShareABlock) {
  auto plan = ParsePlan(R"(experiment: x
runs: 2
epochs: 1
determinism: &det {deterministic_algorithms: true, threads: 3, device: cpu}
arms:
  a: {seed: fixed, determinism: *det}
  b: {seed: per_run, determinism: *det}
)", "p.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->arms.size(), 2u);
  EXPECT_EQ(plan->arms[0].determinism.threads, 3);
  EXPECT_EQ(plan->arms[1].determinism.threads, 3);
}

// "Billion laughs": ten levels of ten aliases would be 10^10 nodes if they were copied.
// yaml-cpp shares an alias's node, and the validator never walks a value it does not
// expect, so this fails at once with a small error (fuzz/corpus/plan_fuzzer has it).
TEST(PlanTest, AliasesAreNotExpanded) {
  std::string text = "experiment: lol\nruns: 1\nepochs: 1\narms:\n  a: {seed: fixed}\n"
                     "  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int i = 1; i < 10; ++i) {
    absl::StrAppend(&text, "  l", i, ": &l", i, " [");
    for (int j = 0; j < 10; ++j) absl::StrAppend(&text, j ? ", " : "", "*l", i - 1);
    absl::StrAppend(&text, "]\n");
  }
  EXPECT_EQ(ErrorOf(text), "p.yaml:6:7: arms.l0: expected a mapping of keys to values");
  // An alias to the mapping that holds it (a cycle) is an error too, not a loop.
  EXPECT_TRUE(absl::StrContains(ErrorOf("experiment: x\nruns: 1\nepochs: 1\narms: &a {a: *a}\n"),
                                "arms.a.a: unknown key"));
}

TEST(PlanTest, DeepNestingIsAnErrorNotAStackOverflow) {
  const std::string text = "experiment: x\nruns: 1\nepochs: 1\nmodel: " +
                           std::string(100000, '[') + std::string(100000, ']') + "\n";
  EXPECT_TRUE(absl::StrContains(ErrorOf(text), "YAML syntax error"));
}

// A small plan cannot ask for billions of runs: the store keeps a row per run.
TEST(PlanTest, ArmsAndTotalRunsAreBounded) {
  std::string arms = "experiment: x\nruns: 1\nepochs: 1\narms:\n";
  for (int i = 0; i < 101; ++i) absl::StrAppend(&arms, "  a", i, ": {seed: fixed}\n");
  EXPECT_EQ(ErrorOf(arms), "p.yaml:5:3: arms: at most 100 arms, got 101");
  EXPECT_EQ(ErrorOf("experiment: x\nruns: 100000\nepochs: 1\n"
                    "arms: {a: {seed: fixed}, b: {seed: fixed}, c: {seed: fixed},\n"
                    "       d: {seed: fixed}, e: {seed: fixed}, f: {seed: fixed},\n"
                    "       g: {seed: fixed}, h: {seed: fixed}, i: {seed: fixed},\n"
                    "       j: {seed: fixed}, k: {seed: fixed}}\n"),
            "p.yaml:2:7: runs: 100000 runs in each of 11 arms is 1100000 runs; a plan may "
            "have at most 1000000");
  auto most = ParsePlan("experiment: x\nruns: 100000\nepochs: 1\n", "p.yaml");  // 2 arms
  EXPECT_TRUE(most.ok()) << most.status();
}

TEST(PlanTest, MissingFileIsAnError) {
  auto plan = ReadPlanFile("/nonexistent/plan.yaml");
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().message(), "/nonexistent/plan.yaml: cannot open plan file");
}

TEST(PlanTest, ADeviceOrADirectoryIsNoPlanFile) {
  // /dev/zero never ends: it must be refused before it is read.
  auto zero = ReadPlanFile("/dev/zero");
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.status().message(), "/dev/zero: is not a regular file, so not a plan file");
  const std::string dir = ::testing::TempDir();
  auto folder = ReadPlanFile(dir);
  ASSERT_FALSE(folder.ok());
  EXPECT_EQ(folder.status().message(), dir + ": is a directory, not a plan file");
}

TEST(PlanTest, APlanFileOverOneMebibyteIsRefusedWithTheLimit) {
  const std::string path = ::testing::TempDir() + "plan_size_test.yaml";
  for (const size_t size : {size_t{1} << 20, (size_t{1} << 20) + 1}) {
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out << std::string(size, '#');
    }
    auto text = ReadPlanFile(path);
    if (size == size_t{1} << 20) {
      ASSERT_TRUE(text.ok()) << text.status();
      EXPECT_EQ(text->size(), size);
    } else {
      ASSERT_FALSE(text.ok());
      EXPECT_EQ(text.status().message(),
                path + ": plan file is larger than the limit of 1048576 bytes (1 MiB)");
    }
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace repro
