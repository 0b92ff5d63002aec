# PROGDIFF_ENABLE_CUDA: enables the CUDA language. CMake 3.25 does not hand C++20 to nvcc
# from cxx_std_20, so the CUDA standard must be set explicitly (the cuda preset does).
include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  message(FATAL_ERROR "PROGDIFF_ENABLE_CUDA=ON but no CUDA compiler was found: install the CUDA toolkit "
                      "(Debian package 'nvidia-cuda-toolkit', or NVIDIA's) or put nvcc on PATH.")
endif()
if(NOT DEFINED CMAKE_CUDA_STANDARD)
  set(CMAKE_CUDA_STANDARD 20)
endif()
if(CMAKE_CUDA_STANDARD LESS 20)
  message(FATAL_ERROR "progdiff needs C++20 in CUDA code: CMAKE_CUDA_STANDARD is ${CMAKE_CUDA_STANDARD}")
endif()
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "80;90")
endif()
enable_language(CUDA)
