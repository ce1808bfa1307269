// RunStore's results and the views read from them: storing epochs (RecordEpoch,
// StoreEpochs) and finished runs (Complete); reading an experiment back as an
// ExperimentView (LoadView, LoadResults), its counts (Counts), timing (Timing) and a
// run's label (RunLabel). Leases are in leases.cc.
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "store/result_checksum.h"
#include "store/store.h"
#include "store/store_internal.h"

namespace repro {
namespace {

RunState ParseState(const std::string& s) {
  if (s == "running") return RunState::kRunning;
  if (s == "done") return RunState::kDone;
  if (s == "failed") return RunState::kFailed;
  return RunState::kPending;
}

std::string JoinDigests(const std::vector<std::string>& digests) {
  std::string out;
  for (const auto& d : digests) absl::StrAppend(&out, out.empty() ? "" : " ", d);
  return out;
}

std::vector<std::string> SplitDigests(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// When attempt `counted` of the run counts, the attempt that holds the run's lease now
// (`current`, leased after `counted` expired; 0: none or `counted` itself) is not needed
// any more: it ends rather than stay "running", and its worker holds no run; its
// result, if it comes, is kept as an extra one. Only the current lease can be running:
// an attempt stops running when its lease expires or is handed back.
absl::Status EndCurrentAttempt(sql::Database& db, int64_t current, int64_t counted,
                               int64_t now_ms) {
  if (current == 0 || current == counted) return absl::OkStatus();
  ASSIGN_OR_RETURN(auto workers, db.Prepare(
      "UPDATE workers SET current_run = '' WHERE name = (SELECT worker FROM attempts "
      "WHERE id = ? AND outcome = 'running')"));
  RETURN_IF_ERROR(workers->Bind(1, current).Run());
  ASSIGN_OR_RETURN(auto attempts, db.Prepare(
      "UPDATE attempts SET ended_ms = ?, outcome = 'failed', "
      "error = 'not needed: the result of an earlier attempt counted first' "
      "WHERE id = ? AND outcome = 'running'"));
  return attempts->Bind(1, now_ms).Bind(2, current).Run();
}

}  // namespace

absl::Status RunStore::StoreEpochs(int64_t attempt_id, const std::vector<EpochRecord>& epochs) {
  // Epochs are kept per attempt, so a stale attempt's records never mix with the
  // current one's; INSERT OR REPLACE makes a resent epoch idempotent.
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "INSERT OR REPLACE INTO epochs (attempt_id, epoch, loss, accuracy, val_loss, val_accuracy, "
      "seconds, batch_digest, weights_hash, batch_digests, lr) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  for (const EpochRecord& e : epochs) {
    q->Reset();
    RETURN_IF_ERROR(q->Bind(1, attempt_id).Bind(2, e.epoch).Bind(3, e.loss).Bind(4, e.accuracy)
                        .Bind(5, e.val_loss).Bind(6, e.val_accuracy).Bind(7, e.seconds)
                        .Bind(8, e.batch_digest).Bind(9, e.weights_hash)
                        .Bind(10, JoinDigests(e.batch_digests)).Bind(11, e.lr).Run());
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> RunStore::RecordEpoch(int64_t run_id, int64_t lease_id,
                                           const EpochRecord& e) {
  return Write([&]() -> absl::StatusOr<bool> {
    // A late report changes no finished result: its epochs are under its checksum.
    ASSIGN_OR_RETURN(auto check, db_->Prepare(
        "SELECT 1 FROM attempts WHERE id = ? AND run_id = ? "
        "AND outcome NOT IN ('done', 'extra')"));
    check->Bind(1, lease_id).Bind(2, run_id);
    ASSIGN_OR_RETURN(bool known, check->Step());
    if (!known) return false;
    RETURN_IF_ERROR(StoreEpochs(lease_id, {e}));
    return IsCurrentLease(run_id, lease_id);
  });
}

absl::StatusOr<bool> RunStore::Complete(int64_t run_id, int64_t lease_id, const RunResult& r,
                                        int64_t now_ms) {
  return Write([&]() -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "SELECT r.state, r.lease_attempt, a.outcome, w.name FROM runs r "
        "JOIN attempts a ON a.id = ? AND a.run_id = r.id "
        "LEFT JOIN workers w ON w.name = a.worker WHERE r.id = ?"));
    q->Bind(1, lease_id).Bind(2, run_id);
    ASSIGN_OR_RETURN(bool known, q->Step());
    if (!known) {
      return absl::NotFoundError(absl::StrCat("run ", run_id, " has no attempt ", lease_id));
    }
    const std::string state = q->Text(0);
    const int64_t current_lease = q->Int(1);  // 0 when NULL
    const std::string outcome = q->Text(2);
    const std::string worker = q->Text(3);
    // A resent completion of an attempt already stored changes nothing.
    if (outcome == "done") return true;
    if (outcome == "extra") return false;
    // The first result counts, even from a lease that expired while its worker trained
    // on; but a cancelled or failed run, and an attempt its worker failed or handed
    // back, are final: their late results are only evidence.
    const bool counted = (state == "pending" || state == "running") &&
                         (outcome == "running" || outcome == "expired");
    ASSIGN_OR_RETURN(auto attempt, db_->Prepare(
        "UPDATE attempts SET ended_ms = ?, outcome = ?, test_loss = ?, test_accuracy = ?, "
        "data_x_hash = ?, data_y_hash = ?, initial_hash = ?, final_hash = ?, environment = ?, "
        "predictions = ?, initial_weights = ?, final_weights = ?, epoch_weights = ?, "
        "diverged = NULLIF(?, ''), checksum = ? WHERE id = ?"));
    RETURN_IF_ERROR(attempt->Bind(1, now_ms).Bind(2, std::string(counted ? "done" : "extra"))
                        .Bind(3, r.test_loss).Bind(4, r.test_accuracy).Bind(5, r.data_x_hash)
                        .Bind(6, r.data_y_hash).Bind(7, r.initial_hash).Bind(8, r.final_hash)
                        .Bind(9, nlohmann::json(r.environment).dump())
                        .BindBlob(10, r.predictions.data(), r.predictions.size())
                        .Bind(11, r.initial_weights).Bind(12, r.final_weights)
                        .Bind(13, nlohmann::json(r.epoch_weights).dump())
                        .Bind(14, r.diverged).Bind(15, ResultChecksum(r))
                        .Bind(16, lease_id).Run());
    ASSIGN_OR_RETURN(auto file, db_->Prepare(
        "INSERT OR REPLACE INTO weight_files (attempt_id, ordinal, name, sha256, size) "
        "VALUES (?, ?, ?, ?, ?)"));
    for (size_t i = 0; i < r.weights.size(); ++i) {
      file->Reset();
      RETURN_IF_ERROR(file->Bind(1, lease_id).Bind(2, static_cast<int64_t>(i))
                          .Bind(3, r.weights[i].name).Bind(4, r.weights[i].sha256)
                          .Bind(5, r.weights[i].size).Run());
    }
    ASSIGN_OR_RETURN(auto tensor, db_->Prepare(
        "INSERT OR REPLACE INTO tensors (attempt_id, which, ordinal, name, hash) "
        "VALUES (?, ?, ?, ?, ?)"));
    for (const auto& [which, list] : {std::pair{std::string("initial"), &r.initial_tensors},
                                      std::pair{std::string("final"), &r.final_tensors}}) {
      for (size_t i = 0; i < list->size(); ++i) {
        tensor->Reset();
        RETURN_IF_ERROR(tensor->Bind(1, lease_id).Bind(2, which).Bind(3, static_cast<int64_t>(i))
                            .Bind(4, (*list)[i].name).Bind(5, (*list)[i].hash).Run());
      }
    }
    // The attempt's epochs become the result's: one it reported past the result's last
    // (the epoch a run diverged in) would read back as part of it. ResultCheck holds a
    // result's epochs to 0..n-1, each of which replaces the row reported for it.
    ASSIGN_OR_RETURN(auto reported, db_->Prepare(
        "DELETE FROM epochs WHERE attempt_id = ? AND epoch >= ?"));
    RETURN_IF_ERROR(reported->Bind(1, lease_id).Bind(2, static_cast<int64_t>(r.epochs.size())).Run());
    RETURN_IF_ERROR(StoreEpochs(lease_id, r.epochs));
    if (counted) {
      // A finished run needs its checkpoint no more.
      ASSIGN_OR_RETURN(auto drop, db_->Prepare("DELETE FROM checkpoints WHERE run_id = ?"));
      RETURN_IF_ERROR(drop->Bind(1, run_id).Run());
      RETURN_IF_ERROR(EndCurrentAttempt(*db_, current_lease, lease_id, now_ms));
      ASSIGN_OR_RETURN(auto run, db_->Prepare(
          "UPDATE runs SET state = 'done', result_attempt = ?, error = '', "
          "lease_expires_ms = NULL WHERE id = ?"));
      RETURN_IF_ERROR(run->Bind(1, lease_id).Bind(2, run_id).Run());
    }
    if (!worker.empty()) RETURN_IF_ERROR(SetWorkerRun(worker, ""));
    return counted;
  });
}

