#include "proto/convert.h"

#include "absl/strings/str_cat.h"

#include <optional>

namespace repro {

v1::RunSpec ToProto(const RunSpec& s) {
  v1::RunSpec out;
  out.set_dataset_kind(s.dataset_kind);
  out.set_dataset_path(s.dataset_path);
  out.set_train_limit(s.train_limit);
  out.set_test_limit(s.test_limit);
  out.set_model_kind(s.model_kind);
  out.set_model_version(s.model_version);
  out.set_model_depth(s.model_depth);
  out.set_l2(s.l2);
  out.set_batch_size(s.batch_size);
  out.set_optimizer(s.optimizer);
  out.set_lr(s.lr);
  out.set_momentum(s.momentum);
  out.set_epochs(s.epochs);
  out.set_lr_schedule(s.lr_schedule);
  out.set_plateau(s.plateau);
  out.set_plateau_factor(s.plateau_factor);
  out.set_plateau_patience(s.plateau_patience);
  out.set_plateau_min_lr(s.plateau_min_lr);
  out.set_augment(s.augment);
  out.set_augment_shift(s.augment_shift);
  out.set_augment_flip(s.augment_flip);
  out.set_init_seed(s.init_seed);
  out.set_shuffle_seed(s.shuffle_seed);
  out.set_augment_seed(s.augment_seed);
  out.set_deterministic_algorithms(s.deterministic_algorithms);
  out.set_cudnn_benchmark(s.cudnn_benchmark);
  out.set_threads(s.threads);
  out.set_device(s.device);
  out.set_keep_batch_digests(s.keep_batch_digests);
  out.set_keep_predictions(s.keep_predictions);
  out.set_export_initial(s.export_initial);
  out.set_export_final(s.export_final);
  out.set_export_every_epoch(s.export_every_epoch);
  out.set_checkpoint_every(s.checkpoint_every);
  for (const InputFile& f : s.inputs) {
    v1::InputFile* file = out.add_inputs();
    file->set_role(f.role);
    file->set_path(f.path);
    file->set_sha256(f.sha256);
    file->set_size(f.size);
  }
  out.set_model_init(s.model_init);
  return out;
}

RunSpec FromProto(const v1::RunSpec& s) {
  RunSpec out;
  out.dataset_kind = s.dataset_kind();
  out.dataset_path = s.dataset_path();
  out.train_limit = s.train_limit();
  out.test_limit = s.test_limit();
  out.model_kind = s.model_kind();
  out.model_version = s.model_version();
  out.model_depth = s.model_depth();
  out.l2 = s.l2();
  out.batch_size = s.batch_size();
  out.optimizer = s.optimizer();
  out.lr = s.lr();
  out.momentum = s.momentum();
  out.epochs = s.epochs();
  // Coordinators older than the lr_schedule field send none: the constant rate.
  out.lr_schedule = s.lr_schedule().empty() ? "constant" : s.lr_schedule();
  out.plateau = s.plateau();
  out.plateau_factor = s.plateau_factor();
  out.plateau_patience = s.plateau_patience();
  out.plateau_min_lr = s.plateau_min_lr();
  out.augment = s.augment();
  out.augment_shift = s.augment_shift();
  out.augment_flip = s.augment_flip();
  out.init_seed = s.init_seed();
  out.shuffle_seed = s.shuffle_seed();
  out.augment_seed = s.augment_seed();
  out.deterministic_algorithms = s.deterministic_algorithms();
  out.cudnn_benchmark = s.cudnn_benchmark();
  out.threads = s.threads();
  out.device = s.device();
  out.keep_batch_digests = s.keep_batch_digests();
  out.keep_predictions = s.keep_predictions();
  out.export_initial = s.export_initial();
  out.export_final = s.export_final();
  out.export_every_epoch = s.export_every_epoch();
  out.checkpoint_every = s.checkpoint_every();
  for (const v1::InputFile& f : s.inputs()) {
    out.inputs.push_back(InputFile{f.role(), f.path(), f.sha256(), f.size()});
  }
  // An empty model_init (an older coordinator) reads as the default.
  if (!s.model_init().empty()) out.model_init = s.model_init();
  return out;
}

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
  for (const WeightsFile& w : r.weights) {
    v1::WeightsFile* file = out.add_weights();
    file->set_name(w.name);
    file->set_sha256(w.sha256);
    file->set_size(w.size);
  }
  out.set_diverged(r.diverged);
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
  for (const v1::WeightsFile& w : r.weights()) out.weights.push_back({w.name(), w.sha256(), w.size()});
  out.diverged = r.diverged();
  return out;
}

