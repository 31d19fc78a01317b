// The CUDA paths, exercised where a GPU is present (skipped otherwise): a training step on the GPU
// against the same step on the CPU, mixed precision (bf16, fp16 with loss scaling), the foreach
// AdamW on CUDA tensors, and detr_train / detr_bench end to end on the GPU.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "datasets/coco.h"
#include "datasets/coco_detection.h"
#include "datasets/loader.h"
#include "datasets/synthetic.h"
#include "models/detr.h"
#include "models/set_criterion.h"
#include "models/winograd_conv.h"
#include "src/amp.h"
#include "src/distributed.h"
#include "src/engine.h"
#include "src/optimizer.h"
#include "tests/support.h"
#include "tests/tiny_model.h"

namespace fs = std::filesystem;
using namespace detr;

namespace {

#define DETR_REQUIRE_CUDA()                                                \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device here"; \
  static_cast<void>(0)

const std::string kTools = DETR_TOOLS_DIR;

fs::path fresh_dir(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("detr_cuda_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return dir;
}

// Losses of `steps` training steps of the tiny model on `device`, then the first step's gradient norm.
std::vector<double> train(const datasets::Batch& batch,
                          const torch::Device& device,
                          Precision precision,
                          int steps,
                          models::ConvAlgorithm algorithm = models::ConvAlgorithm::kWinograd) {
  torch::manual_seed(0);
  const auto c = detr::testing::tiny_train_config();
  auto model = models::build_model(c);
  model->set_conv_kernels({true, true, algorithm});
  auto criterion = models::build_criterion(c);
  model->to(device);
  criterion->to(device);
  AdamW optimizer(*model, {});
  model->train();
  GradScaler scaler(precision == Precision::fp16);
  TrainSetup setup{model, criterion, &optimizer, device, 0.1, {}, {precision, &scaler}};
  std::vector<double> losses;
  double first_grad_norm = 0;
  for (int i = 0; i < steps; ++i) {
    const auto out = train_step(setup, batch);
    losses.push_back(out.loss);
    if (i == 0) first_grad_norm = out.grad_norm;
  }
  losses.push_back(first_grad_norm);
  return losses;
}

std::string run_tool(const std::string& cmd) {
  const auto r = detr::testing::run_command(cmd);
  EXPECT_EQ(r.code, 0) << cmd << "\n" << r.output;
  return r.output;
}

}  // namespace

TEST(Cuda, TrainStepsMatchTheCpu) {
  DETR_REQUIRE_CUDA();
  // float32 on both sides: TF32 off, so that the GPU's products round like the CPU's, and LibTorch's
  // direct convolutions on the CPU.
  const bool tf32_cudnn = at::globalContext().allowTF32CuDNN(), tf32_cublas = at::globalContext().allowTF32CuBLAS();
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
  const auto dir = fresh_dir("steps");
  const auto batch = detr::testing::tiny_fixed_batch(dir, 2);
  const auto cpu = train(batch, torch::kCPU, Precision::fp32, 3, models::ConvAlgorithm::kDirect);
  const auto gpu = train(batch, torch::kCUDA, Precision::fp32, 3, models::ConvAlgorithm::kDirect);
  at::globalContext().setAllowTF32CuDNN(tf32_cudnn);
  at::globalContext().setAllowTF32CuBLAS(tf32_cublas);
  // The three losses (the second and third follow the GPU's and the CPU's own updates) and the first
  // step's gradient norm.
  double rel = 0;
  for (size_t i = 0; i < cpu.size(); ++i) rel = std::max(rel, std::abs(gpu[i] - cpu[i]) / std::abs(cpu[i]));
  std::printf(
      "CUDA vs CPU, 3 float32 steps: losses %.6f %.6f %.6f vs %.6f %.6f %.6f, grad norm %.6f vs %.6f; "
      "max relative difference %.3g\n",
      gpu[0], gpu[1], gpu[2], cpu[0], cpu[1], cpu[2], gpu[3], cpu[3], rel);
  EXPECT_LT(rel, 1e-4);
  fs::remove_all(dir);
}

TEST(Cuda, MixedPrecisionTrainsCloseToFloat32) {
  DETR_REQUIRE_CUDA();
  const auto dir = fresh_dir("amp");
  const auto batch = detr::testing::tiny_fixed_batch(dir, 2);
  const auto fp32 = train(batch, torch::kCUDA, Precision::fp32, 3);
  for (const auto precision : {Precision::bf16, Precision::fp16}) {
    const auto mixed = train(batch, torch::kCUDA, precision, 3);
    double rel = 0;
    for (size_t i = 0; i < 3; ++i) {  // the losses
      EXPECT_TRUE(std::isfinite(mixed[i]));
      rel = std::max(rel, std::abs(mixed[i] - fp32[i]) / std::abs(fp32[i]));
    }
    std::printf("%s vs float32 on CUDA, 3 steps: max relative loss difference %.3g\n", to_string(precision).c_str(),
                rel);
    EXPECT_GT(rel, 0.0);
    EXPECT_LT(rel, 0.05);
  }
  fs::remove_all(dir);
}

TEST(Cuda, ForeachAdamWMatchesPerTensor) {
  DETR_REQUIRE_CUDA();
  struct Net : torch::nn::Module {
    Net() {
      register_parameter("class_embed_weight", torch::randn({64, 33}, torch::kCUDA));
      register_parameter("backbone_conv_weight", torch::randn({16, 8, 3, 3}, torch::kCUDA));
    }
  };
  auto run = [](bool foreach) {
    torch::manual_seed(0);
    Net net;
    AdamWOptions o;
    o.foreach = foreach;
    AdamW optimizer(net, o);
    for (int step = 0; step < 5; ++step) {
      for (auto& p : net.parameters()) p.mutable_grad() = torch::randn_like(p);
      optimizer.step();
    }
    std::vector<torch::Tensor> out;
    for (auto& p : net.parameters()) out.push_back(p.detach().cpu());
    return out;
  };
  const auto single = run(false), foreach = run(true);
  double diff = 0;
  for (size_t i = 0; i < single.size(); ++i) diff = std::max(diff, (single[i] - foreach[i]).abs().max().item<double>());
  std::printf("foreach vs per-tensor AdamW on CUDA, 5 steps: max |param diff| %.3g\n", diff);
  EXPECT_LT(diff, 1e-6);  // CUDA's fused foreach kernels may round differently from the per-tensor ones
}

TEST(Cuda, DetrTrainAndBenchRunOnTheGpu) {
  DETR_REQUIRE_CUDA();
  const auto dir = fresh_dir("tools");
  detr::testing::write_tiny_export(dir, 8);
  const auto out = dir / "out";
  const std::string flags =
      " --device cuda --backbone resnet18 --hidden_dim 32 --nheads 2 --enc_layers 1 --dec_layers 2"
      " --dim_feedforward 64 --num_queries 8 --scales 64,80 --max_size 128 --val_size 80 --num_workers 1"
      " --val_split 0 --backbone_weights none";
  for (const std::string amp : {"off", "bf16", "fp16"}) {
    fs::remove_all(out);
    run_tool(kTools + "/detr_train --coco_path " + (dir / "data").string() + " --output_dir " + out.string() +
             " --epochs 1 --batch_size 2 --amp " + amp + flags);
    EXPECT_TRUE(fs::exists(out / "checkpoint.pth")) << amp;
  }
  const auto json = dir / "bench.json";
  run_tool(kTools +
           "/detr_bench --device cuda --config small --batch_size 2 --warmup 1 --steps 2 --repeats 1 "
           "--mode both --amp bf16 --json " +
           json.string());
  std::ifstream in(json);
  const auto r = nlohmann::json::parse(in);
  std::printf(
      "detr_bench small bf16 on CUDA: %.2f images/s train, %.1f%% model FLOP utilisation of %.0f TFLOP/s "
      "(%s), peak CUDA memory %.2f GB\n",
      r["train"]["images_per_s"].get<double>(), 100 * r["train"]["mfu"].get<double>(), r["peak_tflops"].get<double>(),
      r["peak_measured_with"].get<std::string>().c_str(), r["peak_cuda_gb"].get<double>());
  EXPECT_GT(r["peak_cuda_gb"].get<double>(), 0.0);
  EXPECT_GT(r["train"]["mfu"].get<double>(), 0.0);
  EXPECT_GT(r["peak_tflops"].get<double>(), 10.0);  // any datacenter GPU's bf16 matmul
  EXPECT_EQ(r["device"].get<std::string>().rfind("cuda", 0), 0u);
  fs::remove_all(dir);
}

// c10d's NCCL backend as detr_train uses it: the rendezvous, a sum all-reduce and a broadcast of CUDA
// tensors, and a barrier. One rank, because a one-GPU machine cannot hold two NCCL ranks; a job of
// several GPUs runs the same calls.
TEST(Cuda, NcclProcessGroupReducesOnTheGpu) {
  DETR_REQUIRE_CUDA();
  if (!dist::nccl_available()) GTEST_SKIP() << "this build has no NCCL backend (nccl.h was not found at configure)";
  dist::Env env;
  env.master_port = 29531;
  env.source = "test";
  dist::InitOptions io;
  io.backend = "nccl";
  io.device = torch::Device(torch::kCUDA, 0);
  io.timeout = std::chrono::seconds(60);
  auto group = dist::ProcessGroup::init(env, io);
  ASSERT_TRUE(group);
  EXPECT_EQ(group->backend(), "nccl");
  auto t = torch::arange(6, torch::dtype(torch::kFloat32).device(io.device));
  group->all_reduce_sum(t);
  EXPECT_TRUE(torch::equal(t.cpu(), torch::arange(6, torch::kFloat32)));  // one rank: the sum is itself
  std::vector<torch::Tensor> b{torch::full({3}, 7.0f, torch::TensorOptions().device(io.device))};
  group->broadcast(b);
  EXPECT_TRUE(torch::equal(b[0].cpu(), torch::full({3}, 7.0f)));
  group->barrier();
  std::cout << "NCCL process group on " << io.device << ": all-reduce, broadcast and barrier done\n";
}
