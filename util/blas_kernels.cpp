#include "util/blas_kernels.h"

#include <dlfcn.h>

#include <cstdlib>

namespace detr::util {

namespace {

template <typename F>
F openblas_function(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

const char* blas_coretype_for_this_cpu() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return nullptr;
}

std::string blas_core_in_use() {
  auto* core_name = openblas_function<char* (*)()>("openblas_get_corename");
  const char* name = core_name ? core_name() : nullptr;
  return name ? name : "";
}

bool blas_kernels_switchable() {
  return openblas_function<void (*)()>("gotoblas_dynamic_init") &&
         openblas_function<void (*)()>("gotoblas_dynamic_quit") && !blas_core_in_use().empty();
}

std::string select_blas_kernels() {
  const char* want = blas_coretype_for_this_cpu();
  if (!want || std::getenv("OPENBLAS_CORETYPE") || blas_core_in_use() != "Prescott") return "";
  // A dynamic-architecture OpenBLAS's own entry points: forget the kernels, choose again from the environment.
  auto* quit = openblas_function<void (*)()>("gotoblas_dynamic_quit");
  auto* init = openblas_function<void (*)()>("gotoblas_dynamic_init");
  if (!quit || !init || setenv("OPENBLAS_CORETYPE", want, 0) != 0) return "";
  quit();
  init();
  return blas_core_in_use();
}

}  // namespace detr::util
