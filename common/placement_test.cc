#include "common/placement.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/plan.h"

namespace repro {
namespace {

using ::testing::HasSubstr;

constexpr char kHead[] = R"(experiment: hw
runs: 2
epochs: 1
dataset: {kind: fashion-mnist, path: /data/fm}
)";

Plan Parse(const std::string& tail) {
  auto plan = ParsePlan(absl::StrCat(kHead, tail), "p.yaml");
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan.ok() ? *plan : Plan{};
}

std::string ErrorOf(const std::string& tail) {
  auto plan = ParsePlan(absl::StrCat(kHead, tail), "p.yaml");
  EXPECT_FALSE(plan.ok());
  return plan.ok() ? "" : std::string(plan.status().message());
}

WorkerRecord Worker(const std::string& name, const std::string& device,
                    std::map<std::string, std::string> labels = {},
                    std::map<std::string, std::string> capabilities = {}) {
  WorkerRecord w;
  w.name = name;
  w.host = "host-" + name;
  w.device = device;
  w.labels = std::move(labels);
  w.capabilities = std::move(capabilities);
  return w;
}

TEST(PlacementTest, ArmsTakeThePlansPlacementUnlessTheyGiveTheirOwn) {
  const Plan plan = Parse(R"(placement: {gpu: "NVIDIA H200", labels: {pool: a}}
arms:
  pinned: {seed: fixed}
  elsewhere: {seed: fixed, placement: {labels: {pool: b}, spread: hosts, gpu_memory_gb: 40}}
)");
  ASSERT_EQ(plan.arms.size(), 2u);
  EXPECT_EQ(plan.arms[0].placement.capabilities.at("gpu_name"), "NVIDIA H200");
  EXPECT_EQ(plan.arms[0].placement.labels.at("pool"), "a");
  EXPECT_TRUE(plan.arms[1].placement.capabilities.empty());
  EXPECT_EQ(plan.arms[1].placement.labels.at("pool"), "b");
  EXPECT_EQ(plan.arms[1].placement.spread, Spread::kHosts);
  EXPECT_EQ(plan.arms[1].placement.min_gpu_memory_mb, 40960);
}

TEST(PlacementTest, BadPlacementsNameTheKey) {
  EXPECT_THAT(ErrorOf("placement: {gpus: x}\n"), HasSubstr("placement.gpus: unknown key"));
  EXPECT_THAT(ErrorOf("arms: {a: {placement: {spread: racks}}}\n"),
              HasSubstr("arms.a.placement.spread: expected one of none, hosts, gpus"));
  EXPECT_THAT(ErrorOf("placement: {labels: {\"po ol\": a}}\n"),
              HasSubstr("placement.labels: \"po ol\" is not a valid name"));
  EXPECT_THAT(ErrorOf("placement: {gpu: \"A*100\"}\n"),
              HasSubstr("placement.gpu: '*' may only end the value"));
  EXPECT_THAT(ErrorOf("placement: {gpu_memory_gb: 0}\n"),
              HasSubstr("placement.gpu_memory_gb: must be greater than 0"));
  EXPECT_THAT(ErrorOf("placement: {labels: {pool: \"\"}}\n"),
              HasSubstr("placement.labels.pool: must be 1 to 256 printable"));
}

TEST(PlacementTest, PlacementIsPartOfTheCanonicalPlanOnlyWhenGiven) {
  const Plan plain = Parse("arms: {a: {seed: fixed}}\n");
  const Plan empty = Parse("arms: {a: {seed: fixed, placement: {}}}\n");
  const Plan pinned = Parse("arms: {a: {seed: fixed, placement: {labels: {pool: a}}}}\n");
  const Plan other = Parse("arms: {a: {seed: fixed, placement: {labels: {pool: b}}}}\n");
  EXPECT_EQ(CanonicalPlan(plain), CanonicalPlan(empty));
  EXPECT_THAT(CanonicalPlan(plain), ::testing::Not(HasSubstr("placement")));
  EXPECT_NE(CanonicalPlan(plain), CanonicalPlan(pinned));
  EXPECT_NE(CanonicalPlan(pinned), CanonicalPlan(other));
}

TEST(PlacementTest, ACudaArmNeedsAWorkerWithCuda) {
  const Plan plan = Parse("arms: {gpu: {seed: fixed, determinism: {device: cuda}}, cpu: {seed: fixed}}\n");
  EXPECT_EQ(PlacementMismatch(plan.arms[0], Worker("w1", "cpu")), "it has no CUDA");
  EXPECT_EQ(PlacementMismatch(plan.arms[0], Worker("w2", "cuda")), "");
  EXPECT_EQ(PlacementMismatch(plan.arms[1], Worker("w1", "cpu")), "");
  EXPECT_EQ(PlacementMismatch(plan.arms[1], Worker("w2", "cuda")), "");
}

TEST(PlacementTest, CapabilitiesMatchExactlyOrByPrefixAndLabelsMustAllHold) {
  const Plan plan = Parse(R"(arms:
  h200: {placement: {gpu: "NVIDIA H200", labels: {pool: a, zone: "eu*"}}}
  a100: {placement: {gpu: "NVIDIA A100*", gpu_memory_gb: 80}}
)");
  const std::map<std::string, std::string> h200 = {{"gpu_name", "NVIDIA H200"},
                                                   {"gpu_memory_mb", "143771"}};
  EXPECT_EQ(PlacementMismatch(plan.arms[0], Worker("w", "cuda", {{"pool", "a"}, {"zone", "eu-west"}}, h200)), "");
  EXPECT_EQ(PlacementMismatch(plan.arms[0], Worker("w", "cuda", {{"pool", "b"}, {"zone", "eu"}}, h200)),
            "its label pool is \"b\", not \"a\"");
  EXPECT_EQ(PlacementMismatch(plan.arms[0], Worker("w", "cuda", {{"pool", "a"}}, h200)),
            "it has no label zone");
  EXPECT_EQ(PlacementMismatch(plan.arms[0], Worker("w", "cpu", {{"pool", "a"}, {"zone", "eu"}})),
            "it did not register a gpu_name");
  EXPECT_EQ(PlacementMismatch(plan.arms[1], Worker("w", "cuda", {}, h200)),
            "its gpu_name is \"NVIDIA H200\", not \"NVIDIA A100*\"");
  EXPECT_EQ(PlacementMismatch(plan.arms[1], Worker("w", "cuda", {},
                                                   {{"gpu_name", "NVIDIA A100-SXM4-40GB"},
                                                    {"gpu_memory_mb", "40960"}})),
            "its GPU has 40960 MB, the arm wants at least 81920");
  EXPECT_EQ(PlacementMismatch(plan.arms[1], Worker("w", "cuda", {},
                                                   {{"gpu_name", "NVIDIA A100-SXM4-80GB"},
                                                    {"gpu_memory_mb", "81920"}})),
            "");
}

TEST(PlacementTest, WhyNoWorkerSaysWhatTheArmNeedsAndWhyEachWorkerCannot) {
  const Plan plan = Parse("arms: {gpu: {determinism: {device: cuda}, placement: {labels: {pool: a}}}}\n");
  WorkerRecord gone = Worker("w9", "cuda", {{"pool", "a"}});
  gone.gone_ms = 5;
  EXPECT_EQ(WhyNoWorker(plan.arms[0], {}), "no worker is here");
  EXPECT_EQ(WhyNoWorker(plan.arms[0], {gone}), "no worker is here");
  EXPECT_EQ(WhyNoWorker(plan.arms[0], {Worker("w1", "cpu"), Worker("w2", "cuda"), gone}),
            "needs device cuda, label pool=a; none of 2 workers can (w1: it has no CUDA; "
            "w2: it has no label pool)");
  EXPECT_EQ(WhyNoWorker(plan.arms[0], {Worker("w1", "cpu"), Worker("w3", "cuda", {{"pool", "a"}})}), "");
}

TEST(PlacementTest, SpreadCountsHostsOrGpus) {
  const Plan plan = Parse(R"(arms:
  none: {}
  hosts: {placement: {spread: hosts}}
  gpus: {placement: {spread: gpus}}
)");
  const WorkerRecord gpu = Worker("w1", "cuda", {}, {{"gpu_uuid", "GPU-1234"}});
  EXPECT_EQ(SpreadKey(plan.arms[0], gpu), "");
  EXPECT_EQ(SpreadKey(plan.arms[1], gpu), "host-w1");
  EXPECT_EQ(SpreadKey(plan.arms[2], gpu), "host-w1/GPU-1234");
  EXPECT_EQ(SpreadKey(plan.arms[2], Worker("w2", "cpu")), "host-w2/w2");
}

// A run replays on a machine of the same make: CPU, LibTorch and compiler, and for a run
// on CUDA its GPU, driver, CUDA and cuDNN; the host and the run's settings do not count.
TEST(PlacementTest, AReplayNeedsAMachineLikeTheRunsOwn) {
  const std::map<std::string, std::string> cpu_run = {
      {"host", "h1"}, {"cpu_model", "EPYC"}, {"torch", "1.13.1"}, {"compiler", "gcc 12"},
      {"device", "cpu"}, {"threads", "2"}};
  std::map<std::string, std::string> other_host = cpu_run;
  other_host["host"] = "h2";
  other_host["threads"] = "1";
  EXPECT_THAT(MachineDifferences(cpu_run, other_host), ::testing::IsEmpty());
  std::map<std::string, std::string> gpu_run = cpu_run;
  gpu_run["device"] = "cuda";
  gpu_run["gpu_name"] = "NVIDIA H200";
  gpu_run["driver"] = "580.1";
  EXPECT_EQ(MachineDifferences(cpu_run, gpu_run),
            (std::vector<std::string>{"gpu_name", "driver"}));
  other_host["torch"] = "2.1.0";
  EXPECT_EQ(MachineDifferences(cpu_run, other_host), std::vector<std::string>{"torch"});

  WorkerRecord same = Worker("w1", "cuda", {}, {{"cpu_model", "EPYC"}, {"torch", "1.13.1"},
                                                 {"compiler", "gcc 12"}, {"gpu_name", "NVIDIA A100"}});
  EXPECT_EQ(ReplayMismatch(cpu_run, same), "");  // a CPU run asks nothing of the GPU
  EXPECT_EQ(ReplayMismatch(gpu_run, same),
            "its gpu_name is \"NVIDIA A100\", the run's was \"NVIDIA H200\"");
  EXPECT_EQ(ReplayMismatch(cpu_run, Worker("w2", "cpu")), "it has no cpu_model (the run's was \"EPYC\")");
  EXPECT_EQ(ReplayMismatch({}, Worker("w2", "cpu")), "");  // nothing recorded, nothing asked
}

}  // namespace
}  // namespace repro
