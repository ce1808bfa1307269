// RunStore: the experiment, its runs, their attempts, fingerprints and metrics in one
// SQLite file (schema in store.cc, versioned in the meta table). The store is the
// single source of truth: the scheduler keeps no state that a restart would lose.
//
// Rules it enforces, so that no result is lost or counted twice:
// - A run is leased to one worker at a time; each lease is a new attempt row.
// - The first result that arrives for a run counts; any later one (a second attempt
//   after an expired lease) is kept as an extra attempt with its fingerprints, but the
//   run keeps its first result.
// - Every change is one transaction, and a method that changes the store returns only
//   once the change is on disk. Concurrent changes share a commit (group_commit.h): one
//   fsync for many, which is what lets one coordinator serve thousands of runs a second.
//
// Where it is implemented, by concern: store.cc (opening, schema, experiments),
// leases.cc (leasing runs and what ends or renews a lease), results.cc (epochs, results
// and the views and counts read from them), workers.cc (the worker table); the helpers
// they share are in store_internal.h.
//
// Thread safety: thread-safe; every method takes the store's mutex.
#ifndef REPRO_STORE_STORE_H_
#define REPRO_STORE_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/localize_stages.h"
#include "common/plan.h"
#include "common/records.h"
#include "common/experiment_view.h"
#include "store/group_commit.h"
#include "store/sqlite.h"

namespace repro {

// 1: the first; 2: attempts.secret_hash, attempts.checksum and attempts.diverged (Migrate
// upgrades 1 to 2); 3: the table weight_files; 4: the table localizations (Migrate
// creates both); 5: workers.capabilities, labels, gone_ms and gone_reason (Migrate adds
// them) and the index runs_pending_by_arm; 6: experiments.test_labels (Migrate adds it).
// 7: experiments.adaptive; 8: localizations.stage and the table localization_sides.
inline constexpr int kSchemaVersion = 8;

struct LeasedRun {
  int64_t run_id = 0;
  int64_t lease_id = 0;  // the attempt's id
  std::string arm;
  int index = 0;
  RunSeeds seeds;
  int attempt = 0;       // 1 for the first attempt
  std::string checkpoint;     // a previous attempt's saved state; empty = start afresh
  int checkpoint_epoch = -1;  // the last epoch it covers
};

// Who a lease was handed to: every call about the lease must come from this worker and
// present the secret whose SHA-256 is `secret_hash` (empty for a lease of schema 1).
struct LeaseHolder {
  std::string worker;
  std::string secret_hash;
};

// A localization handed to a worker: the two runs (their arms, indices and seeds, so
// that their specs can be built) and the weights hashes they recorded after `epoch`.
// A run as a localization sees it: its arm and the environment its counted result
// recorded (common/placement.h MachineDifferences, ReplayMismatch).
struct ReplayedRun {
  std::string arm;
  std::map<std::string, std::string> environment;
};
// Whether two runs must each replay on a worker of its own.
using ApartRule = std::function<bool(const ReplayedRun& a, const ReplayedRun& b)>;
// Whether a worker may replay a run.
using ReplayerRule = std::function<bool(const ReplayedRun& run)>;
// A side's dump, from the blob its worker uploaded (SideReplay::dump).
using DumpLoader = std::function<absl::StatusOr<OpOutputs>(const std::string& sha256)>;

struct LocalizeLease {
  struct Side {
    std::string arm;
    int index = 0;
    RunSeeds seeds;
    std::string recorded;
    int threads = 0;  // the intra-op threads its run trained with (environment); 0: not known
  };
  int64_t id = 0;
  int attempt = 0;  // 1 for the first
  int epoch = 0;
  Side a, b;
  // "" when the worker replays both runs, every stage; "a" or "b" when it replays that
  // side alone for `stage` (common/localize_stages.h), `so_far` holding what the stages
  // before found (RequestFor).
  std::string side;
  LocalizeStage stage = LocalizeStage::kEpoch;
  LocalizationResult so_far;
};

// What a worker's report of a failed attempt did to its run.
enum class FailOutcome {
  kRetry,   // the run is queued again
  kFailed,  // its attempts are used up: the run is failed
  kStale,   // the lease was no longer the run's: nothing changed but the attempt's record
};

class RunStore {
 public:
  // Opens or creates the database; a file from a newer schema is refused.
  static absl::StatusOr<std::unique_ptr<RunStore>> Open(const std::string& path);
  // Opens an existing repro database to read (reproctl --db): nothing is ever written to
  // it, a file that is not a repro database is refused unchanged (INVALID_ARGUMENT
  // naming it), one in a folder this process cannot write is read as it stands, and one
  // of schema 1 reads as schema 2 with its attempts' new columns NULL. Every change
  // through it fails.
  static absl::StatusOr<std::unique_ptr<RunStore>> OpenReadOnly(const std::string& path);
  ~RunStore();  // commits what is still open

