#include "datasets/formats/writers.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <random>
#include <stdexcept>

#include "datasets/coco_mask.h"
#include "datasets/formats/mask_image.h"
#include "datasets/formats/text.h"
#include "datasets/formats/tf_example.h"
#include "util/tfrecord_framing.h"

namespace detr::datasets::formats {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

enum class Shape { box, polygon, mask, crowd };

Shape shape_of(const RawObject& o) {
  if (o.iscrowd) return Shape::crowd;
  if (o.mask) return Shape::mask;
  return o.polygons.empty() ? Shape::box : Shape::polygon;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s)
    out += c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '"' ? "&quot;" : std::string(1, c);
  return out;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

void write_file(const fs::path& path, const std::string& data) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) throw std::runtime_error(path.string() + ": cannot write: " + std::strerror(errno));
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) throw std::runtime_error(path.string() + ": cannot read");
  return data;
}

void check_image(const RawImage& im) {
  if (im.file_name.empty() || im.file_name.find('\0') != std::string::npos)
    throw std::runtime_error("image id " + std::to_string(im.id) + ": file name " + quote(im.file_name) +
                             " cannot be written");
  if (im.width <= 0 || im.height <= 0)
    throw std::runtime_error("image " + quote(im.file_name) + ": width/height must be positive to write it, got " +
                             std::to_string(im.width) + "x" + std::to_string(im.height));
}

// The image's bytes: its file, else a plain image of its size in the file name's format.
std::string image_bytes(const RawImage& im) {
  std::error_code ec;
  if (!im.path.empty() && fs::is_regular_file(im.path, ec)) return read_bytes(im.path);
  const int w = static_cast<int>(im.width), h = static_cast<int>(im.height);
  const cv::Mat img(h, w, CV_8UC3, cv::Scalar(40 + w, 90, 120 + h));
  std::string ext = lower(fs::path(im.file_name).extension().string());
  if (!is_image_extension(im.file_name) || !cv::haveImageWriter(ext)) ext = ".png";
  std::vector<uchar> out;
  cv::imencode(ext, img, out);
  return {out.begin(), out.end()};
}

// The image at dst: linked or copied from its file, else encoded.
void place_image(const RawImage& im, const fs::path& dst, const WriteOptions& options) {
  std::error_code ec;
  fs::create_directories(dst.parent_path());
  if (!im.path.empty() && fs::is_regular_file(im.path, ec) && options.link_images) {
    fs::remove(dst, ec);
    fs::create_hard_link(im.path, dst, ec);
    if (!ec) return;
  }
  write_file(dst, image_bytes(im));
}

std::string file_part(const RawImage& im) { return fs::path(im.file_name).filename().string(); }
std::string stem_part(const RawImage& im) { return fs::path(im.file_name).stem().string(); }

// The box in pixels (YOLO's records hold fractions).
std::array<double, 4> box_of(const RawObject& o, const RawImage& im) {
  if (!o.normalized) return o.bbox;
  const double w = static_cast<double>(im.width), h = static_cast<double>(im.height);
  return {o.bbox[0] * w, o.bbox[1] * h, o.bbox[2] * w, o.bbox[3] * h};
}

// The objects a writer writes: those with a label.
std::vector<const RawObject*> labelled(const RawImage& im, size_t num_labels) {
  std::vector<const RawObject*> out;
  for (const auto& o : im.objects)
    if (o.label >= 0 && static_cast<size_t>(o.label) < num_labels) out.push_back(&o);
  return out;
}

// The image-sized mask of the object's box (a crowd region as masks hold it).
Rle box_mask(const RawObject& o, const RawImage& im) {
  const auto b = box_of(o, im);
  std::vector<uint8_t> m(static_cast<size_t>(im.width * im.height), 0);
  const auto x0 = std::max<int64_t>(0, static_cast<int64_t>(b[0])),
             y0 = std::max<int64_t>(0, static_cast<int64_t>(b[1]));
  const auto x1 = std::min<int64_t>(im.width, static_cast<int64_t>(b[0] + b[2]));
  const auto y1 = std::min<int64_t>(im.height, static_cast<int64_t>(b[1] + b[3]));
  for (int64_t y = y0; y < y1; ++y)
    for (int64_t x = x0; x < x1; ++x) m[static_cast<size_t>(y * im.width + x)] = 1;
  return encode(m.data(), im.height, im.width, MaskLayout::row_major);
}

// The object's mask where it has one, else its box's (what a mask-only format writes for a crowd region).
Rle mask_of(const RawObject& o, const RawImage& im) { return o.mask ? *o.mask : box_mask(o, im); }

