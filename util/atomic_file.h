// Files written so that a full disk, a kill or a crash never leaves a half-written one: the data goes
// to "<path>.tmp", is flushed to disk, then renamed over the path. Every failure is one line naming the
// file and the system's reason ("No space left on device"), and the temp file is removed.
#pragma once
#include <filesystem>
#include <string_view>

namespace detr::util {

// Replaces `path` by `data` atomically.
void write_file_atomically(const std::filesystem::path& path, std::string_view data);

// Copies `from` over `to` atomically.
void copy_file_atomically(const std::filesystem::path& from, const std::filesystem::path& to);

// `from` as it is now, at `to`, for a file that is only ever replaced by rename (as every writer here
// does): a hard link where the file system has them (instant, no bytes copied, so a kill leaves no
// half-written copy behind), else copy_file_atomically.
void snapshot_file(const std::filesystem::path& from, const std::filesystem::path& to);

// Appends `line` (which should end with '\n') to `path`, creating it; on failure the file is cut back
// to its previous size, so it never ends in half a line.
void append_line(const std::filesystem::path& path, std::string_view line);

}  // namespace detr::util
