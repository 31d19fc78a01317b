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
    throw std::invalid_argument(std::string("model config: '") + key + "': " + e.what() + ", got " +
                                it->dump());
  }
}

}  // namespace

void ModelConfig::validate() const {
  auto fail = [](const std::string& what) { throw std::invalid_argument("model config: " + what); };
  if (backbone != "resnet18" && backbone != "resnet34" && backbone != "resnet50" &&
      backbone != "resnet101")
    fail("backbone '" + backbone + "' is not one of resnet18, resnet34, resnet50, resnet101");
  if (dilation && (backbone == "resnet18" || backbone == "resnet34"))
    fail("dilation (DC5) needs a Bottleneck ResNet (resnet50/101); " + backbone +
         " has BasicBlocks, which torchvision does not dilate");
  if (position_embedding != "sine" && position_embedding != "v2" &&
      position_embedding != "learned" && position_embedding != "v3")
    fail("position_embedding '" + position_embedding + "' is not one of sine, learned");
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
}

std::map<std::string, double> ModelConfig::weight_dict() const {
  std::map<std::string, double> w{
      {"loss_ce", 1}, {"loss_bbox", bbox_loss_coef}, {"loss_giou", giou_loss_coef}};
  if (aux_loss) {
    for (int64_t i = 0; i + 1 < dec_layers; ++i) {
      const auto s = "_" + std::to_string(i);
      w["loss_ce" + s] = 1;
      w["loss_bbox" + s] = bbox_loss_coef;
      w["loss_giou" + s] = giou_loss_coef;
    }
  }
  return w;
}

nlohmann::json to_json(const ModelConfig& c) {
  return {{"backbone", c.backbone},
          {"dilation", c.dilation},
          {"position_embedding", c.position_embedding},
          {"lr_backbone", c.lr_backbone},
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
          {"eos_coef", c.eos_coef}};
}

ModelConfig model_config_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("model config: expected a JSON object");
  ModelConfig c;
  read(j, "backbone", c.backbone);
  read(j, "dilation", c.dilation);
  read(j, "position_embedding", c.position_embedding);
  read(j, "lr_backbone", c.lr_backbone);
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
  c.validate();
  return c;
}

}  // namespace detr::models
