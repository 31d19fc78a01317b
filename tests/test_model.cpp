#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "models/detr.h"
#include "models/dropout.h"
#include "models/multihead_attention.h"
#include "models/post_process.h"
#include "models/set_criterion.h"
#include "tests/fixtures.h"
#include "tests/tensor_support.h"

using namespace detr::models;
using detr::util::NestedTensor;
using detr::util::Target;

namespace {

std::map<std::string, std::vector<int64_t>> our_keys(torch::nn::Module& m) {
  std::map<std::string, std::vector<int64_t>> keys;
  for (const auto& p : m.named_parameters()) keys[p.key()] = p.value().sizes().vec();
  for (const auto& b : m.named_buffers()) keys[b.key()] = b.value().sizes().vec();
  return keys;
}

// Every key and shape of upstream's state_dict must be ours, and no more.
void expect_same_keys(const ModelConfig& config,
                      const std::map<std::string, std::vector<int64_t>>& ref,
                      const std::string& what) {
  auto model = build_model(config);
  auto ours = our_keys(*model);
  std::cout << what << ": " << ours.size() << " keys ours, " << ref.size() << " upstream\n";
  EXPECT_EQ(ours.size(), ref.size());
  for (const auto& [name, shape] : ref) {
    auto it = ours.find(name);
    ASSERT_NE(it, ours.end()) << "missing key " << name;
    EXPECT_EQ(it->second, shape) << name;
  }
}

// The committed key/shape list upstream's model gave (tests/reference/make_detr_fixture.py).
void expect_same_keys_as_committed(const ModelConfig& config, const std::string& fixture) {
  const auto path = detr::testing::data_dir() / "detr" / fixture / "state_dict_shapes.json";
  std::ifstream in(path);
  ASSERT_TRUE(in) << "cannot open " << path;
  const auto ref = nlohmann::json::parse(in).get<std::map<std::string, std::vector<int64_t>>>();
  expect_same_keys(config, ref, path.string());
}

// The optional fixture's stored model.pth (../shared/fixtures).
void expect_same_keys_as_fixture(const ModelConfig& config, const std::string& fixture) {
  const auto path = detr::testing::fixtures_dir() / "detr" / fixture / "model.pth";
  DETR_REQUIRE_FIXTURE(path);
  std::map<std::string, std::vector<int64_t>> ref;
  for (const auto& [name, t] : detr::testing::load_plain_tensor_dict(path.string())) ref[name] = t.sizes().vec();
  expect_same_keys(config, ref, path.string());
}

ModelConfig tiny_config() {
  ModelConfig c;
  c.backbone = "resnet18";
  c.hidden_dim = 64;
  c.nheads = 4;
  c.enc_layers = 2;
  c.dec_layers = 2;
  c.dim_feedforward = 128;
  c.num_queries = 10;
  c.num_classes = 4;
  c.dropout = 0;
  return c;
}

NestedTensor tiny_batch() {
  return detr::util::nested_tensor_from_tensor_list({torch::randn({3, 64, 96}), torch::randn({3, 80, 64})});
}

}  // namespace

TEST(Model, DefaultR50StateDictKeysAndShapesEqualUpstream) {
  ModelConfig c;  // upstream defaults
  c.num_classes = 91;
  expect_same_keys_as_committed(c, "r50_default_keys");
  auto model = build_model(c);
  EXPECT_EQ(our_keys(*model).size(), 458u);
}

TEST(Model, TinyR18StateDictKeysEqualUpstream) { expect_same_keys_as_committed(tiny_config(), "tiny_r18"); }

TEST(ModelOptionalFixtures, DefaultR50StateDictKeysEqualStoredUpstreamWeights) {
  ModelConfig c;
  c.num_classes = 91;
  expect_same_keys_as_fixture(c, "r50_default");
}

