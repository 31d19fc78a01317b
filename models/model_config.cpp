#include "models/model_config.h"

#include <stdexcept>

namespace detr::models {

namespace {

template <typename T>
void read(const nlohmann::json& j, const char* key, T& value) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  try {
    if constexpr (std::is_same_v<T, bool>) {
      if (!it->is_boolean()) throw std::invalid_argument("expected a boolean");
    } else if constexpr (std::is_arithmetic_v<T>) {
      if (!it->is_number()) throw std::invalid_argument("expected a number");
    } else {
      if (!it->is_string()) throw std::invalid_argument("expected a string");
    }
    value = it->get<T>();
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string("model config: '") + key + "': " + e.what() + ", got " + it->dump());
  }
}

}  // namespace

PositionEmbedding parse_position_embedding(const std::string& name) {
  if (name == "sine" || name == "v2") return PositionEmbedding::kSine;
  if (name == "learned" || name == "v3") return PositionEmbedding::kLearned;
  throw std::invalid_argument("position_embedding '" + name + "' is not one of sine, learned");
}

std::string to_string(PositionEmbedding p) { return p == PositionEmbedding::kSine ? "sine" : "learned"; }

void ModelConfig::validate() const {
  auto fail = [](const std::string& what) { throw std::invalid_argument("model config: " + what); };
  if (backbone != "resnet18" && backbone != "resnet34" && backbone != "resnet50" && backbone != "resnet101")
    fail("backbone '" + backbone + "' is not one of resnet18, resnet34, resnet50, resnet101");
  if (dilation && (backbone == "resnet18" || backbone == "resnet34"))
    fail("dilation (DC5) needs a Bottleneck ResNet (resnet50/101); " + backbone +
         " has BasicBlocks, which torchvision does not dilate");
  if (hidden_dim <= 0 || nheads <= 0 || hidden_dim % nheads != 0)
    fail("hidden_dim " + std::to_string(hidden_dim) + " must be a positive multiple of nheads " +
         std::to_string(nheads));
  if (hidden_dim % 2 != 0) fail("hidden_dim " + std::to_string(hidden_dim) + " must be even");
  if (enc_layers < 0) fail("enc_layers " + std::to_string(enc_layers) + " must be >= 0");
  if (dec_layers < 1) fail("dec_layers " + std::to_string(dec_layers) + " must be >= 1");
  if (dim_feedforward <= 0) fail("dim_feedforward must be > 0");
  if (num_queries <= 0) fail("num_queries " + std::to_string(num_queries) + " must be > 0");
  if (num_classes <= 0) fail("num_classes " + std::to_string(num_classes) + " must be > 0");
  if (dropout < 0 || dropout >= 1) fail("dropout " + std::to_string(dropout) + " must be in [0, 1)");
  if (masks) {
    // MaskHeadSmallConv's GroupNorm(8, c) layers: c = hidden_dim + nheads, hidden_dim / 2, 4, 8, 16.
    for (int64_t c : {hidden_dim + nheads, hidden_dim / 2, hidden_dim / 4, hidden_dim / 8, hidden_dim / 16})
      if (c <= 0 || c % 8 != 0)
        fail(
            "masks: the mask head's group norms need hidden_dim + nheads and hidden_dim / 2, 4, 8, 16 "
            "to be positive multiples of 8; hidden_dim " +
            std::to_string(hidden_dim) + " and nheads " + std::to_string(nheads) + " give " + std::to_string(c));
  }
}

std::map<std::string, double> ModelConfig::weight_dict() const {
  std::map<std::string, double> w{{"loss_ce", 1}, {"loss_bbox", bbox_loss_coef}, {"loss_giou", giou_loss_coef}};
  if (masks) {
    w["loss_mask"] = mask_loss_coef;
    w["loss_dice"] = dice_loss_coef;
  }
  if (aux_loss) {
    const auto final_layer = w;
    for (int64_t i = 0; i + 1 < dec_layers; ++i)
      for (const auto& [key, weight] : final_layer) w[key + "_" + std::to_string(i)] = weight;
  }
  return w;
}

nlohmann::json to_json(const ModelConfig& c) {
  return {{"backbone", c.backbone},
          {"dilation", c.dilation},
          {"position_embedding", to_string(c.position_embedding)},
          {"train_backbone", c.train_backbone},
          {"enc_layers", c.enc_layers},
          {"dec_layers", c.dec_layers},
          {"dim_feedforward", c.dim_feedforward},
          {"hidden_dim", c.hidden_dim},
          {"dropout", c.dropout},
          {"nheads", c.nheads},
          {"num_queries", c.num_queries},
          {"pre_norm", c.pre_norm},
          {"num_classes", c.num_classes},
          {"aux_loss", c.aux_loss},
          {"set_cost_class", c.set_cost_class},
          {"set_cost_bbox", c.set_cost_bbox},
          {"set_cost_giou", c.set_cost_giou},
          {"bbox_loss_coef", c.bbox_loss_coef},
          {"giou_loss_coef", c.giou_loss_coef},
          {"eos_coef", c.eos_coef},
          {"masks", c.masks},
          {"mask_loss_coef", c.mask_loss_coef},
          {"dice_loss_coef", c.dice_loss_coef}};
}

ModelConfig model_config_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("model config: expected a JSON object");
  ModelConfig c;
  read(j, "backbone", c.backbone);
  read(j, "dilation", c.dilation);
  std::string position_embedding = to_string(c.position_embedding);
  read(j, "position_embedding", position_embedding);
  try {
    c.position_embedding = parse_position_embedding(position_embedding);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("model config: ") + e.what());
  }
  // Upstream's args (and older checkpoints of ours) say lr_backbone; train_backbone = lr_backbone > 0.
  if (j.contains("lr_backbone") && !j.contains("train_backbone")) {
    double lr_backbone = 0;
    read(j, "lr_backbone", lr_backbone);
    c.train_backbone = lr_backbone > 0;
  }
  read(j, "train_backbone", c.train_backbone);
  read(j, "enc_layers", c.enc_layers);
  read(j, "dec_layers", c.dec_layers);
  read(j, "dim_feedforward", c.dim_feedforward);
  read(j, "hidden_dim", c.hidden_dim);
  read(j, "dropout", c.dropout);
  read(j, "nheads", c.nheads);
  read(j, "num_queries", c.num_queries);
  read(j, "pre_norm", c.pre_norm);
  read(j, "num_classes", c.num_classes);
  read(j, "aux_loss", c.aux_loss);
  read(j, "set_cost_class", c.set_cost_class);
  read(j, "set_cost_bbox", c.set_cost_bbox);
  read(j, "set_cost_giou", c.set_cost_giou);
  read(j, "bbox_loss_coef", c.bbox_loss_coef);
  read(j, "giou_loss_coef", c.giou_loss_coef);
  read(j, "eos_coef", c.eos_coef);
  read(j, "masks", c.masks);
  read(j, "mask_loss_coef", c.mask_loss_coef);
  read(j, "dice_loss_coef", c.dice_loss_coef);
  c.validate();
  return c;
}

}  // namespace detr::models
