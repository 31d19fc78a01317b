// summary.png: a one-page picture of a training run, redrawn from log.txt after every epoch (so a
// stopped or resumed run has it too): the training and validation loss over epochs on the left, the
// validation AP and AP50 (and mask AP with --masks) on the right, the best epoch marked and named.
#pragma once
#include <opencv2/core.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "datasets/eval_tables.h"

namespace detr {

// One log.txt line's figures; absent where the epoch has none (no evaluation that epoch).
struct EpochFigures {
  int64_t epoch = 0;
  std::optional<double> train_loss, val_loss, ap, ap50, mask_ap;
};

// The epochs of a log.txt (one JSON object a line: upstream's train_loss, test_loss,
// test_coco_eval_bbox, test_coco_eval_masks, epoch). Lines that are not such objects are skipped; a
// resumed run's repeated epochs keep their last line. Reads at most `max_bytes` (the newest lines).
std::vector<EpochFigures> read_epoch_figures(const std::filesystem::path& log_txt, size_t max_bytes = 64 << 20);

// Where the plots lie in the picture, and where a value lands: for the tests and the drawing alike.
struct SummaryLayout {
  static constexpr int kWidth = 1280, kHeight = 560;
  cv::Rect loss_panel, ap_panel;  // plot areas, inside the axes
  int64_t first_epoch = 0, last_epoch = 0;
  double loss_max = 1, ap_max = 1;  // the axes run 0..loss_max and 0..ap_max (the best AP rounded up)
  cv::Point loss_point(int64_t epoch, double loss) const;
  cv::Point ap_point(int64_t epoch, double ap) const;
};
SummaryLayout summary_layout(const std::vector<EpochFigures>& epochs);

// Line colours (BGR), named in the legends.
struct SummaryColours {
  static inline const cv::Scalar train_loss{200, 120, 30}, val_loss{40, 110, 230}, ap{60, 160, 40}, ap50{170, 80, 170},
      mask_ap{30, 170, 200};
};

// The picture, kWidth x kHeight BGR. `title` heads it (e.g. the output folder's name).
cv::Mat draw_summary(const std::vector<EpochFigures>& epochs, const std::string& title);

// Reads log_txt, draws, writes `png` whole (temp file + rename). Nothing when the log has no epoch.
void write_summary_png(const std::filesystem::path& log_txt,
                       const std::filesystem::path& png,
                       const std::string& title);

// The confusion matrix as a picture (TensorBoard's eval/confusion_matrix): a cell per (ground truth,
// detected) pair shaded by its share of the row's ground truth, with its count where the cell is large
// enough, the class names along both axes (background last). Up to kMaxConfusionClasses classes;
// empty (no picture) beyond.
constexpr size_t kMaxConfusionClasses = 100;
cv::Mat draw_confusion(const datasets::ConfusionMatrix& m);
// The cell of (row, column) in that picture, for the tests.
cv::Rect confusion_cell(const datasets::ConfusionMatrix& m, size_t row, size_t column);

// The validation images shown in TensorBoard: n of them, chosen once per run and spread over the
// classes (each class in id order in turn gives its first image not yet chosen, until n), in image
// order. Indices into val.images.
std::vector<size_t> pick_validation_images(const datasets::CocoDataset& val, size_t n);

// One validation image as TensorBoard shows it (eval/predictions/...): the ground truth on the left
// (green boxes, class names), the detections scored >= threshold on the right (a colour per class,
// "name 87%", masks 40% over the image), each side scaled to `longest_side`. `bgr` is the image.
cv::Mat draw_validation_image(const cv::Mat& bgr,
                              const datasets::CocoImageRecord& rec,
                              const std::vector<datasets::CocoResult>& detections,
                              const std::vector<datasets::CocoResult>& mask_detections,
                              const std::vector<datasets::CocoCategory>& categories,
                              double threshold = 0.5,
                              int longest_side = 320);

// JPEG bytes of a BGR picture (quality 75): validation images, small in the event file.
std::string encode_jpeg(const cv::Mat& bgr);

// PNG bytes of a BGR picture.
std::string encode_png(const cv::Mat& bgr);

}  // namespace detr
