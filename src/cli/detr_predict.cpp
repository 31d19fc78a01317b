// detr_predict: runs a trained DETR (our checkpoint or an upstream model-zoo .pth) on an image, a list
// file (one path per line) or a folder, and writes COCO results JSON; --draw DIR also writes the images
// with boxes, labels and scores. Exit codes: 0 done, 1 failure, 2 usage.
#include <cxxopts.hpp>
#include <optional>

#include <torch/torch.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "models/winograd_conv.h"
#include "src/predict.h"
#include "src/predict_server.h"
#include "src/cli/guarded_main.h"
#include "util/atomic_file.h"
#include "src/run_context.h"

namespace fs = std::filesystem;

namespace {
std::vector<fs::path> collect_images(const fs::path& input) {
  std::vector<fs::path> images;
  auto is_image = [](const fs::path& p) {
    auto e = p.extension().string();
    std::transform(e.begin(), e.end(), e.begin(), ::tolower);
    return e == ".jpg" || e == ".jpeg" || e == ".png" || e == ".bmp" || e == ".tif" || e == ".tiff" || e == ".webp";
  };
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
nlohmann::json predict_all(detr::Predictor& predictor, const std::vector<fs::path>& images,
                           const std::vector<fs::path>& drawings, float threshold, int64_t topk, bool skip_bad,
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

cxxopts::Options make_options() {
  cxxopts::Options options("detr_predict", "Detects objects with a trained DETR; writes COCO results JSON.");
  // clang-format off
  options.add_options()
    ("checkpoint", "our checkpoint.pth (or its directory) or an upstream DETR .pth", cxxopts::value<std::string>())
    ("input", "an image, a text file listing images, or a folder", cxxopts::value<std::string>())
    ("output", "results JSON (default: stdout)", cxxopts::value<std::string>()->default_value(""))
    ("threshold", "minimum score", cxxopts::value<float>()->default_value("0.5"))
    ("topk", "at most this many detections per image (0 = all)", cxxopts::value<int64_t>()->default_value("100"))
    ("draw", "also write annotated images to this folder (mirroring the inputs' folders and names)",
     cxxopts::value<std::string>()->default_value(""))
    ("skip_bad_images", "skip (and count) images that cannot be read instead of failing")
    ("serve", "keep the model loaded and answer JSON-line requests on stdin, one JSON line each on stdout, "
              "until stdin ends: {\"id\", \"image\": base64 | \"path\", \"threshold\", \"topk\"} -> "
              "{\"id\", \"width\", \"height\", \"detections\"} or {\"id\", \"error\"}")
    ("device", "auto | cpu | cuda | cuda:N", cxxopts::value<std::string>()->default_value("auto"))
    ("dilation", "the upstream checkpoint is a DC5 model (not visible in its weights)")
    ("num_threads", "intra-op CPU threads (0 = all cores)", cxxopts::value<int>()->default_value("0"))
    ("conv_algorithm", "winograd | direct (CPU 3x3 convolutions)", cxxopts::value<std::string>()->default_value("winograd"))
    ("h,help", "print this help");
  // clang-format on
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  auto options = make_options();
  return detr::guarded_main("detr_predict", [&]() -> int {
    auto a = options.parse(argc, argv);
    if (a.count("help")) {
      std::cout << options.help() << std::endl;
      return 0;
    }
    const bool serving = a.count("serve") > 0;
    if (!a.count("checkpoint") || (!a.count("input") && !serving))
      throw cxxopts::exceptions::exception("--checkpoint and --input (or --serve) are required");
    if (serving && (a.count("input") || a.count("draw") || a.count("output")))
      throw cxxopts::exceptions::exception("--serve takes its images from stdin: no --input, --output or --draw");
    detr::RunOptions ro;
    try {
      ro.device = detr::parse_device(a["device"].as<std::string>());
      ro.conv_algorithm = detr::models::parse_conv_algorithm(a["conv_algorithm"].as<std::string>());
    } catch (const std::invalid_argument& e) {
      throw detr::UsageError(e.what());
    }
    ro.num_threads = std::max(0, a["num_threads"].as<int>());
    const detr::RunContext ctx(ro, detr::Launch::local());
    const torch::Device device = ctx.device();
    const float threshold = a["threshold"].as<float>();
    const int64_t topk = a["topk"].as<int64_t>();
    if (!(threshold >= 0 && threshold <= 1))
      throw cxxopts::exceptions::exception("--threshold must be in [0, 1], got " + std::to_string(threshold));
    if (topk < 0) throw cxxopts::exceptions::exception("--topk must be >= 0, got " + std::to_string(topk));
    const auto out = a["output"].as<std::string>();
    if (!out.empty() && fs::is_directory(out))
      throw cxxopts::exceptions::exception("--output " + out + " is a folder; give the results file's name");
    const bool skip_bad = a.count("skip_bad_images") > 0;
    auto predictor = detr::load_predictor(a["checkpoint"].as<std::string>(), device, ctx.conv_kernels(), a.count("dilation") > 0);
    if (serving) {
      std::cerr << "detr_predict: serving " << a["checkpoint"].as<std::string>() << " on " << device
                << " (JSON lines on stdin)" << std::endl;
      const auto n = detr::serve(predictor, std::cin, std::cout, {threshold, topk});
      std::cerr << "detr_predict: answered " << n << " requests" << std::endl;
      return 0;
    }
    const auto images = collect_images(a["input"].as<std::string>());
    const fs::path draw = a["draw"].as<std::string>();
    const auto drawings = draw.empty() ? std::vector<fs::path>{} : drawing_paths(images, draw);
    for (size_t i = 0; i < drawings.size(); ++i) {
      std::error_code ec;
      if (fs::equivalent(drawings[i], images[i], ec))
        throw cxxopts::exceptions::exception("--draw " + draw.string() + " would overwrite the input image " +
                                             images[i].string() + "; draw into another folder");
    }
    size_t skipped = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const auto results = predict_all(predictor, images, drawings, threshold, topk, skip_bad, skipped);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cerr << "detr_predict: " << images.size() - skipped << " images, " << results.size() << " detections, "
              << images.size() / std::max(secs, 1e-9) << " images/s on " << device;
    if (skipped) std::cerr << "; skipped " << skipped << " bad images";
    if (!draw.empty()) std::cerr << "; drawings in " << draw.string();
    std::cerr << "\n";
    if (out.empty()) {
      std::cout << results.dump(1) << "\n";
    } else {
      detr::util::write_file_atomically(out, results.dump(1) + "\n");
    }
    return 0;
    });
}
