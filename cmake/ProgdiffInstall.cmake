# `cmake --install` rules: the headers, the exported INTERFACE target, and a package
# configuration that finds the same dependencies the build found. The library is
# header-only, so the package lives under share/ and its version file ignores the
# architecture (one install serves 32- and 64-bit consumers alike).
include(CMakePackageConfigHelpers)

set(PROGDIFF_INSTALL_CMAKEDIR "${CMAKE_INSTALL_DATADIR}/cmake/progdiff"
    CACHE STRING "Where progdiffConfig.cmake is installed, relative to the prefix")

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/progdiff" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(TARGETS progdiff EXPORT progdiffTargets)
# The precompiled component travels as source: the consumer's build compiles it with its flags.
install(DIRECTORY "${PROJECT_SOURCE_DIR}/src/precompiled/" DESTINATION "${CMAKE_INSTALL_DATADIR}/progdiff/precompiled"
        FILES_MATCHING PATTERN "*.cpp")
install(EXPORT progdiffTargets NAMESPACE progdiff:: DESTINATION "${PROGDIFF_INSTALL_CMAKEDIR}")

set(PROGDIFF_PRECOMPILED_SOURCE_DIR "${CMAKE_INSTALL_DATADIR}/progdiff/precompiled")
configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/progdiffConfig.cmake.in"
                              "${PROJECT_BINARY_DIR}/progdiffConfig.cmake"
                              INSTALL_DESTINATION "${PROGDIFF_INSTALL_CMAKEDIR}"
                              PATH_VARS PROGDIFF_PRECOMPILED_SOURCE_DIR)
# 0.x: a minor release may change the API, so only the same minor version is compatible.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/progdiffConfigVersion.cmake"
                                 COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES "${PROJECT_BINARY_DIR}/progdiffConfig.cmake" "${PROJECT_BINARY_DIR}/progdiffConfigVersion.cmake"
              "${PROJECT_SOURCE_DIR}/cmake/ProgdiffPrecompiled.cmake"
        DESTINATION "${PROGDIFF_INSTALL_CMAKEDIR}")
