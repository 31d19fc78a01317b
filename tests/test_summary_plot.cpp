// summary.png (src/summary_plot.h): log.txt read back as training writes it, and the picture checked
// where the figures must be drawn.
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include <cmath>
#include <fstream>
#include <iostream>

#include "src/summary_plot.h"
#include "tests/support.h"

namespace {

namespace fs = std::filesystem;
using detr::EpochFigures;
using detr::SummaryColours;

// The distance from `colour` of the closest pixel within `radius` of `at` (0: that colour is there).
double nearest_colour_distance(const cv::Mat& img, cv::Point at, const cv::Scalar& colour, int radius = 2) {
  double best = 1e9;
  for (int dy = -radius; dy <= radius; ++dy)
    for (int dx = -radius; dx <= radius; ++dx) {
      const cv::Point p(at.x + dx, at.y + dy);
      if (p.x < 0 || p.y < 0 || p.x >= img.cols || p.y >= img.rows) continue;
      const auto& px = img.at<cv::Vec3b>(p);
      best = std::min(best, std::abs(px[0] - colour[0]) + std::abs(px[1] - colour[1]) + std::abs(px[2] - colour[2]));
    }
  return best;
}

std::vector<EpochFigures> a_run() {  // 12 epochs, evaluated every 3rd, best AP at epoch 8
  std::vector<EpochFigures> run;
  for (int64_t e = 0; e < 12; ++e) {
    EpochFigures f;
    f.epoch = e;
    f.train_loss = 3.0 * std::exp(-0.2 * static_cast<double>(e)) + 0.4;
    if (e % 3 == 2) {
      f.val_loss = *f.train_loss + 0.3;
      f.ap = e == 8 ? 0.41 : 0.05 * static_cast<double>(e) / 3;
      f.ap50 = *f.ap + 0.2;
    }
    run.push_back(f);
  }
  return run;
}

TEST(SummaryPlot, EveryFigureIsDrawnWhereItsValueIs) {
  const auto run = a_run();
  const auto img = detr::draw_summary(run, "a run");
  ASSERT_EQ(img.cols, detr::SummaryLayout::kWidth);
  ASSERT_EQ(img.rows, detr::SummaryLayout::kHeight);
  const auto layout = detr::summary_layout(run);
  EXPECT_EQ(layout.loss_max, 4.0);  // 3.4 rounded up to a round axis
  EXPECT_EQ(layout.ap_max, 0.8);    // the best AP50, 0.61
  double worst = 0;
  int checked = 0;
  for (const auto& e : run) {
    auto expect_at = [&](cv::Point p, const cv::Scalar& colour, const char* what) {
      const double d = nearest_colour_distance(img, p, colour);
      worst = std::max(worst, d);
      ++checked;
      EXPECT_LT(d, 30) << what << " of epoch " << e.epoch << " is not drawn at " << p;
    };
    expect_at(layout.loss_point(e.epoch, *e.train_loss), SummaryColours::train_loss, "train loss");
    if (e.ap) {
      expect_at(layout.loss_point(e.epoch, *e.val_loss), SummaryColours::val_loss, "validation loss");
      expect_at(layout.ap_point(e.epoch, *e.ap), SummaryColours::ap, "AP");
      expect_at(layout.ap_point(e.epoch, *e.ap50), SummaryColours::ap50, "AP50");
    }
  }
  std::cout << "[ summary.png ] " << checked << " figures found at their points, worst colour distance " << worst
            << "\n";
  // The best epoch's dashed marker, between the AP points (where no series passes).
  const auto marker = layout.ap_point(8, 0.75);
  EXPECT_LT(nearest_colour_distance(img, marker, cv::Scalar(0, 0, 200), 6), 30);
  // Where no figure is: white.
  EXPECT_EQ(img.at<cv::Vec3b>(layout.ap_point(1, 0.7)), cv::Vec3b(255, 255, 255));
}

TEST(SummaryPlot, LogTxtIsReadAsTrainingWritesItAndWrittenAsPng) {
  const auto dir = detr::testing::scratch_dir("detr_summary_", "log");
  {
    std::ofstream log(dir / "log.txt");
    log << R"({"train_loss": 2.5, "epoch": 0, "n_parameters": 10})"
        << "\n"
        << "not json\n"
        << R"({"train_loss": 2.0, "test_loss": 2.2, "test_coco_eval_bbox": [0.1, 0.3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "epoch": 1})"
        << "\n"
        << R"({"train_loss": 1.5, "test_coco_eval_bbox": [-1, -1, -1], "test_coco_eval_masks": [0.2], "epoch": 2})"
        << "\n"
        << R"({"train_loss": 1.9, "epoch": 1})"
        << "\n"  // a resumed run repeats epoch 1: the last line stands
        << R"({"epoch": "3"})"
        << "\n";
  }
  const auto epochs = detr::read_epoch_figures(dir / "log.txt");
  ASSERT_EQ(epochs.size(), 3u);
  EXPECT_EQ(epochs[1].train_loss, 1.9);
  EXPECT_FALSE(epochs[1].ap.has_value());
  EXPECT_FALSE(epochs[2].ap.has_value());  // -1: nothing evaluated
  EXPECT_EQ(epochs[2].mask_ap, 0.2);
  // Only the newest lines of a huge log are read.
  EXPECT_EQ(detr::read_epoch_figures(dir / "log.txt", 40).size(), 0u);  // the last 40 bytes hold no whole epoch line
  detr::write_summary_png(dir / "log.txt", dir / "summary.png", "test");
  const auto png = cv::imread((dir / "summary.png").string());
  EXPECT_EQ(png.cols, detr::SummaryLayout::kWidth);
  EXPECT_EQ(png.rows, detr::SummaryLayout::kHeight);
  EXPECT_FALSE(fs::exists(dir / "summary.png.tmp"));
  detr::write_summary_png(dir / "empty.txt", dir / "none.png", "test");  // no log: no picture
  EXPECT_FALSE(fs::exists(dir / "none.png"));
}

TEST(SummaryPlot, ConfusionPictureShadesEachCellByItsShareOfTheRow) {
  detr::datasets::ConfusionMatrix m;
  m.classes = {{1, "cat"}, {2, "dog"}};
  m.counts = {{4, 0, 0}, {2, 2, 0}, {0, 1, 0}};  // cats all found; dogs half taken for cats; a false dog
  const auto img = detr::draw_confusion(m);
  ASSERT_FALSE(img.empty());
  auto centre = [&](size_t r, size_t k) {
    const auto cell = detr::confusion_cell(m, r, k);
    return img.at<cv::Vec3b>(cell.y + 3, cell.x + cell.width - 4);  // inside, clear of the count
  };
  EXPECT_EQ(centre(0, 0), cv::Vec3b(255, 55, 25));    // share 1: deep blue
  EXPECT_EQ(centre(1, 0), cv::Vec3b(255, 155, 140));  // share 0.5
  EXPECT_EQ(centre(0, 2), cv::Vec3b(255, 255, 255));  // share 0: white
  EXPECT_EQ(centre(2, 1), cv::Vec3b(255, 55, 25));    // the background row's one false dog
  const auto png = detr::encode_png(img);
  const auto back = cv::imdecode(std::vector<uchar>(png.begin(), png.end()), cv::IMREAD_COLOR);
  EXPECT_EQ(back.size(), img.size());
  std::cout << "[ confusion picture ] " << img.cols << "x" << img.rows << ", " << png.size() << " bytes as PNG\n";
  m.classes.resize(detr::kMaxConfusionClasses + 1);
  EXPECT_TRUE(detr::draw_confusion(m).empty());  // too many classes to read: no picture
}

TEST(SummaryPlot, ValidationImagesAreSpreadOverTheClassesAndDrawnWhereTheBoxesAre) {
  detr::datasets::CocoDataset val;
  val.categories = {{1, "cat"}, {2, "dog"}, {3, "owl"}};
  for (int64_t i = 0; i < 7; ++i) {
    detr::datasets::CocoImageRecord rec;
    rec.id = 10 + i;
    const int64_t cls = i < 4 ? 1 : i == 4 ? 2 : i == 5 ? 3 : 0;  // many cats, one dog, one owl, one empty
    if (cls) rec.objects.push_back({i, cls, {10, 10, 20, 20}, 400, false, {}});
    val.images.push_back(rec);
  }
  EXPECT_EQ(detr::pick_validation_images(val, 3), (std::vector<size_t>{0, 4, 5}));  // one of each class
  auto mixed = val;  // an image showing the cat and the dog stands for both
  mixed.images[0].objects.push_back({90, 2, {50, 50, 10, 10}, 100, false, {}});
  EXPECT_EQ(detr::pick_validation_images(mixed, 2), (std::vector<size_t>{0, 5}));
  EXPECT_EQ(detr::pick_validation_images(val, 5), (std::vector<size_t>{0, 1, 2, 4, 5}));
  EXPECT_EQ(detr::pick_validation_images(val, 100).size(), 7u);

  // A 200 x 100 grey image: the cat's box on the left (green), a detected dog on the right.
  const cv::Mat image(100, 200, CV_8UC3, cv::Scalar(128, 128, 128));
  detr::datasets::CocoImageRecord rec;
  rec.id = 1;
  rec.objects.push_back({1, 1, {20, 30, 60, 40}, 2400, false, {}});
  detr::datasets::CocoResult dog;
  dog.image_id = 1;
  dog.category_id = 2;
  dog.bbox = {100, 20, 50, 50};
  dog.score = 0.9;
  auto low = dog;
  low.score = 0.2;  // below the threshold: not drawn
  low.bbox = {10, 70, 20, 20};
  const auto out = detr::draw_validation_image(image, rec, {dog, low}, {}, val.categories, 0.5, 400);
  ASSERT_EQ(out.size(), cv::Size(808, 224));  // two 400 x 200 sides, a gap, a caption row
  const cv::Point left_edge(20 * 2, 24 + (30 + 20) * 2), right_edge(408 + 150 * 2, 24 + (20 + 25) * 2);
  EXPECT_LT(nearest_colour_distance(out, left_edge, cv::Scalar(40, 170, 40)), 30) << "ground truth box";
  const auto dog_colour = out.at<cv::Vec3b>(right_edge);
  EXPECT_NE(dog_colour, cv::Vec3b(128, 128, 128)) << "detected box";
  EXPECT_EQ(out.at<cv::Vec3b>(24 + 80 * 2, 408 + 10 * 2), cv::Vec3b(128, 128, 128)) << "a low score was drawn";
  EXPECT_NE(detr::draw_validation_image(image, rec, {low}, {}, val.categories, 0.1, 400)
                .at<cv::Vec3b>(24 + 80 * 2, 408 + 10 * 2),
            cv::Vec3b(128, 128, 128))
      << "the same box above the threshold is drawn there";
  // Boxes far outside or not finite, a 2000 x 1 image: drawn without fault.
  auto wild = dog;
  wild.bbox = {1e12, -1e12, 1e15, std::nan("")};
  auto far = dog;
  far.bbox = {-1e12, -1e12, 2e12, 2e12};
  EXPECT_EQ(detr::draw_validation_image(cv::Mat(1, 2000, CV_8UC3), rec, {wild, far}, {}, val.categories).rows, 1 + 24);
  const auto jpeg = detr::encode_jpeg(out);
  std::cout << "[ validation image ] " << out.cols << "x" << out.rows << ", " << jpeg.size() << " bytes as JPEG\n";
}

}  // namespace
