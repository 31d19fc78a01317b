// detr_predict --serve: one model stays resident and answers requests, one JSON line each way, until
// its input ends — what the CVAT nuclio function starts once per worker instead of a process (and a
// checkpoint load) per image.
//
//   request:  {"id": 7, "image": "<base64 of an encoded image>", "threshold": 0.5, "topk": 100}
//             ("path": "/some/file.jpg" instead of "image"; id, threshold and topk optional; for
//             segmentation models "cvat_masks": true and "polygons": true add CVAT's forms of each mask)
//   answer:   {"id": 7, "width": 640, "height": 480,
//              "detections": [{"category_id": 1, "category_name": "car", "score": 0.93, "bbox": [x, y, w, h],
//                              "segmentation": {"size": [h, w], "counts": "<COCO RLE>"},   (masks)
//                              "cvat_mask": [0, 1, ..., left, top, right, bottom],       (cvat_masks)
//                              "polygon": [x1, y1, x2, y2, ...]}]}                        (polygons)
//   or        {"id": 7, "error": "<one line>"}: a bad request never ends the server; "internal": true
//             marks a failure of the server's own (inference) on a request that was well formed.
//
// Answers come in the order of the requests. Requests that arrive together (read while the model
// was busy) are answered by one forward per fed size, up to max_batch images: images of one size
// are not padded, so an answer does not depend on its neighbours beyond float32 rounding.
#pragma once
#include <cstdint>
#include <istream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "datasets/image_header.h"
#include "src/predict.h"

namespace detr {

struct ServeOptions {
  float threshold = 0.5f;  // defaults for requests that give none
  int64_t topk = 100;
  int64_t max_image_pixels = datasets::kDefaultMaxImagePixels;
  size_t max_request_bytes = size_t{256} << 20;  // a longer line is answered with an error and skipped
  int64_t max_batch = 1;  // images per forward; while the model runs, at most this many lines (and
                          // max_request_bytes) are read ahead
};

// One request, checked, its image decoded (within max_image_pixels).
struct ServeRequest {
  nlohmann::json id;  // echoed; null when absent
  torch::Tensor rgb;  // [H, W, 3] uint8
  float threshold = 0.5f;
  int64_t topk = 100;
  bool cvat_masks = false;  // also each mask as CVAT's serverless functions return it
  bool polygons = false;    // also each mask's outline as a polygon (CVAT before mask shapes)
};

// Parses one request line. A bad one throws with one line (std::invalid_argument for the request's
// form, std::runtime_error for its image); `id` holds the request's id once it was read, for the
// error answer. Nesting is bounded (64 levels) while parsing.
ServeRequest parse_serve_request(const std::string& line, const ServeOptions& options, nlohmann::json& id);

// Answers every line of `in` on `out` (flushed after each batch); returns the number of requests
// answered. `in` is read on a second thread (untied from its stream meanwhile), at most max_batch
// lines and max_request_bytes ahead. `forwards`, if given, counts the model's forwards.
int64_t serve(Predictor& predictor,
              std::istream& in,
              std::ostream& out,
              const ServeOptions& options,
              int64_t* forwards = nullptr);

// One request line's answer (a JSON object, no newline).
std::string answer_request(Predictor& predictor, const std::string& line, const ServeOptions& options);

// Request lines read together, answered in order (blank lines get no answer): one JSON object each.
// `too_long[i]`: line i was cut at max_request_bytes.
std::vector<std::string> answer_requests(Predictor& predictor,
                                         std::vector<std::string> lines,
                                         const std::vector<bool>& too_long,
                                         const ServeOptions& options,
                                         int64_t* forwards = nullptr);

}  // namespace detr
