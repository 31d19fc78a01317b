// Datumaro 1.0 JSON as CVAT's "Datumaro 1.0" export and Datumaro write it:
//   annotations/<subset>.json  {"categories": {"label": {"labels": [{"name": ...}, ...]}, ...},
//                               "items": [{"id": "frame_000001",
//                                          "image": {"path": "frame_000001.jpg", "size": [h, w]},
//                                          "annotations": [{"type": "bbox", "label_id": 0,
//                                                           "bbox": [x, y, w, h], "attributes": {...}},
//                                                          {"type": "polygon", "points": [x0, y0, ...]},
//                                                          {"type": "mask", "rle": {"counts": "...", "size": [h, w]}},
//                                                          ...]}]}
//   images/<subset>/<path> (or images/<path>)
// Categories are the label list in order (label_id is 0-based). Decisions as for CVAT XML: a polygon's
// box is its points' bounding box (points kept); a mask keeps its pixels (for --masks), its RLE's box
// and area, and is a crowd RLE as Datumaro's COCO export writes it (--crowd decides, cvat_policy.h);
// attributes.is_crowd true makes any annotation crowd;
// label_id null is an unlabelled object (dropped and counted); attributes.outside true is left out;
// other annotation types (label, points, polyline, caption, cuboid, skeleton) are not boxes.
#pragma once
#include <filesystem>

#include "datasets/formats/export.h"

namespace detr::datasets::formats {

// Every annotations/<subset>.json. Errors name the file, item (by index and id), annotation and field:
// malformed JSON, a label list that differs between subsets, a label_id out of range, a bbox that is
// not 4 finite numbers, polygon points that are not an even list of at least 6 numbers, a mask RLE
// that is not valid (coco_mask.h's checks).
RawExport read_datumaro(const std::filesystem::path& root);

}  // namespace detr::datasets::formats
