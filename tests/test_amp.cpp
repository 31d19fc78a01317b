// Mixed precision: the fp16 loss scaler's bookkeeping, autocast reaching the network on CPU (bf16)
// while the losses stay float32, the scaler's state in checkpoints, and the CPU refusal of fp16.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "datasets/coco.h"
#include "datasets/coco_detection.h"
#include "datasets/loader.h"
#include "datasets/synthetic.h"
#include "models/detr.h"
#include "models/set_criterion.h"
#include "src/amp.h"
#include "util/cpu.h"
#include "src/checkpoint.h"
#include "src/engine.h"
#include "tests/tiny_model.h"

namespace fs = std::filesystem;
using namespace detr;

TEST(Amp, GradScalerBacksOffSkipsAndGrows) {
  GradScaler scaler(true, 1024.0, 2.0, 0.5, 3);
  auto p = torch::ones({4}, torch::requires_grad());
  EXPECT_DOUBLE_EQ(scaler.scale_loss(torch::tensor(2.0f)).item<double>(), 2048.0);
  p.mutable_grad() = torch::full({4}, 512.0f);
  EXPECT_FALSE(scaler.unscale({p}));
  EXPECT_TRUE(torch::equal(p.grad(), torch::full({4}, 0.5f)));  // divided by the scale, exactly
  scaler.update(false);
  scaler.update(false);
  EXPECT_DOUBLE_EQ(scaler.scale(), 1024.0);
  scaler.update(false);  // third clean step: grows
  EXPECT_DOUBLE_EQ(scaler.scale(), 2048.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
  p.mutable_grad() = torch::tensor({1.0f, INFINITY, 0.0f, 2.0f});
  EXPECT_TRUE(scaler.unscale({p}));
  scaler.update(true);
  EXPECT_DOUBLE_EQ(scaler.scale(), 1024.0);
  p.mutable_grad() = torch::tensor({NAN, 1.0f, 0.0f, 2.0f});
  EXPECT_TRUE(scaler.unscale({p}));
  GradScaler off(false);
  EXPECT_DOUBLE_EQ(off.scale(), 1.0);
  EXPECT_FALSE(off.unscale({p}));  // disabled: never skips, never touches gradients
}

TEST(Amp, PrecisionNamesAndDevices) {
  EXPECT_EQ(parse_precision("off"), Precision::fp32);
  EXPECT_EQ(parse_precision("bf16"), Precision::bf16);
  EXPECT_EQ(parse_precision("fp16"), Precision::fp16);
  EXPECT_THROW(parse_precision("fp8"), std::invalid_argument);
  if (detr::util::cpu_has_native_bf16()) {
    std::cout << "this CPU has bfloat16 arithmetic: --amp bf16 accepted on CPU\n";
    EXPECT_NO_THROW(check_precision(Precision::bf16, torch::kCPU));
  } else {
    std::cout << "this CPU has no bfloat16 arithmetic: --amp bf16 refused on CPU\n";
    try {
      check_precision(Precision::bf16, torch::kCPU);
      FAIL() << "bf16 accepted on a CPU without bfloat16 arithmetic";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("AVX512_BF16 or AMX-BF16"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(check_precision(Precision::fp32, torch::kCPU));
  try {
    check_precision(Precision::fp16, torch::kCPU);
    FAIL() << "fp16 on CPU accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("--amp fp16 needs a CUDA device"), std::string::npos);
  }
}

TEST(Amp, Bf16AutocastReachesTheNetworkAndLossesStayFloat32) {
  const auto dir = fs::temp_directory_path() / ("detr_amp_test_" + std::to_string(::getpid()));
  const auto batch = detr::testing::tiny_fixed_batch(dir, 2);
  const auto c = detr::testing::tiny_train_config();
  std::vector<torch::Tensor> last_params;
  auto run = [&](Precision p, double loss_scale = 0) {
    torch::manual_seed(0);
    auto model = models::build_model(c);
    auto criterion = models::build_criterion(c);
    AdamW optimizer(*model, {});
    model->train();
    GradScaler scaler(loss_scale > 0, loss_scale > 0 ? loss_scale : 65536.0);
    TrainSetup setup{model, criterion, &optimizer, torch::kCPU, 0.1, {}, {p, &scaler}};
    std::vector<double> losses;
    for (int i = 0; i < 3; ++i) {
      auto out = train_step(setup, batch);
      losses.push_back(out.loss);
      if (loss_scale > 1e30) {
        EXPECT_TRUE(out.skipped);
      }
    }
    last_params.clear();
    for (const auto& t : model->parameters()) last_params.push_back(t.detach().clone());
    if (loss_scale > 1e30) {
      EXPECT_DOUBLE_EQ(scaler.scale(), loss_scale / 8);  // backed off 3 times
    }
    // Autocast is off again after the step.
    models::DetrOutput out = model->forward(batch.samples);
    EXPECT_EQ(out.pred_logits.scalar_type(), torch::kFloat);
    return losses;
  };
  // Loss scaling by a power of two is exact: the scaled path must reproduce float32 to the bit.
  run(Precision::fp32);
  const auto plain = last_params;
  run(Precision::fp32, 65536.0);
  double scaled_diff = 0;
  for (size_t i = 0; i < plain.size(); ++i)
    scaled_diff = std::max(scaled_diff, (plain[i] - last_params[i]).abs().max().item<double>());
  std::cout << "loss scale 65536 vs none, 3 steps: max |param diff| " << scaled_diff << "\n";
  EXPECT_EQ(scaled_diff, 0.0);
  // An overflowing scale skips every step: the parameters stay at their initial values.
  torch::manual_seed(0);
  auto init = models::build_model(c);
  run(Precision::fp32, 1e38);
  double skipped_diff = 0;
  auto init_params = init->parameters();
  for (size_t i = 0; i < init_params.size(); ++i)
    skipped_diff = std::max(skipped_diff, (init_params[i] - last_params[i]).abs().max().item<double>());
  EXPECT_EQ(skipped_diff, 0.0);

  const auto fp32 = run(Precision::fp32), bf16 = run(Precision::bf16);
  double max_rel = 0;
  for (size_t i = 0; i < fp32.size(); ++i) {
    EXPECT_TRUE(std::isfinite(bf16[i]));
    max_rel = std::max(max_rel, std::abs(bf16[i] - fp32[i]) / std::abs(fp32[i]));
  }
  std::cout << "bf16 autocast vs float32, 3 training steps: losses " << bf16[0] << ", " << bf16[2] << " vs " << fp32[0]
            << ", " << fp32[2] << "; max relative difference " << max_rel << "\n";
  EXPECT_GT(max_rel, 0.0);   // the convolutions and products did run in bfloat16
  EXPECT_LT(max_rel, 0.05);  // and training sees nearly the same losses
  {
    // Inside a guard, a convolution runs in bfloat16; outside, in float32.
    auto x = torch::randn({1, 3, 8, 8}), w = torch::randn({4, 3, 3, 3});
    {
      AutocastGuard guard(torch::kCPU, Precision::bf16);
      EXPECT_EQ(torch::conv2d(x, w).scalar_type(), torch::kBFloat16);
    }
    EXPECT_EQ(torch::conv2d(x, w).scalar_type(), torch::kFloat);
  }
  fs::remove_all(dir);
}

TEST(Amp, ScalerStateTravelsInCheckpoints) {
  const auto dir = fs::temp_directory_path() / ("detr_amp_ck_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto c = detr::testing::tiny_train_config();
  auto model = models::build_model(c);
  AdamW optimizer(*model, {});
  StepLR scheduler(optimizer, 10);
  CheckpointState st;
  st.epoch = 2;
  st.loss_scale = 8192;
  st.scaler_growth_tracker = 17;
  save_checkpoint(dir / "ck.pth", *model, c, optimizer, scheduler, st, nlohmann::json::object());
  auto ck = load_checkpoint(dir / "ck.pth");
  ASSERT_TRUE(ck.state.has_value());
  EXPECT_DOUBLE_EQ(ck.state->loss_scale, 8192);
  EXPECT_EQ(ck.state->scaler_growth_tracker, 17);
  st.loss_scale = 0;  // float32 runs write no scaler
  save_checkpoint(dir / "ck32.pth", *model, c, optimizer, scheduler, st, nlohmann::json::object());
  EXPECT_DOUBLE_EQ(load_checkpoint(dir / "ck32.pth").state->loss_scale, 0);
  fs::remove_all(dir);
}
