// DETR's segmentation model (upstream --masks): parity with upstream on the committed tiny_r18_segm and
// the optional r50_segm, state_dict keys, FPN widths per backbone, freeze_detr, the mask losses, the
// criterion's mask terms and PostProcessSegm. Prints the deviations it measures.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <array>
#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "models/post_process.h"
#include "models/segmentation.h"
#include "models/set_criterion.h"
#include "src/tools/parity.h"
#include "tests/fixtures.h"

using namespace detr::models;
using detr::util::Target;

namespace {

void expect_parity(const std::filesystem::path& dir) {
  auto report = detr::run_forward_parity(dir.string());
  std::cout << report.format();
  EXPECT_TRUE(report.ok());
  for (const auto* name : {"out.pred_masks", "loss.loss_mask", "loss.loss_dice", "postprocess.0.mask_area"}) {
    bool found = false;
    for (const auto& r : report.rows) found |= r.name == name;
    EXPECT_TRUE(found) << name << " was not compared";
  }
}

std::map<std::string, std::vector<int64_t>> our_keys(torch::nn::Module& m) {
  std::map<std::string, std::vector<int64_t>> keys;
  for (const auto& p : m.named_parameters()) keys[p.key()] = p.value().sizes().vec();
  for (const auto& b : m.named_buffers()) keys[b.key()] = b.value().sizes().vec();
  return keys;
}

// Every key and shape of upstream's state_dict (tests/reference/make_detr_fixture.py) is ours, no more.
void expect_same_keys_as_committed(const ModelConfig& config, const std::string& fixture) {
  const auto path = detr::testing::data_dir() / "detr" / fixture / "state_dict_shapes.json";
  std::ifstream in(path);
  ASSERT_TRUE(in) << "cannot open " << path;
  const auto ref = nlohmann::json::parse(in).get<std::map<std::string, std::vector<int64_t>>>();
  auto model = build_segmentation_model(config);
  const auto ours = our_keys(*model);
  std::cout << path.string() << ": " << ours.size() << " keys ours, " << ref.size() << " upstream\n";
  EXPECT_EQ(ours, ref);
}

ModelConfig tiny_segm_config(const std::string& backbone = "resnet18") {
  ModelConfig c;
  c.backbone = backbone;
  c.hidden_dim = 128;
  c.nheads = 8;
  c.enc_layers = 1;
  c.dec_layers = 2;
  c.dim_feedforward = 64;
  c.num_queries = 5;
  c.num_classes = 4;
  c.dropout = 0;
  c.masks = true;
  return c;
}

Target target_with_masks(int64_t n, int64_t h, int64_t w) {
  Target t;
  t.boxes = torch::tensor({0.5f, 0.5f, 0.4f, 0.3f}).repeat({n, 1});
  t.labels = torch::ones({n}, torch::kLong);
  t.masks = torch::zeros({n, h, w}, torch::kBool);
  if (n > 0) t.masks.slice(1, h / 4, h / 2).slice(2, w / 4, w / 2).fill_(true);
  return t;
}

}  // namespace

TEST(Segmentation, TinyR18SegmMatchesUpstream) { expect_parity(detr::testing::data_dir() / "detr" / "tiny_r18_segm"); }

TEST(SegmentationOptionalFixtures, R50SegmMatchesUpstream) {
  const auto dir = detr::testing::fixtures_dir() / "detr" / "r50_segm";
  DETR_REQUIRE_FIXTURE(dir / "expected.pth");
  DETR_REQUIRE_FIXTURE(dir / ".." / "r50_default" / "model.pth");
  expect_parity(dir);
}

TEST(Segmentation, R50StateDictKeysAndShapesEqualUpstream) {
  ModelConfig c;  // upstream's defaults, --masks
  c.num_classes = 91;
  expect_same_keys_as_committed(c, "r50_segm_keys");
}

TEST(Segmentation, TinyR18SegmStateDictKeysEqualUpstream) {
  auto c = tiny_segm_config();
  c.enc_layers = 2;
  c.dim_feedforward = 128;
  c.num_queries = 10;
  expect_same_keys_as_committed(c, "tiny_r18_segm");
}

