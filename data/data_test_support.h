// Test support shared by the data readers' tests (data_test) and the engine's
// (engine_test): small IDX and CIFAR-10 binary files written into a fresh directory per
// test. Links GoogleTest (the writers ASSERT on I/O failures) and zlib; no LibTorch.
#ifndef REPRO_DATA_DATA_TEST_SUPPORT_H_
#define REPRO_DATA_DATA_TEST_SUPPORT_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace repro::data::test_support {

// ---------------------------------------------------------------- file writers

// Writes `bytes` to `path` as they are.
void WriteFile(const std::filesystem::path& path, const std::vector<uint8_t>& bytes);

// Writes `bytes` to `path` gzip-compressed.
void WriteGzip(const std::string& path, const std::vector<uint8_t>& bytes);

// ---------------------------------------------------------------- IDX

// An IDX image file whose header says `declared` images of rows x cols but that holds
// `actual` of them (pixel values are i % 251).
std::vector<uint8_t> ImageFile(uint32_t declared, uint32_t actual, uint32_t rows = 28,
                               uint32_t cols = 28, uint32_t magic = 0x00000803);

// An IDX label file whose header says `declared` labels but that holds `actual` of them
// (label i is i % 10).
std::vector<uint8_t> LabelFile(uint32_t declared, uint32_t actual, uint32_t magic = 0x00000801);

// ---------------------------------------------------------------- CIFAR-10

// Label and pixel of sample `g` (its index in the split); pixel index i in 0..3071 is
// channel * 1024 + row * 32 + column, as in the file.
using LabelFn = std::function<uint8_t(int64_t g)>;
using PixelFn = std::function<uint8_t(int64_t g, int64_t i)>;

uint8_t CyclicLabel(int64_t g);              // g % 10
uint8_t PatternPixel(int64_t g, int64_t i);  // (g * 7 + i * 13) % 256

// The 3073-byte records of samples first .. first + count - 1.
std::vector<uint8_t> Records(int64_t first, int64_t count, const LabelFn& label,
                             const PixelFn& pixel);

// ---------------------------------------------------------------- fixtures

// A fresh, empty directory per test (under ::testing::TempDir(), named after the suite,
// the test and the process), removed after it.
class DatasetDirTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
};

// An MNIST-like data set directory.
class IdxTest : public DatasetDirTest {
 protected:
  // A complete, valid data set of `train` and `test` samples (the four .gz files).
  void WriteDataset(uint32_t train, uint32_t test);
};

// A CIFAR-10 binary data set directory.
class CifarTest : public DatasetDirTest {
 protected:
  // 5 training files of `per_file` records (samples 0.. in order) and a test file of
  // `test` records.
  void WriteDataset(int64_t per_file, int64_t test, const LabelFn& label = CyclicLabel,
                    const PixelFn& pixel = PatternPixel);
};

}  // namespace repro::data::test_support

#endif  // REPRO_DATA_DATA_TEST_SUPPORT_H_
