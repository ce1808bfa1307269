// Several runs at once on one machine or GPU (issue 13): `worker --slots N` runs N
// workers, each its own process, because a run's determinism switches (intra-op
// threads, deterministic algorithms, cuBLAS's workspace) are process-wide and must not
// leak between runs that share a GPU. This process only supervises: it starts the N
// slots (this same program, told which slot it is through the environment), forwards
// SIGTERM and SIGINT to them (each drains: it finishes its run's current batch, hands
// the run back and exits), and exits when all have, with the first non-zero exit code
// in slot order.
//
// Slot k (1..N) of worker NAME registers as "NAME:k"; under mutual TLS a certificate
// for NAME also covers NAME:k (security.h). Without --threads each slot takes
// cores / N intra-op threads (at least 1), so packed CPU runs do not oversubscribe.
//
// Thread safety: RunSlots is called once, from main, on the main thread.
#ifndef REPRO_WORKER_SLOTS_H_
#define REPRO_WORKER_SLOTS_H_

#include <atomic>
#include <optional>
#include <string>

namespace repro {

// The environment variable a slot process finds its place in: "k/N".
inline constexpr char kSlotEnv[] = "REPRO_WORKER_SLOT";

struct Slot {
  int index = 1;  // 1..count
  int count = 1;
};

// This process's slot, from kSlotEnv; nullopt when it is no slot (a plain worker or
// the supervisor). A malformed value is an error message in `error`.
std::optional<Slot> SlotFromEnvironment(std::string* error);

// The name slot `slot` of worker `name` registers under.
std::string SlotName(const std::string& name, const Slot& slot);

// Starts `slots` copies of this program (/proc/self/exe) with argv unchanged and
// kSlotEnv set, and waits for them; a signal number stored in `*signal` is forwarded
// to every slot still running (once per signal). Returns the exit code.
int RunSlots(char** argv, int slots, const std::atomic<int>* signal);

}  // namespace repro

#endif  // REPRO_WORKER_SLOTS_H_
