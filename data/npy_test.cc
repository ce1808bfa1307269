// Tests of the .npy reader (npy.h): headers of versions 1.0, 2.0 and 3.0 written byte by
// byte here, as np.save writes them and as a hostile file might, and the rows read back.
#include "data/npy.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "data/data_test_support.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace repro::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using test_support::DatasetDirTest;
using test_support::Float32Bytes;
using test_support::NpyDict;
using test_support::NpyFile;
using test_support::NpyFileWithDict;
using test_support::WriteFile;

std::string_view View(const std::vector<uint8_t>& bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// The header parsed from a file of `dict` (version `major`).
absl::StatusOr<NpyHeader> ParseDict(const std::string& dict, int major = 1) {
  const std::vector<uint8_t> file = NpyFileWithDict(dict, {}, major);
  return ParseNpyHeader(View(file));
}

// The error ParseDict gives; fails the test when it parses.
std::string DictError(const std::string& dict) {
  auto header = ParseDict(dict);
  EXPECT_FALSE(header.ok()) << dict;
  if (header.ok()) return "";
  EXPECT_EQ(header.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(header.status().message());
}

TEST(NpyHeaderTest, VersionOneUint8AsNpSaveWritesIt) {
  const std::vector<uint8_t> file = NpyFile("|u1", {2, 3, 4}, std::vector<uint8_t>(24, 7));
  ASSERT_EQ((file.size() - 24) % 64, 0u);  // np.save's alignment
  auto header = ParseNpyHeader(View(file));
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->major, 1);
  EXPECT_EQ(header->descr, "|u1");
  EXPECT_THAT(header->shape, ElementsAre(2, 3, 4));
  EXPECT_FALSE(header->fortran_order);
  EXPECT_EQ(header->data_offset, 128);  // the dict padded to a multiple of 64
  EXPECT_EQ(header->Elements(), 24);
  EXPECT_EQ(header->ItemSize(), 1);
}

TEST(NpyHeaderTest, VersionsTwoAndThreeHaveAFourByteLength) {
  for (int major : {2, 3}) {
    const std::vector<uint8_t> file = NpyFile("<f4", {5, 1, 2, 2}, Float32Bytes(std::vector<float>(20, 0.5f)), major);
    auto header = ParseNpyHeader(View(file));
    ASSERT_TRUE(header.ok()) << header.status();
    EXPECT_EQ(header->major, major);
    EXPECT_EQ(header->descr, "<f4");
    EXPECT_THAT(header->shape, ElementsAre(5, 1, 2, 2));
    EXPECT_EQ(header->data_offset, 128);  // the dict padded to a multiple of 64
    EXPECT_EQ(header->ItemSize(), 4);
  }
}

TEST(NpyHeaderTest, TheDictMayBeWrittenAsPythonAllows) {
  // Keys in any order, double quotes, no trailing comma, spaces, a one-tuple, a scalar,
  // Python 2's long suffix.
  auto h = ParseDict("{\"shape\":(7,),\"fortran_order\":True,\"descr\":\"<i8\"}");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_THAT(h->shape, ElementsAre(7));
  EXPECT_TRUE(h->fortran_order);
  EXPECT_EQ(h->descr, "<i8");
  h = ParseDict("  { 'descr' : '<f4' , 'fortran_order' : False , 'shape' : ( 2 , 3 , ) , }  ");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_THAT(h->shape, ElementsAre(2, 3));
  h = ParseDict("{'descr': '<f8', 'fortran_order': False, 'shape': (), }");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_TRUE(h->shape.empty());
  EXPECT_EQ(h->Elements(), 1);
  h = ParseDict("{'descr': '<i8', 'fortran_order': False, 'shape': (3L, 4L), }");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_THAT(h->shape, ElementsAre(3, 4));
  h = ParseDict("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 28, 28), }");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->Elements(), 0);
}

