// BlobStore: files copied in by content, once; a wrong hash refused with nothing left;
// blobs read back at any offset; what the store holds counted.
#include "store/blobs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "common/sha256.h"

namespace repro {
namespace {

namespace fs = std::filesystem;

class BlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("blobs_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  // Files in the store's folder, blobs and temporaries alike.
  int FilesUnder(const fs::path& root) {
    int n = 0;
    if (!fs::exists(root)) return 0;
    for (const auto& entry : fs::recursive_directory_iterator(root)) n += entry.is_regular_file();
    return n;
  }

  fs::path dir_;
};

TEST_F(BlobStoreTest, AddsAFileUnderItsHashAndReadsItBack) {
  const std::string bytes(3 << 20, 'x');  // more than one copy buffer
  const std::string path = Write("data.npy", bytes + "tail");
  const std::string sha = Sha256Hex((bytes + "tail").data(), bytes.size() + 4);
  BlobStore store(BlobStore::RootFor((dir_ / "exp.db").string()));
  EXPECT_EQ(store.root(), (dir_ / "exp.db.blobs").string());
  EXPECT_FALSE(store.Has(sha));
  ASSERT_TRUE(store.Add(path, sha).ok());
  EXPECT_TRUE(store.Has(sha));
  EXPECT_EQ(store.PathOf(sha), store.root() + "/sha256/" + sha.substr(0, 2) + "/" + sha);
  EXPECT_TRUE(fs::is_regular_file(store.PathOf(sha)));

  auto file = store.Open(sha);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->size(), static_cast<int64_t>(bytes.size() + 4));
  std::string piece;
  ASSERT_TRUE(file->ReadAt(static_cast<int64_t>(bytes.size()) - 2, 100, &piece).ok());
  EXPECT_EQ(piece, "xxtail");  // fewer than asked at the end
  ASSERT_TRUE(file->ReadAt(file->size(), 10, &piece).ok());
  EXPECT_EQ(piece, "");
}

TEST_F(BlobStoreTest, ABlobPresentIsNotCopiedAgain) {
  const std::string path = Write("a.npy", "same bytes");
  const std::string sha = Sha256Hex("same bytes", 10);
  BlobStore store((dir_ / "store").string());
  ASSERT_TRUE(store.Add(path, sha).ok());
  struct stat first;
  ASSERT_EQ(stat(store.PathOf(sha).c_str(), &first), 0);
  // The same bytes under another name, and the same file again: one blob.
  ASSERT_TRUE(store.Add(Write("b.npy", "same bytes"), sha).ok());
  ASSERT_TRUE(store.Add(path, sha).ok());
  struct stat second;
  ASSERT_EQ(stat(store.PathOf(sha).c_str(), &second), 0);
  EXPECT_EQ(first.st_ino, second.st_ino);  // not replaced
  EXPECT_EQ(FilesUnder(store.root()), 1);
}

TEST_F(BlobStoreTest, AWrongExpectedHashIsRefusedAndLeavesNothing) {
  const std::string path = Write("a.npy", "changed since hashed");
  const std::string other = Sha256Hex("original", 8);
  BlobStore store((dir_ / "store").string());
  const absl::Status s = store.Add(path, other);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(path), std::string::npos) << s;
  EXPECT_NE(s.message().find(other), std::string::npos) << s;
  EXPECT_FALSE(store.Has(other));
  EXPECT_EQ(FilesUnder(store.root()), 0);  // no temporary left either
}

TEST_F(BlobStoreTest, BadNamesAndMissingFilesAreRefused) {
  BlobStore store((dir_ / "store").string());
  const std::string path = Write("a.npy", "x");
  EXPECT_EQ(store.Add(path, "../../etc/passwd").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Add(path, std::string(64, 'A')).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Add((dir_ / "missing").string(), std::string(64, 'a')).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Open("abc").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Open(std::string(64, 'a')).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(store.Has("../x"));
}

TEST_F(BlobStoreTest, StatsCountBlobsAndBytes) {
  BlobStore store((dir_ / "store").string());
  auto empty = store.Stats();
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->blobs, 0);
  EXPECT_EQ(empty->bytes, 0);
  ASSERT_TRUE(store.Add(Write("a", "12345"), Sha256Hex("12345", 5)).ok());
  ASSERT_TRUE(store.Add(Write("b", "abc"), Sha256Hex("abc", 3)).ok());
  ASSERT_TRUE(store.Add(Write("c", "abc"), Sha256Hex("abc", 3)).ok());  // deduplicated
  auto stats = store.Stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->blobs, 2);
  EXPECT_EQ(stats->bytes, 8);
}

}  // namespace
}  // namespace repro
