// A main for the fuzz targets without libFuzzer (any compiler): runs LLVMFuzzerTestOneInput once
// on every file named on the command line, or found (recursively) under a directory named there.
// ctest's fuzz_smoke.* run it on the committed corpus; it also replays a crashing input found by
// scripts/dev/fuzz.sh under a debugger or in a build without sanitizers.
//
//   fuzz_replay_torch_save fuzz/corpus/torch_save [more files or directories...]
//
// Prints one line per input (before running it, so a crash names its input) and a total; exits 1
// when no input was found (a missing corpus must not pass silently).
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  using clock = std::chrono::steady_clock;
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    const fs::path arg = argv[i];
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      std::vector<fs::path> found;
      for (const auto& e : fs::recursive_directory_iterator(arg, ec))
        if (e.is_regular_file()) found.push_back(e.path());
      if (ec) {
        std::fprintf(stderr, "%s: %s\n", arg.c_str(), ec.message().c_str());
        return 2;
      }
      std::sort(found.begin(), found.end());
      inputs.insert(inputs.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(arg, ec)) {
      inputs.push_back(arg);
    } else {
      std::fprintf(stderr, "%s: no such file or directory\n", arg.c_str());
      return 2;
    }
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "usage: %s FILE_OR_DIR... (no inputs found)\n", argc > 0 ? argv[0] : "fuzz_replay");
    return 1;
  }
  const auto start = clock::now();
  double slowest = 0;
  std::string slowest_name;
  for (const auto& path : inputs) {
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      std::fprintf(stderr, "%s: cannot read\n", path.c_str());
      return 2;
    }
    std::printf("%s (%zu bytes)\n", path.c_str(), bytes.size());
    std::fflush(stdout);
    const auto t0 = clock::now();
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    if (s >= slowest) {
      slowest = s;
      slowest_name = path.string();
    }
  }
  const double total = std::chrono::duration<double>(clock::now() - start).count();
  std::printf("ran %zu inputs in %.3f s (slowest %.3f s: %s)\n", inputs.size(), total, slowest, slowest_name.c_str());
  return 0;
}
