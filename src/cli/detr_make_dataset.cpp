// detr_make_dataset: writes a synthetic CVAT-style COCO export (images/ + annotations/
// instances_default.json) — the demo data, and data for tests and benchmarks — or the same sample in
// another format with --format (datasets/formats/writers.h).
#include <cxxopts.hpp>

#include <iostream>

#include "datasets/formats/writers.h"
#include "datasets/synthetic.h"
#include "src/cli/guarded_main.h"

int main(int argc, char** argv) {
  cxxopts::Options options("detr_make_dataset", "Writes a synthetic CVAT-style COCO export.");
  detr::datasets::SyntheticExportOptions d;
  // clang-format off
  options.add_options()
    ("out", "output directory", cxxopts::value<std::string>())
    ("images", "number of images", cxxopts::value<int64_t>()->default_value(std::to_string(d.num_images)))
    ("width", "image width", cxxopts::value<int64_t>()->default_value(std::to_string(d.width)))
    ("height", "image height", cxxopts::value<int64_t>()->default_value(std::to_string(d.height)))
    ("classes", "number of classes", cxxopts::value<int64_t>()->default_value(std::to_string(d.num_classes)))
    ("max_objects", "objects per image at most", cxxopts::value<int64_t>()->default_value(std::to_string(d.max_objects)))
    ("seed", "random seed", cxxopts::value<uint64_t>()->default_value("0"))
    ("no_quirks", "no CVAT quirks (id gaps, empty image, crowd region)")
    ("no_overlap", "objects do not overlap (fewer objects where they do not fit)")
    ("subset", "CVAT subset: default, Train, Validation, ...", cxxopts::value<std::string>()->default_value("default"))
    ("format", "coco, yolo, voc, mot, tfrecord, labelme, cvat or datumaro (or CVAT's export name)", cxxopts::value<std::string>()->default_value("coco"))
    ("h,help", "print this help");
  // clang-format on
  return detr::guarded_main("detr_make_dataset", [&]() -> int {
    auto a = options.parse(argc, argv);
    if (a.count("help")) {
      std::cout << options.help() << std::endl;
      return 0;
    }
    if (!a.count("out")) throw cxxopts::exceptions::exception("--out is required");
    const auto format = detr::datasets::formats::parse_format_name(a["format"].as<std::string>());
    if (!format) throw cxxopts::exceptions::exception("--format: unknown format '" + a["format"].as<std::string>() + "'");
    detr::datasets::SyntheticExportOptions o;
    o.num_images = a["images"].as<int64_t>();
    o.width = a["width"].as<int64_t>();
    o.height = a["height"].as<int64_t>();
    o.num_classes = a["classes"].as<int64_t>();
    o.max_objects = a["max_objects"].as<int64_t>();
    o.seed = a["seed"].as<uint64_t>();
    o.cvat_quirks = a.count("no_quirks") == 0;
    o.no_overlap = a.count("no_overlap") > 0;
    o.subset = a["subset"].as<std::string>();
    detr::datasets::write_synthetic_export(a["out"].as<std::string>(), o, *format);
    std::cout << "wrote " << o.num_images << " images to " << a["out"].as<std::string>()
              << (*format == detr::datasets::formats::DatasetFormat::coco
                      ? std::string()
                      : std::string(" as ") + detr::datasets::formats::format_name(*format))
              << "\n";
    return 0;
    });
}