TEST(Segmentation, FpnWidthsFollowTheBackbone) {
  const std::map<std::string, std::vector<int64_t>> widths{
      {"resnet18", {256, 128, 64}}, {"resnet34", {256, 128, 64}}, {"resnet50", {1024, 512, 256}}};
  for (const auto& [backbone, want] : widths) {
    auto model = build_segmentation_model(tiny_segm_config(backbone));
    const auto& h = model->mask_head;
    const std::vector<int64_t> got{h->adapter1->weight.size(1), h->adapter2->weight.size(1),
                                   h->adapter3->weight.size(1)};
    std::cout << backbone << ": adapter inputs " << got << "\n";
    EXPECT_EQ(got, want) << backbone;
    EXPECT_EQ(h->lay1->weight.size(0), 128 + 8);
  }
}

TEST(Segmentation, ForwardGivesQuarterResolutionMasksForEveryQuery) {
  torch::manual_seed(0);
  auto model = build_segmentation_model(tiny_segm_config());
  auto samples = detr::util::nested_tensor_from_tensor_list({torch::randn({3, 64, 96}), torch::randn({3, 80, 64})});
  auto out = model->forward(samples);
  EXPECT_EQ(out.pred_masks.sizes(), (std::vector<int64_t>{2, 5, 20, 24}));
  EXPECT_EQ(out.pred_logits.sizes(), (std::vector<int64_t>{2, 5, 5}));
  EXPECT_EQ(out.aux_outputs.size(), 1u);
  // The box predictions are DETR's own.
  auto box = model->detr->forward(samples);
  EXPECT_TRUE(torch::equal(box.pred_logits, out.pred_logits));
  EXPECT_FALSE(box.pred_masks.defined());
}

TEST(Segmentation, FreezeDetrFreezesEveryDetrParameterOnly) {
  auto frozen = build_segmentation_model(tiny_segm_config(), /*freeze_detr=*/true);
  int64_t trainable_detr = 0, frozen_head = 0;
  for (const auto& p : frozen->named_parameters()) {
    const bool in_detr = p.key().rfind("detr.", 0) == 0;
    trainable_detr += in_detr && p.value().requires_grad();
    frozen_head += !in_detr && !p.value().requires_grad();
  }
  EXPECT_EQ(trainable_detr, 0);
  EXPECT_EQ(frozen_head, 0);
  const int64_t head =
      count_trainable_parameters(*frozen->bbox_attention) + count_trainable_parameters(*frozen->mask_head);
  EXPECT_EQ(count_trainable_parameters(*frozen), head);
  // Without freezing, DETR's own rule (backbone conv1/layer1 frozen) stands.
  auto trained = build_segmentation_model(tiny_segm_config());
  EXPECT_EQ(count_trainable_parameters(*trained), count_trainable_parameters(*build_model(tiny_segm_config())) + head);
  std::cout << "trainable: frozen detr " << count_trainable_parameters(*frozen) << ", all "
            << count_trainable_parameters(*trained) << "\n";
}

TEST(Segmentation, FocalAndDiceEqualHandComputedValues) {
  const double x[2][2] = {{0, 2}, {-1, 3}}, t[2][2] = {{1, 0}, {0, 1}};
  const double num_boxes = 2;
  double focal = 0, dice = 0;
  for (int r = 0; r < 2; ++r) {
    double row = 0, inter = 0, sum_p = 0, sum_t = 0;
    for (int c = 0; c < 2; ++c) {
      const double p = 1 / (1 + std::exp(-x[r][c]));
      const double ce = -(t[r][c] * std::log(p) + (1 - t[r][c]) * std::log(1 - p));
      const double p_t = p * t[r][c] + (1 - p) * (1 - t[r][c]);
      const double alpha_t = 0.25 * t[r][c] + 0.75 * (1 - t[r][c]);
      row += alpha_t * ce * (1 - p_t) * (1 - p_t);
      inter += p * t[r][c];
      sum_p += p;
      sum_t += t[r][c];
    }
    focal += row / 2;
    dice += 1 - (2 * inter + 1) / (sum_p + sum_t + 1);
  }
  focal /= num_boxes;
  dice /= num_boxes;
  EXPECT_NEAR(focal, 0.3244752993283817, 1e-15);  // the same sums worked in Python's floats
  EXPECT_NEAR(dice, 0.25331401065672454, 1e-15);
  auto inputs = torch::tensor({0.0, 2.0, -1.0, 3.0}, torch::kDouble).view({2, 2});
  auto targets = torch::tensor({1.0, 0.0, 0.0, 1.0}, torch::kDouble).view({2, 2});
  const double f = sigmoid_focal_loss(inputs, targets, num_boxes).item<double>();
  const double d = dice_loss(inputs, targets, num_boxes).item<double>();
  std::cout << "focal " << f << " (|diff| " << std::abs(f - focal) << "), dice " << d << " (|diff| "
            << std::abs(d - dice) << ")\n";
  EXPECT_NEAR(f, focal, 1e-12);
  EXPECT_NEAR(d, dice, 1e-12);
  // alpha < 0: no alpha_t weighting; float32 within rounding.
  const double f32 = sigmoid_focal_loss(inputs.to(torch::kFloat), targets.to(torch::kFloat), num_boxes).item<double>();
  EXPECT_NEAR(f32, focal, 1e-7);
  EXPECT_GT(sigmoid_focal_loss(inputs, targets, num_boxes, -1).item<double>(), f);
}

