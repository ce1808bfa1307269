#include "common/cli.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "absl/strings/str_cat.h"

namespace repro::cli {

std::string ParsedArgs::Get(const std::string& name, const std::string& fallback) const {
  auto it = values.find(name);
  return it == values.end() ? fallback : it->second;
}

absl::StatusOr<long long> ParsedArgs::GetInt(const std::string& name, long long fallback,
                                             long long lo, long long hi) const {
  auto it = values.find(name);
  if (it == values.end()) return fallback;
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end != '\0' || errno == ERANGE || value < lo || value > hi) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, ": expected an integer from ", lo,
                                                   " to ", hi, ", got \"", it->second, "\""));
  }
  return value;
}

absl::StatusOr<ParsedArgs> Parse(int argc, char** argv, const std::vector<FlagSpec>& specs) {
  ParsedArgs out;
  bool flags_done = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (flags_done || arg.size() < 2 || arg[0] != '-') {
      out.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    std::string name = arg.substr(arg[1] == '-' ? 2 : 1);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (name == "h") name = "help";
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& s : specs) {
      if (s.name == name) spec = &s;
    }
    if (spec == nullptr && name != "help") {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", arg, " (see --help)"));
    }
    if (spec != nullptr && spec->takes_value && !has_value) {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      }
      value = argv[++i];
    } else if ((spec == nullptr || !spec->takes_value) && has_value) {
      return absl::InvalidArgumentError(absl::StrCat("flag --", name, " takes no value"));
    } else if (spec == nullptr || !spec->takes_value) {
      value = "true";
    }
    out.values[name] = value;
    out.all_values[name].push_back(value);
  }
  return out;
}

std::vector<std::string> ParsedArgs::GetAll(const std::string& name) const {
  const auto it = all_values.find(name);
  return it == all_values.end() ? std::vector<std::string>() : it->second;
}

std::string Usage(const std::string& synopsis, const std::vector<FlagSpec>& specs) {
  std::string out = absl::StrCat("usage: ", synopsis, "\n\nflags:\n");
  for (const FlagSpec& s : specs) {
    std::string left = absl::StrCat("  --", s.name, s.takes_value ? " " + s.value_name : "");
    if (left.size() < 28) left.resize(28, ' ');
    absl::StrAppend(&out, left, " ", s.help, "\n");
  }
  return out;
}

std::string ClockTime() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char text[16];
  std::strftime(text, sizeof text, "%H:%M:%S", &tm);
  return text;
}

void LogLine(const std::string& message) {
  std::fprintf(stderr, "[%s] %s\n", ClockTime().c_str(), message.c_str());
  std::fflush(stderr);
}

int Fail(const std::string& program, const std::string& message, int code) {
  std::fprintf(stderr, "%s: %s\n", program.c_str(), message.c_str());
  return code;
}

}  // namespace repro::cli
