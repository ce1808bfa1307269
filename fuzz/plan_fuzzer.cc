// Fuzzes the plan parser: any text must give a Plan or an INVALID_ARGUMENT naming the
// file, never a crash, a hang or a huge allocation (YAML anchors and aliases
// included). A plan that parses must satisfy the documented ranges and parse again to
// the same canonical form.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "common/plan.h"

namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "plan_fuzzer: %s\n", what.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<repro::Plan> plan = repro::ParsePlan(text, "fuzz.yaml");
  if (!plan.ok()) {
    if (plan.status().code() != absl::StatusCode::kInvalidArgument) {
      Fail("error is not INVALID_ARGUMENT: " + plan.status().ToString());
    }
    if (!absl::StartsWith(plan.status().message(), "fuzz.yaml")) {
      Fail("error does not name the file: " + plan.status().ToString());
    }
    return 0;
  }
  if (plan->runs < 1 || plan->runs > 100000 || plan->epochs < 1 || plan->epochs > 100000 ||
      plan->arms.empty() || plan->experiment.empty()) {
    Fail("a plan out of its documented ranges was accepted");
  }
  for (const repro::ArmSpec& arm : plan->arms) {
    (void)repro::SeedsFor(*plan, arm, plan->runs - 1);
  }
  const std::string canonical = repro::CanonicalPlan(*plan);
  const absl::StatusOr<repro::Plan> again = repro::ParsePlan(text, "fuzz.yaml");
  if (!again.ok() || repro::CanonicalPlan(*again) != canonical) {
    Fail("parsing the same text twice gave different plans");
  }
  return 0;
}
