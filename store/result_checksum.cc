#include "store/result_checksum.h"

#include <cstdint>
#include <cstring>

#include "common/hash.h"

namespace repro {
namespace {

void UpdateDouble(Hasher& h, double value) {
  if (value == 0) value = 0;  // -0.0 as SQLite gives it back
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  h.UpdateU64(bits);
}

void UpdateEpoch(Hasher& h, const EpochRecord& e) {
  h.UpdateU64(static_cast<uint64_t>(static_cast<int64_t>(e.epoch)));
  for (double value : {e.loss, e.accuracy, e.val_loss, e.val_accuracy, e.seconds, e.lr}) {
    UpdateDouble(h, value);
  }
  h.UpdateField(e.batch_digest);
  h.UpdateField(e.weights_hash);
  h.UpdateU64(e.batch_digests.size());
  for (const std::string& digest : e.batch_digests) h.UpdateField(digest);
}

}  // namespace

std::string ResultChecksum(const RunResult& r) {
  Hasher h;
  h.UpdateField("repro result 1");  // the serialization's version
  UpdateDouble(h, r.test_loss);
  UpdateDouble(h, r.test_accuracy);
  for (const std::string* hash : {&r.data_x_hash, &r.data_y_hash, &r.initial_hash, &r.final_hash}) {
    h.UpdateField(*hash);
  }
  for (const auto* tensors : {&r.initial_tensors, &r.final_tensors}) {
    h.UpdateU64(tensors->size());
    for (const TensorHash& t : *tensors) {
      h.UpdateField(t.name);
      h.UpdateField(t.hash);
    }
  }
  h.UpdateU64(r.epochs.size());
  for (const EpochRecord& e : r.epochs) UpdateEpoch(h, e);
  h.UpdateU64(r.environment.size());
  for (const auto& [key, value] : r.environment) {
    h.UpdateField(key);
    h.UpdateField(value);
  }
  h.UpdateU64(r.predictions.size());
  h.Update(r.predictions.data(), r.predictions.size());
  h.UpdateField(r.initial_weights);
  h.UpdateField(r.final_weights);
  h.UpdateU64(r.epoch_weights.size());
  for (const std::string& path : r.epoch_weights) h.UpdateField(path);
  h.UpdateField(r.diverged);
  // Appended only when there are any, so that results stored before weights travelled
  // (none then) keep the checksum they were written with.
  if (!r.weights.empty()) {
    h.UpdateField("weights");
    h.UpdateU64(r.weights.size());
    for (const WeightsFile& w : r.weights) {
      h.UpdateField(w.name);
      h.UpdateField(w.sha256);
      h.UpdateU64(static_cast<uint64_t>(w.size));
    }
  }
  return h.HexDigest();
}

}  // namespace repro
