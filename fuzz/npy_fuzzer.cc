// Fuzzes the .npy reader (ParseNpyHeader, ReadNpyHeader, ReadNpyRows) and dataset kind
// arrays (ReadArrayDataset). The first byte picks the role the rest plays (bits 0..1:
// train_x, train_y, test_x, test_y); the other three files are a fixed valid set (x
// uint8 (2, 2, 2), y int64 [0, 1]). Any bytes must give arrays or INVALID_ARGUMENT,
// never a crash or an allocation larger than the file.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "data/array_dataset.h"
#include "data/npy.h"
#include "fuzz/fuzz_support.h"

namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "npy_fuzzer: %s\n", what.c_str());
  std::abort();
}

void CheckError(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kInvalidArgument) {
    Fail("error is not INVALID_ARGUMENT: " + status.ToString());
  }
}

// An .npy file of `dict` and `data`, padded as np.save pads it.
std::vector<uint8_t> Npy(const std::string& dict, const std::vector<uint8_t>& data) {
  std::string header = dict;
  while ((10 + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  std::string text("\x93NUMPY\x01\x00", 8);
  text += static_cast<char>(header.size());
  text += '\0';
  text += header;
  text.append(data.begin(), data.end());
  return std::vector<uint8_t>(text.begin(), text.end());
}

// The fixed files, written once; the role under test is overwritten per input.
const std::vector<std::string>& FixedFiles() {
  static const std::vector<std::string> paths = [] {
    const std::string& dir = repro::fuzz::ScratchDir();
    const std::vector<uint8_t> x =
        Npy("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2, 2), }", {0, 1, 2, 3, 4, 5, 6, 7});
    std::vector<uint8_t> labels(16, 0);
    labels[8] = 1;
    const std::vector<uint8_t> y = Npy("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", labels);
    std::vector<std::string> out;
    for (const char* role : {"train_x", "train_y", "test_x", "test_y"}) {
      out.push_back(dir + "/" + role + ".npy");
      const std::vector<uint8_t>& bytes = (std::string(role).back() == 'x') ? x : y;
      repro::fuzz::WriteFile(out.back(), bytes.data(), bytes.size());
    }
    return out;
  }();
  return paths;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  using namespace repro::data;
  const int role = data[0] & 3;
  const std::vector<std::string>& fixed = FixedFiles();
  const std::string path = repro::fuzz::ScratchDir() + "/input.npy";
  repro::fuzz::WriteFile(path, data + 1, size - 1);

  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  const absl::StatusOr<NpyHeader> parsed = ParseNpyHeader(bytes);
  if (!parsed.ok()) CheckError(parsed.status());
  const absl::StatusOr<NpyHeader> header = ReadNpyHeader(path);
  if (!header.ok()) {
    CheckError(header.status());
  } else {
    if (!parsed.ok()) Fail("ReadNpyHeader accepted what ParseNpyHeader refused");
    const int64_t data_bytes = static_cast<int64_t>(size - 1) - header->data_offset;
    if (header->data_offset < 10 || header->Elements() * header->ItemSize() != data_bytes) {
      Fail("a header accepted whose data does not fill the file");
    }
    if (!header->shape.empty()) {
      const absl::StatusOr<std::vector<uint8_t>> rows = ReadNpyRows(path, *header, 0, header->shape[0]);
      if (!rows.ok()) Fail("the rows of an accepted header cannot be read: " + rows.status().ToString());
      if (static_cast<int64_t>(rows->size()) != data_bytes) Fail("the rows are not the data");
    }
  }

  ArrayFiles files{fixed[0], fixed[1], fixed[2], fixed[3]};
  files.Set(role == 0 ? "train_x" : role == 1 ? "train_y" : role == 2 ? "test_x" : "test_y", path);
  const absl::StatusOr<ArrayDataset> read = ReadArrayDataset(files);
  if (!read.ok()) return CheckError(read.status()), 0;
  const ArrayInfo& info = read->info;
  const int64_t image = info.channels * info.height * info.width * (info.x_float ? 4 : 1);
  if (info.classes < 2 || info.classes > kMaxArrayClasses ||
      read->train.x.size() != static_cast<size_t>(read->train.count * image) ||
      read->test.x.size() != static_cast<size_t>(read->test.count * image) ||
      read->train.labels.size() != static_cast<size_t>(read->train.count) ||
      read->test.labels.size() != static_cast<size_t>(read->test.count)) {
    Fail("arrays read back with inconsistent sizes");
  }
  for (const std::vector<int64_t>* labels : {&read->train.labels, &read->test.labels}) {
    for (int64_t label : *labels) {
      if (label < 0 || label >= info.classes) Fail("a label outside 0..K-1 was accepted");
    }
  }
  return 0;
}
