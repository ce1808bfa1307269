#include "coordinator/scores.h"

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace repro {
namespace {

using ::testing::HasSubstr;

const std::string kSameSeedCsv = std::string(REPRO_TEST_DATA) + "/resnet_same_seed.csv";

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(ScoresTest, StudyFileGivesNumpysStdev) {
  auto out = AnalyzeScores({kSameSeedCsv});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(*out, HasSubstr("resnet_same_seed.csv:\n"));
  EXPECT_THAT(*out, HasSubstr("  n                    50\n"));
  // NumPy's figures for this file (ORIGINAL.md), ddof 0 and 1.
  EXPECT_THAT(*out, HasSubstr("  stdev (ddof 0)       [0.01994929 0.00301954]\n"));
  EXPECT_THAT(*out, HasSubstr("  stdev (ddof 1)       [0.02015183 0.00305019]\n"));
  EXPECT_THAT(*out, ::testing::Not(HasSubstr("ratio")));
}

TEST(ScoresTest, RatiosAgainstTheLastFile) {
  // a: loss {1, 3} stdev 1, accuracy constant. b: loss {0, 4} stdev 2, accuracy
  // {0.25, 0.75} stdev 0.25.
  const std::string a = WriteTemp("a.csv", "1,0.5\n3,0.5\n");
  const std::string b = WriteTemp("b.csv", "0,0.25\n4,0.75\n");
  auto out = AnalyzeScores({a, b});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(*out, HasSubstr("reference: b.csv"));
  EXPECT_THAT(*out, HasSubstr("  max                  [3 0.5]\n"
                              "  stdev ratio          [0.5 0]\n"
                              "  variance share       [0.25 0]\n"));
  // Against a reference without spread the ratio is undefined.
  auto flat = AnalyzeScores({b, a});
  ASSERT_TRUE(flat.ok()) << flat.status();
  EXPECT_THAT(*flat, HasSubstr("  stdev ratio          [2 nan]\n"
                                "  variance share       [4 nan]\n"));
}

TEST(ScoresTest, Errors) {
  EXPECT_EQ(AnalyzeScores({}).status().code(), absl::StatusCode::kInvalidArgument);
  const std::string empty = WriteTemp("empty.csv", "\n");
  auto no_rows = AnalyzeScores({empty});
  ASSERT_FALSE(no_rows.ok());
  EXPECT_THAT(std::string(no_rows.status().message()), HasSubstr("empty.csv"));
  const std::string bad = WriteTemp("bad.csv", "1,2\nabc\n");
  auto malformed = AnalyzeScores({kSameSeedCsv, bad});
  ASSERT_FALSE(malformed.ok());
  EXPECT_THAT(std::string(malformed.status().message()),
              HasSubstr("bad.csv line 2: expected two numbers 'loss,accuracy', "
                        "got 'abc'"));
  EXPECT_EQ(AnalyzeScores({"/nonexistent.csv"}).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace repro
