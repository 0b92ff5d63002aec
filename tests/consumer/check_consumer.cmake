# Runs one step of the consumer check (cmake -P, MODE = install | find_package | add_subdirectory):
#   install           configure progdiff alone (no tests) and `cmake --install` it into WORK_DIR/prefix
#   find_package      build tests/consumer against that prefix and run it
#   add_subdirectory  build tests/consumer with progdiff's source tree as a subdirectory and run it
foreach(var MODE PROGDIFF_SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER BUILD_TYPE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()

set(prefix "${WORK_DIR}/prefix")
set(common_args -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")

function(run_step what)
  message(STATUS "consumer check: ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer check (${MODE}): '${what}' failed with ${rc}")
  endif()
endfunction()

if(MODE STREQUAL "install")
  set(build "${WORK_DIR}/progdiff-build")
  file(REMOVE_RECURSE "${build}" "${prefix}")
  run_step("configure progdiff for installation"
           ${CMAKE_COMMAND} -S "${PROGDIFF_SOURCE_DIR}" -B "${build}" ${common_args}
           -DPROGDIFF_BUILD_TESTS=OFF -DPROGDIFF_BUILD_EXAMPLES=OFF -DPROGDIFF_BUILD_BENCHMARKS=OFF
           -DPROGDIFF_HEADER_CHECK=OFF)
  run_step("install progdiff into ${prefix}" ${CMAKE_COMMAND} --install "${build}" --prefix "${prefix}")
  foreach(file share/cmake/progdiff/progdiffConfig.cmake share/cmake/progdiff/progdiffConfigVersion.cmake
               share/cmake/progdiff/progdiffTargets.cmake include/progdiff/core/tensor.hpp)
    if(NOT EXISTS "${prefix}/${file}")
      message(FATAL_ERROR "consumer check (install): ${prefix}/${file} was not installed")
    endif()
  endforeach()
elseif(MODE STREQUAL "find_package" OR MODE STREQUAL "add_subdirectory")
  set(build "${WORK_DIR}/consumer-${MODE}")
  file(REMOVE_RECURSE "${build}")
  if(MODE STREQUAL "find_package")
    # Only the scratch prefix may satisfy find_package: no package registry, no system copy.
    set(mode_args "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
                  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF "-DPROGDIFF_EXPECTED_PREFIX=${prefix}")
  else()
    set(mode_args "-DPROGDIFF_SOURCE_DIR=${PROGDIFF_SOURCE_DIR}")
  endif()
  run_step("configure the consumer (${MODE})"
           ${CMAKE_COMMAND} -S "${PROGDIFF_SOURCE_DIR}/tests/consumer" -B "${build}" ${common_args}
           -DPROGDIFF_CONSUMER_MODE=${MODE} ${mode_args})
  run_step("build the consumer (${MODE})" ${CMAKE_COMMAND} --build "${build}")
  run_step("run the consumer (${MODE})" "${build}/progdiff_consumer")
  if(MODE STREQUAL "find_package")
    run_step("run the consumer linked to progdiff::precompiled" "${build}/progdiff_consumer_precompiled")
  endif()
else()
  message(FATAL_ERROR "check_consumer.cmake: unknown MODE '${MODE}'")
endif()
