// Pretrained-weight downloads against a loopback HTTP server the test starts (no internet needed):
// download into the torch.hub cache, cache hits without network, hash-prefix checks, clear errors.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "models/detr.h"
#include "src/hub.h"
#include "src/serialization/torch_save.h"
#include "tests/support.h"

namespace fs = std::filesystem;
using namespace detr;

namespace {

// `python3 -m http.server` on 127.0.0.1 serving `dir`, stopped with the object.
class LoopbackServer {
 public:
  explicit LoopbackServer(const fs::path& dir) : port_(20000 + static_cast<int>(::getpid() % 20000)) {
    pid_ = fork();
    if (pid_ == 0) {
      const auto cmd = "exec python3 -m http.server " + std::to_string(port_) + " --bind 127.0.0.1 --directory " +
                       dir.string() + " > /dev/null 2>&1";
      execl("/bin/sh", "sh", "-c", cmd.c_str(), (char*)nullptr);
      _exit(127);
    }
    for (int i = 0; i < 100 && !accepting(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ~LoopbackServer() { stop(); }
  void stop() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  bool accepting() const {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(s);
    return ok;
  }
  std::string url(const std::string& file) const { return "http://127.0.0.1:" + std::to_string(port_) + "/" + file; }
  int port() const { return port_; }

 private:
  int port_;
  pid_t pid_ = -1;
};

fs::path fresh_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("detr_hub_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST(Hub, Sha256KnownVectors) {
  EXPECT_EQ(hub::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hub::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hub::sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Hub, WithoutLibcurlAUrlIsAOneLineError) {
#ifdef DETR_WITH_CURL
  GTEST_SKIP() << "built with libcurl: DownloadsCachesAndChecksHashes covers downloads";
#endif
  hub::DownloadOptions o;
  o.cache_dir = fresh_dir("nocurl");
  try {
    hub::resolve_weights("http://127.0.0.1:9/weights-0123abcd.pth", false, o);
    FAIL() << "a URL was accepted by a build without libcurl";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    std::cout << "error: " << m << "\n";
    EXPECT_NE(m.find("this build has no libcurl"), std::string::npos) << m;
    EXPECT_NE(m.find((o.cache_dir / "weights-0123abcd.pth").string()), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  EXPECT_TRUE(fs::is_empty(o.cache_dir));  // nothing half-written
}

TEST(Hub, DownloadsCachesAndChecksHashes) {
#ifndef DETR_WITH_CURL
  GTEST_SKIP() << "built without libcurl: downloads give a one-line error";
#endif
  const auto root = fresh_dir("download");
  const auto served = root / "served";
  fs::create_directories(served);
  setenv("TORCH_HOME", (root / "torch").c_str(), 1);
  EXPECT_EQ(hub::cache_dir(), root / "torch" / "hub" / "checkpoints");

  const std::string content = "pretend weights " + std::string(5000, 'x');
  const auto good = "weights-" + hub::sha256_hex(content).substr(0, 8) + ".pth";
  std::ofstream(served / good, std::ios::binary) << content;
  std::ofstream(served / "bad-deadbeef.pth", std::ios::binary) << content;

  LoopbackServer server(served);
  ASSERT_TRUE(server.accepting());
  hub::DownloadOptions o;
  o.attempts = 1;
  auto path = hub::cached_download(server.url(good), o);
  EXPECT_EQ(path, hub::cache_dir() / good);
  EXPECT_EQ(detr::testing::read_file(path), content);

  try {
    hub::cached_download(server.url("bad-deadbeef.pth"), o);
    FAIL() << "hash mismatch accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("SHA-256"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(hub::cache_dir() / "bad-deadbeef.pth"));
  for (const auto& e : fs::directory_iterator(hub::cache_dir()))
    EXPECT_EQ(e.path().string().find(".partial"), std::string::npos) << e.path();

  server.stop();
  // Cache hit: no network needed.
  EXPECT_EQ(hub::cached_download(server.url(good), o), path);
  // Server down and not cached: one clear error naming the URL and where to place the file.
  try {
    hub::cached_download(server.url("other-0123abcd.pth"), o);
    FAIL() << "no error without a server";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(server.url("other-0123abcd.pth")), std::string::npos) << m;
    EXPECT_NE(m.find((hub::cache_dir() / "other-0123abcd.pth").string()), std::string::npos) << m;
  }
  // 'auto' backbone weights with a pre-seeded cache: found without network.
  const auto url = hub::torchvision_resnet_url("resnet18");
  std::ofstream(hub::cache_dir() / "resnet18-f37072fd.pth") << "seeded";
  EXPECT_EQ(hub::cached_download(url, o), hub::cache_dir() / "resnet18-f37072fd.pth");
  EXPECT_EQ(hub::detr_zoo_url("R50-DC5").value(), "https://dl.fbaipublicfiles.com/detr/detr-r50-dc5-f0fb7ef5.pth");
  EXPECT_FALSE(hub::detr_zoo_url("R18").has_value());
  unsetenv("TORCH_HOME");
}

TEST(Hub, DetrTrainLoadsABackboneFromAUrl) {
#ifndef DETR_WITH_CURL
  GTEST_SKIP() << "built without libcurl: downloads give a one-line error";
#endif
  // A torchvision-style ResNet-18 state dict (conv1.weight, layer1.0.bn1.running_mean, ..., fc.*)
  // served over loopback and given to detr_train as --backbone_weights URL.
  const auto root = fresh_dir("train");
  fs::create_directories(root / "served");
  models::ModelConfig c;
  c.backbone = "resnet18";
  auto model = models::build_model(c);
  std::map<std::string, torch::Tensor> sd;
  const std::string prefix = "backbone.0.body.";
  for (const auto& p : model->named_parameters())
    if (p.key().rfind(prefix, 0) == 0) sd[p.key().substr(prefix.size())] = p.value().detach();
  for (const auto& b : model->named_buffers())
    if (b.key().rfind(prefix, 0) == 0) sd[b.key().substr(prefix.size())] = b.value().detach();
  sd["fc.weight"] = torch::zeros({1000, 512});
  sd["fc.bias"] = torch::zeros({1000});
  const auto file = root / "served" / "resnet18-test.pth";
  serialization::torch_save(serialization::from_state_dict(sd), file);
  LoopbackServer server(root / "served");
  ASSERT_TRUE(server.accepting());

  const std::string tool = std::string(DETR_TOOLS_DIR) + "/detr_make_dataset";
  ASSERT_EQ(
      std::system(
          (tool + " --out " + (root / "data").string() + " --images 2 --width 64 --height 64 > /dev/null").c_str()),
      0);
  const std::string cmd = "TORCH_HOME=" + (root / "torch").string() + " " + std::string(DETR_TOOLS_DIR) +
                          "/detr_train --coco_path " + (root / "data").string() +
                          " --epochs 1 --batch_size 1 --device cpu --backbone resnet18 --hidden_dim 32 --nheads 2"
                          " --enc_layers 1 --dec_layers 1 --dim_feedforward 32 --num_queries 4 --scales 64"
                          " --max_size 96 --val_size 64 --val_split 0 --eval_every 0 --num_workers 0"
                          " --backbone_weights " +
                          server.url("resnet18-test.pth") + " 2>&1";
  const auto [code, out] = detr::testing::run_command(cmd);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(
      out.find("ImageNet backbone from " + (root / "torch" / "hub" / "checkpoints" / "resnet18-test.pth").string()),
      std::string::npos)
      << out;
}
