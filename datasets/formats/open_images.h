// Open Images V6 as CVAT and Datumaro write it (CVAT's "Open Images V6 1.0"):
//   annotations/class-descriptions.csv               LabelName,DisplayName (no header; or
//                                                    oidv*-class-descriptions.csv, with one)
//   annotations/<subset>-image_ids_and_rotation.csv  ImageID,... (or image_ids_and_rotation.csv with a
//                                                    Subset column, or <subset>-images-with-rotation.csv)
//   annotations/<subset>-annotations-bbox.csv        ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,
//                                                    IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside
//   annotations/<subset>-annotations-object-segmentation.csv
//                                                    MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,
//                                                    BoxYMin,BoxYMax,PredictedIoU,Clicks
//   images/<subset>/<ImageID>.<ext>, masks/<subset>/<MaskPath> (a binary PNG)
// Columns are found by their header's names. Boxes are fractions of the image's size. Categories are
// the class descriptions' LabelNames in file order (as Datumaro names them). Decisions, as Datumaro's
// importer reads the format:
//  - IsGroupOf 1 boxes are crowd regions (a group of objects: COCO's iscrowd);
//  - a mask belongs to the box of its label whose coordinates equal its Box* columns (within 1e-6),
//    else it is an object of its own (box from the mask); it is resized to the image's size by
//    nearest neighbour (Open Images' masks have their own resolution);
//  - image-level labels (-annotations-human-imagelabels.csv) are not boxes and are not read.
#pragma once
#include <filesystem>

#include "datasets/formats/export.h"

namespace detr::datasets::formats {

// Whether root/annotations holds an Open Images image list, box or mask file (detection).
bool has_open_images_files(const std::filesystem::path& root);

// Errors name the file, line and column: a missing column, a coordinate that is not a finite number in
// [0, 1] or a box whose max is below its min, a label not among the class descriptions, a mask path
// that climbs out of masks/<subset>/, a mask PNG that cannot be read, masks whose RLE counts together
// exceed 64 per byte of their CSV file + 2^24.
RawExport read_open_images(const std::filesystem::path& root);

}  // namespace detr::datasets::formats
