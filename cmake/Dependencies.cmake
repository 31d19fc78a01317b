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
find_package(CURL REQUIRED)  # pretrained-weight downloads
if(DETR_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
set(THREADS_PREFER_PTHREAD_FLAG ON)  # -pthread everywhere, so one precompiled header serves all targets
find_package(Threads REQUIRED)
find_package(OpenMP COMPONENTS CXX)  # LibTorch CPU builds use OpenMP; the loader limits its threads' teams
