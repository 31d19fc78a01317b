# Every dependency comes from a package manager (Debian packages here, or a LibTorch / PyTorch
# wheel given through CMAKE_PREFIX_PATH). Nothing is fetched or vendored.

find_package(Torch REQUIRED)
# TorchConfig exports TORCH_LIBRARIES / TORCH_INCLUDE_DIRS (and TORCH_CXX_FLAGS with the ABI flag,
# which the `torch` target also carries). Wrap them so our targets see torch headers as SYSTEM.
add_library(torch_lib INTERFACE)
target_link_libraries(torch_lib INTERFACE ${TORCH_LIBRARIES})
target_include_directories(torch_lib SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})

find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs)
find_package(nlohmann_json 3.2 REQUIRED)
find_package(cxxopts REQUIRED)
# Pretrained-weight downloads. Optional: without libcurl a URL gets a one-line error saying where to
# put the file by hand (a machine with no network, such as a GPU box with only a PyPI wheel, needs none).
find_package(CURL)
set(DETR_WITH_CURL ${CURL_FOUND})
if(DETR_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
set(THREADS_PREFER_PTHREAD_FLAG ON)  # -pthread everywhere, so one precompiled header serves all targets
find_package(Threads REQUIRED)
find_package(OpenMP COMPONENTS CXX)  # LibTorch CPU builds use OpenMP; the loader limits its threads' teams

# c10d's backends (data-parallel training): their headers ship with LibTorch but compile only under
# USE_C10D_GLOO / USE_C10D_NCCL, and Gloo's own headers (gloo/*.h) are a separate package on Debian
# (libgloo-dev). Without them detr_train still builds and runs single-process.
find_path(DETR_GLOO_INCLUDE_DIR gloo/context.h HINTS ${TORCH_INCLUDE_DIRS})
find_path(DETR_C10D_INCLUDE_DIR torch/csrc/distributed/c10d/ProcessGroupGloo.hpp HINTS ${TORCH_INCLUDE_DIRS})
set(DETR_WITH_GLOO OFF)
if(DETR_GLOO_INCLUDE_DIR AND DETR_C10D_INCLUDE_DIR)
  set(DETR_WITH_GLOO ON)
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
endif()

# oneDNN (Debian's libdnnl-dev; the same library Debian's LibTorch runs its CPU convolutions on): its
# Winograd kernels for the backbone's 3x3 convolutions (models/winograd_conv.h). Optional: without it,
# or on a CPU without AVX-512, every convolution is LibTorch's own.
option(DETR_ONEDNN "Use oneDNN's Winograd convolutions on CPU when oneDNN is installed" ON)
set(DETR_WITH_ONEDNN OFF)
if(DETR_ONEDNN)
  find_package(dnnl 2.6 CONFIG QUIET)  # the 2.x C++ API (3.x replaced the operation descriptors)
  if(TARGET DNNL::dnnl AND dnnl_VERSION VERSION_LESS 3)
    set(DETR_WITH_ONEDNN ON)
  endif()
endif()
message(STATUS "detr-cpp oneDNN Winograd convolutions: ${DETR_WITH_ONEDNN}")

# tcmalloc (gperftools): LibTorch's CPU training allocates and frees tensors of tens of megabytes every
# step; glibc's malloc keeps much of that memory resident (and is slower at it). Measured: about 10-27%
# faster steps and 15-25% lower peak RSS (BENCHMARKS.md). Linked into every executable when found.
option(DETR_TCMALLOC "Link the executables against tcmalloc when it is installed" ON)
if(DETR_TCMALLOC)
  find_library(DETR_TCMALLOC_LIBRARY NAMES tcmalloc_minimal)
endif()
message(STATUS "detr-cpp allocator: ${DETR_TCMALLOC_LIBRARY}")
function(detr_link_allocator target)
  if(DETR_TCMALLOC_LIBRARY)
    # Kept even under --as-needed: nothing names it, it replaces malloc.
    target_link_libraries(${target} PRIVATE "-Wl,--push-state,--no-as-needed" ${DETR_TCMALLOC_LIBRARY}
                          "-Wl,--pop-state")
  endif()
endfunction()
