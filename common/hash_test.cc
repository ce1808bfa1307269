#include "common/hash.h"

#include <gtest/gtest.h>

namespace repro {
namespace {

TEST(HashTest, KnownDigestIsStableAcrossProcesses) {
  // XXH3-128 of the empty input, a fixed value of the algorithm (xxHash 0.8 test vectors:
  // high 0x99aa06d3014798d8, low 0x6001c324468d497f). A stored fingerprint from one
  // machine must compare equal to one computed on another.
  EXPECT_EQ(HashBytes("", 0), "99aa06d3014798d86001c324468d497f");
}

TEST(HashTest, StreamingEqualsOneShot) {
  Hasher h;
  h.Update("hello ");
  h.Update("world");
  EXPECT_EQ(h.HexDigest(), HashBytes("hello world", 11));
  EXPECT_EQ(h.HexDigest().size(), 32u);
}

TEST(HashTest, FieldsAreLengthPrefixed) {
  Hasher a, b;
  a.UpdateField("ab");
  a.UpdateField("c");
  b.UpdateField("a");
  b.UpdateField("bc");
  EXPECT_NE(a.HexDigest(), b.HexDigest());
}

TEST(HashTest, SequenceDependsOnOrder) {
  EXPECT_NE(HashSequence({"x", "y"}), HashSequence({"y", "x"}));
  EXPECT_EQ(HashSequence({"x", "y"}), HashSequence({"x", "y"}));
}

TEST(HashTest, NamedDependsOnNames) {
  EXPECT_NE(HashNamed({{"conv.weight", "d1"}}), HashNamed({{"conv.bias", "d1"}}));
}

}  // namespace
}  // namespace repro
