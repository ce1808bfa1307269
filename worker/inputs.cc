#include "worker/inputs.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"

namespace repro {

namespace {

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

}  // namespace

void InputCheck::Vouch(const std::string& path, const std::string& sha256) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return;  // Check will say what is wrong
  known_[path] = Known{st.st_size, MtimeNs(st), sha256};
}

absl::Status InputCheck::Check(const std::vector<InputFile>& inputs) {
  for (const InputFile& file : inputs) {
    const std::string what = absl::StrCat("this worker's copy of the plan's ", file.role, " file ",
                                          file.path);
    struct stat st {};
    if (stat(file.path.c_str(), &st) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(what, ": ", std::strerror(errno)));
    }
    if (!S_ISREG(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat(what, " is not a regular file"));
    }
    if (st.st_size != file.size) {
      return absl::FailedPreconditionError(absl::StrCat(what, " has ", st.st_size,
                                                        " bytes; the coordinator's has ", file.size));
    }
    const int64_t mtime_ns = MtimeNs(st);
    Known& known = known_[file.path];
    if (known.sha256.empty() || known.size != st.st_size || known.mtime_ns != mtime_ns) {
      auto digest = Sha256OfFile(file.path);
      if (!digest.ok()) {
        return absl::FailedPreconditionError(absl::StrCat(what, ": ", digest.status().message()));
      }
      known = Known{st.st_size, mtime_ns, *digest};
    }
    if (known.sha256 != file.sha256) {
      return absl::FailedPreconditionError(absl::StrCat(
          what, " differs from the coordinator's (SHA-256 ", known.sha256.substr(0, 16),
          "..., the plan's ", file.sha256.substr(0, 16), "...)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace repro
