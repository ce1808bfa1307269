// Tests of dataset kind arrays (array_dataset.h) and its check (dataset_check.h): four
// .npy files written here, good and bad; every error names the plan key and the file.
#include "data/array_dataset.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "data/data_test_support.h"
#include "data/dataset_check.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace repro::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using test_support::DatasetDirTest;
using test_support::Float32Bytes;
using test_support::Int32Bytes;
using test_support::Int64Bytes;
using test_support::NpyFile;
using test_support::NpyFileWithDict;
using test_support::WriteFile;

class ArraysTest : public DatasetDirTest {
 protected:
  // uint8 x of (n, 4, 3) with pixel i = i % 256, int64 labels i % classes.
  void WriteUint8(const std::string& split, int64_t n, int64_t classes = 3) {
    std::vector<uint8_t> x(static_cast<size_t>(n * 12));
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<uint8_t>(i % 256);
    WriteFile(Path(split + "_x.npy"), NpyFile("|u1", {n, 4, 3}, x));
    std::vector<int64_t> y;
    for (int64_t i = 0; i < n; ++i) y.push_back(i % classes);
    WriteFile(Path(split + "_y.npy"), NpyFile("<i8", {n}, Int64Bytes(y)));
  }
  void WriteUint8Dataset(int64_t train, int64_t test, int64_t classes = 3) {
    WriteUint8("train", train, classes);
    WriteUint8("test", test, classes);
  }
  ArrayFiles Files() const {
    return {Path("train_x.npy"), Path("train_y.npy"), Path("test_x.npy"), Path("test_y.npy")};
  }
  // The error CheckArrayFiles gives; fails the test when the files check.
  std::string Error() {
    auto info = CheckArrayFiles(Files());
    EXPECT_FALSE(info.ok());
    if (info.ok()) return "";
    EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(info.status().message());
  }
};

TEST_F(ArraysTest, Uint8ImagesOfOneChannelCheckAndRead) {
  WriteUint8Dataset(10, 4, 3);
  auto info = CheckArrayFiles(Files());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->train, 10);
  EXPECT_EQ(info->test, 4);
  EXPECT_EQ(info->channels, 1);
  EXPECT_EQ(info->height, 4);
  EXPECT_EQ(info->width, 3);
  EXPECT_EQ(info->classes, 3);
  EXPECT_FALSE(info->x_float);

  auto sizes = CheckDatasetSizes(Files(), 7, 0);
  ASSERT_TRUE(sizes.ok()) << sizes.status();
  EXPECT_EQ(sizes->train, 7);
  EXPECT_EQ(sizes->test, 4);
  EXPECT_EQ(sizes->classes, 3);
  EXPECT_THAT(sizes->test_labels, ElementsAre(0, 1, 2, 0));

  auto data = ReadArrayDataset(Files(), 7, 2);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->train.count, 7);
  ASSERT_EQ(data->train.x.size(), 7u * 12);
  EXPECT_EQ(data->train.x[13], 13);
  EXPECT_THAT(data->train.labels, ElementsAre(0, 1, 2, 0, 1, 2, 0));
  EXPECT_EQ(data->test.count, 2);
  EXPECT_EQ(data->test.x.size(), 2u * 12);
  EXPECT_THAT(data->test.labels, ElementsAre(0, 1));
}

TEST_F(ArraysTest, Float32ImagesOfThreeChannelsWithInt32AndUint8Labels) {
  std::vector<float> x(5 * 3 * 2 * 2);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) * 0.25f - 3.0f;
  WriteFile(Path("train_x.npy"), NpyFile("<f4", {5, 3, 2, 2}, Float32Bytes(x), 2));
  WriteFile(Path("train_y.npy"), NpyFile("<i4", {5}, Int32Bytes({4, 0, 1, 2, 3})));
  WriteFile(Path("test_x.npy"), NpyFile("<f4", {2, 3, 2, 2}, Float32Bytes(std::vector<float>(24, 1.0f)), 3));
  WriteFile(Path("test_y.npy"), NpyFile("|u1", {2}, {4, 1}));
  auto data = ReadArrayDataset(Files());
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_TRUE(data->info.x_float);
  EXPECT_EQ(data->info.channels, 3);
  EXPECT_EQ(data->info.classes, 5);
  EXPECT_EQ(data->train.x, Float32Bytes(x));
  EXPECT_THAT(data->train.labels, ElementsAre(4, 0, 1, 2, 3));
  EXPECT_THAT(data->test.labels, ElementsAre(4, 1));
}

TEST_F(ArraysTest, WrongDtypesNameTheKeyAndTheFile) {
  WriteUint8Dataset(4, 2);
  WriteFile(Path("train_x.npy"), NpyFile("<f8", {4, 4, 3}, std::vector<uint8_t>(4 * 12 * 8)));
  EXPECT_EQ(Error(), "dataset.train.x: " + Path("train_x.npy") + ": dtype <f8 is not uint8 or float32");
  WriteUint8Dataset(4, 2);
  WriteFile(Path("test_y.npy"), NpyFile("<f4", {2}, Float32Bytes({0, 1})));
  EXPECT_EQ(Error(), "dataset.test.y: " + Path("test_y.npy") +
                         ": dtype <f4 is not int64, int32 or uint8 (integer class labels)");
  WriteUint8Dataset(4, 2);
  WriteFile(Path("test_x.npy"), NpyFile("<f4", {2, 4, 3}, Float32Bytes(std::vector<float>(24))));
  EXPECT_THAT(Error(), HasSubstr("dataset.test.x: " + Path("test_x.npy") + ": dtype <f4 is not dataset.train.x's (|u1)"));
}