double area_of(const RawObject& o, const RawImage& im) {
  if (o.area) return *o.area;
  if (shape_of(o) == Shape::polygon)
    return static_cast<double>(area(rle_from_polygons(pixel_polygons(o, im.width, im.height), im.height, im.width)));
  const auto b = box_of(o, im);
  return b[2] * b[3];
}

std::vector<double> corners(const std::array<double, 4>& b) {
  return {b[0], b[1], b[0] + b[2], b[1], b[0] + b[2], b[1] + b[3], b[0], b[1] + b[3]};
}

// ---- COCO 1.0: annotations/instances_<subset>.json, images/<subset>/.

json coco_annotation(const RawObject& o, const RawImage& im, int64_t id, int64_t image_id) {
  json seg = json::array();
  if (shape_of(o) == Shape::polygon) seg = pixel_polygons(o, im.width, im.height);
  if (shape_of(o) == Shape::mask || shape_of(o) == Shape::crowd) {
    const Rle rle = mask_of(o, im);
    seg = {{"counts", rle.counts}, {"size", {rle.height, rle.width}}};
  }
  return {{"id", id},
          {"image_id", image_id},
          {"category_id", o.label + 1},
          {"bbox", box_of(o, im)},
          {"area", area_of(o, im)},
          {"iscrowd", o.iscrowd ? 1 : 0},
          {"segmentation", seg}};
}

void write_coco(const RawExport& data, const fs::path& root, const WriteOptions& options) {
  json categories = json::array();
  for (size_t c = 0; c < data.labels.size(); ++c)
    categories.push_back({{"id", c + 1}, {"name", data.labels[c]}, {"supercategory", ""}});
  for (const auto& s : data.subsets) {
    json images = json::array(), annotations = json::array();
    int64_t image_id = 0, ann_id = 0;
    for (const auto& im : s.images) {
      images.push_back({{"id", ++image_id}, {"file_name", im.file_name}, {"width", im.width}, {"height", im.height}});
      place_image(im, join_inside(root / "images" / s.name, im.file_name), options);
      for (const RawObject* o : labelled(im, data.labels.size()))
        annotations.push_back(coco_annotation(*o, im, ++ann_id, image_id));
    }
    write_file(root / "annotations" / ("instances_" + s.name + ".json"),
               json{{"images", images}, {"annotations", annotations}, {"categories", categories}}.dump());
  }
}

// ---- YOLO 1.1: obj.data, obj.names, <subset>.txt, obj_<subset>_data/<image> + <stem>.txt.

// "class cx cy w h\n", normalised (%.6f).
std::string yolo_box_line(const RawObject& o, const RawImage& im) {
  const double w = static_cast<double>(im.width), h = static_cast<double>(im.height);
  const auto b = box_of(o, im);
  return std::to_string(o.label) + " " + fmt("%.6f", (b[0] + b[2] / 2) / w) + " " + fmt("%.6f", (b[1] + b[3] / 2) / h) +
         " " + fmt("%.6f", b[2] / w) + " " + fmt("%.6f", b[3] / h) + "\n";
}

std::string yolo_lines(const RawImage& im, size_t num_labels) {
  std::string lines;
  for (const RawObject* o : labelled(im, num_labels))
    if (!o->iscrowd) lines += yolo_box_line(*o, im);
  return lines;
}

void write_yolo(const RawExport& data, const fs::path& root, const WriteOptions& options) {
  std::string obj_data = "classes = " + std::to_string(data.labels.size()) + "\n", names;
  for (const auto& l : data.labels) names += l + "\n";
  for (const auto& s : data.subsets) {
    const std::string sub = yolo_subset_name(s.name), folder = "obj_" + sub + "_data";
    obj_data += sub + " = data/" + sub + ".txt\n";
    std::string list;
    for (const auto& im : s.images) {
      place_image(im, root / folder / file_part(im), options);
      write_file(root / folder / (stem_part(im) + ".txt"), yolo_lines(im, data.labels.size()));
      list += "data/" + folder + "/" + file_part(im) + "\n";
    }
    write_file(root / (sub + ".txt"), list);
  }
  write_file(root / "obj.data", obj_data + "names = data/obj.names\nbackup = backup/\n");
  write_file(root / "obj.names", names);
}

// ---- Ultralytics YOLO: data.yaml, images/<subset>/<image>, labels/<subset>/<stem>.txt; boxes as
// "class cx cy w h", polygons as "class x1 y1 x2 y2 ..." (normalised, %.6f); subsets train, val, test.

std::string ultralytics_subset_name(const std::string& subset) {
  const std::string s = yolo_subset_name(subset);
  if (s == "train" || s == "test") return s;
  if (s == "valid") return "val";
  throw std::runtime_error("subset " + quote(subset) +
                           ": Ultralytics' data.yaml holds train, val and test (and the names CVAT gives them)");
}

