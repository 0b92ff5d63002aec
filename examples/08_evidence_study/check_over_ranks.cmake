# The study over MPI ranks computes what the serial study computes: a tiny study of three runs
# (unified, copies, tdc-magnitude; seed 0), once by the serial program and once by its MPI build
# on 2 ranks, from empty directories, every run with the same thread count. Each run's numbers
# must be equal (the runs are the same deterministic processes), and so must the shared
# classifier, which over ranks the first run trains alone while the other rank waits.
# cmake -DMPIEXEC=<mpirun and flags, |-separated> -DSERIAL=<study> -DOVER_RANKS=<study_mpi> -DWORK=<dir> -P check_over_ranks.cmake
cmake_minimum_required(VERSION 3.25)
string(REPLACE "|" ";" MPIEXEC "${MPIEXEC}")
set(arms unified copies tdc-magnitude)
list(JOIN arms "," arm_list)
set(study_args --tiny --seeds 1 --arms ${arm_list})

file(REMOVE_RECURSE "${WORK}")
function(run_study name)
  execute_process(COMMAND ${ARGN} ${study_args} --out "${WORK}/${name}" RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE out)
  message(STATUS "${name} study: exit ${rc}\n${out}")
  if(rc EQUAL 77)
    set(skipped ON PARENT_SCOPE)
    return()
  endif()
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the ${name} study failed (exit ${rc})")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

run_study(serial "${SERIAL}")
if(skipped)
  message(STATUS "skipped: the data set is not installed")  # the test's SKIP_REGULAR_EXPRESSION
  return()
endif()
run_study(ranks ${MPIEXEC} "${OVER_RANKS}")
foreach(rank 0 1)
  if(NOT out MATCHES "\\[rank ${rank}\\] == ")
    message(FATAL_ERROR "rank ${rank} ran no run of the study")
  endif()
endforeach()

file(SHA256 "${WORK}/serial/fashion_classifier.safetensors" serial_classifier)
file(SHA256 "${WORK}/ranks/fashion_classifier.safetensors" ranks_classifier)
if(NOT serial_classifier STREQUAL ranks_classifier)
  message(FATAL_ERROR "the classifier trained over ranks differs from the serial one")
endif()
foreach(arm IN LISTS arms)
  file(READ "${WORK}/serial/${arm}/seed0/result.json" serial)
  file(READ "${WORK}/ranks/${arm}/seed0/result.json" ranks)
  foreach(key frechet test_loss_mean training_flops sampling_flops_per_image parameters)
    string(JSON a GET "${serial}" ${key})
    string(JSON b GET "${ranks}" ${key})
    if(NOT a STREQUAL b)
      message(FATAL_ERROR "${arm}: ${key} is ${a} in the serial study and ${b} over ranks")
    endif()
    message(STATUS "${arm}: ${key} ${a} in both")
  endforeach()
endforeach()
