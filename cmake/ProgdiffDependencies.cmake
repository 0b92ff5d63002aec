# Finds every dependency; a missing one stops the configuration with the Debian package
# that provides it, so a fresh machine needs one apt-get line, which tools/test runs.

macro(progdiff_require_package name debian_package)
  find_package(${name} ${ARGN} QUIET)
  if(NOT ${name}_FOUND)
    message(FATAL_ERROR "progdiff needs ${name}: install the Debian package '${debian_package}' "
                        "(apt-get install ${debian_package}), or run tools/test, which installs it.")
  endif()
endmacro()

# The library itself (progdiffConfig.cmake finds the same set for an installed copy).
progdiff_require_package(Eigen3 libeigen3-dev 3.4 NO_MODULE)
progdiff_require_package(xtensor xtensor-dev)
progdiff_require_package(nlohmann_json nlohmann-json3-dev)
progdiff_require_package(ZLIB zlib1g-dev)
progdiff_require_package(PNG libpng-dev)
progdiff_require_package(OpenMP libomp-dev COMPONENTS CXX)

# Development only.
if(PROGDIFF_BUILD_TESTS)
  progdiff_require_package(doctest doctest-dev)
endif()
