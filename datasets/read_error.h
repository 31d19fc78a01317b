// The one error of every annotation reader (COCO, YOLO, VOC, MOT, TFRecord, LabelMe, CVAT, Datumaro):
// one line naming the file, the record, the field and its value: "<file>: <where>: <what>", where
// `where` names the record ("line 3", "annotation id 7", "item 'a'") and `what` the field and the
// offending value ("'bbox' must be [x, y, width, height] numbers, got [1, 2]").
#pragma once
#include <filesystem>
#include <stdexcept>
#include <string>

namespace detr::datasets {

// Throws std::runtime_error("<file>: <where>: <what>"); an empty `where` is left out.
[[noreturn]] inline void fail_at(const std::filesystem::path& file, const std::string& where, const std::string& what) {
  throw std::runtime_error(file.string() + (where.empty() ? std::string() : ": " + where) + ": " + what);
}

}  // namespace detr::datasets
