# Included from coordinator/CMakeLists.txt when REPRO_BUILD_SERVICES is ON.

# The store (SQLite) and the status view: shared by the coordinator and reproctl --db.
add_library(repro_store sqlite.cc group_commit.cc store.cc status_view.cc)
target_include_directories(repro_store PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(repro_store PUBLIC repro_plan repro_analysis repro_proto SQLite::SQLite3
                      absl::synchronization absl::status absl::statusor absl::strings
                      PRIVATE nlohmann_json::nlohmann_json)

# The gRPC service, the scheduler and the local-worker launcher.
add_library(repro_coordinator service.cc handler_pool.cc local_workers.cc progress.cc)
target_include_directories(repro_coordinator PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(repro_coordinator PUBLIC repro_store repro_proto repro_dataset repro_cli repro_security gRPC::grpc++
                      gRPC::grpc++_reflection absl::synchronization)

add_executable(coordinator main.cc)
target_link_libraries(coordinator PRIVATE repro_coordinator repro_cli)

if(REPRO_BUILD_TESTS)
  add_executable(store_test store_test.cc)
  target_link_libraries(store_test PRIVATE repro_store GTest::gtest_main)
  gtest_discover_tests(store_test)
endif()