// --- Reading an experiment back --------------------------------------------------

namespace {

// The RunResult that rows of attempt `id` fill in (nullptr for an attempt that is no
// run's current one). Rows come grouped by attempt, so the last answer is kept.
class ResultsByAttempt {
 public:
  // attempt_ids[i] is the current attempt of view->runs[i]; 0: none.
  ResultsByAttempt(const std::vector<int64_t>& attempt_ids, ExperimentView* view) {
    results_.reserve(attempt_ids.size());
    for (size_t i = 0; i < attempt_ids.size(); ++i) {
      if (attempt_ids[i] != 0) results_[attempt_ids[i]] = &view->runs[i].result;
    }
  }
  RunResult* Find(int64_t id) {
    if (id != last_id_ || last_ == nullptr) {
      auto it = results_.find(id);
      last_id_ = id;
      last_ = it == results_.end() ? nullptr : it->second;
    }
    return last_;
  }

 private:
  std::unordered_map<int64_t, RunResult*> results_;
  int64_t last_id_ = 0;
  RunResult* last_ = nullptr;
};

// The ids of the experiment's runs' current attempts (bound to the experiment's id).
constexpr char kCurrentAttempts[] =
    "(SELECT COALESCE(result_attempt, lease_attempt) FROM runs WHERE experiment_id = ?)";

// Runs `sql` (whose first column is an attempt id and whose only parameter is the
// experiment's id) and hands each row of a current attempt to `read(row, result)`.
template <typename Read>
absl::Status ReadResultRows(sql::Database& db, const std::string& sql, int64_t experiment_id,
                            ResultsByAttempt& results, Read&& read) {
  ASSIGN_OR_RETURN(auto q, db.Prepare(sql));
  q->Bind(1, experiment_id);
  return ForEachRow(*q, [&](const sql::Statement& row) {
    if (RunResult* r = results.Find(row.Int(0))) read(row, r);
  });
}

// The result columns of the current attempts (kCurrentAttempts completes it), and how
// ReadAttempt reads one of its rows into the attempt's result.
constexpr char kAttemptResults[] =
    "SELECT id, test_loss, test_accuracy, data_x_hash, data_y_hash, initial_hash, final_hash, "
    "environment, predictions, initial_weights, final_weights, epoch_weights, "
    "COALESCE(diverged, '') "
    "FROM attempts WHERE id IN ";
void ReadAttempt(const sql::Statement& a, RunResult* r) {
  r->test_loss = a.Real(1);
  r->test_accuracy = a.Real(2);
  r->data_x_hash = a.Text(3);
  r->data_y_hash = a.Text(4);
  r->initial_hash = a.Text(5);
  r->final_hash = a.Text(6);
  r->environment = StringMap(a.Text(7));  // stored by Complete
  const std::string predictions = a.Blob(8);
  r->predictions.assign(predictions.begin(), predictions.end());
  r->initial_weights = a.Text(9);
  r->final_weights = a.Text(10);
  const auto epoch_weights = nlohmann::json::parse(a.Text(11), nullptr, false);
  if (epoch_weights.is_array()) {
    for (const auto& path : epoch_weights) {
      if (path.is_string()) r->epoch_weights.push_back(path.get<std::string>());
    }
  }
  r->diverged = a.Text(12);
}

// A row of the epochs query into the attempt's result, which has `epochs` of them.
void ReadEpoch(const sql::Statement& e, int epochs, RunResult* r) {
  if (r->epochs.empty()) r->epochs.reserve(static_cast<size_t>(epochs));
  EpochRecord& rec = r->epochs.emplace_back();
  rec.epoch = static_cast<int>(e.Int(1));
  rec.loss = e.Real(2);
  rec.accuracy = e.Real(3);
  rec.val_loss = e.Real(4);
  rec.val_accuracy = e.Real(5);
  rec.seconds = e.Real(6);
  rec.batch_digest = e.Text(7);
  rec.weights_hash = e.Text(8);
  rec.batch_digests = SplitDigests(e.Text(9));
  rec.lr = e.Real(10);
}

// Sets RunView::corrupt on each run whose result, as read, does not match the checksum
// Complete wrote with it. Results stored before schema 2 have none and are read unchecked.
absl::Status MarkCorrupt(sql::Database& db, int64_t experiment_id,
                         const std::vector<int64_t>& attempt_ids, ExperimentView* view) {
  std::unordered_map<int64_t, RunView*> runs;
  for (size_t i = 0; i < attempt_ids.size(); ++i) {
    if (attempt_ids[i] != 0) runs[attempt_ids[i]] = &view->runs[i];
  }
  ASSIGN_OR_RETURN(auto q, db.Prepare(absl::StrCat(
      "SELECT id, checksum FROM attempts WHERE checksum IS NOT NULL AND id IN ", kCurrentAttempts)));
  q->Bind(1, experiment_id);
  return ForEachRow(*q, [&](const sql::Statement& row) {
    auto it = runs.find(row.Int(0));
    if (it == runs.end() || ResultChecksum(it->second->result) == row.Text(1)) return;
    it->second->corrupt = absl::StrCat("the stored result (attempt ", row.Int(0),
                                       ") no longer matches the checksum written with it");
  });
}

// Fills in the view's name, runs_per_arm, epochs, test labels and adaptive state;
// returns the experiment's id.
absl::StatusOr<int64_t> ReadExperiment(sql::Database& db, const std::string& experiment,
                                       ExperimentView* view) {
  view->name = experiment;
  ASSIGN_OR_RETURN(auto x, db.Prepare(
      "SELECT id, runs_per_arm, epochs, test_labels, adaptive FROM experiments WHERE name = ?"));
  x->Bind(1, experiment);
  ASSIGN_OR_RETURN(bool found, x->Step());
  if (!found) return NoExperimentError(db.path(), experiment);
  view->runs_per_arm = static_cast<int>(x->Int(1));
  view->epochs = static_cast<int>(x->Int(2));
  if (!x->IsNull(3)) {
    const std::string labels = x->Blob(3);
    view->test_labels.assign(labels.begin(), labels.end());
  }
  if (!x->IsNull(4)) {
    ASSIGN_OR_RETURN(AdaptiveState adaptive, ParseAdaptiveState(x->Text(4)));
    view->adaptive = std::move(adaptive);
  }
  return x->Int(0);
}

// The experiment's runs, in arm order, and their arms; attempt_ids[i] is the current
// attempt of view->runs[i] (0: none). A run's worker is its current attempt's, or
// without one (a failed run, a queued one) its last attempt's.
absl::Status ReadRuns(sql::Database& db, int64_t experiment_id, ExperimentView* view,
                      std::vector<int64_t>* attempt_ids) {
  ASSIGN_OR_RETURN(auto q, db.Prepare(
      "SELECT r.arm, r.idx, r.init_seed, r.shuffle_seed, r.state, r.attempts, r.error, "
      "r.progress_epoch, COALESCE(r.result_attempt, r.lease_attempt), "
      "COALESCE(a.worker, ''), r.progress_batch, r.progress_batches, r.augment_seed FROM runs r "
      "LEFT JOIN attempts a ON a.id = COALESCE(r.result_attempt, r.lease_attempt, "
      "(SELECT MAX(id) FROM attempts WHERE run_id = r.id)) "
      "WHERE r.experiment_id = ? ORDER BY r.arm_order, r.idx"));
  q->Bind(1, experiment_id);
  return ForEachRow(*q, [&](const sql::Statement& row) {
    RunView run;
    run.arm = row.Text(0);
    run.index = static_cast<int>(row.Int(1));
    run.init_seed = static_cast<uint64_t>(row.Int(2));
    run.shuffle_seed = static_cast<uint64_t>(row.Int(3));
    run.state = ParseState(row.Text(4));
    run.attempts = static_cast<int>(row.Int(5));
    run.error = row.Text(6);
    run.current_epoch = run.state == RunState::kRunning ? static_cast<int>(row.Int(7)) : -1;
    attempt_ids->push_back(row.IsNull(8) ? 0 : row.Int(8));
    run.worker = row.Text(9);
    run.current_batch = row.Int(10);
    run.batches = row.Int(11);
    run.augment_seed = static_cast<uint64_t>(row.Int(12));
    if (view->arms.empty() || view->arms.back() != run.arm) view->arms.push_back(run.arm);
    view->runs.push_back(std::move(run));
  });
}

// The results that came after a run's first (attempts kept as 'extra'), by run.
absl::Status ReadExtraResults(sql::Database& db, int64_t experiment_id, ExperimentView* view) {
  ASSIGN_OR_RETURN(auto extra, db.Prepare(
      "SELECT r.arm, r.idx, a.worker, a.final_hash, a.test_loss, a.test_accuracy FROM attempts a "
      "JOIN runs r ON r.id = a.run_id WHERE r.experiment_id = ? AND a.outcome = 'extra' "
      "ORDER BY a.id"));
  extra->Bind(1, experiment_id);
  return ForEachRow(*extra, [&](const sql::Statement& row) {
    for (RunView& run : view->runs) {
      if (run.arm == row.Text(0) && run.index == row.Int(1)) {
        run.extra_results.push_back(
            ExtraResult{row.Text(2), row.Text(3), row.Real(4), row.Real(5)});
      }
    }
  });
}

}  // namespace