TEST(Model, DefaultR50ParameterCountsEqualUpstream) {
  auto model = build_model(ModelConfig{});
  int64_t total = 0, group0 = 0, group1 = 0, n_group0 = 0, n_group1 = 0, frozen_backbone = 0;
  for (const auto& p : model->named_parameters()) {
    total += p.value().numel();
    const bool in_backbone = p.key().find("backbone") != std::string::npos;
    if (!p.value().requires_grad()) {
      frozen_backbone += in_backbone;
      continue;
    }
    (in_backbone ? group1 : group0) += p.value().numel();
    (in_backbone ? n_group1 : n_group0) += 1;
  }
  EXPECT_EQ(total, 41524768);
  EXPECT_EQ(count_trainable_parameters(*model), 41302368);
  EXPECT_EQ(n_group0, 193);
  EXPECT_EQ(group0, 18069856);
  EXPECT_EQ(n_group1, 42);
  EXPECT_EQ(group1, 23232512);
  EXPECT_EQ(frozen_backbone, 11);
}

TEST(Model, BuiltForLoadingSkipsOnlyTheSecondInitAndLoadsTheSameModel) {
  // init_weights false (detr_predict: every weight is loaded next) skips torchvision's kaiming_normal_
  // and upstream's xavier_uniform_ passes; the weights keep LibTorch's own init, and the loaded model
  // computes what the fully initialised one does.
  const auto c = tiny_config();
  torch::manual_seed(3);
  auto full = build_model(c);
  torch::manual_seed(3);
  auto lean = build_model(c, /*init_weights=*/false);
  const auto full_params = full->named_parameters(), lean_params = lean->named_parameters();
  ASSERT_EQ(full_params.size(), lean_params.size());
  int64_t differ = 0;
  for (const auto& p : lean_params) {
    EXPECT_TRUE(torch::isfinite(p.value()).all().item<bool>()) << p.key();
    differ += !torch::equal(p.value(), full_params[p.key()]);
  }
  EXPECT_GT(differ, 0) << "the second init pass was not skipped";
  {
    torch::NoGradGuard no_grad;
    for (const auto& p : full->named_parameters()) lean_params[p.key()].copy_(p.value());
    for (const auto& b : full->named_buffers()) lean->named_buffers()[b.key()].copy_(b.value());
  }
  full->eval();
  lean->eval();
  const auto x = detr::util::nested_tensor_from_tensor_list({torch::rand({3, 64, 80})});
  const auto a = full->forward(x), b = lean->forward(x);
  const double d = (a.pred_logits - b.pred_logits).abs().max().item<double>() +
                   (a.pred_boxes - b.pred_boxes).abs().max().item<double>();
  std::printf("%ld of %zu parameters differ before loading; outputs after loading differ by %g\n",
              static_cast<long>(differ), lean_params.size(), d);
  EXPECT_EQ(d, 0);
}

TEST(Model, VariantsAddUpstreamKeys) {
  ModelConfig c;
  c.pre_norm = true;
  auto keys = our_keys(*build_model(c));
  EXPECT_EQ(keys.size(), 460u);
  EXPECT_TRUE(keys.count("transformer.encoder.norm.weight"));
  EXPECT_TRUE(keys.count("transformer.encoder.norm.bias"));

  c = ModelConfig{};
  c.position_embedding = PositionEmbedding::kLearned;
  keys = our_keys(*build_model(c));
  EXPECT_EQ(keys.size(), 460u);
  EXPECT_EQ(keys["backbone.1.row_embed.weight"], (std::vector<int64_t>{50, 128}));
  EXPECT_EQ(keys["backbone.1.col_embed.weight"], (std::vector<int64_t>{50, 128}));
}

TEST(Model, BackboneFreezingFollowsLrBackbone) {
  auto c = tiny_config();
  c.train_backbone = false;
  auto model = build_model(c);
  for (const auto& p : model->named_parameters()) {
    if (p.key().find("backbone") != std::string::npos) {
      EXPECT_FALSE(p.value().requires_grad()) << p.key();
    }
  }
  c.train_backbone = true;
  model = build_model(c);
  for (const auto& p : model->named_parameters()) {
    const auto& n = p.key();
    if (n.find("backbone.0.body.conv1") != std::string::npos || n.find("layer1") != std::string::npos) {
      EXPECT_FALSE(p.value().requires_grad()) << n;
    }
    if (n.find("layer4") != std::string::npos) {
      EXPECT_TRUE(p.value().requires_grad()) << n;
    }
  }
}

