// Scratch directories for tests that write exports, checkpoints and logs: fresh, named after the test
// and the process, and removed when the process exits (a test's checkpoints run to hundreds of MB).
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace detr::testing {

// `prefix` + `name` + pid under the system's temporary directory, empty.
inline std::filesystem::path scratch_dir(const std::string& prefix, const std::string& name) {
  struct Made {
    std::vector<std::filesystem::path> dirs;
    ~Made() {
      std::error_code ec;
      for (const auto& d : dirs) std::filesystem::remove_all(d, ec);
    }
  };
  static Made made;
  auto dir = std::filesystem::temp_directory_path() / (prefix + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  made.dirs.push_back(dir);
  return dir;
}

}  // namespace detr::testing
