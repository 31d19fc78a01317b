// include/detr/detr.h over the runtime's Predictor.
#include <detr/detr.h>

#include "src/predict.h"
#include "src/run_context.h"

namespace detr {

struct Detector::Impl {
  std::unique_ptr<RunContext> ctx;
  Predictor predictor;
  DetectorOptions options;
};

Detector::Detector(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Detector::~Detector() = default;
Detector::Detector(Detector&&) noexcept = default;
Detector& Detector::operator=(Detector&&) noexcept = default;

Detector Detector::load(const std::string& checkpoint, const DetectorOptions& options) {
  auto impl = std::make_unique<Impl>();
  RunOptions ro;
  ro.device = parse_device(options.device);
  ro.num_threads = options.num_threads > 0 ? options.num_threads : -1;  // 0: the host program's setting
  ro.conv_algorithm = models::parse_conv_algorithm(options.conv_algorithm);
  impl->ctx = std::make_unique<RunContext>(ro, Launch::local());
  impl->predictor = load_predictor(checkpoint, impl->ctx->device(), impl->ctx->conv_kernels(), options.dilation);
  impl->options = options;
  return Detector(std::move(impl));
}

std::vector<Detection> Detector::detect(const std::string& image_path) {
  std::vector<Detection> out;
  for (const auto& p : predict_image(impl_->predictor, image_path, impl_->options.threshold, impl_->options.topk))
    out.push_back({p.category_id, p.name, p.score, p.bbox_xywh});
  return out;
}

int64_t Detector::num_classes() const { return impl_->predictor.config.num_classes; }

}  // namespace detr
