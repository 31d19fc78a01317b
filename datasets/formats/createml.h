// CreateML JSON as Roboflow exports it (and Apple's Create ML reads it):
//   <subset>/_annotations.createml.json   [{"image": "a.jpg",
//                                           "annotations": [{"label": "cat",
//                                                            "coordinates": {"x": cx, "y": cy,
//                                                                            "width": w, "height": h}}]}]
//   <subset>/<image>                      beside it
// or _annotations.createml.json in the root (subset "default"). x and y are the box's centre in pixels,
// as Apple's Create ML defines them and Roboflow writes them (Datumaro's importer reads them as the
// top-left corner; we do not). Categories are the labels in name order, as Roboflow and Datumaro
// number them. Roboflow's
// multi-label classification CSV (_classes.csv) carries no boxes and is refused by detection.
#pragma once
#include <filesystem>
#include <vector>

#include "datasets/formats/export.h"

namespace detr::datasets::formats {

constexpr const char* kCreateMlFile = "_annotations.createml.json";

// The folders that hold kCreateMlFile: root itself, or its subset folders, in name order.
std::vector<std::filesystem::path> createml_dirs(const std::filesystem::path& root);

// Errors name the file, item (by index and image) and field: malformed JSON, a document that is not a
// list, an item without "image" or with annotations that are not a list, a label that is not a
// non-empty string, coordinates that are not four finite numbers or have a negative size.
RawExport read_createml(const std::filesystem::path& root);

}  // namespace detr::datasets::formats
