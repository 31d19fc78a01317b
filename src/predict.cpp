#include "src/predict.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "datasets/image_io.h"
#include "datasets/transforms.h"
#include "models/post_process.h"
#include "src/checkpoint.h"
#include "src/serialization/state_dict.h"

namespace detr {

namespace fs = std::filesystem;

Predictor load_predictor(const fs::path& checkpoint,
                         const torch::Device& device,
                         const models::ConvKernels& kernels,
                         bool dilation) {
  const auto ck = load_checkpoint(resolve_checkpoint_path(checkpoint));
  Predictor p;
  p.device = device;
  p.config = checkpoint_model_config(ck, dilation);
  p.classes = ck.classes;
  p.val_size = ck.args.val_size.value_or(p.val_size);
  p.max_size = ck.args.max_size.value_or(p.max_size);
  p.model = models::build(p.config, /*freeze_detr=*/false, /*init_weights=*/false);  // strict load next
  naming_file(ck.path, [&] {
    serialization::load_state_dict(p.model.module(), ck.model, serialization::LoadOptions::strict());
  });
  p.model.set_conv_kernels(kernels);
  p.model.module().to(device);
  p.model.module().eval();
  return p;
}

std::vector<Prediction> predict_image(Predictor& p, const fs::path& image, float threshold, int64_t topk) {
  return predict_rgb(p, datasets::load_image_rgb(image), threshold, topk);
}

std::vector<Prediction> predict_rgb(Predictor& p, const torch::Tensor& rgb, float threshold, int64_t topk) {
  return predict_batch(p, {prepare_image(p, rgb, threshold, topk)}).front();
}

PreparedImage prepare_image(const Predictor& p, const torch::Tensor& rgb, float threshold, int64_t topk) {
  datasets::Sample s;
  s.image = datasets::to_chw_float(rgb);
  PreparedImage out;
  out.height = s.image.size(1);
  out.width = s.image.size(2);
  out.threshold = threshold;
  out.topk = topk;
  s.target.boxes = torch::zeros({0, 4});
  s.target.labels = torch::zeros({0}, torch::kLong);
  datasets::TransformConfig tc;
  tc.val_size = p.val_size;
  tc.max_size = p.max_size;
  out.image = datasets::val_transforms(std::move(s), tc).image;
  return out;
}

namespace {

// One image's detections, filtered by its threshold and topk, best first.
std::vector<Prediction> keep_detections(const Predictor& p, const models::Detections& det, const PreparedImage& im) {
  auto scores = det.scores.to(torch::kCPU), labels = det.labels.to(torch::kCPU);
  auto boxes = det.boxes.to(torch::kCPU, torch::kDouble);
  auto order = std::get<1>(scores.sort(0, /*descending=*/true));
  std::vector<Prediction> preds;
  for (int64_t k = 0; k < order.size(0); ++k) {
    const int64_t q = order[k].item<int64_t>();
    const float score = scores[q].item<float>();
    if (score < im.threshold || (im.topk > 0 && static_cast<int64_t>(preds.size()) >= im.topk)) break;
    Prediction pr;
    pr.category_id = labels[q].item<int64_t>();
    pr.score = score;
    for (const auto& c : p.classes)
      if (c.id == pr.category_id) pr.name = c.name;
    const auto b = boxes[q];
    const double x0 = b[0].item<double>(), y0 = b[1].item<double>(), x1 = b[2].item<double>(), y1 = b[3].item<double>();
    pr.bbox_xywh = {x0, y0, x1 - x0, y1 - y0};
    if (det.has_masks()) {
      const auto m = det.mask(q).contiguous();  // [H, W] 0/1
      pr.mask = datasets::encode(m.data_ptr<uint8_t>(), im.height, im.width, datasets::MaskLayout::row_major);
    }
    preds.push_back(pr);
  }
  return preds;
}

}  // namespace

std::vector<std::vector<Prediction>> predict_batch(Predictor& p, const std::vector<PreparedImage>& images) {
  TORCH_CHECK(!images.empty(), "predict_batch: no images");
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> fed;
  std::vector<int64_t> orig, fed_sizes;  // (h, w) per image
  for (const auto& im : images) {
    fed.push_back(im.image);
    orig.insert(orig.end(), {im.height, im.width});
    fed_sizes.insert(fed_sizes.end(), {im.image.size(1), im.image.size(2)});
  }
  const auto b = static_cast<int64_t>(images.size());
  auto samples = util::nested_tensor_from_tensor_list(fed).to(p.device);
  auto out = [&] {
    AutocastGuard autocast(p.device, p.amp);
    return p.model.forward(samples);
  }();
  if (p.amp != Precision::fp32) out = to_float32(out);
  const auto orig_sizes = torch::tensor(orig, torch::kLong).view({b, 2});
  auto dets = models::post_process(out, orig_sizes);
  if (out.pred_masks.defined())  // fed size: each image after the val transform, before padding
    models::post_process_segm(dets, out, orig_sizes, torch::tensor(fed_sizes, torch::kLong).view({b, 2}));
  std::vector<std::vector<Prediction>> all;
  for (int64_t i = 0; i < b; ++i) all.push_back(keep_detections(p, dets[i], images[i]));
  return all;
}

nlohmann::json to_json(const Prediction& p) {
  nlohmann::json r{{"category_id", p.category_id}, {"bbox", p.bbox_xywh}, {"score", p.score}};
  if (!p.name.empty()) r["category_name"] = p.name;
  if (p.mask)
    r["segmentation"] = {{"size", {p.mask->height, p.mask->width}}, {"counts", datasets::rle_to_string(*p.mask)}};
  return r;
}

void draw_predictions(const fs::path& image, const std::vector<Prediction>& preds, const fs::path& out) {
  auto rgb = datasets::load_image_rgb(image).contiguous();
  cv::Mat img(static_cast<int>(rgb.size(0)), static_cast<int>(rgb.size(1)), CV_8UC3, rgb.data_ptr<uint8_t>());
  for (const auto& p : preds) {
    const cv::Scalar colour(255 * ((p.category_id * 67) % 7) / 6, 255 * ((p.category_id * 29) % 5) / 4, 220);
    if (p.mask) {  // the mask, 40% over the image
      const auto bits = datasets::decode(*p.mask, datasets::MaskLayout::row_major);
      cv::Mat mask(img.rows, img.cols, CV_8UC1, const_cast<uint8_t*>(bits.data()));
      cv::Mat tinted = img.clone();
      tinted.setTo(colour, mask);
      cv::addWeighted(tinted, 0.4, img, 0.6, 0, tinted);
      tinted.copyTo(img, mask);
    }
    const cv::Rect r(static_cast<int>(p.bbox_xywh[0]), static_cast<int>(p.bbox_xywh[1]),
                     static_cast<int>(p.bbox_xywh[2]), static_cast<int>(p.bbox_xywh[3]));
    cv::rectangle(img, r, colour, 2);
    const auto label = (p.name.empty() ? std::to_string(p.category_id) : p.name) + " " +
                       std::to_string(static_cast<int>(p.score * 100 + 0.5)) + "%";
    cv::putText(img, label, cv::Point(r.x, std::max(12, r.y - 3)), cv::FONT_HERSHEY_SIMPLEX, 0.4, colour, 1);
  }
  datasets::save_image_rgb(rgb, out);
}

}  // namespace detr
