// What the tests share: scratch directories, whole-file reads and writes, expected one-line errors
// and child processes. Each helper is defined here once.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

namespace detr::testing {

// Scratch directories for tests that write exports, checkpoints and logs: fresh, named after the test
// and the process, and removed when the process exits (a test's checkpoints run to hundreds of MB).

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

// A whole file's bytes ("" when it cannot be read).
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Writes bytes to path, creating its folder; a failed write fails the test.
inline void write_file(const std::filesystem::path& path, const std::string& bytes) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  EXPECT_TRUE(out.good()) << "could not write " << path;
}

// The message of the std::runtime_error f throws ("" when none).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

// Expects f() to throw std::runtime_error (not another exception) whose message is one line holding
// every needle; prints it and returns it.
inline std::string expect_error(const std::function<void()>& f, const std::vector<std::string>& needles) {
  std::string msg;
  try {
    f();
    ADD_FAILURE() << "did not throw; expected an error with '" << (needles.empty() ? "" : needles.front()) << "'";
    return msg;
  } catch (const std::runtime_error& e) {
    msg = e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-runtime_error: " << e.what();
    return msg;
  }
  for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
  std::cout << "  error: " << msg << "\n";
  return msg;
}

// A shell command's exit code (-1 when it did not exit) and its stdout and stderr together.
struct CommandResult {
  int code = -1;
  std::string output;
};

inline CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (!p) {
    ADD_FAILURE() << "could not start: " << command;
    return r;
  }
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) r.output.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace detr::testing
