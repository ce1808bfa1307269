// Tests of the IDX reader (MNIST, Fashion-MNIST) and the dataset checks: on the real
// Fashion-MNIST files, and on small files written here, good and bad. No LibTorch (the
// tensors made from what is read are tested in worker/engine/engine_test.cc).
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "data/data_test_support.h"
#include "data/dataset_check.h"
#include "data/idx_dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace repro::data {
namespace {

using ::testing::HasSubstr;
using test_support::ImageFile;
using test_support::IdxTest;
using test_support::LabelFile;
using test_support::WriteFile;
using test_support::WriteGzip;

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// ---------------------------------------------------------------- real data

TEST(RealDataTest, LimitLargerThanTheFileIsAnErrorNamingTheLimit) {
  absl::Status s = data::CheckDataset("fashion-mnist", REPRO_FASHION_MNIST, 70000, 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("train_limit 70000"));
  EXPECT_THAT(s.message(), HasSubstr("60000"));
  s = data::CheckDataset("fashion-mnist", REPRO_FASHION_MNIST, 0, -1);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("test_limit"));
}

TEST(RealDataTest, TheSizesARunReadsAreTheLimitsOrTheSplits) {
  auto all = data::CheckDatasetSizes("fashion-mnist", REPRO_FASHION_MNIST);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->train, 60000);
  EXPECT_EQ(all->test, 10000);
  auto limited = data::CheckDatasetSizes("fashion-mnist", REPRO_FASHION_MNIST, 300, 0);
  ASSERT_TRUE(limited.ok()) << limited.status();
  EXPECT_EQ(limited->train, 300);
  EXPECT_EQ(limited->test, 10000);
  EXPECT_EQ(limited->test_labels.size(), 10000u);
  // The labels of the test samples a run reads, in its order: the report's per-class figures.
  auto few = data::CheckDatasetSizes("fashion-mnist", REPRO_FASHION_MNIST, 0, 10);
  ASSERT_TRUE(few.ok()) << few.status();
  EXPECT_EQ(few->test_labels,
            data::ReadIdxSplit(REPRO_FASHION_MNIST, data::Split::kTest, 10)->labels.labels);
  EXPECT_EQ(few->test_labels, (std::vector<uint8_t>{9, 2, 1, 1, 6, 1, 4, 6, 5, 7}));
  EXPECT_FALSE(data::CheckDatasetSizes("fashion-mnist", REPRO_FASHION_MNIST, 70000, 0).ok());
}

TEST(RealDataTest, UnknownDatasetKindIsAnError) {
  absl::Status s = data::CheckDataset("cifar-100", REPRO_FASHION_MNIST);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("cifar-100"));
}

// ---------------------------------------------------------------- bad files

TEST_F(IdxTest, UncompressedFilesAreAcceptedWhenTheGzipIsAbsent) {
  WriteFile(Path("train-images-idx3-ubyte"), ImageFile(12, 12));
  WriteFile(Path("train-labels-idx1-ubyte"), LabelFile(12, 12));
  WriteGzip(Path("t10k-images-idx3-ubyte.gz"), ImageFile(3, 3));
  WriteGzip(Path("t10k-labels-idx1-ubyte.gz"), LabelFile(3, 3));
  auto train = data::ReadIdxSplit(dir_.string(), data::Split::kTrain, 0);
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->images.count, 12);
  EXPECT_EQ(train->images.path, Path("train-images-idx3-ubyte"));
}