TEST(Model, DilationHalvesTheOutputStride) {
  ModelConfig c;
  c.dilation = true;
  c.enc_layers = c.dec_layers = 1;
  auto model = build_model(c);
  torch::NoGradGuard no_grad;
  auto [features, pos] =
      model->backbone->forward(detr::util::nested_tensor_from_tensor_list({torch::randn({3, 128, 96})}));
  EXPECT_EQ(features.tensors.sizes(), (std::vector<int64_t>{1, 2048, 8, 6}));  // stride 16
  EXPECT_EQ(pos.sizes(), (std::vector<int64_t>{1, 256, 8, 6}));
  c.backbone = "resnet18";
  EXPECT_THROW(build_model(c), std::invalid_argument);
}

TEST(Model, OutputsHaveDocumentedShapes) {
  torch::manual_seed(0);
  auto model = build_model(tiny_config());
  auto out = model->forward(tiny_batch());
  EXPECT_EQ(out.pred_logits.sizes(), (std::vector<int64_t>{2, 10, 5}));
  EXPECT_EQ(out.pred_boxes.sizes(), (std::vector<int64_t>{2, 10, 4}));
  ASSERT_EQ(out.aux_outputs.size(), 1u);
  EXPECT_GE(out.pred_boxes.min().item<double>(), 0.0);
  EXPECT_LE(out.pred_boxes.max().item<double>(), 1.0);
}

TEST(Criterion, ImagesWithoutBoxesGiveFiniteLossesAndFullClassError) {
  torch::manual_seed(0);
  auto c = tiny_config();
  auto model = build_model(c);
  auto criterion = build_criterion(c);
  auto out = model->forward(tiny_batch());
  std::vector<Target> targets(2);
  for (auto& t : targets) {
    t.boxes = torch::zeros({0, 4});
    t.labels = torch::zeros({0}, torch::kLong);
  }
  auto r = criterion->forward(out, targets);
  EXPECT_EQ(r.losses["loss_bbox"].item<double>(), 0.0);
  EXPECT_EQ(r.losses["loss_giou"].item<double>(), 0.0);
  EXPECT_EQ(r.losses["class_error"].item<double>(), 100.0);
  EXPECT_TRUE(std::isfinite(r.losses["loss_ce"].item<double>()));
  auto total = criterion->weighted_total(r.losses);
  total.backward();
  EXPECT_TRUE(model->class_embed->weight.grad().defined());
}

TEST(Criterion, LossKeysFollowUpstreamOrder) {
  auto c = tiny_config();
  c.dec_layers = 3;
  auto model = build_model(c);
  auto criterion = build_criterion(c);
  std::vector<Target> targets{
      {torch::tensor({{0.5, 0.5, 0.2, 0.2}}), torch::tensor({1}, torch::kLong)},
      {torch::tensor({{0.3, 0.4, 0.1, 0.3}, {0.6, 0.6, 0.3, 0.3}}), torch::tensor({2, 3}, torch::kLong)}};
  auto r = criterion->forward(model->forward(tiny_batch()), targets);
  std::vector<std::string> keys = r.losses.keys();
  std::vector<std::string> want{
      "loss_ce",     "class_error", "loss_bbox",          "loss_giou",           "cardinality_error",
      "loss_ce_0",   "loss_bbox_0", "loss_giou_0",        "cardinality_error_0", "loss_ce_1",
      "loss_bbox_1", "loss_giou_1", "cardinality_error_1"};
  EXPECT_EQ(keys, want);
  EXPECT_EQ(r.matchings.size(), 3u);
  EXPECT_EQ(r.matchings[0][1].src.size(), 2u);
  EXPECT_EQ(c.weight_dict().size(), 9u);
}

