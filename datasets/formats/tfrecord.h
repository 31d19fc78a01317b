// TFRecord 1.0 (TensorFlow Object Detection API) as CVAT and Datumaro write it, read without
// TensorFlow:
//   <subset>.tfrecord   records of tf.train.Example (protobuf: proto/example.proto, tf_example.h), in
//                       TFRecord framing (util/tfrecord_framing.h)
//   label_map.pbtxt     item { id: 1 name: 'cat' } ... (protobuf text format; display_name ignored)
// Features read: image/filename, image/height, image/width, image/encoded (the image itself, or empty
// when the export has no images), image/format, image/object/bbox/{xmin,ymin,xmax,ymax} (fractions of
// the image's size), image/object/class/label (label map ids; 0 = no label) and
// image/object/class/text. Object keys are absent for images without objects.
//
// Both CRCs of every record are checked; a record is at most the file's remaining bytes (and
// kMaxRecordBytes), checked before it is read or parsed, so memory follows the file, never a declared
// length; the values it declares are counted and bounded (tf_example.h) before protobuf parses it within
// those bytes (detr::pb::parse_bounded). Images held in
// image/encoded are written to extract_dir/<subset>/<file name> (one record at a time), since
// training reads images from files; images not held there are looked for beside the .tfrecord and in
// images/<subset>/ and images/.
#pragma once
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/formats/export.h"
#include "datasets/formats/tf_example.h"

namespace detr::datasets::formats {

// A record's bytes at most: an image embedded in a tf.train.Example, with room to spare.
constexpr uint64_t kMaxRecordBytes = uint64_t{64} << 20;

// Reads a TFRecord file one record at a time, checking the framing and both CRCs. Errors name the file,
// record index and byte offset.
class TfRecordReader {
 public:
  explicit TfRecordReader(const std::filesystem::path& path);
  // The next record's bytes into `record`; false at the end of the file.
  bool next(std::string& record);
  int64_t index() const { return index_; }  // of the record last returned (0-based)

 private:
  std::filesystem::path path_;
  std::string data_;  // the file is read in pieces: header, then one record
  uint64_t size_ = 0, offset_ = 0;
  int64_t index_ = -1;
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Closer> file_;
};

// label_map.pbtxt: (id, name) of every item, in file order. Errors name the file and line.
std::vector<std::pair<int64_t, std::string>> read_label_map(const std::filesystem::path& path);

// Roboflow's layout: subset folders (train/, valid/, test/) each with its *.tfrecord and the same
// label map (label_map.pbtxt, or its one <project>_label_map.pbtxt), none in the root. Those folders, in name order;
// empty for CVAT's layout.
std::vector<std::filesystem::path> tfrecord_roboflow_dirs(const std::filesystem::path& root);

// Every <subset>.tfrecord in root (subset = the file's stem), or in Roboflow's subset folders (subset =
// the folder's name; their label maps must agree), with root/label_map.pbtxt: categories are
// the label map's items in id order, named by `name`. An object's class/label must be a label map id
// (0 with an empty class/text: an unlabelled object, dropped and counted); a non-empty class/text must
// be that id's name. extract_dir may be empty when no record holds its image.
RawExport read_tfrecord(const std::filesystem::path& root, const std::filesystem::path& extract_dir);

}  // namespace detr::datasets::formats
