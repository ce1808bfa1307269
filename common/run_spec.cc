#include "common/run_spec.h"

namespace repro {

RunSpec RunSpecFor(const Plan& plan, const ArmSpec& arm, const RunSeeds& seeds) {
  const TrainingSpec& t = plan.training;
  RunSpec spec;
  spec.dataset_kind = plan.dataset.kind;
  spec.dataset_path = plan.dataset.path;
  spec.train_limit = plan.dataset.train_limit;
  spec.test_limit = plan.dataset.test_limit;
  spec.model_kind = plan.model.kind;
  spec.model_version = plan.model.version;
  spec.model_depth = plan.model.depth;
  spec.model_init = plan.model.init;
  spec.inputs = plan.inputs;
  spec.l2 = plan.model.l2;
  spec.batch_size = t.batch_size;
  spec.optimizer = t.optimizer;
  spec.lr = t.lr;
  spec.momentum = t.momentum;
  spec.epochs = plan.epochs;
  spec.lr_schedule = t.lr_schedule;
  spec.plateau = t.plateau;
  spec.plateau_factor = t.plateau_factor;
  spec.plateau_patience = t.plateau_patience;
  spec.plateau_min_lr = t.plateau_min_lr;
  spec.augment = t.augment;
  spec.augment_shift = t.augment_shift;
  spec.augment_flip = t.augment_flip;
  spec.init_seed = seeds.init;
  spec.shuffle_seed = seeds.shuffle;
  spec.augment_seed = seeds.augment;
  spec.deterministic_algorithms = arm.determinism.deterministic_algorithms;
  spec.cudnn_benchmark = arm.determinism.cudnn_benchmark;
  spec.threads = arm.determinism.threads;
  spec.device = arm.determinism.device;
  spec.keep_batch_digests = plan.batch_digests;
  spec.keep_predictions = plan.predictions;
  spec.export_initial = plan.export_initial;
  spec.export_final = plan.export_final;
  spec.export_every_epoch = plan.export_every_epoch;
  spec.checkpoint_every = plan.checkpoint_every;
  return spec;
}

}  // namespace repro
