#include "src/predict.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <regex>
#include <set>
#include <tuple>

#include "datasets/image_io.h"
#include "datasets/transforms.h"
#include "models/post_process.h"
#include "src/checkpoint.h"
#include "src/serialization/state_dict.h"
#include "src/serialization/torch_save.h"

namespace detr {

namespace fs = std::filesystem;

models::ModelConfig infer_model_config(const std::map<std::string, torch::Tensor>& state, bool dilation) {
  // A segmentation model (upstream DETRsegm): its DETR's keys carry "detr.".
  std::map<std::string, torch::Tensor> s;
  for (const auto& [k, v] : state)
    if (k.rfind("detr.", 0) == 0) s.emplace(k.substr(5), v);
  const bool masks = !s.empty();
  if (!masks) s = state;
  auto shape = [&](const std::string& k) -> std::vector<int64_t> {
    auto it = s.find(k);
    if (it == s.end()) throw std::runtime_error("state dict has no '" + k + "': not a DETR model");
    return it->second.sizes().vec();
  };
  auto count = [&](const std::string& prefix) {
    std::set<int64_t> ids;
    const std::regex re("^" + prefix + "(\\d+)\\.");
    for (const auto& [k, v] : s) {
      std::smatch m;
      if (std::regex_search(k, m, re)) ids.insert(std::stoll(m[1]));
    }
    return static_cast<int64_t>(ids.size());
  };
  models::ModelConfig c;
  const bool bottleneck = s.count("backbone.0.body.layer1.0.conv3.weight") > 0;
  const int64_t layer3 = count("backbone\\.0\\.body\\.layer3\\.");
  if (bottleneck)
    c.backbone = layer3 >= 23 ? "resnet101" : "resnet50";
  else
    c.backbone = count("backbone\\.0\\.body\\.layer2\\.") >= 4 ? "resnet34" : "resnet18";
  c.dilation = dilation;
  c.hidden_dim = shape("query_embed.weight")[1];
  c.num_queries = shape("query_embed.weight")[0];
  c.num_classes = shape("class_embed.weight")[0] - 1;
  c.enc_layers = count("transformer\\.encoder\\.layers\\.");
  c.dec_layers = count("transformer\\.decoder\\.layers\\.");
  c.dim_feedforward = c.enc_layers ? shape("transformer.encoder.layers.0.linear1.weight")[0]
                                   : shape("transformer.decoder.layers.0.linear1.weight")[0];
  c.pre_norm = s.count("transformer.encoder.norm.weight") > 0;
  c.position_embedding = s.count("backbone.1.row_embed.weight") ? models::PositionEmbedding::kLearned
                                                                 : models::PositionEmbedding::kSine;
  c.nheads = c.hidden_dim % 8 == 0 ? 8 : 1;  // not visible in weights; upstream's default
  c.dropout = 0;
  c.masks = masks;
  return c;
}

namespace {

// A checkpoint's model_config is a claim; its weights are what the file is. Building the network from
// the claim alone let a crafted config allocate without bound (measured: 10.7 GB for huge layer and
// query counts), so every size the weights show must agree with it before anything is built.
void check_config_against_weights(const fs::path& path, const models::ModelConfig& c,
                                  const std::map<std::string, torch::Tensor>& state) {
  const auto w = naming_file(path, [&] { return infer_model_config(state, c.dilation); });
  const auto differ = [&](const char* field, const std::string& claimed, const std::string& shown) {
    if (claimed != shown)
      throw std::runtime_error(path.string() + ": model_config says " + field + " " + claimed +
                               ", but the weights have " + shown + " (a damaged or crafted checkpoint)");
  };
  differ("backbone", c.backbone, w.backbone);
  differ("masks", c.masks ? "true" : "false", w.masks ? "true" : "false");
  for (const auto& [field, claimed, shown] :
       {std::tuple<const char*, int64_t, int64_t>{"hidden_dim", c.hidden_dim, w.hidden_dim},
        {"num_queries", c.num_queries, w.num_queries},
        {"num_classes", c.num_classes, w.num_classes},
        {"enc_layers", c.enc_layers, w.enc_layers},
        {"dec_layers", c.dec_layers, w.dec_layers},
        {"dim_feedforward", c.dim_feedforward, w.dim_feedforward}})
    differ(field, std::to_string(claimed), std::to_string(shown));
}

// NaN or infinite weights would answer every image with null scores and boxes: refused by name.
void check_finite(const fs::path& path, const std::map<std::string, torch::Tensor>& state) {
  for (const auto& [key, t] : state)
    if (t.is_floating_point() && !torch::isfinite(t).all().item<bool>())
      throw std::runtime_error(path.string() + ": weight '" + key + "' holds NaN or infinite values");
}

}  // namespace

Predictor load_predictor(const fs::path& checkpoint, const torch::Device& device, const models::ConvKernels& kernels,
                         bool dilation) {
  const auto path = resolve_checkpoint_path(checkpoint);
  const auto root = serialization::torch_load(path);
  const auto state = naming_file(path, [&] { return serialization::to_state_dict(root); });
  Predictor p;
  p.device = device;
  if (const auto* mc = root.is_dict() ? root.find("model_config") : nullptr) {
    p.config = naming_file(path, [&] { return models::model_config_from_json(serialization::to_json(*mc)); });
  } else {
    p.config = naming_file(path, [&] { return infer_model_config(state, dilation); });
    // Upstream checkpoints carry their argparse Namespace: take what the weights cannot show.
    if (const auto* args = root.is_dict() ? root.find("args") : nullptr) {
      if (const auto* v = args->find_attr("nheads")) p.config.nheads = v->as_int();
      if (const auto* v = args->find_attr("dilation")) p.config.dilation = v->as_bool();
    }
  }
  check_config_against_weights(path, p.config, state);
  check_finite(path, state);
  if (const auto* cl = root.is_dict() ? root.find("classes") : nullptr)
    for (const auto& item : cl->items()) p.classes.push_back({item.at("id").as_int(), item.at("name").as_str()});
  p.model = models::build(p.config);
  naming_file(path, [&] { serialization::load_state_dict(p.model.module(), state, serialization::LoadOptions::strict()); });
  p.model.set_conv_kernels(kernels);
  p.model.module().to(device);
  p.model.module().eval();
  if (const auto* args = root.is_dict() ? root.find("args") : nullptr; args && args->is_dict()) {
    if (const auto* v = args->find("val_size"); v && v->is_int()) p.val_size = v->as_int();
    if (const auto* v = args->find("max_size"); v && v->is_int()) p.max_size = v->as_int();
  }
  return p;
}

std::vector<Prediction> predict_image(Predictor& p, const fs::path& image, float threshold, int64_t topk) {
  return predict_rgb(p, datasets::load_image_rgb(image), threshold, topk);
}

std::vector<Prediction> predict_rgb(Predictor& p, const torch::Tensor& rgb, float threshold, int64_t topk) {
  torch::NoGradGuard no_grad;
  datasets::Sample s;
  s.image = datasets::to_chw_float(rgb);
  const int64_t h = s.image.size(1), w = s.image.size(2);
  s.target.boxes = torch::zeros({0, 4});
  s.target.labels = torch::zeros({0}, torch::kLong);
  datasets::TransformConfig tc;
  tc.val_size = p.val_size;
  tc.max_size = p.max_size;
  s = datasets::val_transforms(std::move(s), tc);
  auto samples = util::nested_tensor_from_tensor_list({s.image}).to(p.device);
  auto out = p.model.forward(samples);
  const auto orig_size = torch::tensor({{h, w}}, torch::kLong);
  auto dets = models::post_process(out, orig_size);
  if (out.pred_masks.defined())  // fed size: the image after the val transform, before padding
    models::post_process_segm(dets, out, orig_size, torch::tensor({{s.image.size(1), s.image.size(2)}}, torch::kLong));
  auto& det = dets[0];
  auto scores = det.scores.to(torch::kCPU), labels = det.labels.to(torch::kCPU);
  auto boxes = det.boxes.to(torch::kCPU, torch::kDouble);
  auto order = std::get<1>(scores.sort(0, /*descending=*/true));
  std::vector<Prediction> preds;
  for (int64_t k = 0; k < order.size(0); ++k) {
    const int64_t q = order[k].item<int64_t>();
    const float score = scores[q].item<float>();
    if (score < threshold || (topk > 0 && static_cast<int64_t>(preds.size()) >= topk)) break;
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
      pr.mask = datasets::encode(m.data_ptr<uint8_t>(), h, w, datasets::MaskLayout::row_major);
    }
    preds.push_back(pr);
  }
  return preds;
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
