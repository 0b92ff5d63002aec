# Reads the probe object's symbols (nm -C): it must define no member function of a class that
# the precompiled component instantiates, so those come from the component, compiled once.
# Implicit constructors and destructors are exempt: C++ defines them wherever they are used.
#   cmake -DNM=nm -DOBJECT=probe.o [-DOWN=probe_presets] -P check_probe.cmake
# OWN names the probe's own function, which must be found (default probe_precompiled).
if(NOT OWN)
  set(OWN probe_precompiled)
endif()
execute_process(COMMAND "${NM}" -C --defined-only "${OBJECT}" OUTPUT_VARIABLE symbols RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} failed on ${OBJECT}")
endif()
# Member functions of the component's classes, and its function templates, as nm -C names them.
set(classes
    "nn::Conv2d" "nn::ResBlock" "nn::GroupNorm" "nn::Linear" "nn::AttentionBlock" "nn::TimestepEmbedding"
    "nn::Downsample" "nn::Upsample" "metrics::FashionClassifier")
set(members "forward" "backward" "initialize" "flops" "features")
set(compiled_once
    "progdiff::metrics::trace_sqrt_product<void>" "progdiff::metrics::frechet_distance<void>"
    "progdiff::metrics::frechet_distance<progdiff::metrics::FeatureStatistics>")
foreach(class IN LISTS classes)
  foreach(member IN LISTS members)
    list(APPEND compiled_once "progdiff::${class}<float, progdiff::backend::Cpu>::${member}")
  endforeach()
endforeach()
# The small presets' nets and what trains, samples and saves them (unet/small_presets.hpp).
set(compiled_once_patterns
    "progdiff::unet::UNet<[^\n]*>::(forward|backward|initialize|flops)\\("
    "progdiff::model::Progressive<[^\n]*>::(forward|backward|predict|initialize)\\("
    "progdiff::train::train_stage[12]<" "progdiff::train::copy_into_groups<" "progdiff::sample::generate<"
    "progdiff::train::(save|load)_checkpoint<")
set(found "")
foreach(name IN LISTS compiled_once)
  string(FIND "${symbols}" "${name}" at)
  if(NOT at EQUAL -1)
    list(APPEND found "${name}")
  endif()
endforeach()
foreach(pattern IN LISTS compiled_once_patterns)
  string(REGEX MATCH "${pattern}" match "${symbols}")
  if(match)
    list(APPEND found "${pattern}")
  endif()
endforeach()
# The probe's own function must be there, or the symbol table was not read.
string(FIND "${symbols}" "${OWN}(" own)
if(own EQUAL -1)
  message(FATAL_ERROR "${OWN}() is not among the symbols of ${OBJECT}: nothing was read")
endif()
if(found)
  list(JOIN found "\n  " lines)
  message(FATAL_ERROR "${OBJECT} compiles what the precompiled component holds:\n  ${lines}")
endif()
message(STATUS "the probe defines none of the component's instantiations")
