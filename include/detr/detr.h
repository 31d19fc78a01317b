// detr-cpp's public API for embedding a trained DETR in another program: load a checkpoint (ours, or
// upstream DETR's .pth), detect objects in images. Self-contained: nothing here exposes the
// library's internals, so an application needs only this header, the detr_core library and LibTorch.
//
//   auto detector = detr::Detector::load("/mnt/output/best.pth");
//   for (const auto& d : detector.detect("frame.jpg")) std::cout << d.category_name << " " << d.score;
//
// Training, evaluation and the other tools are the detr_* executables (see docs/tools.md).
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace detr {

struct Detection {
  int64_t category_id = 0;
  std::string category_name;  // from our checkpoints' classes; empty for upstream files
  float score = 0;
  std::array<double, 4> bbox_xywh{};  // absolute pixels in the input image
};

struct DetectorOptions {
  std::string device = "auto";              // auto | cpu | cuda | cuda:N
  int num_threads = 0;                      // CPU threads; 0: leave the program's LibTorch setting as it is
  std::string conv_algorithm = "winograd";  // winograd | direct (CPU 3x3 convolutions)
  bool dilation = false;                    // an upstream DC5 checkpoint (not visible in its weights)
  float threshold = 0.5f;                   // minimum score
  int64_t topk = 100;                       // at most this many detections per image (0: all)
};

class Detector {
 public:
  // Throws std::runtime_error naming the file on a missing, unreadable or non-DETR checkpoint.
  static Detector load(const std::string& checkpoint, const DetectorOptions& options = {});
  ~Detector();
  Detector(Detector&&) noexcept;
  Detector& operator=(Detector&&) noexcept;

  // Upstream's val transform, forward and PostProcess on the image's own size; best first.
  std::vector<Detection> detect(const std::string& image_path);
  int64_t num_classes() const;

 private:
  struct Impl;
  explicit Detector(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace detr
