// An adaptive run count through the service: workers lease, the coordinator looks at the
// scores once every run so far has finished, adds rounds, and stops at the look the rule
// says, which each test works out here from the scores it reports.
#include <atomic>
#include <cmath>
#include <map>
#include <thread>
#include <vector>

#include "analysis/inference.h"
#include "coordinator/service_test_fixture.h"
#include "tests/delta_method_reference.h"

namespace repro::service_testing {
namespace {

// A score drawn from the run's seed, as a worker would report it: arm "a" spreads half
// as much as the reference, so the ratio is near 0.5.
double Score(const std::string& arm, uint64_t seed) {
  uint64_t state = 2 * seed + (arm == "a" ? 0 : 1);
  const double u = static_cast<double>(SplitMix64(&state) >> 11) * 0x1.0p-53;
  return 1 + (arm == "a" ? 0.5 * u : u);
}

// The width of the interval at n runs a side, from the formula
// (tests/delta_method_reference.h) with z at level 1 - 0.05 / 10 (ten looks: 4, 8, ..., 40).
double WidthAt(int n) {
  constexpr double kZ = 2.8070337683438114;  // Python: NormalDist().inv_cdf(1 - 0.0025)
  std::vector<double> a, ref;
  for (int i = 0; i < n; ++i) {
    a.push_back(Score("a", static_cast<uint64_t>(i)));
    ref.push_back(Score("different_seeds", static_cast<uint64_t>(i)));
  }
  return reference::IntervalWidth(a, ref, kZ);
}

class AdaptiveServiceTest : public ServiceTest {
 protected:
  std::string PlanText() const override {
    return absl::StrCat("experiment: svc\nepochs: 2\nmodel: {kind: noop}\n",
                        "runs: {min: 4, max: 40, step: 4, until: {ratio_ci_width: ", width_,
                        ", metric: loss}}\n",
                        "arms: {a: {seed: per_run}, different_seeds: {seed: per_run}}\n");
  }
  // Leases and completes runs, each with its seed's score, until the coordinator says the
  // experiment has finished; returns how many leases were answered "wait" on the way.
  int RunToTheEnd() {
    EXPECT_TRUE(Register("w").ok());
    int waits = 0;
    for (int call = 0; call < 1000; ++call) {
      v1::LeaseResponse resp;
      EXPECT_TRUE(Lease("w", &resp).ok());
      if (resp.finished()) return waits;
      if (!resp.has_run()) {
        ++waits;
        continue;
      }
      v1::CompleteResponse done;
      const v1::RunAssignment& run = resp.run();
      EXPECT_TRUE(Complete("w", run, ValidResult(Score(run.arm(), run.spec().init_seed())), &done).ok());
    }
    ADD_FAILURE() << "the experiment did not finish";
    return waits;
  }
  std::map<std::string, int> RunsPerArm() {
    std::map<std::string, int> out;
    auto view = store_->LoadView("svc");
    EXPECT_TRUE(view.ok()) << view.status();
    if (view.ok()) {
      for (const RunView& run : view->runs) ++out[run.arm];
    }
    return out;
  }
  double width_ = 0.5;
};

TEST_F(AdaptiveServiceTest, StopsAtTheFirstLookWhoseIntervalIsNarrowEnough) {
  int expected = 4;
  while (expected < 40 && WidthAt(expected) > width_) expected += 4;
  ASSERT_GT(expected, 4) << "the scores should need more than one round";
  ASSERT_LT(expected, 40) << "the scores should settle before max";
  EXPECT_EQ(RunToTheEnd(), 0) << "the worker leases from each round the look it triggers adds";
  EXPECT_EQ(RunsPerArm(), (std::map<std::string, int>{{"a", expected}, {"different_seeds", expected}}));
  auto state = store_->Adaptive("svc");
  ASSERT_TRUE(state.ok() && state->has_value()) << state.status();
  ASSERT_EQ((*state)->looks.size(), static_cast<size_t>(expected / 4));
  EXPECT_EQ((*state)->stopped(), "reached");
  const AdaptiveArmLook& last = (*state)->looks.back().arms.at(0);
  EXPECT_EQ(last.arm, "a");
  EXPECT_NEAR(*last.high - *last.low, WidthAt(expected), 1e-9);
  EXPECT_TRUE(last.settled);
  for (size_t i = 0; i + 1 < (*state)->looks.size(); ++i) {
    EXPECT_EQ((*state)->looks[i].decision, "more");
    EXPECT_NEAR(*(*state)->looks[i].arms[0].high - *(*state)->looks[i].arms[0].low,
                WidthAt(4 * static_cast<int>(i + 1)), 1e-9);
  }
  // The coordinator's output says what each look found and did.
  EXPECT_TRUE(Logged("look 1 of at most 10 (interval level 99.5 %): a ratio "));
  EXPECT_TRUE(Logged("more runs: 4 for a, 4 for different_seeds"));
  EXPECT_TRUE(Logged(absl::StrCat("look ", expected / 4, " of at most 10")));
  EXPECT_TRUE(Logged("every arm settled, no more runs"));
  // Every run done once: a look added nothing twice.
  EXPECT_EQ(store_->Counts("svc")->done, 2 * expected);
  // Done means done: the next lease says so, and no look is taken again.
  v1::LeaseResponse resp;
  ASSERT_TRUE(Lease("w", &resp).ok());
  EXPECT_TRUE(resp.finished());
  EXPECT_EQ((*store_->Adaptive("svc"))->looks.size(), static_cast<size_t>(expected / 4));
}

// The main loop and every idle worker's Lease ask at once whether the experiment has
// finished, the moment a round's last run does: one look each time, one round, and
// nobody told "finished" over a round's pending runs; and so on to the stop.
TEST_F(AdaptiveServiceTest, CallersAskingAtOnceTakeOneLookAndAddOneRound) {
  ASSERT_TRUE(Register("w").ok());
  int expected = 4;
  while (expected < 40 && WidthAt(expected) > width_) expected += 4;
  for (int round = 1; round <= expected / 4; ++round) {
    // Exactly the round's runs, leased and completed by hand: no Lease finds none.
    const int pending = store_->Counts("svc")->pending;
    ASSERT_EQ(pending, 8) << "round " << round;
    for (int i = 0; i < pending; ++i) {
      const v1::RunAssignment run = LeaseRun("w");
      v1::CompleteResponse done;
      ASSERT_TRUE(Complete("w", run, ValidResult(Score(run.arm(), run.spec().init_seed())), &done).ok());
    }
    std::atomic<int> ready{0}, finished{0}, errors{0};
    std::vector<std::thread> callers;
    for (int t = 0; t < 8; ++t) {
      callers.emplace_back([&] {
        ++ready;
        while (ready.load() < 8) std::this_thread::yield();
        absl::StatusOr<bool> f = service_->ExperimentFinished();
        errors += !f.ok();
        finished += f.ok() && *f;
      });
    }
    for (std::thread& t : callers) t.join();
    EXPECT_EQ(errors.load(), 0);
    const bool last = round == expected / 4;
    EXPECT_EQ(finished.load(), last ? 8 : 0) << "round " << round;
    EXPECT_EQ((*store_->Adaptive("svc"))->looks.size(), static_cast<size_t>(round));
    const int runs = last ? expected : 4 * (round + 1);
    EXPECT_EQ(RunsPerArm(), (std::map<std::string, int>{{"a", runs}, {"different_seeds", runs}}))
        << "round " << round;
  }
}

class NeverSettlesTest : public AdaptiveServiceTest {
 protected:
  NeverSettlesTest() { width_ = 0.01; }
};

TEST_F(NeverSettlesTest, RunsToMaxAndSaysSo) {
  ASSERT_GT(WidthAt(40), width_);
  RunToTheEnd();
  EXPECT_EQ(RunsPerArm(), (std::map<std::string, int>{{"a", 40}, {"different_seeds", 40}}));
  auto state = store_->Adaptive("svc");
  ASSERT_TRUE(state.ok() && state->has_value());
  EXPECT_EQ((*state)->looks.size(), 10u);  // the most the rule plans for
  EXPECT_EQ((*state)->stopped(), "max");
  EXPECT_FALSE((*state)->looks.back().arms[0].settled);
  EXPECT_TRUE(Logged("not settled at 40 runs of different_seeds, the most the plan allows"));
}

}  // namespace
}  // namespace repro::service_testing
