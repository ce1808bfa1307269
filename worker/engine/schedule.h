// The learning rate per epoch, as the study's Keras code set it: the example's
// lr_schedule(epoch) through keras.callbacks.LearningRateScheduler, and
// keras.callbacks.ReduceLROnPlateau on the validation loss (Keras 2.2.4 semantics).
// No LibTorch here: pure arithmetic, unit-tested on hand-computed sequences.
//
// What Keras actually did with both callbacks (cifar10_resnet.py passes
// callbacks=[checkpoint, lr_reducer, lr_scheduler]):
//   - at every epoch's begin, LearningRateScheduler sets the optimizer's lr to
//     lr_schedule(epoch), whatever the lr was;
//   - at every epoch's end, ReduceLROnPlateau may lower the optimizer's lr.
// So a plateau reduction made at the end of epoch e is overwritten at the begin of
// epoch e + 1 before any batch trains with it: with the "keras-cifar10" schedule the
// plateau callback changes nothing the model sees, and every epoch trains at exactly
// lr_schedule(epoch). The study's runs therefore trained on the step schedule alone.
// LrPolicy reproduces this (it does not "fix" it); with the "constant" schedule there
// is no LearningRateScheduler and ReduceLROnPlateau acts as it does alone.
//
// Keras keeps lr in a float32 variable; this code keeps doubles. The decisions (when
// to reduce, when min_lr stops reductions) are the same; the values differ from
// Keras's float32 ones in the 8th significant digit, below what LibTorch's float32
// optimizer arithmetic resolves anyway.
//
// Thread safety: ReduceLrOnPlateau and LrPolicy are not thread-safe; free functions are.
#ifndef REPRO_WORKER_ENGINE_SCHEDULE_H_
#define REPRO_WORKER_ENGINE_SCHEDULE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace repro::engine {

inline constexpr char kLrConstant[] = "constant";
inline constexpr char kLrKerasCifar10[] = "keras-cifar10";

// OK for "constant" and "keras-cifar10"; INVALID_ARGUMENT naming the schedule otherwise.
absl::Status CheckLrSchedule(const std::string& name);

// The study's lr_schedule(epoch), `epoch` 0-based exactly as Keras passes it to the
// LearningRateScheduler (its on_epoch_begin gets the 0-based epoch index):
//   base * 0.5e-3  if epoch > 180
//   base * 1e-3    if epoch > 160
//   base * 1e-2    if epoch > 120
//   base * 1e-1    if epoch > 80
//   base           otherwise
// So "x0.1 after epoch 80" means: 0-based epochs 0..80 (Keras's printed "Epoch 1/200"
// to "Epoch 81/200", 81 epochs) train at base, and the reduction starts with 0-based
// epoch 81 (printed "Epoch 82/200"); likewise 121, 161 and 181. The products are
// computed as Python does (base * factor in double; for base 1e-3 they are exactly
// 1e-4, 1e-5, 1e-6 and 5e-7).
double KerasCifar10Lr(double base_lr, int epoch);

struct PlateauOptions {
  double factor = 0.31622776601683794;  // sqrt(0.1), the study's
  int patience = 5;
  double min_lr = 0.5e-6;
  double min_delta = 1e-4;  // Keras's default, absolute: improvement means < best - 1e-4
  int cooldown = 0;         // Keras's default, as the study
};

// keras.callbacks.ReduceLROnPlateau(monitor="val_loss", mode "min"), Keras 2.2.4:
//   on_epoch_end(current):
//     if cooldown_counter > 0: cooldown_counter -= 1; wait = 0
//     if current < best - min_delta: best = current; wait = 0
//     elif cooldown_counter == 0:
//       wait += 1
//       if wait >= patience and lr > min_lr:
//         lr = max(lr * factor, min_lr); cooldown_counter = cooldown; wait = 0
// best starts at +infinity, so the first epoch always improves. A NaN loss never
// improves (the comparison is false), as with NumPy. Once lr has reached min_lr, wait
// keeps growing and nothing more happens, as in Keras.
class ReduceLrOnPlateau {
 public:
  explicit ReduceLrOnPlateau(const PlateauOptions& options);
  // The lr the optimizer has after the callback, given the lr it has now and the
  // epoch's validation loss.
  double OnEpochEnd(double lr, double val_loss);
  double best() const { return best_; }
  int wait() const { return wait_; }

 private:
  PlateauOptions options_;
  double best_;
  int wait_ = 0;
  int cooldown_counter_ = 0;
};

struct LrPolicyOptions {
  std::string schedule = kLrConstant;  // kLrConstant | kLrKerasCifar10
  double base_lr = 0.001;
  bool plateau = false;
  PlateauOptions plateau_options;
};

// Both callbacks as Keras runs them (see the top of this file). Use:
//   for each epoch e: lr = BeginEpoch(e); train with lr; EndEpoch(val_loss).
class LrPolicy {
 public:
  explicit LrPolicy(const LrPolicyOptions& options);
  double BeginEpoch(int epoch);  // the lr to train epoch `epoch` (0-based) with
  void EndEpoch(double val_loss);
  double lr() const { return lr_; }  // the optimizer's lr now

 private:
  LrPolicyOptions options_;
  ReduceLrOnPlateau plateau_;
  double lr_;
};

// The lr of each epoch 0..val_losses.size()-1 when epoch e ends with val_losses[e]:
// a pure form of LrPolicy, for tests and for checking a recorded history.
std::vector<double> LrSequence(const LrPolicyOptions& options,
                               const std::vector<double>& val_losses);

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_SCHEDULE_H_
