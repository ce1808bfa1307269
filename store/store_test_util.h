// What the store's tests share (store_test.cc, read_only_test.cc): running SQL straight
// on a database file, to make it what an older repro wrote or to damage it.
#ifndef REPRO_STORE_STORE_TEST_UTIL_H_
#define REPRO_STORE_STORE_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <string>

namespace repro::store_testing {

// Runs `sql` (statements separated by ';') on the file at `path`; a fatal failure when
// it does not open or a statement fails (wrap in ASSERT_NO_FATAL_FAILURE to stop there).
inline void Sql(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  const std::string error = sqlite3_errmsg(db);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << error;
}

}  // namespace repro::store_testing

#endif  // REPRO_STORE_STORE_TEST_UTIL_H_
