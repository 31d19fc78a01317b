// Inference with a trained model (our checkpoint or an upstream DETR file): images in, COCO results
// (and optionally annotated images) out. The model configuration comes from the checkpoint, else from
// an upstream checkpoint's args, else it is inferred from the state dict's shapes.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "datasets/coco.h"
#include "datasets/coco_mask.h"
#include "models/build.h"
#include "models/detr.h"
#include "models/model_config.h"
#include "src/amp.h"

namespace detr {

struct Predictor {
  models::DetrModel model;  // DETR, or DETRsegm for a --masks checkpoint
  models::ModelConfig config;
  std::vector<datasets::CocoCategory> classes;  // from our checkpoints; empty for upstream files
  torch::Device device = torch::kCPU;
  int64_t val_size = 800, max_size = 1333;
  Precision amp = Precision::fp32;  // the forward under autocast for bf16/fp16; post-processing in float32
};

// Loads a checkpoint file (or an Onepanel-style directory) for inference on `device`, its backbone
// convolutions run with `kernels`.
Predictor load_predictor(const std::filesystem::path& checkpoint,
                         const torch::Device& device,
                         const models::ConvKernels& kernels = {},
                         bool dilation = false);

struct Prediction {
  int64_t category_id;
  std::string name;  // from the checkpoint's classes, else ""
  float score;
  std::array<double, 4> bbox_xywh;    // absolute pixels
  std::optional<datasets::Rle> mask;  // segmentation models: PostProcessSegm's mask at the image's size
};

// One image: upstream's val transform (resize to val_size, max max_size), forward, PostProcess to the
// original size; keeps detections with score >= threshold, best first, at most topk (0 = all).
std::vector<Prediction> predict_image(Predictor& p, const std::filesystem::path& image, float threshold, int64_t topk);
// The same for a decoded image, [H, W, 3] uint8 RGB.
std::vector<Prediction> predict_rgb(Predictor& p, const torch::Tensor& rgb, float threshold, int64_t topk);

// An image prepared for the model: upstream's val transform applied.
struct PreparedImage {
  torch::Tensor image;            // [3, h, w] float, normalised, at the size fed to the model
  int64_t height = 0, width = 0;  // the original image's
  float threshold = 0.5f;
  int64_t topk = 100;
};
PreparedImage prepare_image(const Predictor& p, const torch::Tensor& rgb, float threshold, int64_t topk);

// Several prepared images in one forward, padded into one batch as upstream's evaluation pads them;
// each image's detections as predict_rgb gives them. Images of one fed size are not padded, and each
// one's detections then equal its own forward's up to float32 rounding; padding (images of different
// sizes) changes the features near the padded edges, as it does in upstream's batched evaluation.
std::vector<std::vector<Prediction>> predict_batch(Predictor& p, const std::vector<PreparedImage>& images);

// One prediction as a COCO result entry (without image_id): category_id, category_name when known,
// bbox (xywh), score, and for masks `segmentation` as compressed RLE {size, counts}.
nlohmann::json to_json(const Prediction& p);

// Draws boxes, masks, labels and scores on the image and writes it to `out`.
void draw_predictions(const std::filesystem::path& image,
                      const std::vector<Prediction>& predictions,
                      const std::filesystem::path& out);

}  // namespace detr