std::string ultralytics_lines(const RawImage& im, size_t num_labels) {
  std::string lines;
  const double w = static_cast<double>(im.width), h = static_cast<double>(im.height);
  for (const RawObject* o : labelled(im, num_labels)) {
    if (o->iscrowd) continue;
    if (shape_of(*o) != Shape::polygon) {  // a mask as its box
      lines += yolo_box_line(*o, im);
      continue;
    }
    lines += std::to_string(o->label);
    const auto polygons = pixel_polygons(*o, im.width, im.height);
    const std::vector<double>& p = polygons.front();
    for (size_t i = 0; i < p.size(); ++i) lines += " " + fmt("%.6f", p[i] / (i % 2 ? h : w));
    lines += "\n";
  }
  return lines;
}

void write_ultralytics(const RawExport& data, const fs::path& root, const WriteOptions& options) {
  std::string yaml = "path: .\n";
  for (const auto& s : data.subsets) {
    const std::string sub = ultralytics_subset_name(s.name);
    yaml += sub + ": images/" + sub + "\n";
    fs::create_directories(root / "images" / sub);
    for (const auto& im : s.images) {
      place_image(im, root / "images" / sub / file_part(im), options);
      write_file(root / "labels" / sub / (stem_part(im) + ".txt"), ultralytics_lines(im, data.labels.size()));
    }
  }
  yaml += "\nnames:\n";
  for (size_t i = 0; i < data.labels.size(); ++i) {
    std::string quoted;  // single-quoted: YAML's one escape is '' for '
    for (char c : data.labels[i]) quoted += c == '\'' ? "''" : std::string(1, c);
    yaml += "  " + std::to_string(i) + ": '" + quoted + "'\n";
  }
  write_file(root / "data.yaml", yaml);
}

// ---- Pascal VOC 1.1: labelmap.txt, Annotations/<stem>.xml, JPEGImages/, ImageSets/Main/<subset>.txt.

std::string voc_xml(const RawExport& data, const RawImage& im) {
  std::string x = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<annotation>\n  <folder></folder>\n  <filename>" +
                  xml_escape(file_part(im)) + "</filename>\n  <size><width>" + std::to_string(im.width) +
                  "</width><height>" + std::to_string(im.height) + "</height><depth>3</depth></size>\n";
  for (const RawObject* o : labelled(im, data.labels.size())) {
    const auto b = box_of(*o, im);
    x += "  <object><name>" + xml_escape(data.labels[o->label]) +
         "</name><pose>Unspecified</pose><truncated>0</truncated><occluded>1</occluded><difficult>" +
         (o->iscrowd ? "1" : "0") + "</difficult><bndbox><xmin>" + fmt("%g", b[0]) + "</xmin><ymin>" + fmt("%g", b[1]) +
         "</ymin><xmax>" + fmt("%g", b[0] + b[2]) + "</xmax><ymax>" + fmt("%g", b[1] + b[3]) +
         "</ymax></bndbox></object>\n";
  }
  return x + "</annotation>\n";
}

// CVAT's per-class lists: "<id> 1" where the image shows the label, "<id> -1" where not.
void write_voc_class_lists(const RawExport& data, const RawSubset& s, const fs::path& main) {
  for (size_t c = 0; c < data.labels.size(); ++c) {
    if (data.labels[c].find('/') != std::string::npos) continue;
    std::string list;
    for (const auto& im : s.images) {
      const auto objects = labelled(im, data.labels.size());
      const bool shows = std::any_of(objects.begin(), objects.end(),
                                     [&](const RawObject* o) { return o->label == static_cast<int64_t>(c); });
      list += stem_part(im) + (shows ? " 1\n" : " -1\n");
    }
    write_file(main / (data.labels[c] + "_" + s.name + ".txt"), list);
  }
}

// SegmentationObject/<stem>.png: object i's mask in the VOC colour map's colour i + 1 (objects as
// voc_xml writes them: the labelled ones). Nothing when no object has a mask.
void write_voc_instances(const RawExport& data, const RawImage& im, const fs::path& png) {
  const auto objects = labelled(im, data.labels.size());
  if (std::none_of(objects.begin(), objects.end(), [](const RawObject* o) { return shape_of(*o) == Shape::mask; }))
    return;
  cv::Mat img(static_cast<int>(im.height), static_cast<int>(im.width), CV_8UC3, cv::Scalar(0, 0, 0));
  for (size_t i = 0; i < objects.size() && i < 254; ++i) {
    if (shape_of(*objects[i]) != Shape::mask) continue;
    if (objects[i]->mask->height != im.height || objects[i]->mask->width != im.width)
      throw std::runtime_error("image " + quote(im.file_name) + ": a mask of another size than the image's");
    const auto c = voc_color(static_cast<int>(i) + 1);
    const auto m = decode(*objects[i]->mask, MaskLayout::row_major);
    for (int64_t p = 0; p < im.height * im.width; ++p)
      if (m[static_cast<size_t>(p)])
        img.at<cv::Vec3b>(static_cast<int>(p / im.width), static_cast<int>(p % im.width)) = {c[0], c[1], c[2]};
  }
  std::vector<uint8_t> bytes;
  cv::imencode(".png", img, bytes);
  write_file(png, std::string(bytes.begin(), bytes.end()));
}