v1::Localization ToProto(const LocalizationResult& l) {
  v1::Localization out;
  out.set_epoch(l.epoch);
  out.set_batches(l.batches);
  out.set_batch(l.batch);
  out.set_a_reproduced(l.a_reproduced);
  out.set_b_reproduced(l.b_reproduced);
  out.set_op_kind(l.op_kind);
  out.set_op_index(l.op_index);
  out.set_op_name(l.op_name);
  out.set_op_name_b(l.op_name_b);
  out.set_op_module(l.op_module);
  out.set_op_phase(l.op_phase);
  out.set_inputs_equal(l.inputs_equal);
  out.set_differing_outputs(l.differing_outputs);
  out.set_values(l.values);
  out.set_differing_values(l.differing_values);
  out.set_max_abs(l.max_abs);
  out.set_max_ulps(l.max_ulps);
  out.set_trace_changed_nothing(l.trace_changed_nothing);
  out.set_trace_ops(l.trace_ops);
  out.set_trace_bytes(l.trace_bytes);
  out.set_replay_seconds(l.replay_seconds);
  out.set_step_seconds(l.step_seconds);
  out.set_traced_step_seconds(l.traced_step_seconds);
  out.set_seconds(l.seconds);
  out.set_worker(l.worker);
  out.set_worker_b(l.worker_b);
  return out;
}

LocalizationResult FromProto(const v1::Localization& l) {
  LocalizationResult out;
  out.epoch = l.epoch();
  out.batches = l.batches();
  out.batch = l.batch();
  out.a_reproduced = l.a_reproduced();
  out.b_reproduced = l.b_reproduced();
  out.op_kind = l.op_kind();
  out.op_index = l.op_index();
  out.op_name = l.op_name();
  out.op_name_b = l.op_name_b();
  out.op_module = l.op_module();
  out.op_phase = l.op_phase();
  out.inputs_equal = l.inputs_equal();
  out.differing_outputs = l.differing_outputs();
  out.values = l.values();
  out.differing_values = l.differing_values();
  out.max_abs = l.max_abs();
  out.max_ulps = l.max_ulps();
  out.trace_changed_nothing = l.trace_changed_nothing();
  out.trace_ops = l.trace_ops();
  out.trace_bytes = l.trace_bytes();
  out.replay_seconds = l.replay_seconds();
  out.step_seconds = l.step_seconds();
  out.traced_step_seconds = l.traced_step_seconds();
  out.seconds = l.seconds();
  out.worker = l.worker();
  out.worker_b = l.worker_b();
  return out;
}

v1::SideReplay ToProto(const SideReplay& r, const std::string& dump_sha256) {
  v1::SideReplay out;
  out.mutable_batch_hashes()->Add(r.batch_hashes.begin(), r.batch_hashes.end());
  for (const OpRecord& op : r.trace) {
    v1::TracedOp* o = out.add_trace();
    o->set_name(op.name);
    o->set_module(op.module);
    o->set_phase(PhaseName(op.phase));
    o->mutable_inputs()->Add(op.inputs.begin(), op.inputs.end());
    for (const TracedValue& v : op.outputs) {
      v1::TracedValue* w = o->add_outputs();
      w->set_hash(v.hash);
      w->set_dtype(v.dtype);
      w->mutable_shape()->Add(v.shape.begin(), v.shape.end());
    }
  }
  out.set_traced_batch_end_hash(r.traced_batch_end_hash);
  out.set_trace_bytes(r.trace_bytes);
  out.set_batch_seconds(r.batch_seconds);
  out.set_traced_batch_seconds(r.traced_batch_seconds);
  out.set_dump_sha256(dump_sha256);
  out.set_seconds(r.seconds);
  out.set_wall_seconds(r.wall_seconds);
  return out;
}

