# Every dependency comes from a package manager (Debian packages here, or a LibTorch / PyTorch
# wheel given through CMAKE_PREFIX_PATH). Nothing is fetched or vendored.

# A required dependency that is missing stops configure with one line naming the Debian package
# (scripts/setup/install_deps.sh installs them all). Optional ones print one line each saying what is off
# and why (detr_optional_off).
macro(detr_require package debian_package)
  find_package(${package} ${ARGN} QUIET)
  if(NOT ${package}_FOUND)
    message(FATAL_ERROR "detr-cpp: required dependency ${package} not found: install the Debian package "
                        "${debian_package} (scripts/setup/install_deps.sh installs every dependency), or point "
                        "CMAKE_PREFIX_PATH at its installation")
  endif()
endmacro()
function(detr_optional_off feature why)
  message(STATUS "detr-cpp: ${feature} OFF: ${why}")
endfunction()

detr_require(Torch "libtorch-dev (or a LibTorch / PyTorch wheel via CMAKE_PREFIX_PATH)")
# TorchConfig exports TORCH_LIBRARIES / TORCH_INCLUDE_DIRS (and TORCH_CXX_FLAGS with the ABI flag,
# which the `torch` target also carries). Wrap them so our targets see torch headers as SYSTEM.
add_library(torch_lib INTERFACE)
target_link_libraries(torch_lib INTERFACE ${TORCH_LIBRARIES})
target_include_directories(torch_lib SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})

detr_require(OpenCV libopencv-dev COMPONENTS core imgproc imgcodecs)
detr_require(nlohmann_json nlohmann-json3-dev 3.2)
detr_require(cxxopts libcxxopts-dev)
detr_require(pugixml libpugixml-dev)  # annotation XML (VOC, LabelMe, CVAT)
# Protocol Buffers: the messages of TensorBoard event files and TFRecord tf.Examples (proto/), generated
# at build time by protoc. FindProtobuf (CMake's module): protobuf::libprotobuf and protobuf_generate.
detr_require(Protobuf "libprotobuf-dev and protobuf-compiler")
if(NOT TARGET protobuf::protoc)
  message(FATAL_ERROR "detr-cpp: required dependency protoc (the protobuf compiler) not found: install the "
                      "Debian package protobuf-compiler (scripts/setup/install_deps.sh installs every dependency)")
endif()
# Pretrained-weight downloads. Optional: without libcurl a URL gets a one-line error saying where to
# put the file by hand (a machine with no network, such as a GPU box with only a PyPI wheel, needs none).
find_package(CURL QUIET)
set(DETR_WITH_CURL ${CURL_FOUND})
if(NOT CURL_FOUND)
  detr_optional_off("weight downloads" "libcurl not found (libcurl4-openssl-dev); URLs give a one-line error")
endif()
if(DETR_BUILD_TESTS)
  detr_require(GTest "libgtest-dev (or configure with -DDETR_BUILD_TESTS=OFF)")
endif()
set(THREADS_PREFER_PTHREAD_FLAG ON)  # -pthread everywhere, so one precompiled header serves all targets
find_package(Threads REQUIRED)
find_package(OpenMP COMPONENTS CXX QUIET)  # LibTorch CPU builds use OpenMP; the loader limits its threads' teams
if(NOT OpenMP_CXX_FOUND)
  detr_optional_off("OpenMP thread limits in the data loader" "the compiler has no OpenMP")
endif()

# c10d's backends (data-parallel training): their headers ship with LibTorch but compile only under
# USE_C10D_GLOO / USE_C10D_NCCL, and Gloo's own headers (gloo/*.h) are a separate package on Debian
# (libgloo-dev). Without them detr_train still builds and runs single-process.
# Every optional dependency can be left out as if absent with -DCMAKE_DISABLE_FIND_PACKAGE_<name>=ON
# (CURL, Gloo, dnnl, tcmalloc), the way the optional-dependency builds are checked.
if(NOT CMAKE_DISABLE_FIND_PACKAGE_Gloo)
  find_path(DETR_GLOO_INCLUDE_DIR gloo/context.h HINTS ${TORCH_INCLUDE_DIRS})