void write_voc(const RawExport& data, const fs::path& root, const WriteOptions& options) {
  std::string labelmap = "# label:color_rgb:parts:actions\nbackground:0,0,0::\n";
  for (size_t i = 0; i < data.labels.size(); ++i)
    labelmap += data.labels[i] + ":" + std::to_string(10 * i % 256) + ",0,0::\n";
  write_file(root / "labelmap.txt", labelmap);
  for (const auto& s : data.subsets) {
    std::string ids;
    for (const auto& im : s.images) {
      ids += stem_part(im) + "\n";
      place_image(im, root / "JPEGImages" / file_part(im), options);
      write_file(root / "Annotations" / (stem_part(im) + ".xml"), voc_xml(data, im));
      write_voc_instances(data, im, root / "SegmentationObject" / (stem_part(im) + ".png"));
    }
    write_file(root / "ImageSets" / "Main" / (s.name + ".txt"), ids);
    write_voc_class_lists(data, s, root / "ImageSets" / "Main");
  }
}

// ---- MOT 1.1: gt/gt.txt (CRLF rows), gt/labels.txt (no trailing newline), img1/<frame>.<ext>.

void write_mot(const RawExport& data, const fs::path& root, const WriteOptions& options) {
  std::string labels, gt;
  for (size_t i = 0; i < data.labels.size(); ++i) labels += (i ? "\n" : "") + data.labels[i];
  write_file(root / "gt" / "labels.txt", labels);
  int64_t frame = 0;
  if (!data.subsets.empty())
    for (const auto& im : data.subsets.front().images) {
      ++frame;
      std::string ext = fs::path(im.file_name).extension().string();
      place_image(im, root / "img1" / (fmt("%06.0f", static_cast<double>(frame)) + (ext.empty() ? ".png" : ext)),
                  options);
      for (const RawObject* o : labelled(im, data.labels.size())) {
        const auto b = box_of(*o, im);
        gt += std::to_string(frame) + ",-1," + fmt("%g", b[0]) + "," + fmt("%g", b[1]) + "," + fmt("%g", b[2]) + "," +
              fmt("%g", b[3]) + "," + (o->iscrowd ? "0" : "1") + "," + std::to_string(o->label + 1) + ",1.0\r\n";
      }
    }
  write_file(root / "gt" / "gt.txt", gt);
}

// ---- TFRecord 1.0: label_map.pbtxt, <subset>.tfrecord (images embedded, or under images/<subset>/).

TfFeature bytes_feature(std::vector<std::string> values) {
  TfFeature f;
  f.kind = TfFeature::Kind::bytes, f.bytes = std::move(values);
  return f;
}
TfFeature float_feature(std::vector<float> values) {
  TfFeature f;
  f.kind = TfFeature::Kind::floats, f.floats = std::move(values);
  return f;
}
TfFeature int_feature(std::vector<int64_t> values) {
  TfFeature f;
  f.kind = TfFeature::Kind::ints, f.ints = std::move(values);
  return f;
}

std::string tf_record(const RawExport& data, const RawImage& im, bool embed) {
  std::string ext = lower(fs::path(im.file_name).extension().string());
  const std::string format = ext == ".png" ? "png" : "jpeg";
  std::vector<std::pair<std::string, TfFeature>> f = {
      {"image/filename", bytes_feature({im.file_name})},
      {"image/source_id", bytes_feature({stem_part(im)})},
      {"image/height", int_feature({im.height})},
      {"image/width", int_feature({im.width})},
      {"image/encoded", bytes_feature({embed ? image_bytes(im) : std::string()})},
      {"image/format", bytes_feature({embed ? format : ""})}};
  std::vector<float> x0, y0, x1, y1;
  std::vector<std::string> text;
  std::vector<int64_t> label;
  const double w = static_cast<double>(im.width), h = static_cast<double>(im.height);
  for (const RawObject* o : labelled(im, data.labels.size())) {
    if (o->iscrowd) continue;
    const auto b = box_of(*o, im);
    x0.push_back(static_cast<float>(b[0] / w)), y0.push_back(static_cast<float>(b[1] / h));
    x1.push_back(static_cast<float>((b[0] + b[2]) / w)), y1.push_back(static_cast<float>((b[1] + b[3]) / h));
    text.push_back(data.labels[o->label]), label.push_back(o->label + 1);
  }
  if (!label.empty())
    f.insert(f.end(), {{"image/object/bbox/xmin", float_feature(x0)},
                       {"image/object/bbox/xmax", float_feature(x1)},
                       {"image/object/bbox/ymin", float_feature(y0)},
                       {"image/object/bbox/ymax", float_feature(y1)},
                       {"image/object/class/text", bytes_feature(text)},
                       {"image/object/class/label", int_feature(label)}});
  return util::frame_tfrecord(serialize_tf_example(f));
}