  // --- Experiments (store.cc) ---
  // Creates the experiment and all its runs in one transaction, or, when one of that
  // name exists, checks that it was made from the same plan. True when it was created.
  absl::StatusOr<bool> EnsureExperiment(const Plan& plan, const std::string& plan_text);
  absl::StatusOr<std::vector<std::string>> ExperimentNames();
  // The plan text the experiment was created from.
  absl::StatusOr<std::string> PlanText(const std::string& experiment);
  // The canonical form of the plan it was recorded with (CanonicalPlan, common/plan.h).
  absl::StatusOr<std::string> CanonicalPlanText(const std::string& experiment);
  // Keeps the true class of each test example a run predicts, in test-set order
  // (ExperimentView::test_labels), once: true when stored, false when the experiment
  // had labels already (they are kept) or `labels` is empty.
  absl::StatusOr<bool> SetTestLabels(const std::string& experiment,
                                     const std::vector<uint8_t>& labels);

  // --- Adaptive run counts (adaptive.cc) ---
  // The experiment's adaptive rule and the looks taken (ExperimentView::adaptive);
  // nullopt for a fixed run count.
  absl::StatusOr<std::optional<AdaptiveState>> Adaptive(const std::string& experiment);
  // Keeps look number `number` (1-based; it must be the next one, else FAILED_PRECONDITION:
  // another caller took it) and creates the runs its decision adds (AdaptiveLook::added,
  // each arm's next indexes, seeds from SeedsFor), in one transaction.
  absl::Status RecordLook(const Plan& plan, int number, const AdaptiveLook& look);

