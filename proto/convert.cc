#include "proto/convert.h"

namespace repro {

v1::Epoch ToProto(const EpochRecord& e) {
  v1::Epoch out;
  out.set_epoch(e.epoch);
  out.set_loss(e.loss);
  out.set_accuracy(e.accuracy);
  out.set_val_loss(e.val_loss);
  out.set_val_accuracy(e.val_accuracy);
  out.set_seconds(e.seconds);
  out.set_batch_digest(e.batch_digest);
  out.set_weights_hash(e.weights_hash);
  out.set_lr(e.lr);
  for (const auto& d : e.batch_digests) out.add_batch_digests(d);
  return out;
}

EpochRecord FromProto(const v1::Epoch& e) {
  EpochRecord out;
  out.epoch = e.epoch();
  out.loss = e.loss();
  out.accuracy = e.accuracy();
  out.val_loss = e.val_loss();
  out.val_accuracy = e.val_accuracy();
  out.seconds = e.seconds();
  out.batch_digest = e.batch_digest();
  out.weights_hash = e.weights_hash();
  out.lr = e.lr();
  out.batch_digests.assign(e.batch_digests().begin(), e.batch_digests().end());
  return out;
}

v1::RunResult ToProto(const RunResult& r) {
  v1::RunResult out;
  out.set_test_loss(r.test_loss);
  out.set_test_accuracy(r.test_accuracy);
  out.set_data_x_hash(r.data_x_hash);
  out.set_data_y_hash(r.data_y_hash);
  out.set_initial_hash(r.initial_hash);
  out.set_final_hash(r.final_hash);
  for (const auto& t : r.initial_tensors) {
    auto* p = out.add_initial_tensors();
    p->set_name(t.name);
    p->set_hash(t.hash);
  }
  for (const auto& t : r.final_tensors) {
    auto* p = out.add_final_tensors();
    p->set_name(t.name);
    p->set_hash(t.hash);
  }
  for (const auto& e : r.epochs) *out.add_epochs() = ToProto(e);
  out.mutable_environment()->insert(r.environment.begin(), r.environment.end());
  out.set_predictions(std::string(r.predictions.begin(), r.predictions.end()));
  out.set_initial_weights(r.initial_weights);
  out.set_final_weights(r.final_weights);
  for (const auto& path : r.epoch_weights) out.add_epoch_weights(path);
  return out;
}

RunResult FromProto(const v1::RunResult& r) {
  RunResult out;
  out.test_loss = r.test_loss();
  out.test_accuracy = r.test_accuracy();
  out.data_x_hash = r.data_x_hash();
  out.data_y_hash = r.data_y_hash();
  out.initial_hash = r.initial_hash();
  out.final_hash = r.final_hash();
  for (const auto& t : r.initial_tensors()) out.initial_tensors.push_back({t.name(), t.hash()});
  for (const auto& t : r.final_tensors()) out.final_tensors.push_back({t.name(), t.hash()});
  for (const auto& e : r.epochs()) out.epochs.push_back(FromProto(e));
  out.environment.insert(r.environment().begin(), r.environment().end());
  out.predictions.assign(r.predictions().begin(), r.predictions().end());
  out.initial_weights = r.initial_weights();
  out.final_weights = r.final_weights();
  out.epoch_weights.assign(r.epoch_weights().begin(), r.epoch_weights().end());
  return out;
}

}  // namespace repro