absl::Status RunStore::LoadResults(int64_t experiment_id, const std::vector<int64_t>& attempt_ids,
                                   ExperimentView* view) {
  // Three queries for the whole experiment, not three per run: a report of 10,000 runs
  // x 200 epochs reads 2 million epoch rows. Each returns the rows of the runs' current
  // attempts, grouped by attempt (in primary-key order, so without a sort).
  ResultsByAttempt results(attempt_ids, view);
  RETURN_IF_ERROR(ReadResultRows(*db_, absl::StrCat(kAttemptResults, kCurrentAttempts),
                                 experiment_id, results, ReadAttempt));
  RETURN_IF_ERROR(ReadResultRows(
      *db_,
      absl::StrCat("SELECT attempt_id, which, name, hash FROM tensors WHERE attempt_id IN ",
                   kCurrentAttempts, " ORDER BY attempt_id, which, ordinal"),
      experiment_id, results, [](const sql::Statement& t, RunResult* r) {
        auto& list = t.Text(1) == "initial" ? r->initial_tensors : r->final_tensors;
        list.push_back(TensorHash{t.Text(2), t.Text(3)});
      }));
  RETURN_IF_ERROR(ReadResultRows(
      *db_,
      absl::StrCat("SELECT attempt_id, epoch, loss, accuracy, val_loss, val_accuracy, seconds, "
                   "batch_digest, weights_hash, batch_digests, lr FROM epochs WHERE attempt_id "
                   "IN ", kCurrentAttempts, " ORDER BY attempt_id, epoch"),
      experiment_id, results,
      [epochs = view->epochs](const sql::Statement& e, RunResult* r) { ReadEpoch(e, epochs, r); }));
  RETURN_IF_ERROR(ReadResultRows(
      *db_,
      absl::StrCat("SELECT attempt_id, name, sha256, size FROM weight_files WHERE attempt_id IN ",
                   kCurrentAttempts, " ORDER BY attempt_id, ordinal"),
      experiment_id, results, [](const sql::Statement& w, RunResult* r) {
        r->weights.push_back(WeightsFile{w.Text(1), w.Text(2), w.Int(3)});
      }));
  ASSIGN_OR_RETURN(view->weights, WeightsLocked(experiment_id));
  ASSIGN_OR_RETURN(view->localizations, LocalizationsOf(experiment_id));
  return MarkCorrupt(*db_, experiment_id, attempt_ids, view);
}