absl::StatusOr<SideReplay> FromProto(const v1::SideReplay& r) {
  SideReplay out;
  out.batch_hashes.assign(r.batch_hashes().begin(), r.batch_hashes().end());
  for (const v1::TracedOp& o : r.trace()) {
    OpRecord op;
    op.name = o.name();
    op.module = o.module();
    const std::optional<OpPhase> phase = PhaseNamed(o.phase());
    if (!phase) {
      return absl::InvalidArgumentError(
          absl::StrCat("a traced op's phase \"", o.phase().substr(0, 40),
                       "\" is none of forward, backward, update"));
    }
    op.phase = *phase;
    op.inputs.assign(o.inputs().begin(), o.inputs().end());
    for (const v1::TracedValue& v : o.outputs()) {
      op.outputs.push_back({v.hash(), v.dtype(), {v.shape().begin(), v.shape().end()}});
    }
    out.trace.push_back(std::move(op));
  }
  out.traced_batch_end_hash = r.traced_batch_end_hash();
  out.trace_bytes = r.trace_bytes();
  out.batch_seconds = r.batch_seconds();
  out.traced_batch_seconds = r.traced_batch_seconds();
  out.seconds = r.seconds();
  out.wall_seconds = r.wall_seconds();
  return out;
}

namespace {

v1::RunCounts ToProto(const RunCounts& c) {
  v1::RunCounts out;
  out.set_pending(c.pending);
  out.set_running(c.running);
  out.set_done(c.done);
  out.set_failed(c.failed);
  return out;
}

RunCounts FromProto(const v1::RunCounts& c) {
  return RunCounts{c.pending(), c.running(), c.done(), c.failed()};
}

}  // namespace

v1::WorkerStatus ToProto(const WorkerRecord& w) {
  v1::WorkerStatus out;
  out.set_name(w.name);
  out.set_host(w.host);
  out.set_device(w.device);
  out.set_threads(w.threads);
  out.set_torch_version(w.torch_version);
  out.set_last_seen_unix_ms(w.last_seen_ms);
  out.set_current_run(w.current_run);
  out.mutable_capabilities()->insert(w.capabilities.begin(), w.capabilities.end());
  out.mutable_labels()->insert(w.labels.begin(), w.labels.end());
  out.set_gone_unix_ms(w.gone_ms);
  out.set_gone_reason(w.gone_reason);
  return out;
}

namespace {

// The fields WorkerInfo and WorkerStatus share.
template <typename Message>
WorkerRecord WorkerFields(const Message& w) {
  WorkerRecord out;
  out.name = w.name();
  out.host = w.host();
  out.torch_version = w.torch_version();
  out.device = w.device();
  out.threads = w.threads();
  out.capabilities.insert(w.capabilities().begin(), w.capabilities().end());
  out.labels.insert(w.labels().begin(), w.labels().end());
  return out;
}

v1::AdaptiveState AdaptiveToProto(const AdaptiveState& a) {
  v1::AdaptiveState out;
  out.set_min_runs(a.min);
  out.set_max_runs(a.max);
  out.set_step_runs(a.step);
  out.set_ratio_ci_width(a.ratio_ci_width);
  out.set_metric(a.metric);
  out.set_reference(a.reference);
  out.set_looks_planned(a.looks_planned);
  out.set_level(a.level);
  for (const AdaptiveLook& l : a.looks) {
    v1::AdaptiveLook* look = out.add_looks();
    look->set_decision(l.decision);
    look->mutable_added()->insert(l.added.begin(), l.added.end());
    for (const AdaptiveArmLook& in : l.arms) {
      v1::AdaptiveArmLook* arm = look->add_arms();
      arm->set_arm(in.arm);
      arm->set_runs(in.runs);
      arm->set_reference_runs(in.reference_runs);
      if (in.ratio) arm->set_ratio(*in.ratio);
      if (in.low) arm->set_low(*in.low);
      if (in.high) arm->set_high(*in.high);
      arm->set_settled(in.settled);
      if (in.runs_needed) arm->set_runs_needed(*in.runs_needed);
    }
  }
  return out;
}

// An optional field of the wire as std::optional: nullopt when unset.
template <typename T>
std::optional<T> Present(bool has, T value) {
  return has ? std::optional<T>(value) : std::nullopt;
}

AdaptiveState AdaptiveFromProto(const v1::AdaptiveState& a) {
  AdaptiveState out;
  out.min = a.min_runs();
  out.max = a.max_runs();
  out.step = a.step_runs();
  out.ratio_ci_width = a.ratio_ci_width();
  out.metric = a.metric();
  out.reference = a.reference();
  out.looks_planned = a.looks_planned();
  out.level = a.level();
  for (const v1::AdaptiveLook& l : a.looks()) {
    AdaptiveLook& look = out.looks.emplace_back();
    look.decision = l.decision();
    look.added.insert(l.added().begin(), l.added().end());
    for (const v1::AdaptiveArmLook& in : l.arms()) {
      look.arms.push_back(AdaptiveArmLook{
          in.arm(), in.runs(), in.reference_runs(), Present(in.has_ratio(), in.ratio()),
          Present(in.has_low(), in.low()), Present(in.has_high(), in.high()), in.settled(),
          Present(in.has_runs_needed(), in.runs_needed())});
    }
  }
  return out;
}

}  // namespace