TEST_F(ArraysTest, BigEndianAndFortranOrderAreErrors) {
  WriteUint8Dataset(4, 2);
  WriteFile(Path("train_y.npy"), NpyFile(">i8", {4}, std::vector<uint8_t>(32)));
  EXPECT_THAT(Error(), HasSubstr("dataset.train.y: " + Path("train_y.npy") + ": dtype >i8 is big-endian"));
  WriteUint8Dataset(4, 2);
  WriteFile(Path("train_x.npy"), NpyFile("=u1", {4, 4, 3}, std::vector<uint8_t>(48)));
  EXPECT_THAT(Error(), HasSubstr("dataset.train.x: " + Path("train_x.npy") + ": dtype =u1 has byte order '='"));
  WriteUint8Dataset(4, 2);
  WriteFile(Path("test_x.npy"),
            NpyFileWithDict(test_support::NpyDict("|u1", {2, 4, 3}, /*fortran_order=*/true),
                            std::vector<uint8_t>(24)));
  EXPECT_THAT(Error(), HasSubstr("dataset.test.x: " + Path("test_x.npy") + ": is in Fortran order"));
}

TEST_F(ArraysTest, TruncatedAndMalformedFilesNameTheKeyAndTheFile) {
  WriteUint8Dataset(4, 2);
  WriteFile(Path("train_x.npy"), NpyFile("|u1", {4, 4, 3}, std::vector<uint8_t>(47)));
  EXPECT_THAT(Error(), HasSubstr("dataset.train.x: " + Path("train_x.npy") + ": truncated"));
  WriteUint8Dataset(4, 2);
  WriteFile(Path("test_y.npy"), NpyFileWithDict("{'descr': '<i8', 'shape': (2,)}", Int64Bytes({0, 1})));
  EXPECT_THAT(Error(), HasSubstr("dataset.test.y: " + Path("test_y.npy") +
                                 ": header is not the dict literal an .npy file has: it has no key 'fortran_order'"));
  WriteUint8Dataset(4, 2);
  WriteFile(Path("test_x.npy"), std::vector<uint8_t>{'n', 'o', 't'});
  EXPECT_THAT(Error(), HasSubstr("dataset.test.x: " + Path("test_x.npy") + ": is not an .npy file"));
  std::filesystem::remove(Path("train_y.npy"));
  EXPECT_THAT(Error(), HasSubstr("dataset.train.y: " + Path("train_y.npy") + ": file does not exist"));
  WriteUint8Dataset(4, 2);
  ArrayFiles missing = Files();
  missing.test_x.clear();
  EXPECT_THAT(CheckArrayFiles(missing).status().message(), HasSubstr("dataset.test.x: no file given"));
}

TEST_F(ArraysTest, ShapesMustFitTogether) {
  WriteUint8Dataset(4, 2);
  WriteFile(Path("train_x.npy"), NpyFile("|u1", {48}, std::vector<uint8_t>(48)));
  EXPECT_THAT(Error(), HasSubstr("dataset.train.x: " + Path("train_x.npy") +
                                 ": shape (48,) is not (N, C, H, W), or (N, H, W) for one channel"));
  WriteUint8Dataset(4, 2);
  WriteFile(Path("test_x.npy"), NpyFile("|u1", {2, 3, 4}, std::vector<uint8_t>(24)));
  EXPECT_THAT(Error(), HasSubstr("dataset.test.x: " + Path("test_x.npy") +
                                 ": images are 1x3x4 (C x H x W) but dataset.train.x's are 1x4x3"));
  WriteUint8Dataset(4, 2);
  WriteFile(Path("train_y.npy"), NpyFile("<i8", {3}, Int64Bytes({0, 1, 2})));
  EXPECT_THAT(Error(), HasSubstr("dataset.train.y: " + Path("train_y.npy") + ": has 3 labels but dataset.train.x (" +
                                 Path("train_x.npy") + ") has 4 samples"));
  WriteUint8Dataset(4, 2);
  WriteFile(Path("train_y.npy"), NpyFile("<i8", {4, 1}, Int64Bytes({0, 1, 2, 0})));
  EXPECT_THAT(Error(), HasSubstr("shape (4, 1) is not (N,)"));
  WriteUint8Dataset(4, 2);
  WriteFile(Path("test_x.npy"), NpyFile("|u1", {0, 4, 3}, {}));
  WriteFile(Path("test_y.npy"), NpyFile("<i8", {0}, {}));
  EXPECT_THAT(Error(), HasSubstr("dataset.test.x: " + Path("test_x.npy") + ": holds no samples"));
  WriteUint8Dataset(4, 2);
  WriteFile(Path("train_x.npy"), NpyFile("|u1", {4, 0, 3}, {}));
  EXPECT_THAT(Error(), HasSubstr("has empty images"));
  // A shape whose size overflows: the header is refused, nothing is allocated.
  WriteUint8Dataset(4, 2);
  WriteFile(Path("train_x.npy"), NpyFile("<f4", {int64_t{1} << 40, int64_t{1} << 20, 16}, {}));
  EXPECT_THAT(Error(), HasSubstr("dataset.train.x: " + Path("train_x.npy") + ": has a shape whose"));
}

