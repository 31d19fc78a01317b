// Parsing a protobuf message from hostile bytes with explicit limits: the bytes are already in
// memory (a record whose size the caller capped against the file), protobuf reads no further than
// them, and nesting (our messages' or unknown groups') stops at kMaxNesting.
#pragma once
#include <google/protobuf/message_lite.h>

#include <string_view>

namespace detr::pb {

constexpr int kMaxNesting = 16;  // our messages nest at most 6 deep (Event > ... > TensorShapeProto.Dim)

// Parses `bytes` into `message` (cleared first). False when the bytes are not one whole message:
// truncated, a malformed varint or tag, an unmatched group, nested deeper than kMaxNesting, or more
// than 2 GiB (protobuf's own limit). Never logs, never throws.
bool parse_bounded(std::string_view bytes, google::protobuf::MessageLite& message);

}  // namespace detr::pb
