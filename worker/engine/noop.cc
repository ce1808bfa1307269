#include "worker/engine/noop.h"

#include <string>
#include <utility>

#include "common/hash.h"

namespace repro::engine {
namespace {

// fingerprint.h's HashTensor of a float32 tensor of shape [0], without LibTorch: its
// dtype name, 1 dimension, size 0, no bytes (engine_test checks it against HashTensor).
std::string EmptyFloatTensorHash() {
  Hasher hasher;
  hasher.UpdateField("Float");
  hasher.UpdateU64(1);
  hasher.UpdateU64(0);
  return hasher.HexDigest();
}

}  // namespace

RunResult NoopResult(int epochs, double lr) {
  RunResult result;
  const std::string nothing = HashBytes("", 0);
  result.data_x_hash = nothing;
  result.data_y_hash = nothing;
  const std::string tensor = EmptyFloatTensorHash();
  result.initial_tensors = {TensorHash{kNoopTensor, tensor}};
  result.final_tensors = result.initial_tensors;
  result.initial_hash = HashNamed({{kNoopTensor, tensor}});
  result.final_hash = result.initial_hash;
  const std::string no_batches = HashSequence({});
  for (int epoch = 0; epoch < epochs; ++epoch) {
    EpochRecord record;
    record.epoch = epoch;
    record.lr = lr;
    record.batch_digest = no_batches;
    record.weights_hash = result.initial_hash;
    result.epochs.push_back(std::move(record));
  }
  return result;
}

}  // namespace repro::engine
