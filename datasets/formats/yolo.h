// YOLO 1.1 as CVAT and Datumaro write it (darknet's layout):
//   obj.data          "classes = N", "names = data/obj.names", "<subset> = data/<subset>.txt", "backup = backup/"
//   obj.names         one label per line; class id = 0-based line index among the non-empty lines
//   train.txt, valid.txt (any subset)   one image per line: data/obj_<subset>_data/<image>
//   obj_<subset>_data/<image>.txt       per image, "class cx cy w h" with the box normalised by the
//                                       image's width and height (%.6f); empty for frames without boxes
// Paths in obj.data and the lists are relative to darknet's working directory, where the export is
// data/: the leading "data/" is dropped. The image's size comes from its header.
#pragma once
#include <filesystem>

#include "datasets/formats/export.h"

namespace detr::datasets::formats {

// Every subset obj.data lists. Errors name the file, line and field: a missing obj.data, names file,
// list or label file; `classes` other than the number of names; a label line without 5 fields, with a
// class that is not an integer in [0, classes) or a coordinate that is not a finite number.
RawExport read_yolo(const std::filesystem::path& root);

}  // namespace detr::datasets::formats
