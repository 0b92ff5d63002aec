# How the project's programs run under MPI in its tests (tests/mpi, the evidence study's MPI
# build): mpirun with 2 ranks, as root in CI (--allow-run-as-root) and on fewer cores than ranks
# (--oversubscribe), one OpenMP thread per rank. Under AddressSanitizer, leak detection is off:
# OpenMPI keeps allocations until exit by design; the single-copy shared-memory path is off too,
# as containers often forbid the ptrace it needs.
#
# progdiff_mpi_settings() sets, in the caller's scope: PROGDIFF_MPIRUN (the command words before
# the program), PROGDIFF_MPI_ENVIRONMENT (a test's ENVIRONMENT) and PROGDIFF_MPI_TIMEOUT (seconds,
# scaled for sanitized builds). progdiff_mpi_target_settings(TARGET) gives a target the project's
# MPI test settings: MPI, the precompiled component, -march=native, the test compile options and
# warnings.
macro(progdiff_mpi_settings)
  set(PROGDIFF_MPIRUN ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 --allow-run-as-root --oversubscribe
                      ${MPIEXEC_PREFLAGS})
  set(PROGDIFF_MPI_ENVIRONMENT
      OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE OMPI_MCA_btl_vader_single_copy_mechanism=none
      ASAN_OPTIONS=detect_leaks=0:detect_stack_use_after_return=1:strict_string_checks=1)
  math(EXPR PROGDIFF_MPI_TIMEOUT "60 * ${PROGDIFF_TEST_TIMEOUT_SCALE}")
endmacro()

function(progdiff_mpi_target_settings target)
  target_link_libraries(${target} PRIVATE progdiff::precompiled MPI::MPI_CXX)
  target_compile_options(${target} PRIVATE -march=native ${PROGDIFF_TEST_COMPILE_OPTIONS})
  progdiff_warnings(${target})
endfunction()
