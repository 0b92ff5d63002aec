# PROGDIFF_ENABLE_CUDA: enables the CUDA language for the CUDA back end and its tests.
# progdiff needs C++20 in device code too. CMake 3.25 knows no C++20 flag for nvcc (setting
# CMAKE_CUDA_STANDARD to 20 fails its compiler check), and cxx_std_20 does not reach CUDA
# sources, so -std=c++20 goes into CMAKE_CUDA_FLAGS where CMake cannot express it.
include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  message(FATAL_ERROR "PROGDIFF_ENABLE_CUDA=ON but no CUDA compiler was found: install the CUDA toolkit "
                      "(Debian package 'nvidia-cuda-toolkit', or NVIDIA's) and put nvcc on PATH, "
                      "or pass -DCMAKE_CUDA_COMPILER=/path/to/nvcc.")
endif()
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "80;90")
endif()
enable_language(CUDA)

if(DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
  if(NOT DEFINED CMAKE_CUDA_STANDARD)
    set(CMAKE_CUDA_STANDARD 20)
  endif()
  if(CMAKE_CUDA_STANDARD LESS 20)
    message(FATAL_ERROR "progdiff needs C++20 in CUDA code: CMAKE_CUDA_STANDARD is ${CMAKE_CUDA_STANDARD}")
  endif()
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
elseif(NOT CMAKE_CUDA_FLAGS MATCHES "-std=c\\+\\+(20|2a|23)")
  string(APPEND CMAKE_CUDA_FLAGS " -std=c++20")
endif()

# Host code in .cu files is compiled by the same host compiler as the .cpp files it links with,
# and must target the same CPU: Eigen's allocation scheme (EIGEN_MAX_ALIGN_BYTES) and progdiff's
# kernels follow -march, and a matrix allocated by an AVX-512 object and freed by an SSE2 one
# corrupts the heap. So the C++ flags' -m options (-march=native, ...) reach nvcc's host side too.
string(TOUPPER "${CMAKE_BUILD_TYPE}" progdiff_config)
string(REGEX MATCHALL "(^| )-m[A-Za-z0-9_.=-]+" progdiff_host_machine_flags
             "${CMAKE_CXX_FLAGS} ${CMAKE_CXX_FLAGS_${progdiff_config}}")
foreach(flag IN LISTS progdiff_host_machine_flags)
  string(STRIP "${flag}" flag)
  if(NOT CMAKE_CUDA_FLAGS MATCHES " -Xcompiler=${flag}( |$)")
    string(APPEND CMAKE_CUDA_FLAGS " -Xcompiler=${flag}")
  endif()
endforeach()
find_package(CUDAToolkit REQUIRED)
message(STATUS "progdiff CUDA: nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}")

# progdiff_cuda_all builds every target of the CUDA build and nothing else: the rest of the
# cuda preset is the release preset's code with the same flags, already built and tested there.
# Every CUDA target of the project also gets the CUDA compile options they share: OpenMP for the
# CPU half of the programs (tests compare against the CPU back end), and quiet for what nvcc's
# front end reports in code it only passes on to the host compiler: Eigen's host/device
# annotations (20012-20015), GCC's unroll pragmas in the AVX-512 kernels (1675), and the
# portable loop after an `if constexpr` AVX-512 branch that returns (128, "not reachable").
add_custom_target(progdiff_cuda_all)
function(progdiff_cuda_target name)
  add_dependencies(progdiff_cuda_all ${name})
  target_compile_options(${name} PRIVATE
    "$<$<COMPILE_LANGUAGE:CUDA>:-diag-suppress=20012,20013,20014,20015,1675,128;-Xcompiler=-fopenmp>")
endfunction()
