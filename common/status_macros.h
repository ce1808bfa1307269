// Early-return helpers for absl::Status and absl::StatusOr (Abseil 20220623 has none).
//
// Thread safety: macros only.
#ifndef REPRO_COMMON_STATUS_MACROS_H_
#define REPRO_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define REPRO_CONCAT_INNER(a, b) a##b
#define REPRO_CONCAT(a, b) REPRO_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    if (absl::Status _st = (expr); !_st.ok()) {    \
      return _st;                                  \
    }                                              \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(*tmp)

// ASSIGN_OR_RETURN(auto x, F()); or ASSIGN_OR_RETURN(existing, F());
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(REPRO_CONCAT(_status_or_, __LINE__), lhs, expr)

#endif  // REPRO_COMMON_STATUS_MACROS_H_
