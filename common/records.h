// Records that a run produces: what the training engine emits, what the worker sends
// over gRPC, what the store keeps and what the analyses read. Plain values, no
// dependencies, so the engine, the coordinator and reproctl all share one definition.
//
// Thread safety: plain structs; callers synchronize.
#ifndef REPRO_COMMON_RECORDS_H_
#define REPRO_COMMON_RECORDS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace repro {

// Hash of one named tensor (parameter or buffer), in the model's registration order.
struct TensorHash {
  std::string name;
  std::string hash;  // 32 lowercase hex digits, XXH3-128 (see common/hash.h)
};

// One finished epoch of one run.
struct EpochRecord {
  int epoch = 0;               // 0-based
  double loss = 0;             // mean training loss over the epoch's batches
  double accuracy = 0;         // training accuracy over the epoch
  double val_loss = 0;         // on the test set (the study used it as validation)
  double val_accuracy = 0;
  double seconds = 0;          // wall time of the epoch (training + validation)
  double lr = 0;               // learning rate used during the epoch
  std::string batch_digest;    // hash of the epoch's per-batch digests, in order
  std::string weights_hash;    // model hash after the epoch
  std::vector<std::string> batch_digests;  // per-batch digests, when the plan asks
};

// One weights file a run exported (initial, after an epoch, final) as the coordinator
// holds it: the worker uploads the file (WorkerService.PutBlob) before it completes the
// run, and results and reports name it by SHA-256, never by a path on the worker.
struct WeightsFile {
  std::string name;    // "initial", "epoch-K" (K 0-based) or "final"
  std::string sha256;  // 64 lower-case hex digits: a blob of the coordinator's store
  int64_t size = 0;    // bytes
};

// Where two runs that started alike part, as a worker found it by replaying them
// (worker/engine/localize.h; reproctl localize).
struct LocalizationResult {
  int epoch = 0;             // the epoch replayed: the first after which their weights differ
  int64_t batches = 0;       // in that epoch
  int64_t batch = -1;        // the first after which the replays' weights differ; -1: none
  // Whether each side's replay ended the epoch with the weights its run recorded:
  // 1 yes, 0 no, -1 not known.
  int a_reproduced = -1;
  int b_reproduced = -1;
  // The first op of that batch whose outputs differ: "outputs" (the same op, different
  // outputs), "ops" (the two sides ran different ops there) or "none".
  std::string op_kind = "none";
  int64_t op_index = -1;     // in the batch's trace
  std::string op_name;       // "aten::convolution_backward"
  std::string op_name_b;     // side b's op where the ops differ
  std::string op_module;     // "stage2.block0.conv1"; "" for the model itself
  std::string op_phase;      // forward | backward | update
  bool inputs_equal = false; // every input equal: this op is where the runs part
  int differing_outputs = 0;
  int64_t values = 0;        // output values compared
  int64_t differing_values = 0;
  double max_abs = 0;        // largest |a - b|
  uint64_t max_ulps = 0;     // in units in the last place of the outputs' type
  bool trace_changed_nothing = true;  // each traced step ended as its untraced one
  int64_t trace_ops = 0;
  int64_t trace_bytes = 0;
  double replay_seconds = 0;       // the two replays of the epoch
  double step_seconds = 0;         // one step of that batch, untraced
  double traced_step_seconds = 0;  // and traced
  double seconds = 0;              // every replay of it, on its workers, added up
  std::string worker;    // the worker that replayed both runs, or run a's last stage
  std::string worker_b;  // run b's, when each run replayed on a worker like its own; "" else
};

// How RunResult::diverged starts: the store tells it from other notes by it.
inline constexpr char kDivergedPrefix[] = "diverged: ";

// Everything a finished run produced.
struct RunResult {
  double test_loss = 0;
  double test_accuracy = 0;
  std::string data_x_hash;     // training inputs as fed to the model
  std::string data_y_hash;     // training labels
  std::string initial_hash;    // model hash before the first step
  std::string final_hash;      // model hash after the last epoch
  std::vector<TensorHash> initial_tensors;
  std::vector<TensorHash> final_tensors;
  std::vector<EpochRecord> epochs;
  // Where and how the run trained: host, cpu_model, gpu_name, driver, cuda, cudnn,
  // torch, compiler, threads, deterministic_algorithms, cudnn_benchmark, device.
  std::map<std::string, std::string> environment;
  // The final model's predicted class for every test example, in test-set order
  // (empty when the plan does not keep predictions).
  std::vector<uint8_t> predictions;
  // Exported weight files (safetensors) as the engine wrote them, paths on its own
  // machine; empty when not exported. Never sent: the worker uploads the files and sends
  // `weights`. (Results stored before weights travelled hold the worker's paths here.)
  std::string initial_weights;
  std::string final_weights;
  std::vector<std::string> epoch_weights;  // one per epoch when every epoch is exported
  // The exported files as uploaded, in the order initial, epoch-0.., final.
  std::vector<WeightsFile> weights;
  // Empty when the run trained to its last epoch. Otherwise the engine's one sentence on
  // where the loss stopped being a number ("diverged: loss nan at epoch 2, batch 17"):
  // the run is done all the same, `epochs` holds the epochs before that one, and its
  // test scores (0) and predictions (none) are not scores; the analyses leave it out
  // of every statistic of the scores.
  std::string diverged;
};

}  // namespace repro

#endif  // REPRO_COMMON_RECORDS_H_
