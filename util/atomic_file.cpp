#include "util/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace detr::util {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const fs::path& path, const char* what, int err) {
  throw std::runtime_error(path.string() + ": cannot " + what + ": " + std::strerror(err));
}

// Writes all of data to fd; returns 0 or the errno of the failure.
int write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : EIO;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return 0;
}

}  // namespace

void write_file_atomically(const fs::path& path, std::string_view data) {
  const fs::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(tmp, "create", errno);
  int err = write_all(fd, data);
  if (!err && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && !err) err = errno;
  if (!err && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err) {
    ::unlink(tmp.c_str());
    fail(path, "write", err);
  }
}

void copy_file_atomically(const fs::path& from, const fs::path& to) {
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) fail(from, "open", errno);
  const fs::path tmp = to.string() + ".tmp";
  const int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    const int err = errno;
    ::close(in);
    fail(tmp, "create", err);
  }
  std::string buf(1 << 20, '\0');  // streamed: a checkpoint is never held in memory whole
  int err = 0, read_err = 0;
  for (;;) {
    const ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) read_err = errno;
    if (n <= 0 || (err = write_all(out, std::string_view(buf.data(), static_cast<size_t>(n)))) != 0) break;
  }
  ::close(in);
  if (!err && !read_err && ::fsync(out) != 0) err = errno;
  if (::close(out) != 0 && !err) err = errno;
  if (!err && !read_err && ::rename(tmp.c_str(), to.c_str()) != 0) err = errno;
  if (err || read_err) {
    ::unlink(tmp.c_str());
    if (read_err) fail(from, "read", read_err);
    fail(to, "write", err);
  }
}

void snapshot_file(const fs::path& from, const fs::path& to) {
  const fs::path tmp = to.string() + ".tmp";
  ::unlink(tmp.c_str());  // a leftover of an earlier run
  if (::link(from.c_str(), tmp.c_str()) == 0) {
    if (::rename(tmp.c_str(), to.c_str()) == 0) {
      ::unlink(tmp.c_str());  // still there when `to` already was this file (rename then does nothing)
      return;
    }
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(to, "write", err);
  }
  copy_file_atomically(from, to);  // no hard links here (EPERM, EXDEV, ENOTSUP...)
}

void append_line(const fs::path& path, std::string_view line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, "open for appending", errno);
  struct stat st {};
  const off_t before = ::fstat(fd, &st) == 0 ? st.st_size : -1;
  int err = write_all(fd, line);
  if (err && before >= 0 && ::ftruncate(fd, before) != 0) {
    // The half line stays; the error below still names the file and the reason.
  }
  if (::close(fd) != 0 && !err) err = errno;
  if (err) fail(path, "append to", err);
}

}  // namespace detr::util