absl::StatusOr<ExperimentView> RunStore::LoadView(const std::string& experiment,
                                                  bool with_results) {
  QueuedLock lock(&mu_, &queued_);
  // One read transaction, so the view is a consistent snapshot even while workers report
  // (after the changes still waiting for a group commit are committed).
  RETURN_IF_ERROR(group_->Flush());
  RETURN_IF_ERROR(db_->Exec("BEGIN"));
  struct EndRead {
    sql::Database* db;
    ~EndRead() { db->Exec("COMMIT").IgnoreError(); }
  } end_read{db_.get()};
  ExperimentView view;
  ASSIGN_OR_RETURN(const int64_t experiment_id, ReadExperiment(*db_, experiment, &view));
  std::vector<int64_t> attempt_ids;
  RETURN_IF_ERROR(ReadRuns(*db_, experiment_id, &view, &attempt_ids));
  if (!with_results) return view;
  RETURN_IF_ERROR(LoadResults(experiment_id, attempt_ids, &view));
  RETURN_IF_ERROR(ReadExtraResults(*db_, experiment_id, &view));
  return view;
}

absl::StatusOr<RunCounts> RunStore::Counts(const std::string& experiment) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(int64_t experiment_id, ExperimentId(experiment));
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT state, COUNT(*) FROM runs WHERE experiment_id = ? GROUP BY state"));
  q->Bind(1, experiment_id);
  RunCounts counts;
  RETURN_IF_ERROR(ForEachRow(*q, [&](const sql::Statement& row) {
    const int n = static_cast<int>(row.Int(1));
    switch (ParseState(row.Text(0))) {
      case RunState::kPending: counts.pending = n; break;
      case RunState::kRunning: counts.running = n; break;
      case RunState::kDone: counts.done = n; break;
      case RunState::kFailed: counts.failed = n; break;
    }
  }));
  return counts;
}

