# lab_fixtures.cmake — wires the real mail lab (tests/lab/lab.sh) into CTest.
#
#   include(${CMAKE_SOURCE_DIR}/tests/lab/lab_fixtures.cmake)
#   mailshard_add_lab_fixture()                       # tests lab_start / lab_stop (fixture "lab")
#   mailshard_add_integration_test(lab_is_real_test   # a gtest binary that needs the lab
#       ${CMAKE_SOURCE_DIR}/tests/integration/lab_is_real_test.cc)
#
# `ctest -L integration` then starts one lab before the first integration test, runs them one at
# a time (they share it) and stops it at the end. Call mailshard_add_integration_test() after
# the `mailshard` target exists, so the tests get MAILSHARD_BIN.
# Also builds the test-support library `mailshard_test_support` (tests/support/lab.{h,cc}).

include_guard(GLOBAL)

set(MAILSHARD_LAB_PORT_BASE 10000 CACHE STRING
    "Base of the lab's 127.0.0.1 ports (slapd base+389, nginx base+143, storeN base+N*1000+143 ...)")
set(MAILSHARD_LAB_DIR "${CMAKE_BINARY_DIR}/lab" CACHE PATH "Where ctest's lab lives")
set(MAILSHARD_LAB_TIMEOUT 600 CACHE STRING "CTest TIMEOUT (s) of each integration test")

set(_mailshard_lab_scripts "${CMAKE_CURRENT_LIST_DIR}")
get_filename_component(_mailshard_repo_root "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

find_package(GTest REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(Threads REQUIRED)

if(NOT TARGET mailshard_test_support)
  add_library(mailshard_test_support STATIC "${_mailshard_repo_root}/tests/support/lab.cc")
  # Includes are rooted at the repository: #include "tests/support/lab.h".
  target_include_directories(mailshard_test_support PUBLIC "${_mailshard_repo_root}")
  target_compile_features(mailshard_test_support PUBLIC cxx_std_20)
  target_link_libraries(mailshard_test_support
    PUBLIC GTest::gtest nlohmann_json::nlohmann_json Threads::Threads)
endif()

function(mailshard_add_lab_fixture)
  add_test(NAME lab_start COMMAND "${_mailshard_lab_scripts}/lab.sh" restart "${MAILSHARD_LAB_DIR}")
  add_test(NAME lab_stop COMMAND "${_mailshard_lab_scripts}/lab.sh" stop "${MAILSHARD_LAB_DIR}")
  set_tests_properties(lab_start PROPERTIES
    FIXTURES_SETUP lab
    ENVIRONMENT "LAB_PORT_BASE=${MAILSHARD_LAB_PORT_BASE};MAILSHARD_BIN=$<TARGET_FILE:mailshard>"
    LABELS "integration;lab"
    TIMEOUT 120)
  set_tests_properties(lab_stop PROPERTIES
    FIXTURES_CLEANUP lab
    LABELS "integration;lab"
    TIMEOUT 120)
endfunction()

# mailshard_add_integration_test(NAME SOURCES...)
function(mailshard_add_integration_test name)
  if(NOT ARGN)
    message(FATAL_ERROR "mailshard_add_integration_test(${name}): no sources")
  endif()
  add_executable(${name} ${ARGN})
  set_property(GLOBAL APPEND PROPERTY MAILSHARD_INTEGRATION_TESTS ${name})
  target_link_libraries(${name} PRIVATE mailshard_test_support GTest::gmock GTest::gtest_main)
  add_test(NAME ${name} COMMAND ${name})
  set(_env "MAILSHARD_LAB_DIR=${MAILSHARD_LAB_DIR}")
  if(TARGET mailshard)
    list(APPEND _env "MAILSHARD_BIN=$<TARGET_FILE:mailshard>")
  endif()
  set_tests_properties(${name} PROPERTIES
    FIXTURES_REQUIRED lab
    RESOURCE_LOCK lab
    ENVIRONMENT "${_env}"
    LABELS integration
    TIMEOUT ${MAILSHARD_LAB_TIMEOUT})
endfunction()
