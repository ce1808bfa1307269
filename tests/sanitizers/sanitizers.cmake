# Included by the root CMakeLists.txt in a REPRO_SANITIZE build, after every target is
# defined (see README.md, "Fuzzing and sanitizers").

# Runtime options and suppression files (this folder) for every test and the processes
# it starts: ctest includes sanitizer_env.cmake before running any test.
if(REPRO_BUILD_TESTS)
  set(REPRO_SANITIZER_SUPPRESSIONS ${CMAKE_CURRENT_LIST_DIR})
  configure_file(${CMAKE_CURRENT_LIST_DIR}/ctest_env.cmake.in
                 ${PROJECT_BINARY_DIR}/sanitizer_env.cmake @ONLY)
  set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY TEST_INCLUDE_FILES
               ${PROJECT_BINARY_DIR}/sanitizer_env.cmake)
endif()

# TSan: every executable of ours gets tsan_absl_mutex.cc, which shows TSan the locking
# of Debian's (uninstrumented) absl::Mutex in our code.
if(REPRO_SANITIZER_MODE STREQUAL "thread")
  add_library(repro_tsan_absl_mutex OBJECT ${CMAKE_CURRENT_LIST_DIR}/tsan_absl_mutex.cc)
  # Hidden, so that only our code's calls reach it, not gRPC's (see the file).
  target_compile_options(repro_tsan_absl_mutex PRIVATE -fvisibility=hidden)
  target_link_libraries(repro_tsan_absl_mutex PUBLIC absl::synchronization ${CMAKE_DL_LIBS})

  function(repro_executables_under dir out)
    get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
    set(found)
    foreach(target IN LISTS targets)
      get_target_property(type ${target} TYPE)
      if(type STREQUAL "EXECUTABLE")
        list(APPEND found ${target})
      endif()
    endforeach()
    get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
    foreach(subdir IN LISTS subdirs)
      repro_executables_under(${subdir} more)
      list(APPEND found ${more})
    endforeach()
    set(${out} ${found} PARENT_SCOPE)
  endfunction()

  repro_executables_under(${PROJECT_SOURCE_DIR} repro_executables)
  foreach(target IN LISTS repro_executables)
    target_link_libraries(${target} PRIVATE repro_tsan_absl_mutex)
  endforeach()
endif()