absl::StatusOr<WeightsUsage> RunStore::WeightsLocked(int64_t experiment_id) {
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "WITH f AS (SELECT w.sha256, w.size FROM weight_files w "
      "JOIN attempts a ON a.id = w.attempt_id JOIN runs r ON r.id = a.run_id "
      "WHERE r.experiment_id = ?) "
      "SELECT COUNT(*), COALESCE(SUM(size), 0), "
      "(SELECT COALESCE(SUM(size), 0) FROM (SELECT DISTINCT sha256, size FROM f)) FROM f"));
  q->Bind(1, experiment_id);
  ASSIGN_OR_RETURN(bool row, q->Step());
  if (!row) return WeightsUsage{};
  return WeightsUsage{q->Int(0), q->Int(1), q->Int(2)};
}

absl::StatusOr<WeightsUsage> RunStore::Weights(const std::string& experiment) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(int64_t experiment_id, ExperimentId(experiment));
  return WeightsLocked(experiment_id);
}

absl::StatusOr<std::vector<WeightsFile>> RunStore::RunWeights(const std::string& experiment,
                                                              const std::string& run,
                                                              const std::string& which) {
  if (which != "initial" && which != "final" && which != "all") {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights \"", absl::CHexEscape(which.substr(0, 40)), "\": expected initial, final or all"));
  }
  std::string arm;
  int index = 0;
  if (!ParseRunLabel(run, &arm, &index)) {
    return absl::InvalidArgumentError(absl::StrCat("run \"", absl::CHexEscape(run.substr(0, 200)),
                                                   "\": expected ARM#INDEX, as status names it"));
  }
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(int64_t experiment_id, ExperimentId(experiment));
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT r.result_attempt, w.name, w.sha256, w.size FROM runs r "
      "LEFT JOIN weight_files w ON w.attempt_id = r.result_attempt "
      "WHERE r.experiment_id = ? AND r.arm = ? AND r.idx = ? ORDER BY w.ordinal"));
  q->Bind(1, experiment_id).Bind(2, arm).Bind(3, static_cast<int64_t>(index));
  bool found = false, finished = false;
  std::vector<WeightsFile> files;
  RETURN_IF_ERROR(ForEachRow(*q, [&](const sql::Statement& row) {
    found = true;
    finished = !row.IsNull(0);
    if (!row.IsNull(1) && (which == "all" || row.Text(1) == which)) {
      files.push_back(WeightsFile{row.Text(1), row.Text(2), row.Int(3)});
    }
  }));
  if (!found) return absl::NotFoundError(absl::StrCat("experiment ", experiment, " has no run ", run));
  if (!finished) return absl::NotFoundError(absl::StrCat("run ", run, " has no result yet"));
  if (files.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "run ", run, " has no ", which == "all" ? "" : which + " ", "weights: the plan does not "
        "export them (exports: {weights: [...]}), or its worker had no --artifacts folder"));
  }
  return files;
}

absl::StatusOr<RunTiming> RunStore::Timing(const std::string& experiment) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(int64_t experiment_id, ExperimentId(experiment));
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT COUNT(*), AVG(a.ended_ms - a.started_ms) FROM runs r "
      "JOIN attempts a ON a.id = r.result_attempt WHERE r.experiment_id = ?"));
  q->Bind(1, experiment_id);
  ASSIGN_OR_RETURN(bool row, q->Step());
  RunTiming timing;
  if (row) {
    timing.done = q->Int(0);
    timing.mean_run_seconds = q->IsNull(1) ? 0 : q->Real(1) / 1000.0;
  }
  return timing;
}

absl::StatusOr<std::string> RunStore::RunLabel(int64_t run_id) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT arm, idx FROM runs WHERE id = ?"));
  q->Bind(1, run_id);
  ASSIGN_OR_RETURN(bool row, q->Step());
  if (!row) return absl::NotFoundError(absl::StrCat("no run ", run_id));
  return absl::StrCat(q->Text(0), "#", q->Int(1));
}

}  // namespace repro