void write_tfrecord(const RawExport& data, const fs::path& root, const WriteOptions& options) {
  std::string map;
  for (size_t i = 0; i < data.labels.size(); ++i)
    map += "item {\n\tid: " + std::to_string(i + 1) + "\n\tname: '" + data.labels[i] + "'\n}\n\n";
  write_file(root / "label_map.pbtxt", map);
  for (const auto& s : data.subsets) {
    std::string records;
    for (const auto& im : s.images) {
      records += tf_record(data, im, options.embed_images);
      if (!options.embed_images) place_image(im, join_inside(root / "images" / s.name, im.file_name), options);
    }
    write_file(root / (s.name + ".tfrecord"), records);
  }
}

// ---- KITTI 1.0: <subset>/label_2/<stem>.txt, <subset>/image_2/; crowd objects as DontCare.

void write_kitti(const RawExport& data, const fs::path& root, const WriteOptions& options) {
  for (const auto& l : data.labels)
    if (l.find_first_of(" \t\r\n") != std::string::npos || l == "DontCare")
      throw std::runtime_error("label " + quote(l) + ": KITTI's space-separated lines cannot hold it");
  for (const auto& s : data.subsets)
    for (const auto& im : s.images) {
      place_image(im, root / s.name / "image_2" / file_part(im), options);
      std::string lines;
      for (const RawObject* o : labelled(im, data.labels.size())) {
        const auto b = box_of(*o, im);
        lines += (o->iscrowd ? std::string("DontCare") : data.labels[o->label]) + " 0.00 0 -10 " + fmt("%.2f", b[0]) +
                 " " + fmt("%.2f", b[1]) + " " + fmt("%.2f", b[0] + b[2]) + " " + fmt("%.2f", b[1] + b[3]) +
                 " -1 -1 -1 -1000 -1000 -1000 -10\n";
      }
      write_file(root / s.name / "label_2" / (stem_part(im) + ".txt"), lines);
    }
}

// ---- CreateML (Roboflow's layout): <subset>/_annotations.createml.json beside the images; boxes by
// their centre; crowd objects left out.

void write_createml(const RawExport& data, const fs::path& root, const WriteOptions& options) {
  for (const auto& s : data.subsets) {
    json items = json::array();
    for (const auto& im : s.images) {
      place_image(im, join_inside(root / s.name, im.file_name), options);
      json anns = json::array();
      for (const RawObject* o : labelled(im, data.labels.size())) {
        if (o->iscrowd) continue;
        const auto b = box_of(*o, im);
        anns.push_back(
            {{"label", data.labels[o->label]},
             {"coordinates", {{"x", b[0] + b[2] / 2}, {"y", b[1] + b[3] / 2}, {"width", b[2]}, {"height", b[3]}}}});
      }
      items.push_back({{"image", im.file_name}, {"annotations", anns}});
    }
    write_file(root / s.name / "_annotations.createml.json", items.dump(2));
  }
}

// ---- Open Images V6: annotations/*.csv, images/<subset>/, masks/<subset>/; crowd as IsGroupOf 1.

void write_mask_png(const Rle& rle, const fs::path& path);

// "XMin,XMax,YMin,YMax" as fractions of the image.
std::string open_images_box(const RawObject& o, const RawImage& im) {
  const auto b = box_of(o, im);
  const double w = static_cast<double>(im.width), h = static_cast<double>(im.height);
  return fmt("%.17g", b[0] / w) + "," + fmt("%.17g", (b[0] + b[2]) / w) + "," + fmt("%.17g", b[1] / h) + "," +
         fmt("%.17g", (b[1] + b[3]) / h);
}

