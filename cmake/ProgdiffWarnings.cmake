# progdiff_warnings(target): the warnings the project's own programs compile with, -Wall -Wextra,
# less the false positives GCC reports inside its own AVX-512 intrinsics when Eigen's packet code
# inlines them (the _mm512_undefined_* idiom: "'__Y' is used uninitialized" and its "maybe"
# form), which would otherwise fill a clean build's output and bury real warnings.
function(progdiff_warnings target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall> $<$<COMPILE_LANGUAGE:CXX>:-Wextra>)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wno-maybe-uninitialized>)
    if(CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
      target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wno-uninitialized>)
    endif()
  endif()
endfunction()
