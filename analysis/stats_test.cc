#include "analysis/stats.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace repro {
namespace {

const std::string kSameSeedCsv = std::string(REPRO_TEST_DATA) + "/resnet_same_seed.csv";

std::vector<double> Column(const std::vector<std::pair<double, double>>& rows, int c) {
  std::vector<double> out;
  for (const auto& row : rows) out.push_back(c == 0 ? row.first : row.second);
  return out;
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(StatsTest, StudyScoreFileMatchesNumpy) {
  auto rows = ReadScoreCsv(kSameSeedCsv);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 50u);
  const std::vector<double> loss = Column(*rows, 0);
  const std::vector<double> accuracy = Column(*rows, 1);
  // NumPy's figures for the original study's same-seed score file (ORIGINAL.md):
  // np.std(scores, axis=0) and np.std(scores, axis=0, ddof=1).
  EXPECT_NEAR(Stdev(loss, 0), 0.01994929, 1e-8);
  EXPECT_NEAR(Stdev(accuracy, 0), 0.00301954, 1e-8);
  EXPECT_NEAR(Stdev(loss, 1), 0.02015183, 1e-8);
  EXPECT_NEAR(Stdev(accuracy, 1), 0.00305019, 1e-8);
  EXPECT_EQ(FormatNumpyArray({Stdev(loss, 0), Stdev(accuracy, 0)}),
            "[0.01994929 0.00301954]");
  EXPECT_EQ(FormatNumpyArray({Stdev(loss, 1), Stdev(accuracy, 1)}),
            "[0.02015183 0.00305019]");
}

TEST(StatsTest, ParsesValuesExactlyAsStrtod) {
  auto rows = ReadScoreCsv(kSameSeedCsv);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ((*rows)[0].first, std::strtod("9.702797208309174026e-01", nullptr));
  EXPECT_EQ((*rows)[0].second, std::strtod("8.487999999999999989e-01", nullptr));
}

TEST(StatsTest, HandComputedSmallCases) {
  const std::vector<double> v = {2, 4, 4, 4, 5, 5, 7, 9};  // mean 5, sum sq dev 32
  EXPECT_DOUBLE_EQ(Mean(v), 5.0);
  EXPECT_DOUBLE_EQ(Stdev(v, 0), 2.0);
  EXPECT_DOUBLE_EQ(Stdev(v, 1), std::sqrt(32.0 / 7.0));
  EXPECT_EQ(Min(v), 2.0);
  EXPECT_EQ(Max(v), 9.0);
  EXPECT_DOUBLE_EQ(Stdev({1, 3}, 0), 1.0);
  EXPECT_DOUBLE_EQ(Stdev({1, 3}, 1), std::sqrt(2.0));
}

TEST(StatsTest, IdenticalValuesGiveExactlyZeroSpread) {
  const std::vector<double> v(7, 0.1);  // 7 * 0.1 / 7 is not 0.1 in doubles
  EXPECT_EQ(Mean(v), 0.1);
  EXPECT_EQ(Stdev(v, 0), 0.0);
  EXPECT_EQ(Stdev(v, 1), 0.0);
  EXPECT_EQ(FormatNumpyArray({Stdev(v, 0), Stdev(v, 1)}), "[0 0]");
}

TEST(StatsTest, SmallSpreadAroundLargeMeanKeepsPrecision) {
  // Exactly representable values 1e9 + k * 2^-20: the spread is 2^-20 * sqrt(2/3),
  // which a one-pass sum-of-squares formula would lose entirely.
  const double step = std::ldexp(1.0, -20);
  const std::vector<double> v = {1e9, 1e9 + step, 1e9 + 2 * step};
  EXPECT_EQ(Mean(v), 1e9 + step);
  EXPECT_DOUBLE_EQ(Stdev(v, 0), step * std::sqrt(2.0 / 3.0));
  EXPECT_DOUBLE_EQ(Stdev(v, 1), step);
}

TEST(StatsTest, UndefinedResultsAreNaN) {
  EXPECT_TRUE(std::isnan(Mean({})));
  EXPECT_TRUE(std::isnan(Min({})));
  EXPECT_TRUE(std::isnan(Max({})));
  EXPECT_TRUE(std::isnan(Stdev({}, 0)));
  EXPECT_EQ(Stdev({3.5}, 0), 0.0);
  EXPECT_TRUE(std::isnan(Stdev({3.5}, 1)));
  EXPECT_TRUE(std::isnan(Stdev({1, 2}, 2)));
  EXPECT_TRUE(std::isnan(Stdev({1, 2}, -1)));
  EXPECT_TRUE(std::isnan(Stdev({1, std::nan("")}, 0)));
}

TEST(StatsTest, FormatsLikeNumpy) {
  EXPECT_EQ(FormatNumpy(0.0), "0");
  EXPECT_EQ(FormatNumpy(-0.0), "0");
  EXPECT_EQ(FormatNumpy(0.5), "0.5");
  EXPECT_EQ(FormatNumpy(1.0), "1");
  EXPECT_EQ(FormatNumpy(0.0199492874), "0.01994929");
  EXPECT_EQ(FormatNumpy(-2.25), "-2.25");
  EXPECT_EQ(FormatNumpy(1.5e-12), "1.5e-12");  // never a nonzero spread shown as 0
  EXPECT_EQ(FormatNumpy(std::nan("")), "nan");
  EXPECT_EQ(FormatNumpy(INFINITY), "inf");
  EXPECT_EQ(FormatNumpyArray({}), "[]");
}

TEST(StatsTest, CsvAcceptsWhatGenfromtxtAccepts) {
  auto rows = ParseScoreCsv(
      "# loss,accuracy\n1.5,0.25\r\n\n  2e-1 , +0.75 # note\n-3,nan\n", "x.csv");
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[0], std::make_pair(1.5, 0.25));
  EXPECT_EQ((*rows)[1], std::make_pair(0.2, 0.75));
  EXPECT_EQ((*rows)[2].first, -3.0);
  EXPECT_TRUE(std::isnan((*rows)[2].second));
  auto empty = ParseScoreCsv("", "empty.csv");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(StatsTest, CsvErrorsNameFileAndLine) {
  const std::string text = "1,2\n1,2\n1,2\n1,2\n1,2\n1,2\nabc\n";
  auto rows = ParseScoreCsv(text, "scores.csv");
  ASSERT_FALSE(rows.ok());
  EXPECT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(rows.status().message(),
            "scores.csv line 7: expected two numbers 'loss,accuracy', got 'abc'");
  for (const char* bad : {"1\n", "1,2,3\n", "1,\n", ",2\n", "1x,2\n", "+-1,2\n"}) {
    EXPECT_FALSE(ParseScoreCsv(bad, "b.csv").ok()) << bad;
  }
  const std::string path = WriteTemp("bad_scores.csv", "0.1,0.2\n0.1;0.2\n");
  auto from_file = ReadScoreCsv(path);
  ASSERT_FALSE(from_file.ok());
  EXPECT_NE(from_file.status().message().find(path + " line 2"), std::string::npos)
      << from_file.status();
}

TEST(StatsTest, MissingFileIsNotFound) {
  auto rows = ReadScoreCsv("/nonexistent/scores.csv");
  ASSERT_FALSE(rows.ok());
  EXPECT_EQ(rows.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(rows.status().message().find("/nonexistent/scores.csv"), std::string::npos);
}

}  // namespace
}  // namespace repro