else()
  unset(DETR_GLOO_INCLUDE_DIR CACHE)
endif()
find_path(DETR_C10D_INCLUDE_DIR torch/csrc/distributed/c10d/ProcessGroupGloo.hpp HINTS ${TORCH_INCLUDE_DIRS})
set(DETR_WITH_GLOO OFF)
if(DETR_GLOO_INCLUDE_DIR AND DETR_C10D_INCLUDE_DIR)
  set(DETR_WITH_GLOO ON)
elseif(CMAKE_DISABLE_FIND_PACKAGE_Gloo)
  detr_optional_off("Gloo data-parallel backend" "left out (CMAKE_DISABLE_FIND_PACKAGE_Gloo)")
elseif(NOT DETR_C10D_INCLUDE_DIR)
  detr_optional_off("Gloo data-parallel backend" "this LibTorch has no c10d headers")
else()
  detr_optional_off("Gloo data-parallel backend" "gloo/context.h not found (libgloo-dev)")
endif()
# NCCL: a CUDA LibTorch (torch_cuda) and nccl.h (a PyTorch wheel's nvidia-nccl package, or the system's).
# DETR_NCCL=OFF leaves NCCL out (Gloo then serves CUDA jobs too, more slowly).
option(DETR_NCCL "Use c10d's NCCL backend when the LibTorch has CUDA and nccl.h is found" ON)
set(DETR_WITH_NCCL OFF)
if(DETR_NCCL AND (TARGET torch_cuda OR TORCH_CUDA_LIBRARIES))
  find_path(DETR_NCCL_INCLUDE_DIR nccl.h HINTS ${TORCH_INCLUDE_DIRS} ENV NCCL_INCLUDE_DIR
            PATHS ${CUDAToolkit_INCLUDE_DIRS})
  if(DETR_NCCL_INCLUDE_DIR AND DETR_C10D_INCLUDE_DIR)
    set(DETR_WITH_NCCL ON)
  endif()
endif()
message(STATUS "detr-cpp distributed backends: gloo=${DETR_WITH_GLOO} nccl=${DETR_WITH_NCCL}")
# A CUDA LibTorch: its caching allocator's statistics (peak GPU memory in detr_bench).
set(DETR_WITH_CUDA OFF)
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
  set(DETR_WITH_CUDA ON)
  # A CUDA LibTorch's libtorch_cuda.so needs cuDNN. Debian's nvidia-cudnn is an installer that
  # downloads it; a machine without network declines that (scripts/setup/install_deps.sh, DETR_CUDNN=skip)
  # and has no libcudnn.so. Then the executables are linked without checking libtorch_cuda.so's own
  # cuDNN references (the linker's --allow-shlib-undefined): they still load libcudnn.so.9 by name at
  # run time, wherever cuDNN is installed, and the dynamic loader names it if it is not.
  find_library(DETR_CUDNN_LIBRARY NAMES cudnn libcudnn.so.9 HINTS ${CUDAToolkit_LIBRARY_DIR})
  if(NOT DETR_CUDNN_LIBRARY)
    message(STATUS "detr-cpp: cuDNN not installed: linking without it; the programs run where cuDNN 9 is "
                   "installed (nvidia-cudnn, or the PyTorch wheel's nvidia-cudnn package)")
    target_link_options(torch_lib INTERFACE "LINKER:--allow-shlib-undefined")
  endif()
endif()
message(STATUS "detr-cpp CUDA: ${DETR_WITH_CUDA}")