TEST(Criterion, NanPredictionsGiveAClearError) {
  auto c = tiny_config();
  auto criterion = build_criterion(c);
  DetrOutput out;
  out.pred_logits = torch::randn({1, 10, 5});
  out.pred_boxes = torch::rand({1, 10, 4});
  out.pred_boxes[0][3][0] = NAN;
  std::vector<Target> targets{{torch::tensor({{0.5, 0.5, 0.2, 0.2}}), torch::tensor({1}, torch::kLong)}};
  try {
    criterion->forward(out, targets);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite"), std::string::npos) << e.what();
  }
}

TEST(Criterion, OutOfRangeLabelIsReported) {
  auto criterion = build_criterion(tiny_config());
  DetrOutput out;
  out.pred_logits = torch::randn({1, 10, 5});
  out.pred_boxes = torch::rand({1, 10, 4}) * 0.5 + 0.25;
  std::vector<Target> targets{{torch::tensor({{0.5, 0.5, 0.2, 0.2}}), torch::tensor({4}, torch::kLong)}};
  EXPECT_THROW(criterion->forward(out, targets), c10::Error);
}

TEST(PostProcess, ScalesBoxesToImageSize) {
  Prediction p;
  p.pred_logits = torch::tensor({{{0.0, 3.0, 0.0}}});
  p.pred_boxes = torch::tensor({{{0.5, 0.5, 0.5, 0.5}}});
  auto d = post_process(p, torch::tensor({{100, 200}}, torch::kLong));
  EXPECT_EQ(d[0].labels[0].item<int64_t>(), 1);
  EXPECT_TRUE(torch::allclose(d[0].boxes[0], torch::tensor({50.0, 25.0, 150.0, 75.0})));
}

// The lean attention against LibTorch's own: same outputs, same random numbers, same gradients.
TEST(Attention, LeanCoreEqualsTheLibrarysAttention) {
  for (const bool with_mask : {true, false}) {
    torch::manual_seed(3);
    torch::nn::MultiheadAttention mha(torch::nn::MultiheadAttentionOptions(32, 4).dropout(0.1));
    mha->train();
    const int64_t L = 37, S = 45, B = 3;
    auto src = torch::randn({S, B, 32});
    auto pos = torch::randn({S, B, 32});
    auto tgt = torch::randn({L, B, 32});
    torch::Tensor mask;
    if (with_mask) {
      mask = torch::zeros({B, S}, torch::kBool);
      mask.index_put_({1, torch::indexing::Slice(30)}, true);
      mask.index_put_({2, torch::indexing::Slice(10)}, true);
    }
    auto weights = torch::randn({L, B, 32});
    struct Run {
      torch::Tensor out;
      std::vector<torch::Tensor> grads;
    };
    auto run = [&](bool lean) {
      for (auto& p : mha->parameters()) p.mutable_grad() = torch::Tensor();
      auto s = src.clone().requires_grad_(true), t = tgt.clone().requires_grad_(true);
      auto key = s + pos;
      torch::manual_seed(11);  // the dropout's draws
      auto out = detr::models::multi_head_attention(*mha, t, key, s, mask, lean);
      (out * weights).sum().backward();
      Run r{out.detach(), {s.grad(), t.grad()}};
      for (auto& p : mha->parameters()) r.grads.push_back(p.grad().clone());
      return r;
    };
    const auto ref = run(false), lean = run(true);
    const double out_diff = (ref.out - lean.out).abs().max().item<double>();
    double grad_diff = 0;
    for (size_t i = 0; i < ref.grads.size(); ++i)
      grad_diff = std::max(grad_diff, (ref.grads[i] - lean.grads[i]).abs().max().item<double>());
    std::cout << (with_mask ? "with" : "without") << " padding mask: lean vs library attention, max |out| diff "
              << out_diff << ", max |grad| diff " << grad_diff << " over " << ref.grads.size() << " gradients\n";
    EXPECT_EQ(out_diff, 0.0);
    EXPECT_EQ(grad_diff, 0.0);
    EXPECT_GT(ref.out.abs().max().item<double>(), 0.0);
  }
}

