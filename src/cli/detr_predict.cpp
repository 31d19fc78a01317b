// detr_predict: runs a trained DETR (our checkpoint or an upstream model-zoo .pth) on an image, a list
// file (one path per line) or a folder, and writes COCO results JSON; --draw DIR also writes the images
// with boxes, labels and scores. Exit codes: 0 done, 1 failure, 2 usage.
#include <optional>

#include <torch/torch.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "datasets/formats/export.h"
#include "models/winograd_conv.h"
#include "src/predict.h"
#include "src/predict_server.h"
#include "src/cli/guarded_main.h"
#include "src/flags.h"
#include "util/atomic_file.h"
#include "src/run_context.h"

namespace fs = std::filesystem;

namespace {
std::vector<fs::path> collect_images(const fs::path& input) {
  std::vector<fs::path> images;
  const auto is_image = [](const fs::path& p) { return detr::datasets::formats::is_image_extension(p); };
  if (fs::is_directory(input)) {
    for (const auto& e : fs::recursive_directory_iterator(input))
      if (e.is_regular_file() && is_image(e.path())) images.push_back(e.path());
    std::sort(images.begin(), images.end());
  } else if (is_image(input)) {
    images.push_back(input);
  } else if (fs::is_regular_file(input)) {  // a list of paths
    std::ifstream in(input);
    std::string line;
    while (std::getline(in, line))
      if (!line.empty()) images.push_back(line);
  } else {
    throw std::runtime_error(input.string() + ": no such image, list or folder");
  }
  if (images.empty()) throw std::runtime_error(input.string() + ": no images found");
  return images;
}

// Where each image's drawing goes: its path relative to the images' common folder, mirrored under
// `draw` with its own name and format, so inputs sharing a stem (a.jpg, a.png, sub/a.jpg) never
// overwrite each other.
std::vector<fs::path> drawing_paths(const std::vector<fs::path>& images, const fs::path& draw) {
  std::vector<fs::path> absolute;
  for (const auto& p : images) absolute.push_back(fs::absolute(p).lexically_normal());
  fs::path common = absolute.front().parent_path();
  for (const auto& p : absolute)
    while (!common.empty() && p.lexically_relative(common).begin()->string() == "..") common = common.parent_path();
  std::vector<fs::path> out;
  for (const auto& p : absolute) out.push_back(draw / p.lexically_relative(common));
  return out;
}
// Every image's detections as COCO results (plus drawings); bad images fail, or with skip_bad are
// counted in `skipped`. The drawings are made once every image has been predicted, so a run that
// fails part-way leaves neither results nor drawings behind.
nlohmann::json predict_all(detr::Predictor& predictor,
                           const std::vector<fs::path>& images,
                           const std::vector<fs::path>& drawings,
                           float threshold,
                           int64_t topk,
                           bool skip_bad,
                           size_t& skipped) {
  nlohmann::json results = nlohmann::json::array();
  std::vector<std::optional<std::vector<detr::Prediction>>> found(images.size());  // nullopt: skipped
  for (size_t i = 0; i < images.size(); ++i) {
    try {
      found[i] = detr::predict_image(predictor, images[i], threshold, topk);
    } catch (const std::runtime_error& e) {
      if (!skip_bad)
        throw std::runtime_error(std::string(e.what()) + " (--skip_bad_images skips such images; nothing was written)");
      std::cerr << "detr_predict: skipped " << detr::one_line(e.what()) << "\n";
      ++skipped;
      continue;
    }
    for (const auto& p : *found[i]) {
      auto r = detr::to_json(p);
      r["file_name"] = images[i].string();
      r["image_id"] = static_cast<int64_t>(i);
      results.push_back(std::move(r));
    }
  }
  for (size_t i = 0; i < drawings.size(); ++i) {
    if (!found[i]) continue;
    fs::create_directories(drawings[i].parent_path());
    detr::draw_predictions(images[i], *found[i], drawings[i]);
  }
  return results;
}

struct PredictCommand {
  std::string checkpoint, input, output, draw;
  double threshold = 0.5;
  int64_t topk = 100;
  bool skip_bad_images = false, serve = false, dilation = false;
  std::optional<torch::Device> device;  // none: CUDA when available
  int64_t num_threads = 0;
  int64_t serve_batch = 0;  // 0: by device
  detr::models::ConvAlgorithm conv_algorithm = detr::models::ConvAlgorithm::kWinograd;
  detr::Precision amp = detr::Precision::fp32;
};

detr::FlagTable<PredictCommand> flag_table() {
  using C = PredictCommand;
  detr::FlagTable<C> t("detr_predict", "Detects objects with a trained DETR; writes COCO results JSON.");
  const char* g = "";
  // clang-format off
  t.add(g, "checkpoint", "our checkpoint.pth (or its directory) or an upstream DETR .pth", &C::checkpoint);
  t.add(g, "input", "an image, a text file listing images, or a folder", &C::input);
  t.add(g, "output", "results JSON (default: stdout)", &C::output);
  t.add(g, "threshold", "minimum score", &C::threshold);
  t.add(g, "topk", "at most this many detections per image (0 = all)", &C::topk);
  t.add(g, "draw", "also write annotated images to this folder (mirroring the inputs' folders and names)", &C::draw);
  t.add_switch(g, "skip_bad_images", "skip (and count) images that cannot be read instead of failing", [](C& c) -> bool& { return c.skip_bad_images; });
  t.add_switch(g, "serve", "keep the model loaded and answer JSON-line requests on stdin, one JSON line each on stdout, "
                           "until stdin ends: {\"id\", \"image\": base64 | \"path\", \"threshold\", \"topk\"} -> "
                           "{\"id\", \"width\", \"height\", \"detections\"} or {\"id\", \"error\"}", [](C& c) -> bool& { return c.serve; });
  t.add(g, "serve_batch", "--serve: at most this many requests that arrive together answered by one forward "
                          "(images of one size; 0: 8 on CUDA, 1 on the CPU, where a batch is no faster per image)", &C::serve_batch);
  t.add(g, detr::run_flags::kDevice, &C::device);
  t.add_switch(g, "dilation", "the upstream checkpoint is a DC5 model (not visible in its weights)", [](C& c) -> bool& { return c.dilation; });
  t.add(g, detr::run_flags::kNumThreads, &C::num_threads);
  t.add(g, detr::run_flags::kConvAlgorithm, &C::conv_algorithm);
  t.add(g, detr::run_flags::kAmp, &C::amp);
  // clang-format on
  return t;
}

void validate(const PredictCommand& c) {
  if (c.checkpoint.empty() || (c.input.empty() && !c.serve))
    throw detr::UsageError("--checkpoint and --input (or --serve) are required");
  if (c.serve && (!c.input.empty() || !c.draw.empty() || !c.output.empty()))
    throw detr::UsageError("--serve takes its images from stdin: no --input, --output or --draw");
  if (!(c.threshold >= 0 && c.threshold <= 1))
    throw detr::UsageError("--threshold must be in [0, 1], got " + std::to_string(c.threshold));
  if (c.topk < 0) throw detr::UsageError("--topk must be >= 0, got " + std::to_string(c.topk));
  if (c.serve_batch < 0 || c.serve_batch > 64)
    throw detr::UsageError("--serve_batch must be in [0, 64], got " + std::to_string(c.serve_batch));
  if (!c.output.empty() && fs::is_directory(c.output))
    throw detr::UsageError("--output " + c.output + " is a folder; give the results file's name");
}

int serve_stdin(detr::Predictor& predictor, const PredictCommand& c, torch::Device device) {
  detr::ServeOptions o;
  o.threshold = static_cast<float>(c.threshold);
  o.topk = c.topk;
  o.max_batch = c.serve_batch > 0 ? c.serve_batch : (device.is_cuda() ? 8 : 1);
  std::cerr << "detr_predict: serving " << c.checkpoint << " on " << device << ", up to " << o.max_batch
            << " images per forward (JSON lines on stdin)" << std::endl;
  int64_t forwards = 0;
  const auto t0 = std::chrono::steady_clock::now();
  const auto n = detr::serve(predictor, std::cin, std::cout, o, &forwards);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cerr << "detr_predict: answered " << n << " requests with " << forwards << " forwards in " << secs << " s"
            << std::endl;
  return 0;
}

int predict_files(detr::Predictor& predictor, const PredictCommand& c, torch::Device device) {
  const auto images = collect_images(c.input);
  const fs::path draw = c.draw;
  const auto drawings = draw.empty() ? std::vector<fs::path>{} : drawing_paths(images, draw);
  for (size_t i = 0; i < drawings.size(); ++i) {
    std::error_code ec;
    if (fs::equivalent(drawings[i], images[i], ec))
      throw detr::UsageError("--draw " + draw.string() + " would overwrite the input image " + images[i].string() +
                             "; draw into another folder");
  }
  size_t skipped = 0;
  const auto t0 = std::chrono::steady_clock::now();
  const auto results =
      predict_all(predictor, images, drawings, static_cast<float>(c.threshold), c.topk, c.skip_bad_images, skipped);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cerr << "detr_predict: " << images.size() - skipped << " images, " << results.size() << " detections, "
            << images.size() / std::max(secs, 1e-9) << " images/s on " << device;
  if (skipped) std::cerr << "; skipped " << skipped << " bad images";
  if (!draw.empty()) std::cerr << "; drawings in " << draw.string();
  std::cerr << "\n";
  if (c.output.empty()) {
    std::cout << results.dump(1) << "\n";
  } else {
    detr::util::write_file_atomically(c.output, results.dump(1) + "\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return detr::guarded_main("detr_predict", [&]() -> int {
    PredictCommand c;
    const auto line = flag_table().parse(argc, argv, c);
    if (!line.print.empty()) {
      std::cout << line.print << std::endl;
      return 0;
    }
    validate(c);
    detr::RunOptions ro;
    ro.device = c.device;
    ro.conv_algorithm = c.conv_algorithm;
    ro.num_threads = std::max<int64_t>(0, c.num_threads);
    const detr::RunContext ctx(ro, detr::Launch::local());
    const torch::Device device = ctx.device();
    detr::check_precision(c.amp, device);
    const auto t0 = std::chrono::steady_clock::now();
    auto predictor = detr::load_predictor(c.checkpoint, device, ctx.conv_kernels(), c.dilation);
    std::cerr << "detr_predict: model loaded in "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s" << std::endl;
    predictor.amp = c.amp;
    return c.serve ? serve_stdin(predictor, c, device) : predict_files(predictor, c, device);
  });
}
