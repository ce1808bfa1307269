#include "analysis/scores.h"

#include <fstream>
#include <string>
#include <utility>

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
  // Two rows each: the loss interval exists, the accuracy one does not.
  EXPECT_THAT(*flat, HasSubstr("  95% CI accuracy      [nan nan]\n"));
}

// The study's same-seed file split in two: rows 0-24 and rows 25-49, as written.
std::pair<std::string, std::string> SplitStudyFile() {
  std::ifstream in(kSameSeedCsv);
  std::string line, first, last;
  for (int row = 0; std::getline(in, line); ++row) (row < 25 ? first : last) += line + "\n";
  return {WriteTemp("first.csv", first), WriteTemp("last.csv", last)};
}

TEST(ScoresTest, ComparesWithTheReferenceLikeNumpyAndScipy) {
  const auto [first, last] = SplitStudyFile();
  auto out = AnalyzeScores({first, last});
  ASSERT_TRUE(out.ok()) << out.status();
  // NumPy 1.24 / SciPy 1.10.1 (Debian 12's python3-scipy) on the same rows:
  // np.std(first, axis=0) = [0.02108622 0.00312831], np.std(last, axis=0) =
  // [0.01874298 0.00290642], their ratio [1.12501949 1.07634427] and its square
  // [1.26566886 1.158517]; stats.levene(first[:, c], last[:, c], center='median'):
  // F 0.2158946673913182 and 0.4503946295154504, p 0.6442867718387224 and
  // 0.5053644861471194.
  EXPECT_THAT(*out, HasSubstr("reference: last.csv"));
  EXPECT_THAT(*out, HasSubstr("first.csv:\n  n                    25\n"));
  EXPECT_THAT(*out, HasSubstr("  stdev (ddof 0)       [0.02108622 0.00312831]\n"));
  EXPECT_THAT(*out, HasSubstr("  stdev (ddof 0)       [0.01874298 0.00290642]\n"));
  EXPECT_THAT(*out, HasSubstr("  stdev ratio          [1.12501949 1.07634427]\n"
                              "  variance share       [1.26566886 1.158517]\n"));
  EXPECT_THAT(*out, HasSubstr("  Brown-Forsythe F     [0.21589467 0.45039463]\n"
                              "  Brown-Forsythe p     [0.64428677 0.50536449]\n"));
  EXPECT_THAT(*out, HasSubstr("95% CI: of the stdev ratio, percentile bootstrap, 10000 "
                              "resamples, seed 0\n"));
  EXPECT_THAT(*out, HasSubstr("  95% CI loss          ["));
  EXPECT_THAT(*out, HasSubstr("  95% CI accuracy      ["));
}

TEST(ScoresTest, BootstrapIsReproducibleAndSeeded) {
  const auto [first, last] = SplitStudyFile();
  auto a = AnalyzeScores({first, last}, 2000, 3);
  auto b = AnalyzeScores({first, last}, 2000, 3);
  auto c = AnalyzeScores({first, last}, 2000, 4);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);
  EXPECT_THAT(*a, HasSubstr("2000 resamples, seed 3"));
  auto none = AnalyzeScores({first, last}, 0, 0);
  ASSERT_TRUE(none.ok());
  EXPECT_THAT(*none, ::testing::Not(HasSubstr("95% CI")));
  EXPECT_THAT(*none, HasSubstr("Brown-Forsythe p"));
  EXPECT_EQ(AnalyzeScores({first, last}, -1, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
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
