// Times detr::datasets::evaluate_bbox on a synthetic COCO-val-sized case: 5,000 images, 80 categories,
// ~7 ground-truth boxes and exactly 100 detections per image (DETR submits every query), one core.
//   detr_bench_coco_eval [--images N] [--repeats N] [--out_dir DIR]
// With --out_dir, also writes the case as DIR/gt.json and DIR/dt.json (to time detr_eval end to end).
#include <algorithm>
#include <iostream>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "datasets/coco_eval.h"
#include "src/cli/guarded_main.h"
#include "src/flags.h"
#include "util/atomic_file.h"

using detr::datasets::CocoDataset;
using detr::datasets::CocoImageRecord;
using detr::datasets::CocoObject;
using detr::datasets::CocoResult;

namespace {

struct Case {
  CocoDataset gt;
  std::vector<CocoResult> dt;
};

Case make_case(int num_images, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  Case c;
  for (int k = 0; k < 80; ++k) c.gt.categories.push_back({1 + k + k / 8, "c" + std::to_string(k)});  // gaps, like COCO
  std::vector<int64_t> image_ids;
  for (int i = 0; i < num_images; ++i) image_ids.push_back(1 + static_cast<int64_t>(unit(rng) * 580000));
  std::sort(image_ids.begin(), image_ids.end());
  image_ids.erase(std::unique(image_ids.begin(), image_ids.end()), image_ids.end());
  std::shuffle(image_ids.begin(), image_ids.end(), rng);

  const auto random_box = [&](double scale) {
    const double w = 4 + unit(rng) * scale, h = 4 + unit(rng) * scale;
    return std::array<double, 4>{unit(rng) * (640 - std::min(w, 600.0)), unit(rng) * (480 - std::min(h, 440.0)), w, h};
  };
  const auto category = [&] { return c.gt.categories[static_cast<size_t>(unit(rng) * 80)].id; };
  int64_t next_id = 1;
  for (int64_t image : image_ids) {
    CocoImageRecord record;
    record.id = image;
    record.width = 640;
    record.height = 480;
    const int num_gt = 1 + static_cast<int>(unit(rng) * 13);  // mean 7
    auto& objects = record.objects;
    for (int g = 0; g < num_gt; ++g) {
      CocoObject a;
      a.id = next_id++;
      a.category_id = category();
      a.bbox = random_box(unit(rng) < 0.4 ? 30 : unit(rng) < 0.6 ? 100 : 400);
      a.area = a.bbox[2] * a.bbox[3] * (0.6 + 0.4 * unit(rng));  // segmentation area < box area
      a.iscrowd = unit(rng) < 0.01;
      objects.push_back(a);
    }
    for (int q = 0; q < 100; ++q) {  // jittered hits on the objects, the rest background
      CocoResult d;
      d.image_id = image;
      d.score = unit(rng);
      if (q < 3 * num_gt) {
        const auto& o = objects[q % num_gt];
        d.category_id = unit(rng) < 0.9 ? o.category_id : category();
        for (int j = 0; j < 4; ++j) d.bbox[j] = o.bbox[j] + (unit(rng) - 0.5) * 0.3 * o.bbox[2 + j % 2];
        d.bbox[2] = std::max(d.bbox[2], 1.0);
        d.bbox[3] = std::max(d.bbox[3], 1.0);
        d.score = 0.3 + 0.7 * d.score;
      } else {
        d.category_id = category();
        d.bbox = random_box(200);
        d.score *= 0.5;
      }
      c.dt.push_back(d);
    }
    c.gt.images.push_back(std::move(record));
  }
  return c;
}

void write_case(const Case& c, const std::string& dir) {
  nlohmann::json gt, dt = nlohmann::json::array();
  for (const auto& i : c.gt.images) gt["images"].push_back({{"id", i.id}, {"width", i.width}, {"height", i.height}});
  for (const auto& k : c.gt.categories) gt["categories"].push_back({{"id", k.id}, {"name", k.name}});
  for (const auto& i : c.gt.images)
    for (const auto& a : i.objects)
      gt["annotations"].push_back({{"id", a.id},
                                   {"image_id", i.id},
                                   {"category_id", a.category_id},
                                   {"bbox", a.bbox},
                                   {"area", a.area},
                                   {"iscrowd", a.iscrowd ? 1 : 0}});
  for (const auto& d : c.dt)
    dt.push_back({{"image_id", d.image_id}, {"category_id", d.category_id}, {"bbox", d.bbox}, {"score", d.score}});
  detr::util::write_file_atomically(dir + "/gt.json", gt.dump());
  detr::util::write_file_atomically(dir + "/dt.json", dt.dump());
}

struct BenchCommand {
  int64_t images = 5000;
  int64_t repeats = 5;
  std::string out_dir;
};

detr::FlagTable<BenchCommand> flag_table() {
  using C = BenchCommand;
  detr::FlagTable<C> t("detr_bench_coco_eval", "Times COCO bbox evaluation on a synthetic COCO-val-sized case.");
  t.add("", "images", "images in the case (100 detections each)", &C::images);
  t.add("", "repeats", "timed evaluations (the best is reported)", &C::repeats);
  t.add("", "out_dir", "also write the case as OUT_DIR/gt.json and OUT_DIR/dt.json", &C::out_dir);
  return t;
}

int run(const BenchCommand& a) {
  const Case c = make_case(static_cast<int>(a.images), 12345);
  if (!a.out_dir.empty()) write_case(c, a.out_dir);
  size_t num_gt = 0;
  for (const auto& i : c.gt.images) num_gt += i.objects.size();
  std::printf("synthetic case: %zu images, %zu categories, %zu ground-truth boxes, %zu detections\n",
              c.gt.images.size(), c.gt.categories.size(), num_gt, c.dt.size());
  double best = 1e30;
  detr::datasets::CocoEvalResult result;
  for (int64_t r = 0; r < a.repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    result = detr::datasets::evaluate_bbox(c.gt, c.dt);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::min(best, seconds);
    std::printf("evaluate_bbox run %lld: %.3f s\n", static_cast<long long>(r + 1), seconds);
  }
  std::printf("%s", detr::datasets::format_summary(result).c_str());
  std::printf("evaluate_bbox: %.3f s (best of %lld, one core)\n", best, static_cast<long long>(a.repeats));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return detr::guarded_main("detr_bench_coco_eval", [&]() -> int {
    BenchCommand c;
    const auto line = flag_table().parse(argc, argv, c);
    if (!line.print.empty()) {
      std::cout << line.print << std::endl;
      return 0;
    }
    if (c.images < 1 || c.images > 1000000)
      throw detr::UsageError("--images must be in [1, 1000000], got " + std::to_string(c.images));
    if (c.repeats < 1 || c.repeats > 1000)
      throw detr::UsageError("--repeats must be in [1, 1000], got " + std::to_string(c.repeats));
    return run(c);
  });
}
