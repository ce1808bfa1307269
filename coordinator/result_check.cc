#include "coordinator/result_check.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/sha256.h"

namespace repro {
namespace {

template <typename... Parts>
absl::Status Invalid(const Parts&... parts) {
  return absl::InvalidArgumentError(absl::StrCat(parts...));
}

// A reported text as an error shows it: quoted, escaped, cut at 64 bytes.
std::string Quoted(const std::string& text) {
  constexpr size_t kShown = 64;
  return absl::StrCat("\"", absl::CHexEscape(text.substr(0, kShown)),
                      text.size() > kShown ? "..." : "", "\"");
}

bool IsHash(const std::string& s) {
  if (s.size() != 32) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::Status CheckHash(const std::string& field, const std::string& value) {
  if (IsHash(value)) return absl::OkStatus();
  return Invalid(field, " ", Quoted(value), " is not 32 lowercase hex digits");
}

// NaN fails every comparison, so each check is written to let only good values pass.
absl::Status CheckFraction(const std::string& field, double value) {
  if (value >= 0 && value <= 1) return absl::OkStatus();
  return Invalid(field, " ", value, " is outside [0, 1]");
}

absl::Status CheckNonNegative(const std::string& field, double value) {
  if (std::isfinite(value) && value >= 0) return absl::OkStatus();
  return Invalid(field, " ", value, " is not a finite number >= 0");
}

absl::Status CheckPositive(const std::string& field, double value) {
  if (std::isfinite(value) && value > 0) return absl::OkStatus();
  return Invalid(field, " ", value, " is not a finite number > 0");
}

absl::Status CheckCount(const std::string& field, size_t count, int64_t min, int64_t max) {
  const auto n = static_cast<int64_t>(count);
  if (n >= min && n <= max) return absl::OkStatus();
  if (min == max) return Invalid(field, " has ", n, " entries where ", min, " are expected");
  return Invalid(field, " has ", n, " entries where ", min, " to ", max, " are expected");
}

absl::Status CheckTensors(const std::string& field, const std::vector<TensorHash>& tensors) {
  if (absl::Status s = CheckCount(field, tensors.size(), 1, kMaxTensors); !s.ok()) return s;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const std::string at = absl::StrCat(field, "[", i, "]");
    if (absl::Status s = CheckText(at + ".name", tensors[i].name, 1, kMaxTensorName); !s.ok()) {
      return s;
    }
    if (absl::Status s = CheckHash(at + ".hash", tensors[i].hash); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// Whether `name` is "epoch-K" with K below `epochs`.
bool IsEpochWeights(const std::string& name, size_t epochs) {
  int epoch = -1;
  return absl::StartsWith(name, "epoch-") && absl::SimpleAtoi(name.substr(6), &epoch) &&
         epoch >= 0 && static_cast<size_t>(epoch) < epochs && name == absl::StrCat("epoch-", epoch);
}

}  // namespace

absl::Status CheckText(const std::string& field, const std::string& value, size_t min,
                       size_t max) {
  bool printable = true;
  for (char c : value) printable &= absl::ascii_isprint(static_cast<unsigned char>(c));
  if (printable && value.size() >= min && value.size() <= max) return absl::OkStatus();
  return Invalid(field, " ", Quoted(value), " of ", value.size(), " bytes must be ", min, " to ",
                 max, " printable ASCII characters");
}

ResultCheck::ResultCheck(const Plan& plan, int64_t train_examples, int64_t test_examples,
                         int64_t classes)
    : epochs_(plan.epochs),
      noop_(plan.model.kind == "noop"),
      keep_predictions_(plan.predictions),
      keep_batch_digests_(plan.batch_digests),
      export_initial_(plan.export_initial),
      export_final_(plan.export_final),
      export_every_epoch_(plan.export_every_epoch),
      test_examples_(test_examples),
      classes_(classes > 0 && classes <= kMaxClasses ? classes : kMaxClasses) {
  const int64_t batch_size = std::max<int64_t>(plan.training.batch_size, 1);
  // A noop run reads no data, so its batches follow from none (its worker reports none).
  if (!noop_ && train_examples > 0) {
    batches_per_epoch_ = (train_examples + batch_size - 1) / batch_size;
  } else {
    batches_per_epoch_ = -1;
  }
  max_batches_ = batches_per_epoch_ >= 0 ? batches_per_epoch_
                                         : (kMaxUnknownSplit + batch_size - 1) / batch_size;
}

absl::Status ResultCheck::CheckProgress(int epoch, int64_t batch, int64_t batches) const {
  if (epoch < 0 || epoch >= epochs_) {
    return Invalid("heartbeat epoch ", epoch, " is outside the plan's ", epochs_, " epochs");
  }
  const bool batches_fit = batches == 0 || (batches_per_epoch_ >= 0 ? batches == batches_per_epoch_
                                                                    : batches <= max_batches_);
  if (!batches_fit) {
    return Invalid("heartbeat batches per epoch ", batches, " is not the plan's ",
                   batches_per_epoch_ >= 0 ? absl::StrCat(batches_per_epoch_)
                                           : absl::StrCat("at most ", max_batches_));
  }
  if (batch < 0 || batch > batches) {
    return Invalid("heartbeat batch ", batch, " is outside 0 to ", batches, " batches");
  }
  return absl::OkStatus();
}

absl::Status ResultCheck::CheckEpoch(const EpochRecord& e) const {
  if (e.epoch < 0 || e.epoch >= epochs_) {
    return Invalid("epoch ", e.epoch, " is outside the plan's ", epochs_, " epochs");
  }
  const std::string at = absl::StrCat("epoch ", e.epoch, "'s ");
  for (const absl::Status& s :
       {CheckNonNegative(at + "loss", e.loss), CheckFraction(at + "accuracy", e.accuracy),
        CheckNonNegative(at + "val_loss", e.val_loss),
        CheckFraction(at + "val_accuracy", e.val_accuracy),
        CheckNonNegative(at + "seconds", e.seconds), CheckPositive(at + "lr", e.lr),
        CheckHash(at + "batch_digest", e.batch_digest),
        CheckHash(at + "weights_hash", e.weights_hash)}) {
    if (!s.ok()) return s;
  }
  // One digest per batch when the plan keeps them, none otherwise.
  const int64_t min = keep_batch_digests_ && batches_per_epoch_ >= 0 ? batches_per_epoch_ : 0;
  const int64_t max = keep_batch_digests_ ? max_batches_ : 0;
  const absl::Status digests = CheckCount(at + "batch_digests", e.batch_digests.size(), min, max);
  if (!digests.ok()) return digests;
  for (size_t b = 0; b < e.batch_digests.size(); ++b) {
    if (absl::Status s = CheckHash(absl::StrCat(at, "batch_digests[", b, "]"), e.batch_digests[b]);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ResultCheck::CheckResult(const RunResult& r) const {
  if (absl::Status s = CheckText("diverged", r.diverged, 0, kMaxDiverged); !s.ok()) return s;
  const bool diverged = !r.diverged.empty();
  // The report shows the sentence as it is: it reads as the engine writes it.
  if (diverged && r.diverged.rfind(kDivergedPrefix, 0) != 0) {
    return Invalid("diverged ", Quoted(r.diverged), " does not start with \"", kDivergedPrefix,
                   "\"");
  }
  // A run that diverged ends before its last epoch; any other has every epoch.
  const auto epochs = static_cast<int>(std::min<size_t>(r.epochs.size(), INT_MAX));
  if (!diverged && epochs != epochs_) {
    return Invalid("has ", epochs, " epochs, the plan has ", epochs_);
  }
  if (diverged && epochs >= epochs_) {
    return Invalid("diverged with ", epochs, " epochs recorded, but a diverged run stops before "
                   "the plan's last (", epochs_, ")");
  }
  for (size_t i = 0; i < r.epochs.size(); ++i) {
    if (r.epochs[i].epoch != static_cast<int>(i)) {
      return Invalid("epochs lists epoch ", r.epochs[i].epoch, " at position ", i);
    }
    if (absl::Status s = CheckEpoch(r.epochs[i]); !s.ok()) return s;
  }
  for (const absl::Status& s :
       {CheckNonNegative("test_loss", r.test_loss), CheckFraction("test_accuracy", r.test_accuracy),
        CheckHash("data_x_hash", r.data_x_hash), CheckHash("data_y_hash", r.data_y_hash)}) {
    if (!s.ok()) return s;
  }
  if (absl::Status s = CheckModel(r); !s.ok()) return s;
  return CheckOutputs(r);
}

absl::Status ResultCheck::CheckModel(const RunResult& r) const {
  for (const absl::Status& s :
       {CheckHash("initial_hash", r.initial_hash), CheckHash("final_hash", r.final_hash),
        CheckTensors("initial_tensors", r.initial_tensors),
        CheckTensors("final_tensors", r.final_tensors)}) {
    if (!s.ok()) return s;
  }
  if (r.final_tensors.size() != r.initial_tensors.size()) {
    return Invalid("final_tensors has ", r.final_tensors.size(), " entries, initial_tensors ",
                   r.initial_tensors.size(), ": training does not change a model's tensors");
  }
  return absl::OkStatus();
}

absl::Status ResultCheck::CheckOutputs(const RunResult& r) const {
  if (absl::Status s = CheckCount("environment", r.environment.size(), 0, kMaxEnvironmentKeys);
      !s.ok()) {
    return s;
  }
  for (const auto& [key, value] : r.environment) {
    for (const absl::Status& s :
         {CheckText("environment key", key, 1, kMaxEnvironmentKey),
          CheckText(absl::StrCat("environment ", key), value, 0, kMaxEnvironmentValue)}) {
      if (!s.ok()) return s;
    }
  }
  // One class per test sample, from a run that trained to the end of a plan that keeps
  // them; the test split's size is exact when the coordinator counted it.
  const bool predicted = keep_predictions_ && !noop_ && r.diverged.empty();
  const int64_t min = predicted ? (test_examples_ > 0 ? test_examples_ : 1) : 0;
  const int64_t max = predicted ? (test_examples_ > 0 ? test_examples_ : kMaxUnknownSplit) : 0;
  if (absl::Status s = CheckCount("predictions", r.predictions.size(), min, max); !s.ok()) return s;
  for (size_t i = 0; i < r.predictions.size(); ++i) {
    if (r.predictions[i] >= classes_) {
      return Invalid("predictions[", i, "] is class ", static_cast<int>(r.predictions[i]),
                     "; the data set has ", classes_);
    }
  }
  return CheckWeights(r);
}

absl::Status ResultCheck::CheckWeights(const RunResult& r) const {
  // Only files the plan exports, each once (a worker without --artifacts exports none).
  const size_t most = (export_initial_ ? 1 : 0) + (export_final_ ? 1 : 0) +
                      (export_every_epoch_ ? r.epochs.size() : 0);
  if (absl::Status s = CheckCount("weights", r.weights.size(), 0, most); !s.ok()) return s;
  std::set<std::string> seen;
  for (size_t i = 0; i < r.weights.size(); ++i) {
    const WeightsFile& w = r.weights[i];
    const std::string at = absl::StrCat("weights[", i, "]");
    const bool planned = (w.name == "initial" && export_initial_) ||
                         (w.name == "final" && export_final_) ||
                         (export_every_epoch_ && IsEpochWeights(w.name, r.epochs.size()));
    if (!planned) return Invalid(at, ".name ", Quoted(w.name), " is not a file the plan exports");
    if (!seen.insert(w.name).second) return Invalid(at, ".name ", Quoted(w.name), " comes twice");
    if (!IsSha256Hex(w.sha256)) {
      return Invalid(at, ".sha256 ", Quoted(w.sha256), " is not 64 lower-case hex digits");
    }
    if (w.size <= 0) return Invalid(at, ".size ", w.size, " is not a file's size");
  }
  return absl::OkStatus();
}

}  // namespace repro
