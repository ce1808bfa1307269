// Training state at an epoch boundary, so that a run interrupted on one worker resumes
// on another and ends with the same final weights as a run never interrupted.
//
// What a checkpoint holds: the run's initial model hash (to refuse a checkpoint from
// another run), the epoch records so far (their validation losses also rebuild the
// learning-rate policy, by replay), every model tensor, the optimizer's state, and the
// state of LibTorch's default generators (the CPU's, and the GPU's the model is on),
// which a model that draws as it trains uses (a TorchScript model's dropout; the
// built-in models draw from them only to initialize). What it needs not hold: the
// shuffle and augmentation generators are functions of (seed, epoch). Format: a text
// header of epoch records, then LibTorch's archive.
//
// The tensor archive alone (SaveTrainingState, LoadTrainingState) is the same state
// without the epoch records: what a replay (replay.h) sets aside and puts back around a
// traced batch.
//
// Thread safety: free functions; the model and optimizer must not be in use elsewhere.
#ifndef REPRO_WORKER_ENGINE_CHECKPOINT_H_
#define REPRO_WORKER_ENGINE_CHECKPOINT_H_

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/records.h"

namespace repro::engine {

// Serializes the state after the last of `epochs` (epochs.back().epoch).
std::string SaveCheckpoint(const std::string& initial_hash, const std::vector<EpochRecord>& epochs,
                           const torch::nn::Module& model, torch::optim::Optimizer& optimizer);

// The model's tensors, the optimizer's state and the default generators, as LibTorch's
// archive: the last part of a checkpoint.
std::string SaveTrainingState(const torch::nn::Module& model, torch::optim::Optimizer& optimizer);

// Loads what SaveTrainingState saved into `model` and `optimizer` (on `device`).
// INVALID_ARGUMENT when a tensor's shape differs. May throw c10::Error (LibTorch) on bytes
// that are no archive.
absl::Status LoadTrainingState(const std::string& state, torch::nn::Module& model,
                               torch::optim::Optimizer& optimizer, const torch::Device& device);

// Loads a checkpoint into `model` and `optimizer` (built as for a fresh run, already on
// `device`) and returns its epoch records. INVALID_ARGUMENT when the bytes are not a
// checkpoint, or belong to a run whose initial model differs.
absl::StatusOr<std::vector<EpochRecord>> LoadCheckpoint(const std::string& bytes,
                                                        const std::string& initial_hash,
                                                        torch::nn::Module& model,
                                                        torch::optim::Optimizer& optimizer,
                                                        const torch::Device& device);

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_CHECKPOINT_H_
