// Data-parallel training with Gloo on loopback: launcher variables, sharding, 2 processes × batch b
// against 1 process × batch 2b, and jobs whose peers never arrive, die, hang or are signalled.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "datasets/coco.h"
#include "datasets/coco_detection.h"
#include "datasets/loader.h"
#include "datasets/synthetic.h"
#include "models/detr.h"
#include "models/set_criterion.h"
#include "src/checkpoint.h"
#include "src/distributed.h"
#include "src/engine.h"
#include "src/metric_logger.h"
#include "src/optimizer.h"
#include "tests/support.h"
#include "tests/tiny_model.h"

extern char** environ;

namespace fs = std::filesystem;
using namespace detr;

namespace {

const std::string kTool = std::string(DETR_TOOLS_DIR) + "/detr_train";
const char* kLauncherVars[] = {"RANK",
                               "WORLD_SIZE",
                               "LOCAL_RANK",
                               "LOCAL_WORLD_SIZE",
                               "MASTER_ADDR",
                               "MASTER_PORT",
                               "SLURM_PROCID",
                               "SLURM_NTASKS",
                               "SLURM_LOCALID",
                               "SLURM_NTASKS_PER_NODE",
                               "TORCHELASTIC_USE_AGENT_STORE",
                               "TORCHELASTIC_RESTART_COUNT"};

fs::path temp_dir(const std::string& name) { return detr::testing::scratch_dir("detr_dist_test_", name); }

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// A child process with its own launcher variables (the test's are removed), output to a log file.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env, fs::path log)
      : log_(std::move(log)) {
    std::vector<std::string> envs;
    for (char** e = environ; *e; ++e) {
      const std::string kv(*e);
      const auto key = kv.substr(0, kv.find('='));
      bool launcher = false;
      for (const char* v : kLauncherVars) launcher |= key == v;
      if (!launcher && !env.count(key)) envs.push_back(kv);
    }
    for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
    std::vector<char*> cargv, cenv;
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    for (const auto& e : envs) cenv.push_back(const_cast<char*>(e.c_str()));
    cenv.push_back(nullptr);
    const int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      execve(cargv[0], cargv.data(), cenv.data());
      _exit(127);
    }
    close(fd);
    start_ = std::chrono::steady_clock::now();
  }
  ~Child() {
    if (pid_ > 0 && !done_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // Exit code, or -1 when it did not exit within `timeout_s` (then it is killed) or died by a signal.
  int wait(double timeout_s) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        done_ = true;
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    done_ = true;
    elapsed_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  // Waits until the log contains `text` (false after timeout_s).
  bool wait_for_output(const std::string& text, double timeout_s) const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (std::chrono::steady_clock::now() < deadline) {
      if (detr::testing::read_file(log_).find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  void signal(int sig) const { kill(pid_, sig); }
  std::string output() const { return detr::testing::read_file(log_); }
  double elapsed() const { return elapsed_; }

 private:
  pid_t pid_ = -1;
  bool done_ = false;
  fs::path log_;
  std::chrono::steady_clock::time_point start_;
  double elapsed_ = 0;
};

std::map<std::string, std::string> rank_env(int rank, int world, int port) {
  return {{"RANK", std::to_string(rank)},       {"WORLD_SIZE", std::to_string(world)},
          {"LOCAL_RANK", std::to_string(rank)}, {"LOCAL_WORLD_SIZE", std::to_string(world)},
          {"MASTER_ADDR", "127.0.0.1"},         {"MASTER_PORT", std::to_string(port)}};
}

fs::path synthetic(const fs::path& dir, int64_t images, bool cvat_quirks = true) {
  return detr::testing::write_tiny_export(dir, images, cvat_quirks);
}

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// detr_train on the tiny model, one thread per process.
std::vector<std::string> train_argv(const fs::path& data, const fs::path& out, const std::string& extra) {
  auto argv = split_words(
      " --device cpu --num_threads 1 --backbone resnet18 --hidden_dim 32 --nheads 2 --enc_layers 1"
      " --dec_layers 2 --dim_feedforward 64 --num_queries 8 --scales 64,80 --max_size 128 --val_size 80"
      " --num_workers 1 --val_split 0 --backbone_weights none --print_freq 1 " +
      extra);
  argv.insert(argv.begin(), {kTool, "--coco_path", data.string(), "--output_dir", out.string()});
  return argv;
}

std::vector<float> read_floats(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
  return v;
}

}  // namespace

// ---- in-process units ---------------------------------------------------------------------------

TEST(Distributed, LauncherVariables) {
  for (const char* v : kLauncherVars) unsetenv(v);
  EXPECT_FALSE(dist::env_from_environment().has_value());
  setenv("RANK", "1", 1);
  setenv("WORLD_SIZE", "4", 1);
  setenv("LOCAL_RANK", "1", 1);
  setenv("MASTER_ADDR", "10.0.0.7", 1);
  setenv("MASTER_PORT", "23456", 1);
  auto env = dist::env_from_environment();
  ASSERT_TRUE(env.has_value());
  EXPECT_EQ(env->rank, 1);
  EXPECT_EQ(env->world_size, 4);
  EXPECT_EQ(env->local_rank, 1);
  EXPECT_EQ(env->master_addr, "10.0.0.7");
  EXPECT_EQ(env->master_port, 23456);
  EXPECT_FALSE(env->agent_store_attempt.has_value());
  env = dist::env_from_environment("tcp://node0:1234");
  EXPECT_EQ(env->master_addr, "node0");
  EXPECT_EQ(env->master_port, 1234);
  setenv("TORCHELASTIC_USE_AGENT_STORE", "True", 1);
  setenv("TORCHELASTIC_RESTART_COUNT", "2", 1);
  EXPECT_EQ(dist::env_from_environment()->agent_store_attempt.value_or(""), "2");
  auto message = [](const std::string& url) {
    try {
      dist::env_from_environment(url);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("file:///tmp/x").find("only env://"), std::string::npos);
  setenv("RANK", "4", 1);
  EXPECT_NE(message("env://").find("rank 4 is not below the world size 4"), std::string::npos);
  setenv("RANK", "one", 1);
  EXPECT_NE(message("env://").find("RANK='one'"), std::string::npos);
  for (const char* v : kLauncherVars) unsetenv(v);
  setenv("SLURM_PROCID", "3", 1);
  setenv("SLURM_NTASKS", "8", 1);
  setenv("SLURM_LOCALID", "1", 1);
  env = dist::env_from_environment();
  ASSERT_TRUE(env.has_value());
  EXPECT_EQ(env->rank, 3);
  EXPECT_EQ(env->world_size, 8);
  EXPECT_EQ(env->local_rank, 1);
  for (const char* v : kLauncherVars) unsetenv(v);
}

TEST(Distributed, EvaluationShardsVisitEveryImageOnce) {
  for (size_t n : {1, 7, 10, 12}) {
    for (int world : {2, 3, 5}) {
      std::multiset<size_t> seen;
      for (int rank = 0; rank < world; ++rank) {
        datasets::LoaderOptions o;
        o.shuffle = false;
        o.drop_last = false;
        o.batch_size = 2;
        o.rank = rank;
        o.world_size = world;
        o.pad_to_world = false;
        const auto idx = datasets::epoch_indices(n, o, 0);
        EXPECT_EQ(datasets::batches_per_epoch(n, o), static_cast<int64_t>((idx.size() + 1) / 2));
        seen.insert(idx.begin(), idx.end());
      }
      EXPECT_EQ(seen.size(), n) << "n=" << n << " world=" << world;
      EXPECT_EQ(std::set<size_t>(seen.begin(), seen.end()).size(), n);
    }
  }
}

TEST(Distributed, MetricLoggerMergesAcrossRanks) {
  MetricLogger a, b;
  a.update("loss", 2.0);
  a.update("loss", 4.0);
  b.update("loss", 6.0);
  b.update("class_error", 50.0);
  a.merge(b.state());
  EXPECT_DOUBLE_EQ(a.global_avg("loss"), 4.0);
  EXPECT_DOUBLE_EQ(a.global_avg("class_error"), 50.0);
}

// ---- multi-process --------------------------------------------------------------------------------

// One process of TwoProcessesMatchOneProcessWithTheGlobalBatch (started by it with launcher variables).
TEST(DistributedWorker, Train) {
  const char* out = std::getenv("DETR_TEST_DIST_OUT");
  if (!out) GTEST_SKIP() << "runs only as a child process of Distributed.TwoProcessesMatchOneProcess...";
  torch::set_num_threads(1);
  const int64_t batch = std::atoi(std::getenv("DETR_TEST_DIST_BATCH"));
  const auto env = dist::env_from_environment();
  std::unique_ptr<dist::ProcessGroup> group;
  if (env && env->world_size > 1) {
    dist::InitOptions io;
    io.timeout = std::chrono::seconds(60);
    group = dist::ProcessGroup::init(*env, io);
  }
  const int rank = group ? group->rank() : 0, world = group ? group->world_size() : 1;

  auto layout = datasets::discover_coco(std::getenv("DETR_TEST_DIST_DATA"));
  auto data = datasets::load_coco(layout.train);
  // Fixed-size inputs: every batch composition pads alike, so only the batch split differs.
  datasets::CocoDetection set(data, datasets::TransformConfig::with_scales({64}, 128, 64), /*train=*/false);
  datasets::LoaderOptions lo;
  lo.batch_size = batch;
  lo.shuffle = true;
  lo.drop_last = true;
  lo.num_workers = 0;
  lo.seed = 7;
  lo.rank = rank;
  lo.world_size = world;
  datasets::DataLoader loader(set, lo);

  // No dropout (tiny_train_config): no randomness that depends on the batch split.
  auto config = detr::testing::tiny_train_config(data.max_category_id() + 1);
  config.eos_coef = 1;  // loss_ce is a mean over each rank's queries: equal weights make it split exactly
  torch::manual_seed(1234 + static_cast<uint64_t>(rank));  // ranks start apart: the broadcast must fix it
  auto model = models::build_model(config);
  auto criterion = models::build_criterion(config);
  std::unique_ptr<dist::GradientReducer> reducer;
  dist::StepSync sync;
  if (group) {
    dist::broadcast_module(*model, *group);
    reducer = std::make_unique<dist::GradientReducer>(model->parameters(), *group, 1 << 20);
    sync = {group.get(), reducer.get()};
  }
  AdamWOptions oo;
  oo.lr = 1e-4;
  oo.lr_backbone = 1e-5;
  oo.weight_decay = 1e-4;
  AdamW optimizer(*model, oo);
  TrainSetup setup{model, criterion, &optimizer, torch::kCPU, 0.1, sync, {}};
  nlohmann::json report;
  std::vector<double> losses;
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    auto logger = train_one_epoch(setup, loader, epoch);
    losses.push_back(logger.global_avg("loss"));
  }
  report["losses"] = losses;
  report["steps_per_epoch"] = loader.size();
  report["buckets"] = reducer ? reducer->num_buckets() : 0;
  std::ofstream(std::string(out) + ".json") << report.dump();
  std::ofstream bin(std::string(out) + ".bin", std::ios::binary);
  for (const auto& p : model->parameters()) {
    auto c = p.detach().contiguous();
    bin.write(reinterpret_cast<const char*>(c.data_ptr<float>()), static_cast<std::streamsize>(c.numel() * 4));
  }
  // The initial weights of rank 0, for the size of the update.
  if (rank == 0) {
    torch::manual_seed(1234);
    auto init = models::build_model(config);
    std::ofstream b0(std::string(out) + ".init.bin", std::ios::binary);
    for (const auto& p : init->parameters()) {
      auto c = p.detach().contiguous();
      b0.write(reinterpret_cast<const char*>(c.data_ptr<float>()), static_cast<std::streamsize>(c.numel() * 4));
    }
  }
}

TEST(Distributed, TwoProcessesMatchOneProcessWithTheGlobalBatch) {
  ASSERT_TRUE(dist::gloo_available());
  const auto dir = temp_dir("equivalence");
  // Up to 3 boxes an image: the ranks' box counts differ, so num_boxes must be reduced to match.
  const auto data = synthetic(dir, 8, /*cvat_quirks=*/false);
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  const std::vector<std::string> argv{self, "--gtest_filter=DistributedWorker.Train"};
  auto worker_env = [&](const std::string& out, int64_t batch) {
    return std::map<std::string, std::string>{{"DETR_TEST_DIST_OUT", (dir / out).string()},
                                              {"DETR_TEST_DIST_BATCH", std::to_string(batch)},
                                              {"DETR_TEST_DIST_DATA", data.string()},
                                              {"OMP_NUM_THREADS", "1"}};
  };
  // 1 process × batch 4.
  {
    Child single(argv, worker_env("single", 4), dir / "single.log");
    ASSERT_EQ(single.wait(300), 0) << single.output();
  }
  // 2 processes × batch 2.
  const int port = free_port();
  std::vector<std::unique_ptr<Child>> ranks;
  for (int r = 0; r < 2; ++r) {
    auto env = worker_env("rank" + std::to_string(r), 2);
    env.merge(rank_env(r, 2, port));
    ranks.push_back(std::make_unique<Child>(argv, env, dir / ("rank" + std::to_string(r) + ".log")));
  }
  for (auto& c : ranks) ASSERT_EQ(c->wait(300), 0) << c->output();

  const auto single = read_floats(dir / "single.bin"), r0 = read_floats(dir / "rank0.bin"),
             r1 = read_floats(dir / "rank1.bin"), init = read_floats(dir / "single.init.bin");
  ASSERT_EQ(single.size(), r0.size());
  ASSERT_EQ(r1.size(), r0.size());
  ASSERT_EQ(init.size(), r0.size());
  double max_diff = 0, diff2 = 0, update2 = 0, rank_diff = 0;
  for (size_t i = 0; i < r0.size(); ++i) {
    const double d = static_cast<double>(r0[i]) - single[i], u = static_cast<double>(single[i]) - init[i];
    max_diff = std::max(max_diff, std::abs(d));
    diff2 += d * d;
    update2 += u * u;
    rank_diff = std::max(rank_diff, std::abs(static_cast<double>(r0[i]) - r1[i]));
  }
  const auto j_single = nlohmann::json::parse(detr::testing::read_file(dir / "single.json"));
  const auto j_r0 = nlohmann::json::parse(detr::testing::read_file(dir / "rank0.json"));
  const double rel = std::sqrt(diff2 / update2);
  std::cout << "2 ranks x batch 2 vs 1 x batch 4 after " << 2 * j_r0["steps_per_epoch"].get<int>()
            << " steps: max |dw| " << max_diff << ", |dw| / |update| " << rel << ", ranks differ by " << rank_diff
            << ", gradient buckets " << j_r0["buckets"] << "; losses " << j_single["losses"] << " vs " << j_r0["losses"]
            << "\n";
  EXPECT_EQ(j_r0["steps_per_epoch"], j_single["steps_per_epoch"]);
  EXPECT_GT(j_r0["buckets"].get<int>(), 1);  // several flat buckets, one all-reduce each
  EXPECT_EQ(rank_diff, 0.0);                 // every rank holds the same weights
  EXPECT_GT(update2, 0.0);
  EXPECT_LT(rel, 1e-3);
  EXPECT_LT(max_diff, 2e-5);
  for (size_t e = 0; e < 2; ++e)
    EXPECT_NEAR(j_r0["losses"][e].get<double>(), j_single["losses"][e].get<double>(),
                1e-5 * std::abs(j_single["losses"][e].get<double>()));
}

TEST(Distributed, APeerThatNeverArrivesEndsInTheTimeout) {
  const auto dir = temp_dir("never");
  const auto data = synthetic(dir, 8);
  Child rank0(train_argv(data, dir / "out", "--epochs 1 --dist_timeout 3"), rank_env(0, 2, free_port()),
              dir / "rank0.log");
  EXPECT_EQ(rank0.wait(60), 1) << rank0.output();
  std::cout << "rank 0 alone gave up after " << rank0.elapsed() << " s (timeout 3 s)\n";
  EXPECT_LT(rank0.elapsed(), 30);
  EXPECT_NE(rank0.output().find("did all 2 processes start?"), std::string::npos) << rank0.output();
  EXPECT_FALSE(fs::exists(dir / "out" / "checkpoint.pth"));
}

TEST(Distributed, ADeadOrHungPeerEndsTheJobInBoundedTime) {
  const auto dir = temp_dir("dead");
  const auto data = synthetic(dir, 24);
  for (int sig : {SIGKILL, SIGSTOP}) {
    const int port = free_port();
    // A timeout long enough for a loaded machine's uneven ranks, short enough for a test.
    const auto argv = train_argv(data, dir / "out", "--epochs 50 --batch_size 1 --eval_every 0 --dist_timeout 10");
    Child rank1(argv, rank_env(1, 2, port), dir / "rank1.log");
    Child rank0(argv, rank_env(0, 2, port), dir / "rank0.log");
    ASSERT_TRUE(rank0.wait_for_output("[3/12]", 120)) << rank0.output();
    rank1.signal(sig);
    const auto t_signal = std::chrono::steady_clock::now();
    EXPECT_EQ(rank0.wait(60), 1) << rank0.output();
    const double after = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_signal).count();
    std::cout << (sig == SIGKILL ? "killed" : "stopped (SIGSTOP)") << " peer: rank 0 exited " << after
              << " s later (--dist_timeout 10)\n";
    EXPECT_LT(after, 40);
    EXPECT_NE(rank0.output().find("distributed all-reduce failed on rank 0 of 2"), std::string::npos) << rank0.output();
    rank1.signal(SIGKILL);
  }
}

TEST(Distributed, RankZeroWritesAndAStoppedJobResumesAtAnotherWorldSize) {
  const auto dir = temp_dir("resume");
  const auto data = synthetic(dir, 16);
  const auto out = dir / "out";
  // One full epoch on 2 ranks (with evaluation), then a second one stopped by SIGTERM to rank 1 only.
  {
    const int port = free_port();
    const auto argv = train_argv(data, out, "--epochs 1 --batch_size 2");
    Child rank1(argv, rank_env(1, 2, port), dir / "a1.log");
    Child rank0(argv, rank_env(0, 2, port), dir / "a0.log");
    ASSERT_EQ(rank0.wait(300), 0) << rank0.output();
    ASSERT_EQ(rank1.wait(60), 0) << rank1.output();
    EXPECT_EQ(rank1.output().find("Epoch:"), std::string::npos) << "only rank 0 prints: " << rank1.output();
    EXPECT_NE(rank0.output().find("effective batch 4"), std::string::npos);
    std::ifstream log(out / "log.txt");
    int lines = 0;
    for (std::string l; std::getline(log, l);) ++lines;
    EXPECT_EQ(lines, 1) << "one writer";
    auto ck = load_checkpoint(out / "checkpoint.pth");
    EXPECT_EQ(ck.state->epoch, 0);
    EXPECT_EQ(ck.state->images_per_step, 4);
  }
  {
    const int port = free_port();
    const auto argv =
        train_argv(data, out, "--epochs 3 --batch_size 1 --eval_every 0 --resume " + (out / "checkpoint.pth").string());
    Child rank1(argv, rank_env(1, 2, port), dir / "b1.log");
    Child rank0(argv, rank_env(0, 2, port), dir / "b0.log");
    ASSERT_TRUE(rank0.wait_for_output("[3/8]", 120)) << rank0.output();
    rank1.signal(SIGTERM);
    EXPECT_EQ(rank0.wait(60), 1) << rank0.output();
    EXPECT_EQ(rank1.wait(60), 1) << rank1.output();
    EXPECT_NE(rank0.output().find("stopped by a signal to another rank in epoch 1"), std::string::npos)
        << rank0.output();
    auto ck = load_checkpoint(out / "checkpoint.pth");
    EXPECT_EQ(ck.state->epoch, 0);
    EXPECT_GE(ck.state->step_in_epoch, 3);
    EXPECT_EQ(ck.state->images_per_step, 2);
    std::cout << "stopped after step " << ck.state->step_in_epoch << " of epoch 1 on 2 ranks x batch 1\n";
  }
  // Resume on one process with batch 1: the epoch continues after the same number of images.
  Child single(
      train_argv(data, out, "--epochs 2 --batch_size 1 --eval_every 0 --resume " + (out / "checkpoint.pth").string()),
      {}, dir / "c.log");
  EXPECT_EQ(single.wait(300), 0) << single.output();
  EXPECT_NE(single.output().find("with 1 images per step this run continues the epoch at step"), std::string::npos)
      << single.output();
  auto ck = load_checkpoint(out / "checkpoint.pth");
  EXPECT_EQ(ck.state->epoch, 1);
  EXPECT_EQ(ck.state->step_in_epoch, 0);
}

TEST(Distributed, TorchrunLaunchesDetrTrain) {
  std::string torchrun;
  std::istringstream path(std::getenv("PATH") ? std::getenv("PATH") : "");
  for (std::string d; torchrun.empty() && std::getline(path, d, ':');)
    if (!d.empty() && access((fs::path(d) / "torchrun").c_str(), X_OK) == 0)
      torchrun = (fs::path(d) / "torchrun").string();
  if (torchrun.empty()) GTEST_SKIP() << "no torchrun on PATH: the torchrun launch is not tested here";
  const auto dir = temp_dir("torchrun");
  const auto data = synthetic(dir, 8);
  // torchrun before 2.0 spells it --no_python; later ones accept both.
  Child help({torchrun, "--help"}, {}, dir / "help.log");
  ASSERT_EQ(help.wait(60), 0) << help.output();
  const std::string no_python = help.output().find("--no-python") != std::string::npos ? "--no-python" : "--no_python";
  auto argv = train_argv(data, dir / "out", "--epochs 1 --batch_size 2");
  argv.erase(argv.begin());  // detr_train's path goes after torchrun's flags
  std::vector<std::string> cmd{torchrun,
                               "--nproc_per_node=2",
                               "--master_port=" + std::to_string(free_port()),
                               no_python,
                               "--redirects",
                               "1",
                               "--tee",
                               "1",
                               "--log_dir",
                               (dir / "logs").string(),
                               kTool};
  cmd.insert(cmd.end(), argv.begin(), argv.end());
  Child run(cmd, {}, dir / "torchrun.log");
  ASSERT_EQ(run.wait(300), 0) << run.output();
  EXPECT_NE(run.output().find("distributed: 2 processes (torchrun)"), std::string::npos) << run.output();
  EXPECT_TRUE(fs::exists(dir / "out" / "checkpoint.pth"));
}

TEST(Distributed, ShardedEvaluationEqualsOneProcess) {
  const auto dir = temp_dir("eval");
  const auto data = synthetic(dir, 10);
  const auto out = dir / "out";
  Child train(train_argv(data, out, "--epochs 1 --batch_size 1 --eval_every 0"), {}, dir / "train.log");
  ASSERT_EQ(train.wait(300), 0) << train.output();
  // Batch 1: every image is evaluated alone in both runs, so the results must be identical.
  auto argv_to = [&](const std::string& name) {
    return train_argv(data, dir / name, "--batch_size 1 --eval --resume " + (out / "checkpoint.pth").string());
  };
  auto stats_of = [](const std::string& log) {
    std::istringstream in(log);
    for (std::string line; std::getline(in, line);)
      if (line.rfind("{\"test_", 0) == 0) return nlohmann::json::parse(line);
    return nlohmann::json();
  };
  Child single(argv_to("one"), {}, dir / "single.log");
  ASSERT_EQ(single.wait(300), 0) << single.output();
  const int port = free_port();
  Child rank1(argv_to("two"), rank_env(1, 2, port), dir / "rank1.log");
  Child rank0(argv_to("two"), rank_env(0, 2, port), dir / "rank0.log");
  ASSERT_EQ(rank0.wait(300), 0) << rank0.output();
  ASSERT_EQ(rank1.wait(60), 0) << rank1.output();
  // The detections, gathered from both ranks, equal one process's (as sets: the order is by rank).
  auto detections = [&](const std::string& name) {
    auto j = nlohmann::json::parse(detr::testing::read_file(dir / name / "eval" / "results_latest.json"));
    std::vector<std::string> rows;
    for (const auto& d : j) rows.push_back(d.dump());
    std::sort(rows.begin(), rows.end());
    return rows;
  };
  const auto d1 = detections("one"), d2 = detections("two");
  EXPECT_EQ(d1.size(), 10u * 8u);  // 8 queries on each of the 10 images
  EXPECT_EQ(d1, d2);
  const auto a = stats_of(single.output()), b = stats_of(rank0.output());
  ASSERT_FALSE(a.is_null());
  ASSERT_FALSE(b.is_null());
  std::cout << d1.size() << " detections from one process, " << d2.size() << " gathered from 2; COCO stats "
            << a["test_coco_eval_bbox"] << " / " << b["test_coco_eval_bbox"] << "; loss " << a["test_loss"] << " / "
            << b["test_loss"] << "\n";
  EXPECT_EQ(a["test_coco_eval_bbox"], b["test_coco_eval_bbox"]);
  EXPECT_DOUBLE_EQ(a["test_loss"].get<double>(), b["test_loss"].get<double>());
  EXPECT_TRUE(stats_of(rank1.output()).is_null()) << "only rank 0 prints";
}
