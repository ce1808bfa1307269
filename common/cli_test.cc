#include "common/cli.h"

#include <gtest/gtest.h>

namespace repro::cli {
namespace {

const std::vector<FlagSpec> kSpecs = {{"db", true, "", "PATH"}, {"partial", false, ""}};

absl::StatusOr<ParsedArgs> ParseWords(std::vector<std::string> words) {
  words.insert(words.begin(), "prog");
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  return Parse(static_cast<int>(argv.size()), argv.data(), kSpecs);
}

TEST(CliTest, FlagsMayFollowTheCommandInEitherForm) {
  auto args = ParseWords({"report", "--db", "x.db", "--partial"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->positional, std::vector<std::string>{"report"});
  EXPECT_EQ(args->Get("db"), "x.db");
  EXPECT_TRUE(args->Has("partial"));
  args = ParseWords({"--db=y.db", "status"});
  ASSERT_TRUE(args.ok());
  EXPECT_EQ(args->Get("db"), "y.db");
}

TEST(CliTest, ErrorsNameTheFlag) {
  EXPECT_EQ(ParseWords({"--bogus"}).status().message(), "unknown flag --bogus (see --help)");
  EXPECT_EQ(ParseWords({"--db"}).status().message(), "flag --db needs a value");
  EXPECT_EQ(ParseWords({"--partial=yes"}).status().message(), "flag --partial takes no value");
}

TEST(CliTest, IntegerFlagsAreRangeChecked) {
  std::vector<FlagSpec> specs = {{"n", true, "", "N"}};
  std::vector<std::string> words = {"prog", "--n", "abc"};
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  auto args = Parse(3, argv.data(), specs);
  ASSERT_TRUE(args.ok());
  auto n = args->GetInt("n", 1, 0, 10);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().message(), "--n: expected an integer from 0 to 10, got \"abc\"");
  EXPECT_EQ(*args->GetInt("missing", 7, 0, 10), 7);
}

TEST(CliTest, DoubleDashEndsFlags) {
  auto args = ParseWords({"--", "--db"});
  ASSERT_TRUE(args.ok());
  EXPECT_EQ(args->positional, std::vector<std::string>{"--db"});
}

}  // namespace
}  // namespace repro::cli