TEST(NpyHeaderTest, AHeaderThatIsNotTheDictLiteralIsAnError) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[1, 2, 3]", "does not start with '{'"},
      {"{'descr': '<f4', 'fortran_order': False}", "no key 'shape'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", "key 'extra'"},
      {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", "'descr' twice"},
      {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}", "structured dtype"},
      {"{'descr': '<f4', 'fortran_order': 1, 'shape': (1,)}", "not True or False"},
      {"{'descr': '<f4', 'fortran_order': Falsey, 'shape': (1,)}", "not True or False"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (3)}", "without its comma"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': [3, 4]}", "not a tuple"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 4)}", "non-negative integer"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (3.5, 4)}", "non-negative integer"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (03, 4)}", "leading zero"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4 5)}", "no ',' or ')'"},
      {"{'descr': '<f4' 'fortran_order': False, 'shape': (3,)}", "no ',' or '}'"},
      {"{'descr': '<f\\x34', 'fortran_order': False, 'shape': (3,)}", "escape"},
      {"{'descr': '<f4', 'fortran_order' False, 'shape': (3,)}", "no ':' after key 'fortran_order'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,)} + 1", "after its closing '}'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (3,)", "no ',' or '}'"},
      {"{descr: '<f4', 'fortran_order': False, 'shape': (3,)}", "not a quoted string"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", "dimension over"},
  };
  for (const auto& [dict, expected] : cases) {
    const std::string error = DictError(dict);
    EXPECT_THAT(error, HasSubstr("header is not the dict literal")) << dict;
    EXPECT_THAT(error, HasSubstr(expected)) << dict;
  }
}

TEST(NpyHeaderTest, ShapesWhoseSizeOverflowsAreErrors) {
  auto h = ParseDict("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }");
  ASSERT_FALSE(h.ok());
  EXPECT_THAT(h.status().message(), HasSubstr("element count overflows"));
  h = ParseDict("{'descr': '<f4', 'fortran_order': False, 'shape': (2147483648, 2147483648), }");
  ASSERT_FALSE(h.ok());
  EXPECT_THAT(h.status().message(), HasSubstr("byte size overflows"));
  // 33 dimensions.
  std::string many = "{'descr': '|u1', 'fortran_order': False, 'shape': (";
  for (int i = 0; i < 33; ++i) many += "1, ";
  many += "), }";
  EXPECT_THAT(DictError(many), HasSubstr("more than 32 dimensions"));
}

TEST(NpyHeaderTest, TheFramingIsChecked) {
  std::vector<uint8_t> file = NpyFile("|u1", {2}, {1, 2});
  EXPECT_THAT(ParseNpyHeader("PK\x03\x04 a zip file").status().message(), HasSubstr("not an .npy file"));
  EXPECT_THAT(ParseNpyHeader(View(std::vector<uint8_t>(file.begin(), file.begin() + 5))).status().message(),
              HasSubstr("not an .npy file"));
  std::vector<uint8_t> v4 = file;
  v4[6] = 4;
  EXPECT_THAT(ParseNpyHeader(View(v4)).status().message(), HasSubstr("version 4.0"));
  std::vector<uint8_t> minor = file;
  minor[7] = 1;
  EXPECT_THAT(ParseNpyHeader(View(minor)).status().message(), HasSubstr("version 1.1"));
  // The length says more than there is.
  EXPECT_THAT(ParseNpyHeader(View(std::vector<uint8_t>(file.begin(), file.begin() + 40))).status().message(),
              HasSubstr("ends inside its 118-byte header"));
  EXPECT_THAT(ParseNpyHeader(View(std::vector<uint8_t>(file.begin(), file.begin() + 9))).status().message(),
              HasSubstr("ends inside its .npy header's length"));
  // Version 2.0 with a header length of 4 GiB - 1: refused before anything is read.
  std::vector<uint8_t> huge = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0xff, 0xff, 0xff, 0xff};
  EXPECT_THAT(ParseNpyHeader(View(huge)).status().message(),
              HasSubstr("header of 4294967295 bytes, over the 10000 allowed"));
  // A 20,000-byte dict (padding) is over the bound too.
  const std::string padded = NpyDict("|u1", {2}) + std::string(20000, ' ');
  std::vector<uint8_t> big = NpyFileWithDict(padded, {1, 2}, 2);
  EXPECT_THAT(ParseNpyHeader(View(big)).status().message(), HasSubstr("over the 10000 allowed"));
}

