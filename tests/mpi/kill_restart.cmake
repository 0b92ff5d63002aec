# A killed rank stops the job, and a restart resumes from the last checkpoint to the weights of
# an uninterrupted run (bit for bit: the same rank count). Also: an exception on one rank stops
# the job with that rank's message, and a rank that hangs alive is caught by the others' timeout.
# cmake -DMPIEXEC=<mpirun and its flags, |-separated> -DPROGRAM=<mpi_kill_job> -DWORK=<dir> -P kill_restart.cmake
cmake_minimum_required(VERSION 3.25)
string(REPLACE "|" ";" MPIEXEC "${MPIEXEC}")

function(run_job dir mode)
  execute_process(COMMAND ${MPIEXEC} ${PROGRAM} ${dir} ${mode} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE out TIMEOUT 120)
  message(STATUS "mpi_kill_job ${mode} in ${dir}: exit ${rc}\n${out}")
  set(rc "${rc}" PARENT_SCOPE)
  set(out "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/uninterrupted" "${WORK}/killed" "${WORK}/thrown")

run_job("${WORK}/uninterrupted" run)
if(NOT rc EQUAL 0 OR NOT out MATCHES "resumed from step 0,")
  message(FATAL_ERROR "the uninterrupted run failed")
endif()

run_job("${WORK}/killed" kill)
if(rc EQUAL 0)
  message(FATAL_ERROR "the job went on after rank 1 was killed")
endif()
if(NOT out MATCHES "rank 1 .*signal 9")
  message(FATAL_ERROR "the job stopped without naming the killed rank and its signal")
endif()
if(EXISTS "${WORK}/killed/weights.bin" OR NOT EXISTS "${WORK}/killed/checkpoint.safetensors")
  message(FATAL_ERROR "the killed job finished, or left no checkpoint of step 2")
endif()

run_job("${WORK}/killed" run)
if(NOT rc EQUAL 0 OR NOT out MATCHES "resumed from step 2,")
  message(FATAL_ERROR "the restart did not resume from the checkpoint of step 2")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files "${WORK}/uninterrupted/weights.bin"
                        "${WORK}/killed/weights.bin" RESULT_VARIABLE differ)
if(NOT differ EQUAL 0)
  message(FATAL_ERROR "the restarted run ended with other weights than the uninterrupted one")
endif()

run_job("${WORK}/thrown" throw)
if(rc EQUAL 0 OR NOT out MATCHES "rank 1 of 2 stops the job: an injected failure after step 3")
  message(FATAL_ERROR "an exception on rank 1 did not stop the job with its message")
endif()
file(MAKE_DIRECTORY "${WORK}/hung")
string(TIMESTAMP before "%s")
run_job("${WORK}/hung" hang)
string(TIMESTAMP after "%s")
math(EXPR seconds "${after} - ${before}")
if(rc EQUAL 0 OR NOT out MATCHES "rank ([01]) of 2 stops the job: MPI_Allreduce on rank ([01]) of 2: not every rank took part")
  message(FATAL_ERROR "a hung rank 1 did not stop the job through a timeout")
endif()
if(seconds GREATER 60)
  message(FATAL_ERROR "the job with a hung rank took ${seconds} s to stop; the timeout is 3 s")
endif()
message(STATUS "killed rank: the job stopped; the restart matched the uninterrupted run bit for bit")