void write_open_images(const RawExport& data, const fs::path& root, const WriteOptions& options) {
  std::string classes;
  for (const auto& l : data.labels) {
    if (l.find_first_of(",\"\r\n") != std::string::npos)
      throw std::runtime_error("label " + quote(l) + ": written unquoted, it would break Open Images' CSV");
    classes += l + "," + l + "\n";
  }
  write_file(root / "annotations" / "class-descriptions.csv", classes);
  for (const auto& s : data.subsets) {
    std::string ids =
        "ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title,"
        "OriginalSize,OriginalMD5,Thumbnail300KURL,Rotation\n";
    std::string boxes =
        "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,"
        "IsDepiction,IsInside\n";
    std::string masks = "MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,BoxYMax,PredictedIoU,Clicks\n";
    for (const auto& im : s.images) {
      const std::string id = stem_part(im);
      place_image(im, root / "images" / s.name / file_part(im), options);
      ids += id + "," + s.name + ",,,,,,,,,,\n";
      int k = 0;
      for (const RawObject* o : labelled(im, data.labels.size())) {
        const std::string box = open_images_box(*o, im);
        boxes += id + ",manual," + data.labels[o->label] + ",1," + box + ",0,0," + (o->iscrowd ? "1" : "0") + ",0,0\n";
        if (shape_of(*o) != Shape::mask) continue;
        const std::string png = id + "_" + std::to_string(k++) + ".png";
        write_mask_png(*o->mask, root / "masks" / s.name / png);
        masks += png + "," + id + "," + data.labels[o->label] + ",b" + std::to_string(k) + "," + box + ",,\n";
      }
    }
    write_file(root / "annotations" / (s.name + "-image_ids_and_rotation.csv"), ids);
    write_file(root / "annotations" / (s.name + "-annotations-bbox.csv"), boxes);
    write_file(root / "annotations" / (s.name + "-annotations-object-segmentation.csv"), masks);
  }
}

// ---- LabelMe 3.0: <subset>/<image> beside <subset>/<stem>.xml; boxes as 4-point bounding_box.

// A mask as LabelMe's PNG: the image's size, 255 on the object.
void write_mask_png(const Rle& rle, const fs::path& path) {
  std::vector<uint8_t> m = decode(rle, MaskLayout::row_major);
  for (auto& v : m) v = v ? 255 : 0;
  std::vector<uint8_t> png;
  cv::imencode(".png", cv::Mat(static_cast<int>(rle.height), static_cast<int>(rle.width), CV_8UC1, m.data()), png);
  write_file(path, std::string(png.begin(), png.end()));
}

// A mask or crowd object as <segm> with its PNG written to mask_dir; others as a <polygon>.
std::string labelme_object(
    const RawExport& data, const RawObject& o, const RawImage& im, int id, const fs::path& mask_dir) {
  std::string x = "<object><name>" + xml_escape(data.labels[o.label]) +
                  "</name><deleted>0</deleted><verified>0</verified><occluded>no</occluded><date></date><id>" +
                  std::to_string(id) + "</id><parts><hasparts></hasparts><ispartof></ispartof></parts>";
  const auto b = box_of(o, im);
  if (shape_of(o) == Shape::mask || shape_of(o) == Shape::crowd) {
    const Rle rle = mask_of(o, im);
    const auto m = to_bbox(rle);
    const std::string png = stem_part(im) + "_mask_" + std::to_string(id) + ".png";
    write_mask_png(rle, mask_dir / png);
    x += "<segm><box><xmin>" + fmt("%g", m[0]) + "</xmin><ymin>" + fmt("%g", m[1]) + "</ymin><xmax>" +
         fmt("%g", m[0] + m[2] - 1) + "</xmax><ymax>" + fmt("%g", m[1] + m[3] - 1) + "</ymax></box><mask>" +
         xml_escape(png) + "</mask></segm>";
  } else {
    const std::vector<double> pts =
        shape_of(o) == Shape::polygon ? pixel_polygons(o, im.width, im.height).front() : corners(b);
    x += shape_of(o) == Shape::box ? "<type>bounding_box</type><polygon>" : "<polygon>";
    for (size_t i = 0; i + 1 < pts.size(); i += 2)
      x += "<pt><x>" + fmt("%.2f", pts[i]) + "</x><y>" + fmt("%.2f", pts[i + 1]) + "</y></pt>";
    x += "<username></username></polygon>";
  }
  return x + (shape_of(o) == Shape::crowd ? "<attributes>is_crowd</attributes>" : "<attributes></attributes>") +
         "</object>";
}

