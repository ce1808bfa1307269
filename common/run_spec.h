// RunSpec: one run's whole recipe, the one type that carries it from the plan to the
// engine. The coordinator builds it once per run from the plan (RunSpecFor), sends it
// over the wire (proto/convert.h, both directions in one place), and the worker's
// engine trains it as it is; repro-train fills the same type from its flags. A field
// added here must be added to repro.v1's RunSpec and to proto/convert.cc: the round-trip
// test (proto/convert_test.cc) counts the fields and fails until it is.
// The fields under "Set by the worker" never cross the wire: each worker sets them.
//
// Thread safety: plain values; free functions are thread-safe.
#ifndef REPRO_COMMON_RUN_SPEC_H_
#define REPRO_COMMON_RUN_SPEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/plan.h"

namespace repro {

struct RunSpec {
  // Data
  std::string dataset_kind = "fashion-mnist";  // fashion-mnist | mnist (IDX) | cifar10 (binary)
  std::string dataset_path = "/usr/share/datasets/fashion-mnist";
  int64_t train_limit = 0;  // first N training samples; 0 = all
  int64_t test_limit = 0;   // first N test samples; 0 = all
  // Model
  std::string model_kind = "small-cnn";  // small-cnn | resnet | torchscript
  int model_version = 2;    // resnet: 1 (depth 6n+2) or 2 (depth 9n+2), as Keras's example
  int model_depth = 29;     // resnet
  std::string model_init = "file";  // torchscript: file | seeded (ModelSpec::init)
  // The files the run reads by role (Plan::inputs): the arrays of dataset kind arrays
  // (train_x, train_y, test_x, test_y) and a TorchScript model (model).
  std::vector<InputFile> inputs;
  double l2 = 0;            // L2 penalty on conv kernels, added to the loss (Keras: 1e-4)
  // Training
  int64_t batch_size = 128;
  std::string optimizer = "adam";  // adam (LibTorch's) | adam-keras (Keras 2.2.4's) | sgd
  double lr = 0.001;
  double momentum = 0.9;           // sgd only
  int epochs = 1;
  // "constant", or "keras-cifar10": the study's lr_schedule(epoch) with Keras's 0-based
  // epoch index: lr x1 for epochs 0..80, x0.1 from 81, x0.01 from 121, x0.001 from 161,
  // x0.0005 from 181 (worker/engine/schedule.h has the exact rule). EpochRecord::lr records it.
  std::string lr_schedule = "constant";
  // ReduceLROnPlateau on validation loss (Keras 2.2.4 semantics, worker/engine/schedule.h). As in
  // Keras, the keras-cifar10 schedule resets the lr at every epoch's begin, so with it
  // the plateau callback never changes the lr an epoch trains with (the study's case);
  // with "constant" it reduces the lr as it does alone.
  bool plateau = false;
  double plateau_factor = 0.31622776601683794;  // sqrt(0.1)
  int plateau_patience = 5;
  double plateau_min_lr = 0.5e-6;
  // Augmentation (Keras's example): random shifts up to this fraction of the image
  // (rounded to whole pixels, nearest-edge fill), horizontal flips with probability 0.5;
  // drawn per (augment_seed, epoch, sample index) from the engine's own generator
  // (worker/engine/augment.h). Batch digests then cover the draws too.
  bool augment = false;
  double augment_shift = 0.1;
  bool augment_flip = true;
  // Seeds by source of randomness
  uint64_t init_seed = 0;
  uint64_t shuffle_seed = 0;
  uint64_t augment_seed = 0;
  // Determinism
  // at::globalContext().setDeterministicAlgorithms and setDeterministicCuDNN; on cuda
  // also CUBLAS_WORKSPACE_CONFIG=:4096:8 (unless already :4096:8 or :16:8), set before
  // any CUDA work. RunResult::environment records what was in force.
  bool deterministic_algorithms = true;
  bool cudnn_benchmark = false;    // at::globalContext().setBenchmarkCuDNN
  int threads = 1;                 // intra-op threads; 0 = leave LibTorch's default
  std::string device = "cpu";
  // Fingerprints and exports
  bool keep_batch_digests = false; // fill EpochRecord::batch_digests
  bool keep_predictions = true;    // fill RunResult::predictions
  bool export_initial = false;     // weight files: initial, after every epoch, final
  bool export_final = false;
  bool export_every_epoch = false;
  // Checkpoints: every this many epochs (0 = never) the engine hands its state to
  // Callbacks::on_checkpoint; a non-empty resume_state (below) continues from one.
  int checkpoint_every = 0;

  // --- Set by the worker, never on the wire ---
  // Weight exports (worker/engine/safetensors.h; tensors named and ordered as the fingerprints):
  // <export_dir>/initial.safetensors before the first step, epoch-K.safetensors after
  // epoch K (0-based, as EpochRecord::epoch), final.safetensors after the last; the
  // directory is created. Empty export_dir = no export whatever the flags say.
  std::string export_dir;
  std::string resume_state;        // a checkpoint of this run to continue from
  // Per-batch digests and per-epoch weight hashes. Only benchmarks turn them off
  // (bench/train_bench.cc), to measure what they cost: EpochRecord::batch_digest and
  // weights_hash are then empty. No plan key sets it; a worker always fingerprints.
  bool fingerprints = true;
};

// The run spec of one run: the plan's recipe, the arm's determinism, the run's seeds
// (as SeedsFor gives them, and as the store keeps them).
RunSpec RunSpecFor(const Plan& plan, const ArmSpec& arm, const RunSeeds& seeds);

}  // namespace repro

#endif  // REPRO_COMMON_RUN_SPEC_H_
