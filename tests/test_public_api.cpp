// include/detr/detr.h: the embedding API, on a checkpoint written as detr_train writes best.pth.
#include <gtest/gtest.h>

#include <detr/detr.h>  // first: the public header compiles on its own

#include <torch/torch.h>

#include "src/checkpoint.h"
#include "src/predict.h"
#include "src/run_context.h"
#include "src/serialization/torch_save.h"
#include "tests/fixtures.h"
#include "tests/support.h"
#include "tests/tiny_model.h"

namespace {

TEST(PublicApi, DetectorMatchesThePredictorOnABestCheckpoint) {
  const auto dir = detr::testing::scratch_dir("detr_api_", "best");
  torch::manual_seed(0);
  auto config = detr::testing::tiny_train_config();
  auto model = detr::models::build_model(config);
  {  // a confident head, so that detections pass the threshold
    torch::NoGradGuard no_grad;
    model->class_embed->bias.fill_(0);
    model->class_embed->bias[1] = 8;
  }
  detr::CheckpointState state;
  state.classes = {{1, "rocket"}, {2, "cat"}};
  state.best_ap = 0.5;
  detr::save_model(dir / "best.pth", *model, config, state, {{"lr", 1e-4}});

  const auto image = (detr::testing::data_dir() / "photos" / "rocket.jpg").string();
  detr::DetectorOptions o;
  o.device = "cpu";
  o.threshold = 0.1f;
  auto detector = detr::Detector::load((dir / "best.pth").string(), o);
  EXPECT_EQ(detector.num_classes(), config.num_classes);
  const auto found = detector.detect(image);
  auto predictor = detr::load_predictor(dir / "best.pth", torch::kCPU);
  const auto expected = detr::predict_image(predictor, image, 0.1f, 100);
  ASSERT_FALSE(expected.empty());
  ASSERT_EQ(found.size(), expected.size());
  double worst = 0;
  for (size_t i = 0; i < found.size(); ++i) {
    EXPECT_EQ(found[i].category_id, expected[i].category_id);
    EXPECT_EQ(found[i].category_name, "rocket");
    worst = std::max(worst, static_cast<double>(std::abs(found[i].score - expected[i].score)));
    for (int k = 0; k < 4; ++k) worst = std::max(worst, std::abs(found[i].bbox_xywh[k] - expected[i].bbox_xywh[k]));
  }
  std::printf("%zu detections; max |detector - predictor| %.3g\n", found.size(), worst);
  EXPECT_EQ(worst, 0.0);
  // best.pth is for inference: no optimizer state.
  const auto ck = detr::load_checkpoint(dir / "best.pth");
  EXPECT_FALSE(ck.has_optimizer);
  ASSERT_TRUE(ck.state.has_value());
  EXPECT_EQ(ck.state->best_ap, 0.5);
  EXPECT_THROW(detr::Detector::load((dir / "missing.pth").string(), o), std::exception);
}

}  // namespace