void write_labelme(const RawExport& data, const fs::path& root, const WriteOptions& options) {
  for (const auto& s : data.subsets)
    for (const auto& im : s.images) {
      place_image(im, root / s.name / file_part(im), options);
      std::string x = "<annotation><filename>" + xml_escape(file_part(im)) +
                      "</filename><folder></folder><source><sourceImage></sourceImage>"
                      "<sourceAnnotation>Datumaro</sourceAnnotation></source><imagesize><nrows>" +
                      std::to_string(im.height) + "</nrows><ncols>" + std::to_string(im.width) + "</ncols></imagesize>";
      int id = 0;
      for (const RawObject* o : labelled(im, data.labels.size()))
        x += labelme_object(data, *o, im, id++, root / s.name / "Masks");
      write_file(root / s.name / (stem_part(im) + ".xml"), x + "</annotation>");
    }
}

// ---- CVAT for images 1.1 (a project dump): annotations.xml, images/<subset>/.

std::string points_attr(const std::vector<double>& p) {
  std::string out;
  for (size_t i = 0; i + 1 < p.size(); i += 2) out += (i ? ";" : "") + fmt("%.2f", p[i]) + "," + fmt("%.2f", p[i + 1]);
  return out;
}

// CVAT's mask runs: row-major over the box, background first, ", "-separated.
std::string cvat_runs(const Rle& rle, int64_t left, int64_t top, int64_t width, int64_t height) {
  const std::vector<uint8_t> m = decode(rle, MaskLayout::row_major);
  std::string out;
  uint8_t value = 0;
  int64_t run = 0;
  for (int64_t y = top; y < top + height; ++y)
    for (int64_t x = left; x < left + width; ++x) {
      if (m[static_cast<size_t>(y * rle.width + x)] != value) out += std::to_string(run) + ", ", run = 0, value ^= 1;
      ++run;
    }
  return out + std::to_string(run);
}

std::string cvat_shape(const RawExport& data, const RawObject& o, const RawImage& im) {
  const auto b = box_of(o, im);
  const std::string label = "label=\"" + xml_escape(data.labels[o.label]) + "\" occluded=\"1\" source=\"manual\"";
  if (shape_of(o) == Shape::box)
    return "    <box " + label + " xtl=\"" + fmt("%.2f", b[0]) + "\" ytl=\"" + fmt("%.2f", b[1]) + "\" xbr=\"" +
           fmt("%.2f", b[0] + b[2]) + "\" ybr=\"" + fmt("%.2f", b[1] + b[3]) + "\" z_order=\"0\">\n    </box>\n";
  if (shape_of(o) == Shape::polygon)
    return "    <polygon " + label + " points=\"" + points_attr(pixel_polygons(o, im.width, im.height).front()) +
           "\" z_order=\"0\"/>\n";
  const Rle rle = mask_of(o, im);
  const auto m = to_bbox(rle);
  const auto left = static_cast<int64_t>(m[0]), top = static_cast<int64_t>(m[1]);
  const auto width = std::max<int64_t>(1, static_cast<int64_t>(m[2])),
             height = std::max<int64_t>(1, static_cast<int64_t>(m[3]));
  const std::string crowd = shape_of(o) == Shape::crowd ? "      <attribute name=\"is_crowd\">true</attribute>\n" : "";
  return "    <mask " + label + " rle=\"" + cvat_runs(rle, left, top, width, height) + "\" left=\"" +
         std::to_string(left) + "\" top=\"" + std::to_string(top) + "\" width=\"" + std::to_string(width) +
         "\" height=\"" + std::to_string(height) + "\" z_order=\"0\">\n" + crowd + "    </mask>\n";
}

void write_cvat(const RawExport& data, const fs::path& root, const WriteOptions& options) {
  std::string x =
      "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<annotations>\n  <version>1.1</version>\n  <meta><project>"
      "<name>detr_make_dataset</name><labels>";
  for (const auto& l : data.labels) x += "<label><name>" + xml_escape(l) + "</name><attributes></attributes></label>";
  x += "</labels></project></meta>\n";
  int64_t id = 0;
  for (const auto& s : data.subsets)
    for (const auto& im : s.images) {
      place_image(im, join_inside(root / "images" / s.name, im.file_name), options);
      x += "  <image id=\"" + std::to_string(id++) + "\" name=\"" + xml_escape(im.file_name) + "\" subset=\"" +
           xml_escape(s.name) + "\" width=\"" + std::to_string(im.width) + "\" height=\"" + std::to_string(im.height) +
           "\">\n";
      for (const RawObject* o : labelled(im, data.labels.size())) x += cvat_shape(data, *o, im);
      x += "  </image>\n";
    }
  write_file(root / "annotations.xml", x + "</annotations>\n");
}

// ---- Datumaro 1.0: annotations/<subset>.json, images/<subset>/.

