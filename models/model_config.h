// What the network *is*: the upstream main.py arguments that shape the model, the matcher and the
// criterion (names and defaults as upstream's argparse). Stored in every checkpoint so the model can be
// rebuilt from the file alone; run settings (lr, epochs, paths) live elsewhere.
#pragma once
#include <nlohmann/json.hpp>

#include <map>
#include <string>

namespace detr::models {

enum class PositionEmbedding { kSine, kLearned };
// "sine" (also upstream's "v2") | "learned" ("v3"); throws std::invalid_argument naming the value.
PositionEmbedding parse_position_embedding(const std::string& name);
std::string to_string(PositionEmbedding p);

struct ModelConfig {
  // Backbone
  std::string backbone = "resnet50";  // resnet18 | resnet34 | resnet50 | resnet101
  bool dilation = false;              // DC5: dilate layer4 instead of striding
  PositionEmbedding position_embedding = PositionEmbedding::kSine;
  bool train_backbone = true;  // upstream: lr_backbone > 0 (false freezes the whole backbone)
  // Transformer
  int64_t enc_layers = 6;
  int64_t dec_layers = 6;
  int64_t dim_feedforward = 2048;
  int64_t hidden_dim = 256;
  double dropout = 0.1;
  int64_t nheads = 8;
  int64_t num_queries = 100;
  bool pre_norm = false;
  // Head: num_classes = max category id + 1; index num_classes is "no object".
  int64_t num_classes = 91;
  bool aux_loss = true;
  // Matcher costs
  double set_cost_class = 1;
  double set_cost_bbox = 5;
  double set_cost_giou = 2;
  // Loss coefficients
  double bbox_loss_coef = 5;
  double giou_loss_coef = 2;
  double eos_coef = 0.1;
  // Segmentation (upstream --masks): DETRsegm's mask head, and its two loss terms' coefficients.
  bool masks = false;
  double mask_loss_coef = 1;
  double dice_loss_coef = 1;

  // Throws std::invalid_argument naming the field and value when the combination cannot be built.
  void validate() const;
  // Upstream's weight_dict: loss_ce, loss_bbox, loss_giou (with masks: loss_mask, loss_dice) and their
  // _<i> aux copies (upstream copies the mask terms too, though aux layers get no mask loss).
  std::map<std::string, double> weight_dict() const;
};

// JSON with upstream's argument names. from_json ignores unknown keys (a fixture's config.json or an
// upstream args dict carries more) but rejects known keys of the wrong type, naming them.
nlohmann::json to_json(const ModelConfig& config);
ModelConfig model_config_from_json(const nlohmann::json& j);

}  // namespace detr::models
