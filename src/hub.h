// Pretrained weights as upstream gets them (torch.hub / torchvision): torchvision's ImageNet ResNets
// for the backbone, upstream DETR's model zoo by name, downloaded over HTTP(S) with libcurl into the
// cache torchvision uses ($TORCH_HOME/hub/checkpoints, default ~/.cache/torch/hub/checkpoints), so
// Python and C++ share it and a container image can pre-seed it. A file name carrying a hash prefix
// (resnet50-0676ba61.pth) is checked against the download's SHA-256, as torch.hub's check_hash does.
#pragma once
#include <filesystem>
#include <optional>
#include <string>

namespace detr::hub {

// torchvision's cache from the environment ($TORCH_HOME, $XDG_CACHE_HOME, $HOME). The command-line
// boundary reads it once (Launch); DownloadOptions carries it from there.
std::filesystem::path cache_dir();

// The torchvision IMAGENET1K_V1 URL of a ResNet ("resnet50" -> .../resnet50-0676ba61.pth).
std::string torchvision_resnet_url(const std::string& backbone);
// Upstream DETR's published detection models: R50, R50-DC5, R101, R101-DC5 (case-insensitive).
std::optional<std::string> detr_zoo_url(const std::string& name);

struct DownloadOptions {
  int attempts = 3;                 // tries before giving up
  bool progress = false;            // a progress line on stderr
  long timeout_s = 1800;            // whole transfer
  std::filesystem::path cache_dir;  // empty: cache_dir()
};

// The cached file for `url`, downloading it first when absent: to a temp file, hash-checked when the
// name carries a hash prefix, then renamed. Errors (std::runtime_error) name the URL and the cache path
// where the file can be placed by hand.
std::filesystem::path cached_download(const std::string& url, const DownloadOptions& options = {});

// A weights argument: an existing path; an http(s) URL (downloaded/cached); or, for --pretrained, a
// model-zoo name. Throws naming what was tried.
std::filesystem::path resolve_weights(const std::string& spec, bool allow_zoo_names, const DownloadOptions& options);

// SHA-256 of a file as lower-case hex.
std::string sha256_file(const std::filesystem::path& path);
std::string sha256_hex(const std::string& data);

}  // namespace detr::hub
