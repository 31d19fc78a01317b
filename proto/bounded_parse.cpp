#include "proto/bounded_parse.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <climits>

namespace detr::pb {

bool parse_bounded(std::string_view bytes, google::protobuf::MessageLite& message) {
  message.Clear();
  if (bytes.size() > static_cast<size_t>(INT_MAX)) return false;
  const int size = static_cast<int>(bytes.size());
  google::protobuf::io::ArrayInputStream stream(bytes.data(), size);
  google::protobuf::io::CodedInputStream input(&stream);
  input.SetTotalBytesLimit(size);  // exactly the bytes there are: the limit is never what stops a read
  input.SetRecursionLimit(kMaxNesting);
  return message.ParseFromCodedStream(&input) && input.ConsumedEntireMessage();
}

}  // namespace detr::pb
