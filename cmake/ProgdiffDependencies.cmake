# Finds every dependency of the library; a missing one stops with the Debian package to install.
include(GNUInstallDirs)

macro(progdiff_require_package name debian_package)
  find_package(${name} ${ARGN} QUIET)
  if(NOT ${name}_FOUND)
    message(FATAL_ERROR "progdiff needs ${name}: install the Debian package '${debian_package}' "
                        "(apt-get install ${debian_package}), or run tools/test which installs it.")
  endif()
endmacro()

progdiff_require_package(Eigen3 libeigen3-dev 3.4 NO_MODULE)
progdiff_require_package(xtensor xtensor-dev)
progdiff_require_package(nlohmann_json nlohmann-json3-dev)
progdiff_require_package(ZLIB zlib1g-dev)
progdiff_require_package(OpenMP libomp-dev)
