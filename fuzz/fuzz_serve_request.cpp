// Fuzz target: detr_predict --serve's request parser on arbitrary bytes as one request line — the
// bounded JSON parse, the field checks and the image decoding behind them (base64, the header check,
// OpenCV's decoders within a small pixel limit). No model: what a request can do before inference.
//
// Expected outcome for bad input: a std::exception. A crash, an abort, a sanitizer report, a hang or
// a huge allocation is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "src/predict_server.h"

namespace {

// DETR_FUZZ_VERBOSE=1 prints what each input was refused with (for replaying a corpus by hand).
void verbose(const std::exception& e) {
  if (std::getenv("DETR_FUZZ_VERBOSE")) std::fprintf(stderr, "  refused: %s\n", e.what());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  detr::ServeOptions options;
  options.max_image_pixels = 1 << 20;  // decoding stays cheap; the limit itself is what is checked
  nlohmann::json id;
  try {
    const auto r = detr::parse_serve_request(std::string(reinterpret_cast<const char*>(data), size), options, id);
    if (r.rgb.dim() != 3 || r.rgb.size(2) != 3) std::abort();  // a request that parses has an RGB image
  } catch (const std::exception& e) {
    verbose(e);
  }
  return 0;
}