class NpyFileTest : public DatasetDirTest {};

TEST_F(NpyFileTest, ReadsTheHeaderAndTheRows) {
  std::vector<uint8_t> data(3 * 2 * 2);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 10);
  WriteFile(Path("x.npy"), NpyFile("|u1", {3, 2, 2}, data));
  auto header = ReadNpyHeader(Path("x.npy"));
  ASSERT_TRUE(header.ok()) << header.status();
  auto rows = ReadNpyRows(Path("x.npy"), *header, 1, 2);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(*rows, std::vector<uint8_t>(data.begin() + 4, data.end()));
  auto none = ReadNpyRows(Path("x.npy"), *header, 3, 0);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
  EXPECT_FALSE(ReadNpyRows(Path("x.npy"), *header, 2, 2).ok());
  EXPECT_FALSE(ReadNpyRows(Path("x.npy"), *header, -1, 1).ok());

  WriteFile(Path("f.npy"), NpyFile("<f4", {2, 1}, Float32Bytes({1.5f, -2.0f}), 3));
  header = ReadNpyHeader(Path("f.npy"));
  ASSERT_TRUE(header.ok()) << header.status();
  rows = ReadNpyRows(Path("f.npy"), *header, 0, 2);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(*rows, Float32Bytes({1.5f, -2.0f}));
}

TEST_F(NpyFileTest, TheFileMustHoldExactlyTheDataItsHeaderDeclares) {
  WriteFile(Path("short.npy"), NpyFile("<f4", {1000, 28, 28}, Float32Bytes({1, 2, 3})));
  auto header = ReadNpyHeader(Path("short.npy"));
  ASSERT_FALSE(header.ok());
  EXPECT_EQ(header.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(header.status().message(), HasSubstr(Path("short.npy") + ": truncated"));
  EXPECT_THAT(header.status().message(), HasSubstr("need 3136000 bytes of data but the file holds 12"));

  // A header that claims 2^61 bytes of data, 64 bytes on disk: refused, nothing allocated.
  WriteFile(Path("claims.npy"), NpyFile("|u1", {int64_t{1} << 30, int64_t{1} << 31}, {}));
  header = ReadNpyHeader(Path("claims.npy"));
  ASSERT_FALSE(header.ok());
  EXPECT_THAT(header.status().message(), HasSubstr("truncated"));

  WriteFile(Path("long.npy"), NpyFile("|u1", {2}, {1, 2, 3}));
  header = ReadNpyHeader(Path("long.npy"));
  ASSERT_FALSE(header.ok());
  EXPECT_THAT(header.status().message(), HasSubstr("1 bytes after the 2 bytes of data"));

  WriteFile(Path("cut.npy"), std::vector<uint8_t>{0x93, 'N', 'U', 'M'});
  EXPECT_THAT(ReadNpyHeader(Path("cut.npy")).status().message(),
              HasSubstr(Path("cut.npy") + ": is not an .npy file"));
  EXPECT_THAT(ReadNpyHeader(Path("missing.npy")).status().message(),
              HasSubstr(Path("missing.npy") + ": file does not exist"));
  EXPECT_THAT(ReadNpyHeader(dir_.string()).status().message(), HasSubstr("is not a regular file"));

  WriteFile(Path("dt.npy"), NpyFile("<M8[ns]", {2}, {}));
  EXPECT_THAT(ReadNpyHeader(Path("dt.npy")).status().message(),
              HasSubstr("dtype <M8[ns] has no item size in bytes"));
}

}  // namespace
}  // namespace repro::data