TEST_F(IdxTest, ShortImageDataIsTruncatedNamingTheFile) {
  const std::string path = Path("train-images-idx3-ubyte.gz");
  WriteGzip(path, ImageFile(/*declared=*/100, /*actual=*/10));
  auto images = data::ReadIdxImages(path);
  ASSERT_EQ(images.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(images.status().message(), HasSubstr(path));
  EXPECT_THAT(images.status().message(), HasSubstr("truncated"));
  EXPECT_THAT(images.status().message(),
              HasSubstr("header says 100 images of 28x28 but the file ends after 10 of them"));
  // Also when only a prefix is kept: the whole file is still checked.
  EXPECT_THAT(data::ReadIdxImages(path, 5).status().message(), HasSubstr("truncated"));
}

TEST_F(IdxTest, CutGzipStreamIsTruncatedNamingTheFile) {
  const std::string whole = Path("whole.gz");
  WriteGzip(whole, ImageFile(50, 50));
  std::vector<unsigned char> bytes = ReadAll(whole);
  bytes.resize(bytes.size() / 2);
  const std::string path = Path("train-images-idx3-ubyte.gz");
  WriteFile(path, bytes);
  auto images = data::ReadIdxImages(path);
  ASSERT_EQ(images.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(images.status().message(), HasSubstr(path));
  EXPECT_THAT(images.status().message(), HasSubstr("truncated"));
}

TEST_F(IdxTest, CorruptGzipIsAnErrorNamingTheFile) {
  const std::string whole = Path("whole.gz");
  WriteGzip(whole, LabelFile(5000, 5000));
  std::vector<unsigned char> bytes = ReadAll(whole);
  for (size_t i = 20; i < bytes.size() - 8; i += 7) bytes[i] ^= 0x5a;
  const std::string path = Path("train-labels-idx1-ubyte.gz");
  WriteFile(path, bytes);
  auto labels = data::ReadIdxLabels(path);
  ASSERT_EQ(labels.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(labels.status().message(), HasSubstr(path));
}

TEST_F(IdxTest, WrongMagicIsAnErrorNamingTheFile) {
  const std::string images = Path("train-images-idx3-ubyte.gz");
  WriteGzip(images, ImageFile(3, 3, 28, 28, /*magic=*/0x00000801));
  auto read = data::ReadIdxImages(images);
  ASSERT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr(images));
  EXPECT_THAT(read.status().message(), HasSubstr("magic"));

  const std::string labels = Path("train-labels-idx1-ubyte.gz");
  WriteGzip(labels, ImageFile(3, 3));  // an image file where labels belong
  auto read_labels = data::ReadIdxLabels(labels);
  ASSERT_EQ(read_labels.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read_labels.status().message(), HasSubstr(labels));
  EXPECT_THAT(read_labels.status().message(), HasSubstr("magic"));
}

TEST_F(IdxTest, WrongImageSizeIsAnErrorNamingTheFile) {
  const std::string path = Path("train-images-idx3-ubyte.gz");
  WriteGzip(path, ImageFile(2, 2, 32, 32));
  auto read = data::ReadIdxImages(path);
  ASSERT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr(path));
  EXPECT_THAT(read.status().message(), HasSubstr("32x32"));
}

TEST_F(IdxTest, HeaderOnlyFileAndEmptyFileAreErrors) {
  const std::string empty = Path("empty.gz");
  WriteGzip(empty, {});
  EXPECT_THAT(data::ReadIdxImages(empty).status().message(), HasSubstr("inside its 16-byte IDX header"));
  const std::string trailing = Path("trailing.gz");
  std::vector<unsigned char> bytes = LabelFile(4, 4);
  bytes.push_back(1);
  WriteGzip(trailing, bytes);
  EXPECT_THAT(data::ReadIdxLabels(trailing).status().message(), HasSubstr("has data after the 4 labels"));
}

TEST_F(IdxTest, LabelOutOfRangeIsAnError) {
  const std::string path = Path("labels.gz");
  std::vector<unsigned char> bytes = LabelFile(4, 4);
  bytes[8 + 2] = 10;
  WriteGzip(path, bytes);
  auto read = data::ReadIdxLabels(path);
  EXPECT_THAT(read.status().message(), HasSubstr("label 10 at index 2"));
}

TEST_F(IdxTest, CountMismatchNamesBothFiles) {
  WriteGzip(Path("train-images-idx3-ubyte.gz"), ImageFile(10, 10));
  WriteGzip(Path("train-labels-idx1-ubyte.gz"), LabelFile(9, 9));
  auto split = data::ReadIdxSplit(dir_.string(), data::Split::kTrain, 0);
  ASSERT_EQ(split.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(split.status().message(), HasSubstr("train-images-idx3-ubyte.gz"));
  EXPECT_THAT(split.status().message(), HasSubstr("train-labels-idx1-ubyte.gz"));
}

TEST_F(IdxTest, MissingDirectoryIsAnErrorNamingIt) {
  const std::string missing = Path("no-such-dir");
  absl::Status s = data::CheckDataset("fashion-mnist", missing);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr(missing));
  EXPECT_THAT(s.message(), HasSubstr("does not exist"));
}

TEST_F(IdxTest, MissingFileIsAnErrorNamingTheDirectoryAndFile) {
  WriteGzip(Path("train-images-idx3-ubyte.gz"), ImageFile(10, 10));
  absl::Status s = data::CheckDataset("fashion-mnist", dir_.string());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr(dir_.string()));
  EXPECT_THAT(s.message(), HasSubstr("train-labels-idx1-ubyte"));
}

}  // namespace
}  // namespace repro::data
