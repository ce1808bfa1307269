// The status text (`reproctl status`) of an adaptive experiment, rendered from an
// ExperimentStatus built by hand: the rule's look, each arm's interval and the runs it
// needs while rounds may come, and why it stopped once it has.
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "store/status_view.h"

namespace repro {
namespace {

// same_seed and threads_2 against different_seeds, 10 runs each done, at most 200.
ExperimentStatus Adaptive() {
  ExperimentStatus s;
  s.experiment = "adapt";
  s.epochs = 2;
  s.runs = RunCounts{0, 0, 30, 0};
  for (const char* arm : {"same_seed", "different_seeds", "threads_2"}) {
    s.arms.push_back(ArmProgress{arm, 10, RunCounts{0, 0, 10, 0}, ""});
  }
  s.adaptive = AdaptiveRule(10, 200, 10, 0.1, "accuracy", "different_seeds");
  return s;
}

std::string Text(const ExperimentStatus& s) {
  auto text = RenderStatus(s, "text", 0);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? *text : "";
}

TEST(StatusViewTest, AdaptiveBeforeTheFirstLookSaysWhenItComes) {
  ExperimentStatus s = Adaptive();
  s.runs = RunCounts{5, 0, 25, 0};
  const std::string text = Text(s);
  EXPECT_TRUE(absl::StrContains(
      text, "  threads_2            10/10 done\n"
            "  adaptive: first look once the 10 runs per arm are done (target width 0.1 of "
            "the stdev ratio of test accuracy against different_seeds, at most 200 runs)\n"))
      << text;
}

TEST(StatusViewTest, AdaptiveInProgressShowsTheLastLookArmByArm) {
  ExperimentStatus s = Adaptive();
  AdaptiveLook look;
  look.arms = {{"same_seed", 10, 10, 0.91, 0.7, 1.18, false, 180},
               {"threads_2", 10, 10, std::nullopt, std::nullopt, std::nullopt, false,
                std::nullopt}};
  look.decision = "more";
  look.added = {{"same_seed", 10}, {"different_seeds", 10}, {"threads_2", 10}};
  s.adaptive->looks = {look, look};
  s.adaptive->looks[1].arms[0].ratio = 0.0886;
  s.adaptive->looks[1].arms[0].runs_needed = std::nullopt;
  const std::string text = Text(s);
  EXPECT_TRUE(absl::StrContains(
      text, "  adaptive: look 2 of at most 20, level 99.75 %, target width 0.1\n"
            "    same_seed: ratio 0.0886 [0.7, 1.18], width 0.48, runs per arm needed: over "
            "100000\n"
            "    threads_2: ratio undefined (fewer than 2 scores a side, or a reference "
            "without spread)\n"))
      << text;
  s.adaptive->looks.pop_back();
  EXPECT_TRUE(absl::StrContains(
      Text(s), "  adaptive: look 1 of at most 20, level 99.75 %, target width 0.1\n"
               "    same_seed: ratio 0.91 [0.7, 1.18], width 0.48, runs per arm needed: about "
               "180 (170 more)\n"))
      << Text(s);
}

TEST(StatusViewTest, AdaptiveStoppedSaysWhy) {
  ExperimentStatus s = Adaptive();
  s.complete = true;
  AdaptiveLook look;
  look.arms = {{"same_seed", 30, 30, 0.9, 0.86, 0.95, true, 28},
               {"threads_2", 30, 30, 0.0, 0.0, 0.0, true, std::nullopt}};
  look.decision = "reached";
  s.adaptive->looks = {look, look, look};
  std::string text = Text(s);
  EXPECT_TRUE(absl::StrContains(
      text, "  adaptive: stopped, every arm settled at look 3 (target width 0.1)\n"))
      << text;
  s.adaptive->looks.back().decision = "max";
  s.adaptive->looks.back().arms[0] = {"same_seed", 200, 200, 0.9, 0.8, 1.03, false, 410};
  text = Text(s);
  EXPECT_TRUE(absl::StrContains(
      text, "  adaptive: stopped at max runs (200) at look 3; width still 0.23 for same_seed "
            "(target 0.1)\n"))
      << text;
  s.adaptive.reset();  // a fixed run count says nothing of it
  EXPECT_FALSE(absl::StrContains(Text(s), "adaptive")) << Text(s);
}

// Localizations asked and not answered show in the text and the JSON: waiting, one
// worker replaying both runs, or each run on its own worker at a stage.
TEST(StatusViewTest, OpenLocalizationsSayWhatTheyWaitFor) {
  ExperimentStatus s = Adaptive();
  s.adaptive.reset();
  s.complete = true;
  LocalizationState pending, whole, apart;
  pending.run_a = "t1#0";
  pending.run_b = "t2#0";
  pending.state = "pending";
  whole = pending;
  whole.run_b = "t2#1";
  whole.state = "running";
  whole.worker = "w1";
  apart = whole;
  apart.run_a = "one#0";
  apart.run_b = "two#0";
  apart.epoch = 3;
  apart.worker = "w2";
  apart.stage = "dump";
  s.localizing = {pending, whole, apart};
  const std::string text = Text(s);
  for (const char* line : {"  localizing t1#0 and t2#0 (epoch 0): waiting for a worker\n",
                           "  localizing t1#0 and t2#1 (epoch 0): worker w1 replays both runs\n",
                           "  localizing one#0 and two#0 (epoch 3): each run on a worker like its "
                           "own, stage dump (the last taken by worker w2)\n"}) {
    EXPECT_TRUE(absl::StrContains(text, line)) << line << "\n" << text;
  }
  auto json = RenderStatus(s, "json", 0);
  ASSERT_TRUE(json.ok());
  EXPECT_TRUE(absl::StrContains(*json, "\"stage\": \"dump\"")) << *json;
  EXPECT_TRUE(absl::StrContains(*json, "\"stage\": null")) << *json;
  s.localizing.clear();
  EXPECT_FALSE(absl::StrContains(Text(s), "localizing"));
}

}  // namespace
}  // namespace repro