json datumaro_annotation(const RawObject& o, const RawImage& im, int id) {
  json a{{"id", id}, {"label_id", o.label}, {"group", 0}, {"z_order", 0}, {"attributes", {{"occluded", false}}}};
  if (shape_of(o) == Shape::box) a["type"] = "bbox", a["bbox"] = box_of(o, im);
  if (shape_of(o) == Shape::polygon)
    a["type"] = "polygon", a["points"] = pixel_polygons(o, im.width, im.height).front();
  if (shape_of(o) == Shape::mask || shape_of(o) == Shape::crowd) {
    const Rle rle = mask_of(o, im);
    a["type"] = "mask", a["rle"] = {{"counts", rle_to_string(rle)}, {"size", {rle.height, rle.width}}};
  }
  if (shape_of(o) == Shape::crowd) a["attributes"]["is_crowd"] = true;
  return a;
}

void write_datumaro(const RawExport& data, const fs::path& root, const WriteOptions& options) {
  json labels = json::array();
  for (const auto& l : data.labels) labels.push_back({{"name", l}, {"parent", ""}, {"attributes", json::array()}});
  for (const auto& s : data.subsets) {
    json items = json::array();
    for (const auto& im : s.images) {
      place_image(im, join_inside(root / "images" / s.name, im.file_name), options);
      json anns = json::array();
      int id = 0;
      for (const RawObject* o : labelled(im, data.labels.size())) anns.push_back(datumaro_annotation(*o, im, id++));
      items.push_back({{"id", (fs::path(im.file_name).parent_path() / stem_part(im)).generic_string()},
                       {"annotations", anns},
                       {"attr", {{"frame", im.id}}},
                       {"image", {{"path", im.file_name}, {"size", {im.height, im.width}}}}});
    }
    json doc{{"info", json::object()},
             {"categories", {{"label", {{"labels", labels}, {"attributes", {"occluded"}}}}}},
             {"items", items}};
    write_file(root / "annotations" / (s.name + ".json"), doc.dump());
  }
}

}  // namespace

RawExport raw_export_from_coco(const CocoDataset& data, const std::string& subset, const fs::path& image_dir) {
  RawExport raw;
  raw.format = "coco";
  std::map<int64_t, int64_t> label_of;  // category id -> label
  for (const auto& c : data.categories) {
    label_of[c.id] = static_cast<int64_t>(raw.labels.size());
    raw.labels.push_back(c.name);
  }
  RawSubset out{subset, data.annotation_file, {}};
  for (const auto& rec : data.images) {
    RawImage im;
    im.id = rec.id, im.file_name = rec.file_name, im.width = rec.width, im.height = rec.height;
    im.path = join_inside(image_dir, rec.file_name);
    for (const auto& o : rec.objects) {
      RawObject object;
      const auto label = label_of.find(o.category_id);
      object.label = label == label_of.end() ? -1 : label->second;
      object.bbox = o.bbox, object.iscrowd = o.iscrowd, object.area = o.area;
      if (!o.iscrowd) object.polygons = o.segmentation.polygons;
      if (!o.iscrowd) object.mask = o.segmentation.rle;
      im.objects.push_back(std::move(object));
    }
    out.images.push_back(std::move(im));
  }
  raw.subsets.push_back(std::move(out));
  return raw;
}

std::string yolo_subset_name(const std::string& subset) {
  const std::string s = lower(subset);
  if (s == "train" || s == "training" || s == "default") return "train";
  if (s == "validation" || s == "val" || s == "valid") return "valid";
  return s;
}

void write_export(const RawExport& data, DatasetFormat format, const fs::path& root, const WriteOptions& options) {
  for (const auto& s : data.subsets)
    for (const auto& im : s.images) check_image(im);
  using Writer = void (*)(const RawExport&, const fs::path&, const WriteOptions&);
  Writer write = nullptr;
  switch (format) {
    case DatasetFormat::coco: write = write_coco; break;
    case DatasetFormat::yolo: write = write_yolo; break;
    case DatasetFormat::voc: write = write_voc; break;
    case DatasetFormat::mot: write = write_mot; break;
    case DatasetFormat::tfrecord: write = write_tfrecord; break;
    case DatasetFormat::labelme: write = write_labelme; break;
    case DatasetFormat::cvat: write = write_cvat; break;
    case DatasetFormat::datumaro: write = write_datumaro; break;
    case DatasetFormat::ultralytics: write = write_ultralytics; break;
    case DatasetFormat::kitti: write = write_kitti; break;
    case DatasetFormat::createml: write = write_createml; break;
    case DatasetFormat::open_images: write = write_open_images; break;
  }
  if (!write) throw std::runtime_error("write_export: unknown format " + std::to_string(static_cast<int>(format)));
  fs::create_directories(root);
  write(data, root, options);
}

}  // namespace detr::datasets::formats