  // --- Leases (leases.cc) ---
  // Leases the next pending run (by arm order, then index, interleaving arms so that a
  // partial report has runs of every arm), or nullopt when none is pending. The attempt
  // keeps `secret_hash` (SecretHash of the secret handed to the worker; empty: a lease no
  // worker can use, for store-level tests and benchmarks).
  // With `arms`, only runs of those arms (the ones placement lets the worker run), by
  // one indexed lookup per arm; without, by one lookup.
  absl::StatusOr<std::optional<LeasedRun>> LeaseNext(
      const std::string& experiment, const std::string& worker, int64_t now_ms, int64_t ttl_ms,
      const std::string& secret_hash = "", const std::vector<std::string>* arms = nullptr);
  // Renews a lease and records progress. False when the lease is no longer the run's.
  absl::StatusOr<bool> Renew(int64_t run_id, int64_t lease_id, int64_t now_ms, int64_t ttl_ms,
                             int epoch, int64_t batch, int64_t batches);
  // (results.cc) Stores one epoch's record under its attempt. False when the lease is stale.
  absl::StatusOr<bool> RecordEpoch(int64_t run_id, int64_t lease_id, const EpochRecord& epoch);
  // (results.cc) Stores a finished run's result under its attempt. True when it counts as the run's
  // result; false (kept as an extra attempt) when the run already had one, was cancelled
  // or failed, or the attempt had been failed or handed back: those are final. A result
  // from a lease that expired still counts when the run has none yet.
  absl::StatusOr<bool> Complete(int64_t run_id, int64_t lease_id, const RunResult& result,
                                int64_t now_ms);
  // (leases.cc) Records a failed attempt: the run goes back to the queue, or is marked failed
  // when its attempts are used up; a stale lease changes no run.
  absl::StatusOr<FailOutcome> Fail(int64_t run_id, int64_t lease_id, const std::string& error,
                                   int64_t now_ms);
  // Keeps the state of the run after `epoch` (replacing an older one), for the next
  // attempt. False when the attempt is not the run's current lease.
  absl::StatusOr<bool> SaveCheckpoint(int64_t run_id, int64_t lease_id, int epoch,
                                      const std::string& state, int64_t now_ms);
  // A worker hands its run back (it is stopping): the run is queued again and the
  // attempt does not count against max_attempts. False when the lease is not current.
  absl::StatusOr<bool> Release(int64_t run_id, int64_t lease_id, const std::string& reason,
                               int64_t now_ms);
  // Returns runs whose lease expired before now_ms to the queue (or marks them failed
  // when out of attempts). Returns how many leases expired.
  absl::StatusOr<int> ExpireLeases(int64_t now_ms);
  // Marks every pending and running run of the experiment failed with the reason, and
  // closes their running attempts (failed, "cancelled: <reason>"): a cancelled run
  // stays failed whatever its workers report later.
  absl::StatusOr<int> Cancel(const std::string& experiment, const std::string& reason,
                             int64_t now_ms);

