// Tests of the safetensors writer and strict reader: round trips, the byte layout, a
// file read by plain Python (json + NumPy) when it is installed, and corrupt files.
#include "worker/engine/safetensors.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace repro::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
namespace fs = std::filesystem;

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           absl::StrCat("repro_safetensors_test_", info->name(), "_", ::getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (int i = 0; i < 6; ++i) weights_.push_back(0.25f * static_cast<float>(i) - 0.5f);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // "w" F32 [2, 3] = -0.5, -0.25, 0, 0.25, 0.5, 0.75; "step" I64 [] = 7; "empty" U8 [0].
  std::vector<SafetensorsTensorView> Views() const {
    return {{"w", "F32", {2, 3}, weights_.data(), weights_.size() * sizeof(float)},
            {"step", "I64", {}, &step_, sizeof step_},
            {"empty", "U8", {0}, nullptr, 0}};
  }

  std::string ValidFile() {
    const std::string path = Path("valid.safetensors");
    EXPECT_TRUE(WriteSafetensors(path, Views(), {{"repro.note", "a \"quoted\" note"}}).ok());
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  fs::path dir_;
  std::vector<float> weights_;
  int64_t step_ = 7;
};

std::string LittleEndian64(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

// A file with header `json` (unpadded) and `data`.
std::string FileOf(const std::string& json, const std::string& data) {
  return LittleEndian64(json.size()) + json + data;
}

TEST_F(SafetensorsTest, RoundTrip) {
  const std::string path = Path("round.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, Views(), {{"repro.model_hash", "abc"}}).ok());
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  auto file = ReadSafetensors(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ(file->tensors.size(), 3u);
  const SafetensorsTensor& w = file->tensors[0];
  EXPECT_EQ(w.name, "w");
  EXPECT_EQ(w.dtype, "F32");
  EXPECT_THAT(w.shape, ElementsAre(2, 3));
  ASSERT_EQ(w.data.size(), 24u);
  EXPECT_EQ(std::memcmp(w.data.data(), weights_.data(), 24), 0);
  EXPECT_EQ(file->tensors[1].name, "step");
  EXPECT_EQ(file->tensors[1].dtype, "I64");
  EXPECT_TRUE(file->tensors[1].shape.empty());
  EXPECT_EQ(file->tensors[1].data, std::string("\x07\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(file->tensors[2].name, "empty");
  EXPECT_THAT(file->tensors[2].shape, ElementsAre(0));
  EXPECT_TRUE(file->tensors[2].data.empty());
  EXPECT_THAT(file->metadata, ElementsAre(Pair("format", "pt"), Pair("repro.model_hash", "abc")));
}

TEST_F(SafetensorsTest, LayoutIsLengthThenPaddedJsonThenData) {
  const std::string bytes = ValidFile();
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + 24 + 8);
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header[0], '{');
  EXPECT_EQ(header.substr(0, header.find_last_not_of(' ') + 1),
            "{\"__metadata__\":{\"format\":\"pt\",\"repro.note\":\"a \\\"quoted\\\" note\"},"
            "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
            "\"step\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[24,32]},"
            "\"empty\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[32,32]}}");
  // The data: the floats then the integer, little-endian.
  EXPECT_EQ(std::memcmp(bytes.data() + 8 + n, weights_.data(), 24), 0);
}

TEST_F(SafetensorsTest, PlainPythonReadsTheFile) {
  if (std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "/usr/bin/python3 with numpy is not installed";
  }
  const std::string path = Path("python.safetensors");
  std::vector<float> values(1000);
  double sum = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] = static_cast<float>(std::sin(static_cast<double>(i))) * 3.0f;
    sum += values[i];
  }
  const int64_t step = -42;
  ASSERT_TRUE(WriteSafetensors(path,
                               {{"layer.weight", "F32", {10, 100}, values.data(), 4000},
                                {"layer.steps", "I64", {1}, &step, 8}},
                               {})
                  .ok());
  const std::string script = absl::StrCat(
      "/usr/bin/python3 -c '\n"
      "import json, struct, numpy as np\n"
      "b = open(\"",
      path,
      "\", \"rb\").read()\n"
      "n = struct.unpack(\"<Q\", b[:8])[0]\n"
      "h = json.loads(b[8:8 + n])\n"
      "d = b[8 + n:]\n"
      "t = h[\"layer.weight\"]; s, e = t[\"data_offsets\"]\n"
      "a = np.frombuffer(d[s:e], dtype=\"<f4\").reshape(t[\"shape\"])\n"
      "u = h[\"layer.steps\"]; s2, e2 = u[\"data_offsets\"]\n"
      "k = np.frombuffer(d[s2:e2], dtype=\"<i8\")\n"
      "print(repr(float(a.astype(np.float64).sum())), a.shape[0], a.shape[1],\n"
      "      repr(float(a[3, 7])), int(k[0]), h[\"__metadata__\"][\"format\"])\n"
      "'");
  std::FILE* pipe = popen(script.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char buffer[512] = {};
  const size_t got = std::fread(buffer, 1, sizeof buffer - 1, pipe);
  ASSERT_EQ(pclose(pipe), 0) << std::string(buffer, got);
  double python_sum = 0, python_value = 0;
  int rows = 0, cols = 0;
  long long python_step = 0;
  char format[16] = {};
  ASSERT_EQ(std::sscanf(buffer, "%lf %d %d %lf %lld %15s", &python_sum, &rows, &cols, &python_value,
                        &python_step, format),
            6)
      << buffer;
  EXPECT_NEAR(python_sum, sum, 1e-9 * (1 + std::abs(sum)));  // NumPy sums pairwise
  EXPECT_EQ(rows, 10);
  EXPECT_EQ(cols, 100);
  EXPECT_EQ(python_value, static_cast<double>(values[3 * 100 + 7]));  // exact
  EXPECT_EQ(python_step, -42);
  EXPECT_STREQ(format, "pt");
}

TEST_F(SafetensorsTest, WriterRejectsBadTensors) {
  float x = 1;
  struct Case {
    std::vector<SafetensorsTensorView> views;
    const char* text;
  };
  const Case cases[] = {
      {{{"a", "F32", {1}, &x, 4}, {"a", "F32", {1}, &x, 4}}, "given twice"},
      {{{"", "F32", {1}, &x, 4}}, "not allowed"},
      {{{"__metadata__", "F32", {1}, &x, 4}}, "not allowed"},
      {{{"a", "F31", {1}, &x, 4}}, "unknown dtype"},
      {{{"a", "F32", {2}, &x, 4}}, "needs 2 x 4 bytes but has 4"},
      {{{"a", "F32", {-1}, &x, 4}}, "bad shape"},
  };
  for (const Case& c : cases) {
    const absl::Status s = WriteSafetensors(Path("bad.safetensors"), c.views, {});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(s.message(), HasSubstr(c.text));
  }
  EXPECT_THAT(EncodeSafetensorsHeader({}, {{"k", "1"}, {"k", "2"}}).status().message(),
              HasSubstr("given twice"));
  const absl::Status s = WriteSafetensors(Path("no/such/dir/x.safetensors"), Views(), {});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("no/such/dir"));
  EXPECT_EQ(ReadSafetensors(Path("missing.safetensors")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SafetensorsTest, ForeignHeadersInAnyKeyOrderAreRead) {
  // As Python's safetensors may write them: __metadata__ last, spaces, escapes, and the
  // header's key order unlike the data's.
  const std::string json =
      "{ \"b\" : {\"shape\": [1], \"data_offsets\": [4, 8], \"dtype\": \"I32\"},\n"
      "  \"a\\u00e9\\ud83d\\ude00\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4], \"shape\": "
      "[1]},"
      "  \"__metadata__\": {\"k\": \"v\\n\"} }   ";
  auto file = ParseSafetensors(FileOf(json, std::string(8, '\x01')));
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ(file->tensors.size(), 2u);
  EXPECT_EQ(file->tensors[0].name, "a\xc3\xa9\xf0\x9f\x98\x80");  // data order
  EXPECT_EQ(file->tensors[1].name, "b");
  EXPECT_THAT(file->metadata, ElementsAre(Pair("k", "v\n")));
  EXPECT_TRUE(ParseSafetensors(FileOf("{}", "")).ok());
}

TEST_F(SafetensorsTest, CorruptFilesAreErrorsThatSayWhy) {
  const std::string valid = ValidFile();
  ASSERT_TRUE(ParseSafetensors(valid).ok());
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(valid[i]);
  const std::string f32 = R"("dtype":"F32","shape":[1])";

  struct Case {
    std::string bytes;
    const char* text;
  };
  const std::vector<Case> cases = {
      {"", "too short"},
      {valid.substr(0, 7), "too short"},
      {valid.substr(0, valid.size() - 1), "data_offsets [24, 32] past the end of the 31"},
      {valid.substr(0, 8 + n - 3), "more than the"},
      {LittleEndian64(valid.size()) + valid.substr(8), "more than the"},
      {LittleEndian64(200'000'000) + valid.substr(8), "more than the limit"},
      {LittleEndian64(~uint64_t{0}) + valid.substr(8), "more than the limit"},
      {valid + "x", "the file has 33 data bytes"},
      {FileOf("[]", ""), "must start with '{'"},
      {FileOf("{\"a\":", ""), "ends too early"},
      {FileOf("{\"a\" {}}", ""), "expected ':'"},
      {FileOf("{\"a\":{" + f32 + ",\"data_offsets\":[0,4]}} x", std::string(4, 0)),
       "unexpected text after"},
      {FileOf("{\"a\":{" + f32 + ",\"data_offsets\":[0,4]},}", std::string(4, 0)),
       "expected a key"},
      {FileOf("{\"a\":[1]}", ""), "must be an object"},
      {FileOf("{\"a\":{" + f32 + "}}", ""), "lacks data_offsets"},
      {FileOf("{\"a\":{" + f32 + ",\"data_offsets\":[0,4],\"x\":1}}", std::string(4, 0)),
       "unknown key \"x\""},
      {FileOf("{\"a\":{" + f32 + ",\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", std::string(4, 0)),
       "dtype twice"},
      {FileOf("{\"a\":{" + f32 + ",\"data_offsets\":[0,4]},\"a\":{}}", std::string(4, 0)),
       "appears twice"},
      {FileOf("{\"a\":{" + f32 + ",\"data_offsets\":[0,4,8]}}", std::string(8, 0)),
       "must be [begin, end]"},
      {FileOf("{\"a\":{" + f32 + ",\"data_offsets\":[0,-4]}}", ""), "non-negative integers"},
      {FileOf("{\"a\":{" + f32 + ",\"data_offsets\":[0,4.0]}}", ""), "non-negative integers"},
      {FileOf("{\"a\":{" + f32 + ",\"data_offsets\":[0,04]}}", ""), "non-negative integers"},
      {FileOf("{\"a\":{" + f32 + ",\"data_offsets\":[0,99999999999999999999]}}", ""), "too large"},
      {FileOf("{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551615],"
              "\"data_offsets\":[0,4]}}",
              std::string(4, 0)),
       "too large"},
      {FileOf("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
              "\"data_offsets\":[0,0]}}",
              ""),
       "does not match"},
      {FileOf("{\"a\":{\"dtype\":\"Q8\",\"shape\":[1],\"data_offsets\":[0,1]}}", std::string(1, 0)),
       "unknown dtype \"Q8\""},
      {FileOf("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}",
              std::string(4, 0)),
       "does not match"},
      {FileOf("{\"a\":{" + f32 + ",\"data_offsets\":[4,0]}}", std::string(4, 0)),
       "end before they begin"},
      {FileOf("{\"a\":{" + f32 + ",\"data_offsets\":[0,4]},\"b\":{" + f32 +
                  ",\"data_offsets\":[2,6]}}",
              std::string(6, 0)),
       "overlap those of tensor \"a\""},
      {FileOf("{\"a\":{" + f32 + ",\"data_offsets\":[0,4]},\"b\":{" + f32 +
                  ",\"data_offsets\":[0,4]}}",
              std::string(4, 0)),
       "overlap"},
      {FileOf("{\"a\":{" + f32 + ",\"data_offsets\":[4,8]}}", std::string(8, 0)),
       "leave a gap after byte 0"},
      {FileOf("{\"\":{" + f32 + ",\"data_offsets\":[0,4]}}", std::string(4, 0)), "empty name"},
      {FileOf("{\"__metadata__\":{\"k\":1}}", ""), "must be a string"},
      {FileOf("{\"__metadata__\":[]}", ""), "object of strings"},
      {FileOf("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", ""), "appears twice"},
      {FileOf("{\"a\\ud800\":{}}", ""), "surrogate"},
      {FileOf("{\"a\\udc00\":{}}", ""), "lone low surrogate"},
      {FileOf("{\"a\\x\":{}}", ""), "bad escape"},
      {FileOf("{\"a\\u12\":{}}", ""), "bad \\u escape"},
      {FileOf("{\"a\xff\":{}}", ""), "invalid UTF-8"},
      {FileOf("{\"a\xc0\x80\":{}}", ""), "invalid UTF-8"},      // overlong NUL
      {FileOf("{\"a\xed\xa0\x80\":{}}", ""), "invalid UTF-8"},  // encoded surrogate
      {FileOf("{\"a\n\":{}}", ""), "control character"},
      {FileOf("{\"a", ""), "unterminated string"},
  };
  for (const Case& c : cases) {
    auto file = ParseSafetensors(c.bytes);
    ASSERT_FALSE(file.ok()) << c.text;
    EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(file.status().message(), HasSubstr(c.text));
  }

  // The path leads the reader's errors.
  const std::string path = Path("truncated.safetensors");
  std::ofstream(path, std::ios::binary) << valid.substr(0, valid.size() - 5);
  auto read = ReadSafetensors(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr(path + ": not a valid safetensors file"));
}

TEST_F(SafetensorsTest, NoPrefixOrBitFlipCrashes) {
  // A small stand-in for the fuzzer: every prefix and many random byte changes of a
  // valid file parse to a value or an error, never a crash or a hang.
  const std::string valid = ValidFile();
  int ok = 0;
  for (size_t size = 0; size < valid.size(); ++size)
    ok += ParseSafetensors(valid.substr(0, size)).ok();
  EXPECT_EQ(ok, 0);  // every proper prefix is truncated somewhere
  std::mt19937_64 rng(1);
  for (int i = 0; i < 3000; ++i) {
    std::string bytes = valid;
    const int changes = 1 + static_cast<int>(rng() % 3);
    for (int c = 0; c < changes; ++c) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    auto file = ParseSafetensors(bytes);
    if (file.ok()) {
      size_t total = 0;
      for (const auto& t : file->tensors) total += t.data.size();
      EXPECT_LE(total, bytes.size());
    }
  }
}

}  // namespace
}  // namespace repro::engine
