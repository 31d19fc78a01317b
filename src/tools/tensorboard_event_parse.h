// One TensorBoard Event's bytes (a TFRecord record's data) parsed by protobuf (proto/event.proto)
// into plain C++, for the event file reader (tensorboard_reader.h).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "src/tools/tensorboard_reader.h"

namespace detr {

struct ParsedEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::optional<std::string> file_version;
  std::vector<std::pair<std::string, float>> values;  // Values that carry simple_value
  std::vector<TensorBoardImage> images;               // Values that carry an image (step not set)
  std::vector<TensorBoardTensor> tensors;             // Values that carry a float tensor (step not set)
};

// Memory an Event may take once parsed: what its values, tensor dimensions and floats declare is
// counted on the wire first, and an Event over this bound is refused before protobuf allocates.
constexpr uint64_t kEventParseBytesPerByte = 8;
constexpr uint64_t kEventParseFloorBytes = uint64_t{16} << 20;

// Throws std::runtime_error "<what>" (one line, without the file: the caller adds it) when the bytes
// are not an Event (detr::pb::parse_bounded's limits), declare more than the bound above, or a tensor
// is not a float32 one whose values fit its shape's byte layout. Other summaries (histograms, audio) and Event fields
// are skipped.
ParsedEvent parse_tensorboard_event(std::string_view bytes);

}  // namespace detr