TEST(Segmentation, CriterionAddsMaskTermsForTheFinalLayerOnly) {
  torch::manual_seed(0);
  auto config = tiny_segm_config();
  auto model = build_segmentation_model(config);
  auto samples = detr::util::nested_tensor_from_tensor_list({torch::randn({3, 64, 96}), torch::randn({3, 48, 80})});
  auto out = model->forward(samples);
  std::vector<Target> targets{target_with_masks(2, 64, 96), target_with_masks(1, 48, 80)};
  auto criterion = build_criterion(config);
  auto losses = criterion->forward(out, targets).losses;
  std::vector<std::string> keys;
  for (const auto& item : losses) keys.push_back(item.key());
  const std::vector<std::string> want{"loss_ce",           "class_error", "loss_bbox",          "loss_giou",
                                      "cardinality_error", "loss_mask",   "loss_dice",          "loss_ce_0",
                                      "loss_bbox_0",       "loss_giou_0", "cardinality_error_0"};
  EXPECT_EQ(keys, want);
  EXPECT_GT(losses["loss_mask"].item<double>(), 0);
  EXPECT_EQ(config.weight_dict().count("loss_mask_0"), 1u);  // upstream's weight_dict copies them anyway
  // A gradient reaches the mask head.
  criterion->weighted_total(losses).backward();
  EXPECT_TRUE(model->mask_head->out_lay->weight.grad().defined());
  // Targets without masks: no mask terms; masks on some targets only: an error naming the count.
  std::vector<Target> boxes_only{targets[0], targets[1]};
  for (auto& t : boxes_only) t.masks = torch::Tensor();
  EXPECT_FALSE(criterion->forward(out, boxes_only).losses.contains("loss_mask"));
  boxes_only[0].masks = targets[0].masks;
  EXPECT_THROW(criterion->forward(out, boxes_only), c10::Error);
}

TEST(Segmentation, MaskLossesOfImagesWithoutObjectsAreZero) {
  torch::manual_seed(0);
  auto config = tiny_segm_config();
  auto model = build_segmentation_model(config);
  auto samples = detr::util::nested_tensor_from_tensor_list({torch::randn({3, 64, 64})});
  auto out = model->forward(samples);
  auto losses = build_criterion(config)->forward(out, {target_with_masks(0, 64, 64)}).losses;
  std::cout << "no objects: loss_mask " << losses["loss_mask"].item<double>() << ", loss_dice "
            << losses["loss_dice"].item<double>() << "\n";
  EXPECT_EQ(losses["loss_mask"].item<double>(), 0);
  EXPECT_EQ(losses["loss_dice"].item<double>(), 0);
}