  // --- Localizations (localizations.cc) ---
  // Asks for where runs `run_a` and `run_b` ("arm#index") part, or finds the request
  // made before. INVALID_ARGUMENT for a malformed or unknown run; FAILED_PRECONDITION,
  // saying why, when a run has no result yet, the two did not start alike (their initial
  // weights or data differ), or never part (every epoch's weights are equal).
  // A new request has each side replayed on a worker of its own (stage "epoch") when
  // `apart` says so of the two runs.
  absl::StatusOr<LocalizationState> RequestLocalization(const std::string& experiment,
                                                        const std::string& run_a,
                                                        const std::string& run_b,
                                                        int64_t now_ms,
                                                        const ApartRule& apart = nullptr);
  // The request for that pair, if any (reads only).
  absl::StatusOr<std::optional<LocalizationState>> FindLocalization(const std::string& experiment,
                                                                    const std::string& run_a,
                                                                    const std::string& run_b);
  // Hands `worker` a pending localization, or one whose worker's lease expired, that it
  // may replay both runs of; or else a side of one replayed apart, pending or expired,
  // that it may replay. A localization (or a side) that has used up kLocalizeAttempts
  // fails. None when there is none. Without `may_replay`, any.
  absl::StatusOr<std::optional<LocalizeLease>> LeaseLocalization(
      const std::string& experiment, const std::string& worker, int64_t now_ms, int64_t ttl_ms,
      const std::string& secret_hash, const ReplayerRule& may_replay = nullptr);
  static constexpr int kLocalizeAttempts = 3;
  static constexpr int64_t kSeenGranularityMs = 1000;
  // Who holds localization `id`; NOT_FOUND when there is none.
  absl::StatusOr<LeaseHolder> LocalizationOwner(int64_t id);
  // A heartbeat of the worker replaying localization `id`: its lease now lasts until
  // now_ms + ttl_ms. False when it is no longer running (answered, or failed).
  absl::StatusOr<bool> RenewLocalization(int64_t id, int64_t now_ms, int64_t ttl_ms);
  // The worker's answer: done with `result`, or failed with `error` (non-empty).
  absl::Status CompleteLocalization(int64_t id, const std::string& error,
                                    const LocalizationResult& result);
  // Run `run` ("arm#index") as a localization sees it: its arm and the environment its
  // counted result recorded (empty without one).
  absl::StatusOr<ReplayedRun> RunToReplay(const std::string& experiment, const std::string& run);
  // The same for one side of a localization replayed apart ("a" or "b").
  absl::StatusOr<LeaseHolder> LocalizationSideOwner(int64_t id, const std::string& side);
  absl::StatusOr<bool> RenewLocalizationSide(int64_t id, const std::string& side,
                                             int64_t now_ms, int64_t ttl_ms);
  // The answer of a side's worker for `stage`: failed with `error` (non-empty: the whole
  // localization fails, saying which side), or its replay, `dump_sha256` naming the
  // blob of its dump (kDump). Once both sides have answered the stage, FoldStage takes
  // both, with the dumps read by `load_dump`, and the localization moves to the next
  // stage (its sides pending again) or is done; all in one transaction. Returns the
  // state after it. FAILED_PRECONDITION when the side is not running that stage.
  absl::StatusOr<LocalizationState> CompleteLocalizationSide(
      int64_t id, const std::string& side, LocalizeStage stage, const std::string& error,
      const SideReplay& replay, const std::string& dump_sha256, const DumpLoader& load_dump);
  // For an arm whose every run has finished: its lowest-index done run and the first
  // done run after it that started alike but ended with other weights ("arm#index"
  // each); none while a run of the arm is pending or running, or when none parts.
  absl::StatusOr<std::optional<std::pair<std::string, std::string>>> PartedPair(
      const std::string& experiment, const std::string& arm);
  // The localizations of the experiment still pending or running, oldest first.
  absl::StatusOr<std::vector<LocalizationState>> OpenLocalizationStates(const std::string& experiment);
  // How many localizations of the experiment are pending or running.
  absl::StatusOr<int64_t> OpenLocalizations(const std::string& experiment);
  // Whether a pending or running localization could need a worker that may replay the
  // runs `may_replay` allows: both of its runs, or, replayed apart, either (each stage
  // needs both sides again).
  absl::StatusOr<bool> OpenLocalizationFor(const std::string& experiment,
                                           const ReplayerRule& may_replay);

  // Who holds (or held) attempt `lease_id` of the run; NOT_FOUND when the run has no
  // such attempt.
  absl::StatusOr<LeaseHolder> LeaseOwner(int64_t run_id, int64_t lease_id);
  // (results.cc) "arm#index" of a run, for log lines.
  absl::StatusOr<std::string> RunLabel(int64_t run_id);

  // --- Results and views (results.cc) ---
  // The experiment's runs; with_results false leaves every RunView::result (and
  // extra_results) empty, for status and progress, which need only the runs' states:
  // a large experiment's results are millions of rows.
  absl::StatusOr<ExperimentView> LoadView(const std::string& experiment, bool with_results = true);
  absl::StatusOr<RunCounts> Counts(const std::string& experiment);
  // The weights files the experiment's results name, and what they take once stored.
  absl::StatusOr<WeightsUsage> Weights(const std::string& experiment);
  // The weights files of a run's counted result: `run` as status names it ("same_seed#0"),
  // `which` "initial", "final" or "all". INVALID_ARGUMENT for a malformed run or which;
  // NOT_FOUND, saying why, when there is no such run, it has no result yet, or it has
  // none of the files asked for.
  absl::StatusOr<std::vector<WeightsFile>> RunWeights(const std::string& experiment,
                                                      const std::string& run,
                                                      const std::string& which);
  absl::StatusOr<RunTiming> Timing(const std::string& experiment);