# oneDNN's CMake config calls find_package(OpenCL REQUIRED) (and TBB) when oneDNN was built for
# them, which a QUIET find_package cannot catch: probe what the config file requires first, so that a
# missing optional dependency switches the feature off instead of failing configure.
function(detr_find_onednn)
  if(CMAKE_DISABLE_FIND_PACKAGE_dnnl)
    detr_optional_off("oneDNN Winograd convolutions" "left out (CMAKE_DISABLE_FIND_PACKAGE_dnnl)")
    return()
  endif()
  find_path(DETR_DNNL_CONFIG_DIR dnnl-config.cmake
            PATH_SUFFIXES cmake/dnnl lib/cmake/dnnl lib/${CMAKE_LIBRARY_ARCHITECTURE}/cmake/dnnl)
  if(NOT DETR_DNNL_CONFIG_DIR)
    detr_optional_off("oneDNN Winograd convolutions" "oneDNN not found (libdnnl-dev)")
    return()
  endif()
  file(STRINGS "${DETR_DNNL_CONFIG_DIR}/dnnl-config.cmake" runtimes REGEX "set\\(DNNL_(GPU|CPU|CPU_THREADING)_RUNTIME")
  if(runtimes MATCHES "DNNL_GPU_RUNTIME \"OCL\"")
    find_package(OpenCL QUIET)
    if(NOT OpenCL_FOUND)
      detr_optional_off("oneDNN Winograd convolutions"
                        "oneDNN's CMake config requires OpenCL, not found (ocl-icd-opencl-dev)")
      return()
    endif()
  endif()
  if(runtimes MATCHES "DNNL_CPU(_THREADING)?_RUNTIME \"TBB\"")
    find_package(TBB QUIET COMPONENTS tbb)
    if(NOT TBB_FOUND)
      detr_optional_off("oneDNN Winograd convolutions" "oneDNN's CMake config requires TBB, not found (libtbb-dev)")
      return()
    endif()
  endif()
  find_package(dnnl CONFIG QUIET HINTS "${DETR_DNNL_CONFIG_DIR}")
  if(NOT TARGET DNNL::dnnl)
    detr_optional_off("oneDNN Winograd convolutions" "oneDNN's CMake config in ${DETR_DNNL_CONFIG_DIR} failed")
  elseif(dnnl_VERSION VERSION_LESS 2.6 OR NOT dnnl_VERSION VERSION_LESS 3)
    detr_optional_off("oneDNN Winograd convolutions"
                      "oneDNN ${dnnl_VERSION} found; the Winograd path is written against the 2.6-2.x API")
  else()
    set(DETR_WITH_ONEDNN ON PARENT_SCOPE)
  endif()
endfunction()

# oneDNN (Debian's libdnnl-dev; the same library Debian's LibTorch runs its CPU convolutions on): its
# Winograd kernels for the backbone's 3x3 convolutions (models/winograd_conv.h). Optional: without it,
# or on a CPU without AVX-512, every convolution is LibTorch's own.
option(DETR_ONEDNN "Use oneDNN's Winograd convolutions on CPU when oneDNN is installed" ON)
set(DETR_WITH_ONEDNN OFF)
if(DETR_ONEDNN)
  detr_find_onednn()
endif()
message(STATUS "detr-cpp oneDNN Winograd convolutions: ${DETR_WITH_ONEDNN}")

# tcmalloc (gperftools): LibTorch's CPU training allocates and frees tensors of tens of megabytes every
# step; glibc's malloc keeps much of that memory resident (and is slower at it). Measured: about 10-27%
# faster steps and 15-25% lower peak RSS (BENCHMARKS.md). Linked into every executable when found.
option(DETR_TCMALLOC "Link the executables against tcmalloc when it is installed" ON)
if(DETR_TCMALLOC AND NOT CMAKE_DISABLE_FIND_PACKAGE_tcmalloc)
  find_library(DETR_TCMALLOC_LIBRARY NAMES tcmalloc_minimal)
else()
  unset(DETR_TCMALLOC_LIBRARY CACHE)
endif()
if(NOT DETR_TCMALLOC_LIBRARY)
  detr_optional_off("tcmalloc" "libtcmalloc_minimal not found (libgoogle-perftools-dev) or left out; glibc's malloc is used")
endif()
message(STATUS "detr-cpp allocator: ${DETR_TCMALLOC_LIBRARY}")
function(detr_link_allocator target)
  if(DETR_TCMALLOC_LIBRARY)
    # Kept even under --as-needed: nothing names it, it replaces malloc.
    target_link_libraries(${target} PRIVATE "-Wl,--push-state,--no-as-needed" ${DETR_TCMALLOC_LIBRARY}
                          "-Wl,--pop-state")
  endif()
endfunction()