namespace {

// The job context's rules (src/run_context.h), each decided in one place.
TEST(PublicApi, ACheckpointWhoseConfigOrWeightsLieIsRefusedInOneLine) {
  // Measured before: a model_config declaring huge layer or query counts allocated 10.7 GB with three
  // lines of allocator output; NaN weights gave exit 0 with null scores and boxes.
  const auto dir = detr::testing::scratch_dir("detr_api_", "lies");
  torch::manual_seed(0);
  const auto config = detr::testing::tiny_train_config();
  auto model = detr::models::build_model(config);
  detr::CheckpointState state;
  state.classes = {{1, "rocket"}, {2, "cat"}};
  const auto refused = [&](const std::string& name, const std::vector<std::string>& needles) {
    SCOPED_TRACE(name);
    try {
      detr::load_predictor(dir / name, torch::kCPU);
      ADD_FAILURE() << "loaded";
    } catch (const std::runtime_error& e) {
      const std::string m = e.what();
      std::cout << "  " << m << "\n";
      for (const auto& n : needles) EXPECT_NE(m.find(n), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos);
    }
    detr::DetectorOptions o;
    o.device = "cpu";
    EXPECT_THROW(detr::Detector::load((dir / name).string(), o), std::exception);
  };
  for (const auto& [field, value] : {std::pair<const char*, int64_t>{"enc_layers", 100000},
                                     {"dec_layers", 100000},
                                     {"num_queries", 1 << 28},
                                     {"dim_feedforward", 1 << 28},
                                     {"num_classes", 7}}) {
    auto lie = config;
    if (std::string(field) == "enc_layers") lie.enc_layers = value;
    if (std::string(field) == "dec_layers") lie.dec_layers = value;
    if (std::string(field) == "num_queries") lie.num_queries = value;
    if (std::string(field) == "dim_feedforward") lie.dim_feedforward = value;
    if (std::string(field) == "num_classes") lie.num_classes = value;
    const std::string name = std::string(field) + ".pth";
    detr::save_model(dir / name, *model, lie, state, {{"lr", 1e-4}});
    refused(name, {name, std::string("model_config says ") + field + " " + std::to_string(value), "the weights have"});
  }
  {
    torch::NoGradGuard no_grad;
    model->class_embed->bias[0] = std::numeric_limits<float>::quiet_NaN();
  }
  detr::save_model(dir / "nan.pth", *model, config, state, {{"lr", 1e-4}});
  refused("nan.pth", {"nan.pth", "weight 'class_embed.bias'", "NaN"});
  // Errors from the file's content name the file (measured before: "expected a state dict, got list").
  using detr::serialization::PyValue;
  detr::serialization::torch_save(PyValue::list({PyValue::integer(1)}), dir / "list.pth");
  refused("list.pth", {"list.pth: ", "expected a state dict, got list"});
  detr::serialization::torch_save(PyValue::dict({{PyValue::str("w"), PyValue::tensor(torch::ones({2}))}}),
                                  dir / "alien.pth");
  refused("alien.pth", {"alien.pth: ", "query_embed.weight"});
}

TEST(RunContext, DeviceAndThreadRules) {
  EXPECT_FALSE(detr::parse_device("auto").has_value());
  ASSERT_TRUE(detr::parse_device("cpu").has_value());
  EXPECT_TRUE(detr::parse_device("cpu")->is_cpu());
  EXPECT_EQ(detr::parse_device("cuda:1")->index(), 1);
  for (const char* bad : {"tpu", "cuda:x", "", "CPU"})
    EXPECT_THROW(detr::parse_device(bad), std::invalid_argument) << bad;

  detr::Launch one;  // a single process: every usable CPU, whatever the shell's OMP_NUM_THREADS says
  one.omp_num_threads = 1;
  EXPECT_EQ(detr::resolve_threads(0, one, 8), 8);
  EXPECT_EQ(detr::resolve_threads(3, one, 8), 3);
  detr::Launch job;  // 4 processes, 2 on this machine
  job.job = detr::dist::Env{};
  job.job->world_size = 4;
  job.job->local_world_size = 2;
  EXPECT_EQ(detr::resolve_threads(0, job, 8), 4);  // an equal share
  job.omp_num_threads = 3;
  EXPECT_EQ(detr::resolve_threads(0, job, 8), 3);  // the launcher's OMP_NUM_THREADS
  EXPECT_EQ(detr::resolve_threads(5, job, 8), 5);  // --num_threads wins
  job.omp_num_threads = 0;
  job.job->local_world_size = 16;
  EXPECT_EQ(detr::resolve_threads(0, job, 8), 1);  // never 0

  detr::RunOptions o;
  o.device = torch::Device(torch::kCPU);
  o.num_threads = 2;
  o.conv_algorithm = detr::models::ConvAlgorithm::kDirect;
  const detr::RunContext ctx(o, detr::Launch{});
  EXPECT_TRUE(ctx.device().is_cpu());
  EXPECT_EQ(ctx.threads(), 2);
  EXPECT_EQ(torch::get_num_threads(), 2);
  EXPECT_EQ(ctx.world_size(), 1);
  EXPECT_TRUE(ctx.main_rank());
  EXPECT_EQ(ctx.conv_kernels().algorithm, detr::models::ConvAlgorithm::kDirect);
  EXPECT_EQ(ctx.conv_algorithm_in_use(), "direct");
  EXPECT_FALSE(ctx.stopping());
}

}  // namespace