TEST_F(ArraysTest, LabelsMustBeClassesOfTheTrainingSplit) {
  WriteUint8Dataset(4, 2);
  WriteFile(Path("test_y.npy"), NpyFile("<i8", {2}, Int64Bytes({1, 3})));
  EXPECT_EQ(Error(), "dataset.test.y: " + Path("test_y.npy") +
                         ": label 3 at index 1 is outside 0..2 (the classes of dataset.train.y: its "
                         "largest label + 1 = 3)");
  WriteUint8Dataset(4, 2);
  WriteFile(Path("train_y.npy"), NpyFile("<i4", {4}, Int32Bytes({0, -1, 1, 2})));
  EXPECT_THAT(Error(), HasSubstr("dataset.train.y: " + Path("train_y.npy") + ": label -1 at index 1 is outside 0..255"));
  WriteUint8Dataset(4, 2);
  WriteFile(Path("train_y.npy"), NpyFile("<i8", {4}, Int64Bytes({0, 1, 256, 2})));
  EXPECT_THAT(Error(), HasSubstr("label 256 at index 2 is outside 0..255 (at most 256 classes)"));
  WriteUint8Dataset(4, 2);
  WriteFile(Path("train_y.npy"), NpyFile("<i8", {4}, Int64Bytes({0, 0, 0, 0})));
  EXPECT_THAT(Error(), HasSubstr("every label is 0; a classifier needs at least 2 classes"));
  // 256 classes is the most.
  WriteUint8Dataset(4, 2);
  WriteFile(Path("train_y.npy"), NpyFile("<i8", {4}, Int64Bytes({0, 255, 1, 2})));
  auto info = CheckArrayFiles(Files());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->classes, 256);
}

TEST_F(ArraysTest, KIsTheWholeTrainingFilesWhateverTheLimit) {
  WriteUint8Dataset(10, 4, 5);
  auto info = CheckArrayFiles(Files(), 2, 0);  // labels 0, 1 kept; 0..4 in the file
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->classes, 5);
  EXPECT_EQ(info->train, 2);
}

TEST_F(ArraysTest, LimitsAreChecked) {
  WriteUint8Dataset(4, 2);
  auto info = CheckArrayFiles(Files(), 5, 0);
  ASSERT_FALSE(info.ok());
  EXPECT_THAT(info.status().message(),
              HasSubstr("train_limit 5 is larger than the 4 samples in dataset.train.x (" + Path("train_x.npy") + ")"));
  info = CheckArrayFiles(Files(), 0, -1);
  ASSERT_FALSE(info.ok());
  EXPECT_THAT(info.status().message(), HasSubstr("test_limit must be 0 (all) or positive"));
}

TEST_F(ArraysTest, NonFiniteFloatsAreAnErrorWhenRead) {
  WriteUint8Dataset(4, 2);
  std::vector<float> x(2 * 12, 0.5f);
  x[13] = std::numeric_limits<float>::quiet_NaN();
  WriteFile(Path("test_x.npy"), NpyFile("<f4", {2, 4, 3}, Float32Bytes(x)));
  WriteFile(Path("train_x.npy"), NpyFile("<f4", {4, 4, 3}, Float32Bytes(std::vector<float>(48, 1))));
  ASSERT_TRUE(CheckArrayFiles(Files()).ok());  // headers only
  auto data = ReadArrayDataset(Files());
  ASSERT_FALSE(data.ok());
  EXPECT_THAT(data.status().message(),
              HasSubstr("dataset.test.x: " + Path("test_x.npy") + ": value nan of sample 1 is not finite"));
  // Not when the sample is past the limit.
  EXPECT_TRUE(ReadArrayDataset(Files(), 0, 1).ok());
}

TEST_F(ArraysTest, TheDirectoryKindsCheckRefersToTheFiles) {
  EXPECT_TRUE(CheckDatasetKind("arrays").ok());
  auto sizes = CheckDatasetSizes("arrays", dir_.string());
  ASSERT_FALSE(sizes.ok());
  EXPECT_THAT(sizes.status().message(), HasSubstr("checked by role"));
}

TEST_F(ArraysTest, RolesSetTheirFiles) {
  ArrayFiles files;
  EXPECT_TRUE(files.Set("train_x", "/a"));
  EXPECT_TRUE(files.Set("test_y", "/d"));
  EXPECT_FALSE(files.Set("model", "/m"));
  EXPECT_EQ(files.train_x, "/a");
  EXPECT_EQ(files.test_y, "/d");
  EXPECT_TRUE(files.train_y.empty());
}

}  // namespace
}  // namespace repro::data
