// Base64 (RFC 4648, standard alphabet, '=' padding), as CVAT sends images to serverless functions.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace detr::util {

// nullopt when `text` is not valid base64 (whitespace and newlines are skipped; padding optional).
std::optional<std::string> base64_decode(std::string_view text);
std::string base64_encode(std::string_view bytes);

}  // namespace detr::util
