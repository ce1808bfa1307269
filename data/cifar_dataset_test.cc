// Tests of the CIFAR-10 binary reader and its checks, on small files written here in
// the binary format. No LibTorch (the preprocessing into tensors is tested in
// worker/engine/cifar_resnet_test.cc).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "data/cifar_dataset.h"
#include "data/data_test_support.h"
#include "data/dataset_check.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace repro::data {
namespace {

using ::testing::HasSubstr;
using test_support::CifarTest;
using test_support::CyclicLabel;
using test_support::PatternPixel;
using test_support::Records;
using test_support::WriteFile;
namespace fs = std::filesystem;

// ---------------------------------------------------------------- reading

TEST_F(CifarTest, ReadsLabelsAndPixelsInFileOrder) {
  WriteDataset(20, 10);
  auto train = data::ReadCifarSplit(dir_.string(), data::Split::kTrain, 0);
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->count, 100);
  EXPECT_EQ(train->file_count, 100);
  ASSERT_EQ(train->paths.size(), 5u);
  EXPECT_EQ(fs::path(train->paths[2]).filename(), "data_batch_3.bin");
  ASSERT_EQ(train->labels.size(), 100u);
  ASSERT_EQ(train->pixels.size(), 100u * 3072);
  for (int64_t g : {0, 19, 20, 57, 99}) {
    EXPECT_EQ(train->labels[g], g % 10) << g;
    for (int64_t i : {0, 1023, 1024, 2047, 2048, 3071}) {
      EXPECT_EQ(train->pixels[g * 3072 + i], PatternPixel(g, i)) << g << " " << i;
    }
  }

  // A limit keeps the first samples across files but still reads all of them.
  auto some = data::ReadCifarSplit(dir_.string(), data::Split::kTrain, 30);
  ASSERT_TRUE(some.ok()) << some.status();
  EXPECT_EQ(some->count, 30);
  EXPECT_EQ(some->file_count, 100);
  EXPECT_EQ(some->labels.size(), 30u);
  EXPECT_EQ(some->pixels[29 * 3072 + 5], PatternPixel(29, 5));

  auto test = data::ReadCifarSplit(dir_.string(), data::Split::kTest, 0);
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ(test->count, 10);
  EXPECT_EQ(fs::path(test->paths[0]).filename(), "test_batch.bin");

  EXPECT_TRUE(data::CheckDatasetKind("cifar10").ok());
  EXPECT_TRUE(data::CheckDataset("cifar10", dir_.string()).ok());
  EXPECT_TRUE(data::CheckDataset("cifar10", dir_.string(), 100, 10).ok());
  // The sizes a run reads, which the coordinator holds results to.
  auto sizes = data::CheckDatasetSizes("cifar10", dir_.string(), 0, 7);
  ASSERT_TRUE(sizes.ok()) << sizes.status();
  EXPECT_EQ(sizes->train, 100);
  EXPECT_EQ(sizes->test, 7);
  EXPECT_EQ(sizes->test_labels, (std::vector<uint8_t>(test->labels.begin(), test->labels.begin() + 7)));
}

// ---------------------------------------------------------------- errors

TEST_F(CifarTest, TruncatedFileIsAnErrorNamingTheFileAndItsSize) {
  WriteDataset(20, 10);
  std::vector<uint8_t> bytes = Records(40, 10, CyclicLabel, PatternPixel);
  bytes.push_back(0);  // 10 records and one byte: 30731 bytes
  WriteFile(dir_ / "data_batch_3.bin", bytes);
  for (const absl::Status& s : {data::ReadCifarSplit(dir_.string(), data::Split::kTrain).status(),
                                data::CheckDataset("cifar10", dir_.string())}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()),
                HasSubstr(Path("data_batch_3.bin") +
                          ": 30731 bytes is not a whole number of 3073-byte records (truncated?)"));
  }
  // Even when the limit keeps only samples before the bad file.
  EXPECT_FALSE(data::ReadCifarSplit(dir_.string(), data::Split::kTrain, 5).ok());
}

TEST_F(CifarTest, EmptyFileAndBadLabelAreErrorsNamingTheFile) {
  WriteDataset(20, 10);
  WriteFile(dir_ / "data_batch_2.bin", {});
  absl::Status s = data::CheckDataset("cifar10", dir_.string());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr(Path("data_batch_2.bin") + ": is empty"));

  WriteDataset(20, 10, [](int64_t g) { return static_cast<uint8_t>(g == 4 ? 12 : g % 10); });
  s = data::ReadCifarSplit(dir_.string(), data::Split::kTest).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr(Path("test_batch.bin") + ": record 4 has label 12, outside 0..9"));
}

}  // namespace
}  // namespace repro::data
