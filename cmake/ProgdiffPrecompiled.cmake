# progdiff::precompiled: the optional compiled component. It instantiates the common templates
# (float on the CPU back end) once, from the sources in `source_dir`, and gives the programs that
# link it PROGDIFF_PRECOMPILED=1, under which the headers declare those instantiations extern
# (include/progdiff/core/precompiled.hpp). Built with the consumer's own compiler and flags, so
# a sanitized or -march=native build gets a component built the same way. Used by the build
# tree and by the installed package alike.
function(progdiff_add_precompiled source_dir)
  if(TARGET progdiff_precompiled)
    return()
  endif()
  file(GLOB sources CONFIGURE_DEPENDS "${source_dir}/*.cpp")
  if(NOT sources)
    message(FATAL_ERROR "progdiff::precompiled: no sources in ${source_dir}")
  endif()
  # Left out of `all`: built when a target links it.
  add_library(progdiff_precompiled STATIC EXCLUDE_FROM_ALL ${sources})
  add_library(progdiff::precompiled ALIAS progdiff_precompiled)
  target_link_libraries(progdiff_precompiled PUBLIC progdiff::progdiff)
  target_compile_definitions(progdiff_precompiled PUBLIC PROGDIFF_PRECOMPILED=1)
endfunction()
