// The analyses across arms that need the runs themselves: which runs of two arms share
// their seeds and whether they ended identical (CrossArmIdentity in analysis.h).
// CompareScores, declared in analysis.h, is defined here too.
//
// Thread safety: pure functions over const inputs.
#ifndef REPRO_ANALYSIS_ACROSS_ARMS_H_
#define REPRO_ANALYSIS_ACROSS_ARMS_H_

#include <vector>

#include "analysis/analysis.h"
#include "common/experiment_view.h"

namespace repro {

// Every pair of the view's arms, in plan order (arms[i] with arms[j], i < j).
std::vector<CrossArmIdentity> CompareAcrossArms(const ExperimentView& view);

}  // namespace repro

#endif  // REPRO_ANALYSIS_ACROSS_ARMS_H_
