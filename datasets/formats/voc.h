// Pascal VOC 1.1 as CVAT and Datumaro write it:
//   labelmap.txt                    "name:r,g,b:parts:actions" per label ('#' comments); without it
//                                   VOC's 20 classes
//   ImageSets/Main/<subset>.txt     image ids, one a line ('#' comments; "quoted ids" with spaces);
//                                   <label>_<subset>.txt files beside them are per-class lists, not subsets
//   Annotations/<id>.xml            <annotation><filename/><size><width/><height/></size>
//                                   <object><name/><difficult/><bndbox><xmin/>...</bndbox></object>...
//   JPEGImages/<id>.<ext>
// Decisions:
//  - `background` (VOC's class 0, which CVAT's labelmap.txt always starts with) is not a category:
//    categories are the other labels 1..N in labelmap order, as in CVAT's COCO export of the task;
//    objects named `background` are dropped and counted.
//  - Boxes are [xmin, ymin, xmax - xmin, ymax - ymin] as Datumaro reads and writes them (no VOC 1-based
//    pixel shift), so a CVAT task gives the same boxes as its COCO export.
//  - `difficult` objects become ignore regions (iscrowd): not trained on, and detections on them are
//    neither true nor false positives in evaluation, which is VOC's own treatment of difficult objects
//    (VOC devkit, torchvision and mmdetection train without them by default).
//  - `truncated`, `occluded`, `pose`, parts and actions do not change anything: the object trains.
//  - An id listed without Annotations/<id>.xml is an image without objects; its size is its header's.
//  - SegmentationObject/<id>.png, where present, gives object i (in the XML's order) the pixels of the
//    VOC colour map's index i + 1 as its mask (for --masks); the box stays the XML's <bndbox>.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "datasets/formats/export.h"

namespace detr::datasets::formats {

// VOC's 20 classes in their standard order (the label map when labelmap.txt is absent).
const std::vector<std::string>& voc_default_labels();

// Roboflow's Pascal VOC layout: subset folders (train/, valid/, test/) of <stem>.xml beside the
// images, no ImageSets and no label map (labels in name order, as Roboflow and Datumaro number
// them). The folders of root that hold such XML files; empty for the VOC layout above.
std::vector<std::filesystem::path> voc_roboflow_dirs(const std::filesystem::path& root);

// Every subset of ImageSets/Main, or of Roboflow's layout. Errors name the file, line (element) and field: a missing
// ImageSets/Main, a malformed labelmap line, an annotation that is not well-formed XML, lacks
// <name> or <bndbox> coordinates, names a label not in the label map, or declares a non-positive size.
RawExport read_voc(const std::filesystem::path& root);

}  // namespace detr::datasets::formats
