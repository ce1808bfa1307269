#include "data/data_test_support.h"

#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "data/cifar_dataset.h"

namespace repro::data::test_support {
namespace {

namespace fs = std::filesystem;

void PutBigEndian32(std::vector<uint8_t>& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back((value >> shift) & 0xff);
}

}  // namespace

void WriteFile(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

void WriteGzip(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr) << path;
  if (!bytes.empty()) {
    ASSERT_EQ(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())),
              static_cast<int>(bytes.size()));
  }
  ASSERT_EQ(gzclose(file), Z_OK);
}

std::vector<uint8_t> ImageFile(uint32_t declared, uint32_t actual, uint32_t rows, uint32_t cols,
                               uint32_t magic) {
  std::vector<uint8_t> out;
  PutBigEndian32(out, magic);
  PutBigEndian32(out, declared);
  PutBigEndian32(out, rows);
  PutBigEndian32(out, cols);
  for (size_t i = 0; i < size_t{actual} * rows * cols; ++i) out.push_back(i % 251);
  return out;
}

std::vector<uint8_t> LabelFile(uint32_t declared, uint32_t actual, uint32_t magic) {
  std::vector<uint8_t> out;
  PutBigEndian32(out, magic);
  PutBigEndian32(out, declared);
  for (uint32_t i = 0; i < actual; ++i) out.push_back(i % 10);
  return out;
}

uint8_t CyclicLabel(int64_t g) { return static_cast<uint8_t>(g % 10); }
uint8_t PatternPixel(int64_t g, int64_t i) { return static_cast<uint8_t>((g * 7 + i * 13) % 256); }

std::vector<uint8_t> Records(int64_t first, int64_t count, const LabelFn& label,
                             const PixelFn& pixel) {
  std::vector<uint8_t> out;
  for (int64_t g = first; g < first + count; ++g) {
    out.push_back(label(g));
    for (int64_t i = 0; i < kCifarImageBytes; ++i) out.push_back(pixel(g, i));
  }
  return out;
}

std::string NpyDict(const std::string& descr, const std::vector<int64_t>& shape,
                    bool fortran_order) {
  return absl::StrCat("{'descr': '", descr, "', 'fortran_order': ", fortran_order ? "True" : "False",
                      ", 'shape': (", absl::StrJoin(shape, ", "), shape.size() == 1 ? ",), }" : "), }");
}

std::vector<uint8_t> NpyFileWithDict(const std::string& dict, const std::vector<uint8_t>& data,
                                     int major) {
  const size_t length_bytes = major == 1 ? 2 : 4;
  const size_t prefix = 6 + 2 + length_bytes;
  std::string header = dict;
  while ((prefix + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<uint8_t>(major), 0};
  for (size_t i = 0; i < length_bytes; ++i) out.push_back((header.size() >> (8 * i)) & 0xff);
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::vector<uint8_t> NpyFile(const std::string& descr, const std::vector<int64_t>& shape,
                             const std::vector<uint8_t>& data, int major) {
  return NpyFileWithDict(NpyDict(descr, shape), data, major);
}

namespace {

template <typename Word, typename T>
std::vector<uint8_t> LittleEndianBytes(const std::vector<T>& values) {
  std::vector<uint8_t> out;
  for (const T& value : values) {
    Word word;
    std::memcpy(&word, &value, sizeof word);
    for (size_t i = 0; i < sizeof word; ++i) out.push_back((word >> (8 * i)) & 0xff);
  }
  return out;
}

}  // namespace

std::vector<uint8_t> Float32Bytes(const std::vector<float>& values) {
  return LittleEndianBytes<uint32_t>(values);
}
std::vector<uint8_t> Int32Bytes(const std::vector<int32_t>& values) {
  return LittleEndianBytes<uint32_t>(values);
}
std::vector<uint8_t> Int64Bytes(const std::vector<int64_t>& values) {
  return LittleEndianBytes<uint64_t>(values);
}

void DatasetDirTest::SetUp() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  dir_ = fs::path(::testing::TempDir()) /
         absl::StrCat("repro_", info->test_suite_name(), "_", info->name(), "_", ::getpid());
  fs::remove_all(dir_);
  fs::create_directories(dir_);
}

void DatasetDirTest::TearDown() { fs::remove_all(dir_); }

void IdxTest::WriteDataset(uint32_t train, uint32_t test) {
  WriteGzip(Path("train-images-idx3-ubyte.gz"), ImageFile(train, train));
  WriteGzip(Path("train-labels-idx1-ubyte.gz"), LabelFile(train, train));
  WriteGzip(Path("t10k-images-idx3-ubyte.gz"), ImageFile(test, test));
  WriteGzip(Path("t10k-labels-idx1-ubyte.gz"), LabelFile(test, test));
}

void CifarTest::WriteDataset(int64_t per_file, int64_t test, const LabelFn& label,
                             const PixelFn& pixel) {
  for (int f = 0; f < 5; ++f) {
    WriteFile(dir_ / absl::StrCat("data_batch_", f + 1, ".bin"),
              Records(f * per_file, per_file, label, pixel));
  }
  WriteFile(dir_ / "test_batch.bin", Records(0, test, label, pixel));
}

}  // namespace repro::data::test_support
