// Reading TensorBoard event files back (tests and tools; detr_train only writes them).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace detr {

struct TensorBoardScalar {
  std::string tag;
  int64_t step;
  double wall_time;
  float value;
};

struct TensorBoardImage {
  std::string tag;
  int64_t step = 0;
  int64_t height = 0, width = 0, colorspace = 0;
  std::string encoded;  // PNG or JPEG bytes
};

// A tensor summary (a PR curve: plugin "pr_curves", shape [6, N]), float values only.
struct TensorBoardTensor {
  std::string tag, plugin;
  int64_t step = 0;
  std::vector<int64_t> shape;
  std::vector<float> values;  // row-major
};

struct TensorBoardEvents {
  std::vector<TensorBoardScalar> scalars;
  std::vector<TensorBoardImage> images;
  std::vector<TensorBoardTensor> tensors;
};

// Reads an event file back, checking both CRCs of every record. Throws std::runtime_error naming
// the file and the record offset on a bad length/data CRC, a malformed Event, or a truncated record
// (a truncated last record, e.g. from a writer killed mid-write, says so). The first event must be
// file_version "brain.Event:2". Returns the simple_value scalars in file order (one per Value).
std::vector<TensorBoardScalar> read_tensorboard_scalars(const std::filesystem::path& file);
// The same, with the image summaries too.
TensorBoardEvents read_tensorboard_events(const std::filesystem::path& file);

}  // namespace detr
