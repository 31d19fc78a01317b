// detr_make_dataset: writes a synthetic CVAT-style COCO export (images/ + annotations/
// instances_default.json) — the demo data, and data for tests and benchmarks — or the same sample in
// another format with --format (datasets/formats/writers.h).
#include <iostream>
#include <string>

#include "datasets/formats/detect.h"
#include "datasets/synthetic.h"
#include "src/cli/guarded_main.h"
#include "src/flags.h"

namespace {

struct MakeDatasetCommand {
  std::string out;
  std::string format = "coco";
  detr::datasets::SyntheticExportOptions data;
};

detr::FlagTable<MakeDatasetCommand> flag_table() {
  using C = MakeDatasetCommand;
  using D = detr::datasets::SyntheticExportOptions;
  detr::FlagTable<C> t("detr_make_dataset", "Writes a synthetic CVAT-style export (COCO, or --format F).");
  const char* g = "";
  t.add(g, "out", "output directory", &C::out);
  t.add(g, "images", "number of images", &C::data, &D::num_images);
  t.add(g, "width", "image width", &C::data, &D::width);
  t.add(g, "height", "image height", &C::data, &D::height);
  t.add(g, "classes", "number of classes", &C::data, &D::num_classes);
  t.add(g, "max_objects", "objects per image at most", &C::data, &D::max_objects);
  t.add(g, "seed", "random seed", &C::data, &D::seed);
  t.add_switch(
      g, "no_quirks", "no CVAT quirks (id gaps, empty image, crowd region)",
      [](C& c) -> bool& { return c.data.cvat_quirks; }, /*when_given=*/false);
  t.add_switch(g, "no_overlap", "objects do not overlap (fewer objects where they do not fit)",
               [](C& c) -> bool& { return c.data.no_overlap; });
  t.add(g, "subset", "CVAT subset: default, Train, Validation, ...", &C::data, &D::subset);
  t.add(g, "format",
        "coco, yolo, ultralytics, voc, mot, tfrecord, labelme, cvat, datumaro, kitti, createml or open_images (or "
        "CVAT's export name)",
        &C::format);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  return detr::guarded_main("detr_make_dataset", [&]() -> int {
    MakeDatasetCommand c;
    const auto line = flag_table().parse(argc, argv, c);
    if (!line.print.empty()) {
      std::cout << line.print << std::endl;
      return 0;
    }
    if (c.out.empty()) throw detr::UsageError("--out is required");
    namespace formats = detr::datasets::formats;
    const auto format = formats::parse_format_name(c.format);
    if (!format) throw detr::UsageError("--format: unknown format '" + c.format + "'");
    detr::datasets::write_synthetic_export(c.out, c.data, *format);
    std::cout << "wrote " << c.data.num_images << " images to " << c.out
              << (*format == formats::DatasetFormat::coco ? std::string()
                                                          : " as " + std::string(formats::format_name(*format)))
              << "\n";
    return 0;
  });
}
