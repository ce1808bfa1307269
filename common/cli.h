// A small command-line parser shared by coordinator, worker and reproctl. It exists
// (instead of absl flags) so that every usage error is one sentence on stderr and exit
// code 2, as the interface promises, and so that flags may follow a sub-command.
//
// Thread safety: single-threaded use during start-up.
#ifndef REPRO_COMMON_CLI_H_
#define REPRO_COMMON_CLI_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace repro::cli {

// Exit codes of every repro command (README, "Exit codes").
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;       // bad usage or invalid input
inline constexpr int kExitIncomplete = 3;  // report asked before the experiment finished
// A worker whose machine or set-up cannot do the work (TLS set-up, no CUDA, artifacts
// folder): starting it again unchanged cannot help, so supervisors should not.
inline constexpr int kExitCannotWork = 4;

struct FlagSpec {
  std::string name;       // without dashes
  bool takes_value = true;
  std::string help;
  std::string value_name = "VALUE";
};

struct ParsedArgs {
  std::map<std::string, std::string> values;  // boolean flags map to "true"; the last given
  std::map<std::string, std::vector<std::string>> all_values;  // a repeated flag's, in order
  std::vector<std::string> positional;
  bool Has(const std::string& name) const { return values.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  // Every value of a flag that may be given more than once (--label a=1 --label b=2).
  std::vector<std::string> GetAll(const std::string& name) const;
  // Integer value of a flag; an error names the flag and the value.
  absl::StatusOr<long long> GetInt(const std::string& name, long long fallback, long long lo,
                                   long long hi) const;
};

// Accepts --name=value, --name value and --bool-flag anywhere among positional words.
// "--" ends flags. Errors name the flag.
absl::StatusOr<ParsedArgs> Parse(int argc, char** argv, const std::vector<FlagSpec>& specs);

std::string Usage(const std::string& synopsis, const std::vector<FlagSpec>& specs);

// Local wall-clock time as "12:03:04", for log lines.
std::string ClockTime();

// Prints "[12:03:04] <message>" on stderr, flushed, for daemons' logs.
void LogLine(const std::string& message);

// Prints "<program>: <message>" on stderr and returns the exit code, for `return Fail(...)`.
int Fail(const std::string& program, const std::string& message, int code);

}  // namespace repro::cli

#endif  // REPRO_COMMON_CLI_H_