TEST(Attention, LeanDropoutEqualsTheLibrarys) {
  auto x = torch::randn({300, 2, 64});
  auto w = torch::randn({300, 2, 64});
  auto run = [&](bool lean) {
    auto xi = x.clone().requires_grad_(true);
    torch::manual_seed(5);
    auto y = lean ? detr::models::dropout(xi, 0.1, true) : torch::dropout(xi, 0.1, true);
    (y * w).sum().backward();
    return std::make_pair(y.detach(), xi.grad());
  };
  const auto ref = run(false), lean = run(true);
  const double out_diff = (ref.first - lean.first).abs().max().item<double>();
  const double grad_diff = (ref.second - lean.second).abs().max().item<double>();
  const double dropped = ref.first.eq(0).to(torch::kDouble).mean().item<double>();
  std::cout << "lean vs library dropout: max |out| diff " << out_diff << ", max |grad| diff " << grad_diff
            << ", share dropped " << dropped << "\n";
  EXPECT_EQ(out_diff, 0.0);
  EXPECT_EQ(grad_diff, 0.0);
  EXPECT_NEAR(dropped, 0.1, 0.02);
}

// The inline draws against the library's bernoulli_: the same numbers, and the generator left where
// bernoulli_ leaves it (its next draw equal), across the engine's 624-output refills.
TEST(Attention, KeepDrawsEqualTheLibrarysBernoulli) {
  if (!detr::models::keep_draws_reproduce_bernoulli())
    GTEST_SKIP() << "this LibTorch's bernoulli_ draws from another stream (MKL): dropout uses bernoulli_ itself";
  int64_t compared = 0, kept = 0;
  for (const int64_t n : {1, 311, 312, 313, 5000, 100003})
    for (const double keep_p : {0.9, 0.5, 0.0, 1.0, 1.0 / 3}) {
      torch::manual_seed(n + 7);
      auto library = torch::empty({n}).bernoulli_(keep_p).ne(0);
      const auto library_next = torch::rand({3});
      torch::manual_seed(n + 7);
      auto ours = detr::models::keep_draws({n}, keep_p);
      const auto ours_next = torch::rand({3});
      ASSERT_TRUE(torch::equal(library, ours))
          << "n " << n << ", p " << keep_p << ": " << library.ne(ours).sum().item<int64_t>() << " draws differ";
      ASSERT_TRUE(torch::equal(library_next, ours_next)) << "n " << n << ", p " << keep_p << ": generator state";
      compared += n;
      kept += ours.sum().item<int64_t>();
    }
  std::cout << "keep draws vs bernoulli_: " << compared << " draws compared, 0 differ (" << kept << " kept)\n";
}

TEST(Attention, LeanReluDropoutEqualsTheLibrarys) {
  auto x = torch::randn({300, 2, 64});
  auto w = torch::randn({300, 2, 64});
  auto run = [&](bool lean) {
    auto xi = x.clone().requires_grad_(true);
    torch::manual_seed(9);
    auto y = lean ? detr::models::relu_dropout(xi, 0.1, true) : torch::dropout(torch::relu(xi), 0.1, true);
    (y * w).sum().backward();
    return std::make_pair(y.detach(), xi.grad());
  };
  const auto ref = run(false), lean = run(true);
  const double out_diff = (ref.first - lean.first).abs().max().item<double>();
  const double grad_diff = (ref.second - lean.second).abs().max().item<double>();  // -0 == +0
  std::cout << "lean vs library relu + dropout: max |out| diff " << out_diff << ", max |grad| diff " << grad_diff
            << "\n";
  EXPECT_EQ(out_diff, 0.0);
  EXPECT_EQ(grad_diff, 0.0);
  EXPECT_GT(ref.second.abs().max().item<double>(), 0.0);
}
