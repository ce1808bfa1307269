// The checksum of a stored result (attempts.checksum, schema 2): XXH3-128 (common/hash.h)
// over a canonical serialization of everything RunStore::Complete keeps of a RunResult:
// the scores, the hashes, the tensors' names and hashes, every epoch's record, the
// environment, the predictions, the exported paths and `diverged`. Complete writes it;
// LoadView recomputes it from what it read and marks a run whose result no longer
// matches as corrupt (RunView::corrupt), so a bit flipped on disk shows instead of
// moving a mean.
//
// Thread safety: a pure function.
#ifndef REPRO_STORE_RESULT_CHECKSUM_H_
#define REPRO_STORE_RESULT_CHECKSUM_H_

#include <string>

#include "common/records.h"

namespace repro {

// 32 lowercase hex digits. Only what the store keeps counts: a double is taken as its
// bits, but -0.0 as 0.0 (SQLite reads a stored -0.0 back as 0.0).
std::string ResultChecksum(const RunResult& result);

}  // namespace repro

#endif  // REPRO_STORE_RESULT_CHECKSUM_H_
