#include "worker/engine/schedule.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"

namespace repro::engine {

absl::Status CheckLrSchedule(const std::string& name) {
  if (name == kLrConstant || name == kLrKerasCifar10) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("unknown lr_schedule \"", name,
                                                 "\" (this engine has ", kLrConstant, " and ",
                                                 kLrKerasCifar10, ")"));
}

double KerasCifar10Lr(double base_lr, int epoch) {
  // The example's code, line by line: lr = 1e-3; if epoch > 180: lr *= 0.5e-3; ...
  double lr = base_lr;
  if (epoch > 180) {
    lr *= 0.5e-3;
  } else if (epoch > 160) {
    lr *= 1e-3;
  } else if (epoch > 120) {
    lr *= 1e-2;
  } else if (epoch > 80) {
    lr *= 1e-1;
  }
  return lr;
}

ReduceLrOnPlateau::ReduceLrOnPlateau(const PlateauOptions& options)
    : options_(options), best_(std::numeric_limits<double>::infinity()) {}

double ReduceLrOnPlateau::OnEpochEnd(double lr, double val_loss) {
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    wait_ = 0;
  }
  if (val_loss < best_ - options_.min_delta) {
    best_ = val_loss;
    wait_ = 0;
  } else if (cooldown_counter_ == 0) {
    ++wait_;
    if (wait_ >= options_.patience && lr > options_.min_lr) {
      lr = std::max(lr * options_.factor, options_.min_lr);
      cooldown_counter_ = options_.cooldown;
      wait_ = 0;
    }
  }
  return lr;
}

LrPolicy::LrPolicy(const LrPolicyOptions& options)
    : options_(options), plateau_(options.plateau_options), lr_(options.base_lr) {}

double LrPolicy::BeginEpoch(int epoch) {
  // LearningRateScheduler.on_epoch_begin: overrides whatever the plateau set.
  if (options_.schedule == kLrKerasCifar10) lr_ = KerasCifar10Lr(options_.base_lr, epoch);
  return lr_;
}

void LrPolicy::EndEpoch(double val_loss) {
  if (options_.plateau) lr_ = plateau_.OnEpochEnd(lr_, val_loss);
}

std::vector<double> LrSequence(const LrPolicyOptions& options,
                               const std::vector<double>& val_losses) {
  LrPolicy policy(options);
  std::vector<double> lrs;
  lrs.reserve(val_losses.size());
  for (size_t e = 0; e < val_losses.size(); ++e) {
    lrs.push_back(policy.BeginEpoch(static_cast<int>(e)));
    policy.EndEpoch(val_losses[e]);
  }
  return lrs;
}

}  // namespace repro::engine