  // --- Workers (workers.cc) ---
  // Registers (or registers again) a worker, with its capabilities and labels; it is here.
  absl::Status UpsertWorker(const WorkerRecord& worker);
  // Records that the worker was heard from (a gone one is back); false when it never
  // registered. last_seen_ms is written once per kSeenGranularityMs at most.
  absl::StatusOr<bool> TouchWorker(const std::string& name, int64_t now_ms);
  absl::StatusOr<std::vector<WorkerRecord>> Workers();
  // One worker as it registered; nullopt when it never did.
  absl::StatusOr<std::optional<WorkerRecord>> Worker(const std::string& name);
  // The worker said it is leaving: gone from now, "left: <reason>".
  absl::Status LeaveWorker(const std::string& name, const std::string& reason, int64_t now_ms);
  // Marks gone ("silent") every worker not heard from since `silent_before_ms`; returns
  // their names. Reads only when there is none.
  absl::StatusOr<std::vector<std::string>> MarkSilentWorkersGone(int64_t silent_before_ms,
                                                                 int64_t now_ms);
  // How many of `arm`'s runs each worker holds or has the counted result of: what spread
  // placement balances.
  absl::StatusOr<std::map<std::string, int>> ArmRunsByWorker(const std::string& experiment,
                                                             const std::string& arm);

  const std::string& path() const { return db_->path(); }

  // For tests: lets the database grow by `pages` more pages at most (SQLite's
  // max_page_count), so that writes fail as they do on a full disk.
  absl::Status SetMaxGrowthForTesting(int64_t pages);

 private:
  explicit RunStore(std::unique_ptr<sql::Database> db);
  absl::Status Migrate();
  absl::Status Upgrade(int from_version) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ALTER TABLE table ADD COLUMN column type, unless it has it.
  // Fails the localizations (whole or a side) whose workers went silent
  // kLocalizeAttempts times (localizations.cc); inside a write.
  absl::Status FailExhaustedLocalizations(int64_t experiment_id, int64_t now_ms);
  absl::Status AddColumn(const std::string& table, const std::string& column,
                         const std::string& type) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Every change goes through Write (store_internal.h): the store's mutex, one
  // transaction in the group commit, and a return once the change is on disk.
  // WriteLocked is the same for a caller that already holds the mutex.
  template <typename Change>
  std::invoke_result_t<Change&> Write(Change&& change) ABSL_LOCKS_EXCLUDED(mu_);
  template <typename Change>
  std::invoke_result_t<Change&> WriteLocked(Change&& change) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<int64_t> ExperimentId(const std::string& experiment)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<int> MaxAttempts(int64_t run_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Creates runs `from` .. `from + count - 1` of the plan's arm number `arm`.
  absl::Status InsertRuns(int64_t experiment_id, const Plan& plan, size_t arm, int from, int count)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `column` ("plan_text" or "canonical_plan") of the experiment's row.
  absl::StatusOr<std::string> PlanColumn(const std::string& experiment, const char* column)
      ABSL_LOCKS_EXCLUDED(mu_);
  // True when attempt `lease_id` is the run's current lease and the run is running.
  absl::StatusOr<bool> IsCurrentLease(int64_t run_id, int64_t lease_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status StoreEpochs(int64_t attempt_id, const std::vector<EpochRecord>& epochs)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<WeightsUsage> WeightsLocked(int64_t experiment_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The results of the runs' current attempts (attempt_ids[i] of view->runs[i]; 0: none).
  absl::Status LoadResults(int64_t experiment_id, const std::vector<int64_t>& attempt_ids,
                           ExperimentView* view) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SetWorkerRun(const std::string& worker, const std::string& run)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Every localization of the experiment, oldest first (localizations.cc).
  absl::StatusOr<std::vector<LocalizationState>> LocalizationsOf(int64_t experiment_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::atomic<int> queued_{0};  // threads waiting for mu_ (QueuedLock), for group_
  std::unique_ptr<sql::Database> db_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<GroupCommit> group_ ABSL_GUARDED_BY(mu_);
};

}  // namespace repro

#endif  // REPRO_STORE_STORE_H_
