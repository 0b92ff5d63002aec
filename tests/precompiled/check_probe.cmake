# Reads the probe object's symbols (nm -C): it must define no member function of a class that
# the precompiled component instantiates, so those come from the component, compiled once.
# Implicit constructors and destructors are exempt: C++ defines them wherever they are used.
#   cmake -DNM=nm -DOBJECT=probe.o -P check_probe.cmake
execute_process(COMMAND "${NM}" -C --defined-only "${OBJECT}" OUTPUT_VARIABLE symbols RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} failed on ${OBJECT}")
endif()
set(compiled_once
    "progdiff::nn::Conv2d<float, progdiff::backend::Cpu>::"
    "progdiff::nn::ResBlock<float, progdiff::backend::Cpu>::"
    "progdiff::nn::GroupNorm<float, progdiff::backend::Cpu>::"
    "progdiff::nn::Linear<float, progdiff::backend::Cpu>::"
    "progdiff::nn::AttentionBlock<float, progdiff::backend::Cpu>::"
    "progdiff::nn::TimestepEmbedding<float, progdiff::backend::Cpu>::"
    "progdiff::nn::Downsample<float, progdiff::backend::Cpu>::"
    "progdiff::nn::Upsample<float, progdiff::backend::Cpu>::"
    "progdiff::metrics::FashionClassifier<float, progdiff::backend::Cpu>::"
    "progdiff::metrics::")
set(members "forward" "backward" "initialize" "flops" "features" "trace_sqrt_product<void>")
set(found "")
foreach(prefix IN LISTS compiled_once)
  foreach(member IN LISTS members)
    string(FIND "${symbols}" "${prefix}${member}" at)
    if(NOT at EQUAL -1)
      list(APPEND found "${prefix}${member}")
    endif()
  endforeach()
endforeach()
# The probe's own function must be there, or the symbol table was not read.
string(FIND "${symbols}" "probe_precompiled()" own)
if(own EQUAL -1)
  message(FATAL_ERROR "probe_precompiled() is not among the symbols of ${OBJECT}: nothing was read")
endif()
if(found)
  list(JOIN found "\n  " lines)
  message(FATAL_ERROR "${OBJECT} compiles what the precompiled component holds:\n  ${lines}")
endif()
message(STATUS "the probe defines none of the component's instantiations")
