// Walking protobuf's wire format without parsing into messages: how a census counts what hostile
// bytes declare (entries, values, repeated fields) before protobuf allocates for them. Header-only,
// for detr_proto's sources (they alone see protobuf's headers).
#pragma once
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <cstdint>

namespace detr::pb {

using google::protobuf::io::CodedInputStream;
using WireFormatLite = google::protobuf::internal::WireFormatLite;
using WireType = WireFormatLite::WireType;
constexpr WireType kLengthDelimited = WireFormatLite::WIRETYPE_LENGTH_DELIMITED;

inline bool is(uint32_t tag, int field, WireType type) { return tag == WireFormatLite::MakeTag(field, type); }

// Calls on_field(tag) for each field of the message that ends at the stream's current limit (each call
// reads its field); unknown fields are skipped. False when the bytes are not a message.
template <class OnField>
bool walk_fields(CodedInputStream& in, const OnField& on_field) {
  while (const uint32_t tag = in.ReadTag()) {
    if (!on_field(tag)) return false;
  }
  return in.BytesUntilLimit() == 0;  // not a tag 0, a truncated tag or a field running past the end
}

// Reads a length-delimited field's length and calls body(offset, size) with the stream limited to it.
template <class Body>
bool within_length(CodedInputStream& in, const Body& body) {
  int size = 0;
  if (!in.ReadVarintSizeAsInt(&size)) return false;
  const int offset = in.CurrentPosition();
  const CodedInputStream::Limit limit = in.PushLimit(size);
  const bool ok = body(offset, size);
  in.PopLimit(limit);
  return ok;
}

inline bool skip(CodedInputStream& in, uint32_t tag) { return WireFormatLite::SkipField(&in, tag); }

}  // namespace detr::pb