TEST(Segmentation, PostProcessSegmCropsEachImageAndResizesToItsOriginalSize) {
  DetrOutput out;
  out.pred_logits = torch::zeros({2, 3, 5});
  out.pred_boxes = torch::full({2, 3, 4}, 0.5);
  out.pred_masks = torch::full({2, 3, 4, 4}, -1.0);
  out.pred_masks.slice(2, 0, 2).fill_(1.0);  // the top half positive
  auto orig = torch::tensor({20, 30, 10, 12}, torch::kLong).view({2, 2});
  auto max_sizes = torch::tensor({16, 16, 8, 16}, torch::kLong).view({2, 2});
  auto dets = post_process(out, orig);
  post_process_segm(dets, out, orig, max_sizes);
  ASSERT_EQ(dets[0].fed_masks.sizes(), (std::vector<int64_t>{3, 16, 16}));
  ASSERT_EQ(dets[1].fed_masks.sizes(), (std::vector<int64_t>{3, 8, 16}));
  ASSERT_EQ(dets[0].mask(0).sizes(), (std::vector<int64_t>{20, 30}));
  ASSERT_EQ(dets[1].mask(2).sizes(), (std::vector<int64_t>{10, 12}));
  EXPECT_EQ(dets[0].mask(0).scalar_type(), torch::kByte);
  // Image 0 keeps the whole 16x16 (top half set); image 1 keeps its top 8 rows, all set.
  EXPECT_EQ(dets[0].mask(0).sum().item<int64_t>(), 10 * 30);
  EXPECT_EQ(dets[1].mask(2).sum().item<int64_t>(), 10 * 12);
  // Each mask(q) is upstream's F.interpolate(masks.float(), orig, mode="nearest").byte(), for ratios
  // up and down: random fed masks against the float interpolation.
  int64_t compared = 0, differ = 0;
  for (const auto& [h, w, oh, ow] :
       std::vector<std::array<int64_t, 4>>{{16, 16, 20, 30}, {37, 53, 600, 401}, {90, 70, 33, 29}}) {
    Detections d;
    d.fed_masks = torch::rand({2, h, w}) > 0.5;
    d.orig_size = {oh, ow};
    const auto expected = torch::nn::functional::interpolate(
        d.fed_masks.unsqueeze(1).to(torch::kFloat),
        torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{oh, ow}).mode(torch::kNearest));
    for (int64_t q = 0; q < 2; ++q) {
      compared += oh * ow;
      differ += d.mask(q).ne(expected[q][0].to(torch::kByte)).sum().item<int64_t>();
    }
  }
  std::cout << "[ post_process_segm ] nearest resize: " << compared << " pixels, " << differ << " differ\n";
  EXPECT_EQ(differ, 0);
  EXPECT_THROW(post_process_segm(dets, DetrOutput{}, orig, max_sizes), c10::Error);
}

TEST(Segmentation, ConfigCarriesTheMaskFields) {
  ModelConfig c;
  c.masks = true;
  c.mask_loss_coef = 2;
  c.dice_loss_coef = 0.5;
  const auto j = to_json(c);
  EXPECT_EQ(j.at("masks"), true);
  const auto back = model_config_from_json(j);
  EXPECT_TRUE(back.masks);
  EXPECT_EQ(back.mask_loss_coef, 2);
  EXPECT_EQ(back.dice_loss_coef, 0.5);
  const auto w = c.weight_dict();
  EXPECT_EQ(w.size(), 5u * 6u);  // (ce, bbox, giou, mask, dice) x (final + 5 aux)
  EXPECT_EQ(w.at("loss_mask"), 2);
  EXPECT_EQ(w.at("loss_dice_4"), 0.5);
  // GroupNorm(8, c) cannot split the tiny box model's widths (hidden 64 + 4 heads = 68).
  ModelConfig bad = tiny_segm_config();
  bad.hidden_dim = 64;
  bad.nheads = 4;
  try {
    bad.validate();
    ADD_FAILURE() << "hidden_dim 64 with masks was accepted";
  } catch (const std::invalid_argument& e) {
    std::cout << e.what() << "\n";
    EXPECT_NE(std::string(e.what()).find("68"), std::string::npos);
  }
}

TEST(Segmentation, StateDictSplitsAtTheDetrPrefix) {
  using detr::models::StateDict;
  const StateDict box{{"query_embed.weight", torch::zeros({2, 4})}, {"detrx.w", torch::zeros({1})}};
  EXPECT_FALSE(detr::models::is_segmentation_state(box));  // "detrx." is not the prefix
  const StateDict segm{{"detr.query_embed.weight", torch::ones({2, 4})}, {"mask_head.lay1.weight", torch::ones({3})}};
  ASSERT_TRUE(detr::models::is_segmentation_state(segm));
  const auto [detr_part, head] = detr::models::split_segmentation_state(segm);
  ASSERT_EQ(detr_part.size(), 1u);
  EXPECT_EQ(detr_part.begin()->first, "query_embed.weight");
  ASSERT_EQ(head.size(), 1u);
  EXPECT_EQ(head.begin()->first, "mask_head.lay1.weight");
}
