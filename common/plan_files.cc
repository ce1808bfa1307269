#include "common/plan_files.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"

namespace repro {

std::string PlanKeyOfRole(const std::string& role) {
  if (role == "model") return "model.path";
  const size_t underscore = role.find('_');
  if (underscore == std::string::npos) return role;
  return absl::StrCat("dataset.", role.substr(0, underscore), ".", role.substr(underscore + 1));
}

absl::Status ResolvePlanFiles(const std::string& plan_dir, Plan* plan,
                              const CopyOfInput& copy_of) {
  namespace fs = std::filesystem;
  for (InputFile& file : plan->inputs) {
    const std::string key = PlanKeyOfRole(file.role);
    fs::path path(file.path);
    if (path.is_relative()) path = fs::path(plan_dir) / path;
    std::error_code error;
    path = fs::absolute(path, error).lexically_normal();
    if (!fs::exists(path, error) && copy_of) {
      if (const std::string copy = copy_of(file.role); !copy.empty()) path = copy;
    }
    const fs::file_status status = fs::status(path, error);
    if (error || !fs::exists(status)) {
      return absl::InvalidArgumentError(absl::StrCat(key, ": ", path.string(), ": no such file"));
    }
    if (!fs::is_regular_file(status)) {
      return absl::InvalidArgumentError(absl::StrCat(key, ": ", path.string(), " is not a regular file"));
    }
    file.path = path.string();
    file.size = static_cast<int64_t>(fs::file_size(path, error));
    auto digest = Sha256OfFile(file.path);
    if (error || !digest.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          key, ": cannot read ", file.path, error ? absl::StrCat(": ", error.message()) : "",
          digest.ok() ? "" : absl::StrCat(": ", digest.status().message())));
    }
    file.sha256 = *digest;
  }
  return absl::OkStatus();
}

}  // namespace repro
