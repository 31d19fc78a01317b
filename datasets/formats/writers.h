// Writers for every dataset format the readers take (COCO 1.0, YOLO 1.1, Pascal VOC 1.1, MOT 1.1,
// TFRecord 1.0, LabelMe 3.0, CVAT for images 1.1, Datumaro 1.0, Ultralytics YOLO Detection and
// Segmentation 1.0, KITTI 1.0, Open Images V6 1.0; CreateML as Roboflow lays it out), laid out as CVAT
// exports them, from
// the readers' records (export.h): what detr_make_dataset --format writes, and what the round-trip
// tests and scripts/bench/bench_formats.py read back.
//
// Objects: one with polygons is written as its polygons where the format holds polygons (COCO,
// LabelMe, CVAT, Datumaro, Ultralytics) and as their bounding box elsewhere; one with a mask as its
// mask where the format holds masks (COCO's RLE, LabelMe's PNG in Masks/, CVAT's runs, Datumaro's RLE,
// VOC's SegmentationObject/ PNG beside its box, Open Images' masks/ PNG paired with its box)
// and as its box elsewhere; a crowd object as the format's ignore region (COCO iscrowd 1 with its mask
// or its box's; the same mask with an is_crowd attribute in LabelMe, CVAT and Datumaro; VOC
// `difficult`; MOT `not_ignored` 0; KITTI's DontCare; Open Images' IsGroupOf 1) and left out of YOLO, Ultralytics,
// TFRecord and CreateML; objects without a label are left out. Ultralytics holds the subsets train, val and test
// (train/training/default and validation/val/valid map to them; any other subset name is an error). Images: copied from
// RawImage::path when that is a file, else a plain image of the declared size, encoded as the file name's extension
// says (PNG for an unknown one).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "datasets/formats/detect.h"
#include "datasets/formats/export.h"

namespace detr::datasets::formats {

struct WriteOptions {
  bool embed_images = true;  // TFRecord: images in image/encoded; else under images/<subset>/
  bool link_images = false;  // hard-link images from RawImage::path (copy where a link fails)
};

// Writes `data` under root (created; files of the same names replaced) as `format`. Every image needs
// a positive width and height and a file name; throws naming the image otherwise. MOT holds one
// sequence: the first subset, its images numbered 1..N as frames.
void write_export(const RawExport& data,
                  DatasetFormat format,
                  const std::filesystem::path& root,
                  const WriteOptions& options = {});

// A COCO split as records: subset `subset`, images at image_dir/<file_name>, categories in id order
// as labels 0..N-1, boxes, polygons, RLE masks, areas and crowd flags as the file gives them.
RawExport raw_export_from_coco(const CocoDataset& data,
                               const std::string& subset,
                               const std::filesystem::path& image_dir);

// The subset name YOLO 1.1 files use: "train" for train/training/default, "valid" for
// validation/val/valid, else the name in lower case.
std::string yolo_subset_name(const std::string& subset);

}  // namespace detr::datasets::formats
