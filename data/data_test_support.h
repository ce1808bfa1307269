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

// ---------------------------------------------------------------- NumPy .npy

// The header dict as np.save writes it: "{'descr': '<f4', 'fortran_order': False,
// 'shape': (3, 28, 28), }".
std::string NpyDict(const std::string& descr, const std::vector<int64_t>& shape,
                    bool fortran_order = false);

// An .npy file of format version major.0 (1: 2-byte header length, 2 and 3: 4-byte)
// with `dict` as its header, padded with spaces and a newline to a multiple of 64
// bytes as np.save pads it, then `data` as it is.
std::vector<uint8_t> NpyFileWithDict(const std::string& dict, const std::vector<uint8_t>& data,
                                     int major = 1);

// NpyFileWithDict(NpyDict(descr, shape), data, major).
std::vector<uint8_t> NpyFile(const std::string& descr, const std::vector<int64_t>& shape,
                             const std::vector<uint8_t>& data, int major = 1);

// Values as little-endian bytes (the order of '<f4', '<i4', '<i8').
std::vector<uint8_t> Float32Bytes(const std::vector<float>& values);
std::vector<uint8_t> Int32Bytes(const std::vector<int32_t>& values);
std::vector<uint8_t> Int64Bytes(const std::vector<int64_t>& values);

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