WorkerRecord FromProto(const v1::WorkerStatus& w) {
  WorkerRecord out = WorkerFields(w);
  out.last_seen_ms = w.last_seen_unix_ms();
  out.current_run = w.current_run();
  out.gone_ms = w.gone_unix_ms();
  out.gone_reason = w.gone_reason();
  return out;
}

WorkerRecord FromProto(const v1::WorkerInfo& w) { return WorkerFields(w); }

v1::StatusResponse ToProto(const ExperimentStatus& s) {
  v1::StatusResponse out;
  out.set_experiment(s.experiment);
  out.set_epochs(s.epochs);
  out.set_complete(s.complete);
  out.set_eta_seconds(s.eta_seconds);
  *out.mutable_runs() = ToProto(s.runs);
  for (const ArmProgress& a : s.arms) {
    v1::ArmProgress* arm = out.add_arms();
    arm->set_name(a.name);
    arm->set_total(a.total);
    *arm->mutable_runs() = ToProto(a.runs);
    arm->set_waiting(a.waiting);
  }
  for (const RunningRun& r : s.running) {
    v1::RunningRun* run = out.add_running();
    run->set_arm(r.arm);
    run->set_index(r.index);
    run->set_worker(r.worker);
    run->set_epoch(r.epoch);
    run->set_epochs(r.epochs);
    run->set_batch(r.batch);
    run->set_batches(r.batches);
  }
  for (const WorkerRecord& w : s.workers) *out.add_workers() = ToProto(w);
  out.set_database_bytes(s.database_bytes);
  out.set_wal_bytes(s.wal_bytes);
  out.set_weights_files(s.weights.files);
  out.set_weights_bytes(s.weights.bytes);
  out.set_weights_stored_bytes(s.weights.stored_bytes);
  if (s.adaptive) *out.mutable_adaptive() = AdaptiveToProto(*s.adaptive);
  for (const LocalizationState& l : s.localizing) {
    v1::LocalizingStatus* open = out.add_localizing();
    open->set_run_a(l.run_a);
    open->set_run_b(l.run_b);
    open->set_state(l.state);
    open->set_epoch(l.epoch);
    open->set_worker(l.worker);
    open->set_stage(l.stage);
  }
  return out;
}

ExperimentStatus FromProto(const v1::StatusResponse& s) {
  ExperimentStatus out;
  out.experiment = s.experiment();
  out.epochs = s.epochs();
  out.complete = s.complete();
  out.eta_seconds = s.eta_seconds();
  out.runs = FromProto(s.runs());
  for (const v1::ArmProgress& a : s.arms()) {
    out.arms.push_back(ArmProgress{a.name(), a.total(), FromProto(a.runs()), a.waiting()});
  }
  for (const v1::RunningRun& r : s.running()) {
    out.running.push_back(RunningRun{r.arm(), r.index(), r.worker(), r.epoch(), r.epochs(),
                                     r.batch(), r.batches()});
  }
  for (const v1::WorkerStatus& w : s.workers()) out.workers.push_back(FromProto(w));
  out.database_bytes = s.database_bytes();
  out.wal_bytes = s.wal_bytes();
  out.weights = WeightsUsage{s.weights_files(), s.weights_bytes(), s.weights_stored_bytes()};
  if (s.has_adaptive()) out.adaptive = AdaptiveFromProto(s.adaptive());
  for (const v1::LocalizingStatus& l : s.localizing()) {
    LocalizationState open;
    open.run_a = l.run_a();
    open.run_b = l.run_b();
    open.state = l.state();
    open.epoch = l.epoch();
    open.worker = l.worker();
    open.stage = l.stage();
    out.localizing.push_back(std::move(open));
  }
  return out;
}

}  // namespace repro
