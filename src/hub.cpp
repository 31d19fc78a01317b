#include "src/hub.h"

#ifdef DETR_WITH_CURL
#include <curl/curl.h>
#endif
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

namespace detr::hub {

namespace fs = std::filesystem;

// ---- SHA-256 (FIPS 180-4) -------------------------------------------------------------------------
namespace {

class Sha256 {
 public:
  void update(const unsigned char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      block_[fill_++] = p[i];
      if (fill_ == 64) {
        compress();
        fill_ = 0;
      }
    }
    bits_ += 8 * static_cast<uint64_t>(n);
  }
  std::string hex() {
    const uint64_t bits = bits_;
    const unsigned char one = 0x80, zero = 0;
    update(&one, 1);
    while (fill_ != 56) update(&zero, 1);
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(bits >> (56 - 8 * i));
    update(len, 8);
    std::ostringstream s;
    for (uint32_t v : h_) {
      char buf[9];
      std::snprintf(buf, sizeof buf, "%08x", v);
      s << buf;
    }
    return s.str();
  }

 private:
  static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
  void compress() {
    static const uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
      w[i] = (uint32_t(block_[4 * i]) << 24) | (uint32_t(block_[4 * i + 1]) << 16) |
             (uint32_t(block_[4 * i + 2]) << 8) | uint32_t(block_[4 * i + 3]);
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    const uint32_t add[8] = {a, b, c, d, e, f, g, h};
    for (int i = 0; i < 8; ++i) h_[i] += add[i];
  }
  std::array<uint32_t, 8> h_{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                             0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  unsigned char block_[64]{};
  size_t fill_ = 0;
  uint64_t bits_ = 0;
};

// torch.hub's HASH_REGEX: the hex after the first '-' that ends at a '.'.
std::string hash_prefix(const std::string& file_name) {
  std::smatch m;
  static const std::regex re("-([a-f0-9]*)\\.");
  return std::regex_search(file_name, m, re) ? m[1].str() : "";
}

#ifdef DETR_WITH_CURL
size_t write_to_file(char* data, size_t size, size_t n, void* file) {
  return std::fwrite(data, size, n, static_cast<std::FILE*>(file));
}

int progress_line(void*, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  if (total > 0)
    std::fprintf(stderr, "\rdownloading: %5.1f%% of %.1f MB",
                 100.0 * static_cast<double>(now) / static_cast<double>(total), static_cast<double>(total) / 1e6);
  return 0;
}

// One attempt; returns "" on success, else what went wrong.
std::string fetch(const std::string& url, const fs::path& to, const DownloadOptions& o) {
  std::FILE* f = std::fopen(to.c_str(), "wb");
  if (!f) return "cannot write " + to.string();
  CURL* curl = curl_easy_init();
  if (!curl) {
    std::fclose(f);
    return "libcurl could not start";
  }
  char error[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_to_file);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, f);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, o.timeout_s);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "detr-cpp");
  if (o.progress) {
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, progress_line);
  }
  const CURLcode rc = curl_easy_perform(curl);
  curl_easy_cleanup(curl);
  const bool closed = std::fclose(f) == 0;
  if (o.progress) std::fprintf(stderr, "\n");
  if (rc != CURLE_OK) return error[0] ? error : curl_easy_strerror(rc);
  return closed ? "" : "write failed for " + to.string();
}

// libcurl's one-time set-up, done on the first download.
void start_downloads(const std::string&, const fs::path&) {
  static const bool ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  if (!ready) throw std::runtime_error("libcurl could not be initialised");
}

#else
std::string fetch(const std::string& url, const fs::path&, const DownloadOptions&) {
  return "this build has no libcurl, so it cannot download " + url;
}

void start_downloads(const std::string& url, const fs::path& target) {
  throw std::runtime_error(fetch(url, target, {}) + "; place the file at " + target.string() +
                           " (TORCH_HOME sets the cache), or pass a local path");
}
#endif  // DETR_WITH_CURL

}  // namespace

std::string sha256_hex(const std::string& data) {
  Sha256 h;
  h.update(reinterpret_cast<const unsigned char*>(data.data()), data.size());
  return h.hex();
}

std::string sha256_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot read");
  Sha256 h;
  std::vector<char> buf(1 << 20);
  while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0)
    h.update(reinterpret_cast<const unsigned char*>(buf.data()), static_cast<size_t>(in.gcount()));
  return h.hex();
}

fs::path cache_dir() {
  if (const char* t = std::getenv("TORCH_HOME"); t && *t) return fs::path(t) / "hub" / "checkpoints";
  fs::path base;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    base = x;
  else if (const char* h = std::getenv("HOME"); h && *h)
    base = fs::path(h) / ".cache";
  else
    base = "/tmp";
  return base / "torch" / "hub" / "checkpoints";
}

std::string torchvision_resnet_url(const std::string& backbone) {
  static const std::map<std::string, std::string> files{{"resnet18", "resnet18-f37072fd.pth"},
                                                        {"resnet34", "resnet34-b627a593.pth"},
                                                        {"resnet50", "resnet50-0676ba61.pth"},
                                                        {"resnet101", "resnet101-63fe2227.pth"}};
  auto it = files.find(backbone);
  if (it == files.end()) throw std::invalid_argument("no torchvision weights for backbone '" + backbone + "'");
  return "https://download.pytorch.org/models/" + it->second;
}

std::optional<std::string> detr_zoo_url(const std::string& name) {
  static const std::map<std::string, std::string> zoo{{"r50", "detr-r50-e632da11.pth"},
                                                      {"r50-dc5", "detr-r50-dc5-f0fb7ef5.pth"},
                                                      {"r101", "detr-r101-2c7b67e5.pth"},
                                                      {"r101-dc5", "detr-r101-dc5-a2e86def.pth"}};
  std::string key = name;
  for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto it = zoo.find(key);
  if (it == zoo.end()) return std::nullopt;
  return "https://dl.fbaipublicfiles.com/detr/" + it->second;
}

fs::path cached_download(const std::string& url, const DownloadOptions& o) {
  const std::string name = url.substr(url.find_last_of('/') + 1);
  const fs::path dir = o.cache_dir.empty() ? cache_dir() : o.cache_dir, target = dir / name;
  if (fs::is_regular_file(target)) return target;  // cache hit: no network (as torch.hub)
  start_downloads(url, target);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir)) throw std::runtime_error("cannot create the weights cache " + dir.string());
  const fs::path tmp = target.string() + ".partial." + std::to_string(::getpid());
  std::string why;
  for (int attempt = 1; attempt <= std::max(1, o.attempts); ++attempt) {
    why = fetch(url, tmp, o);
    if (why.empty()) break;
    if (attempt < o.attempts) std::this_thread::sleep_for(std::chrono::seconds(attempt));
  }
  if (!why.empty()) {
    fs::remove(tmp, ec);
    throw std::runtime_error("cannot download " + url + " (" + why + "); without network, place the file at " +
                             target.string() + " (TORCH_HOME sets the cache), or pass a local path");
  }
  if (const auto prefix = hash_prefix(name); !prefix.empty()) {
    const auto digest = sha256_file(tmp);
    if (digest.compare(0, prefix.size(), prefix) != 0) {
      fs::remove(tmp, ec);
      throw std::runtime_error("downloaded " + url + " has SHA-256 " + digest + ", which does not start with " +
                               prefix + " as its name says: refusing it (corrupt transfer or wrong file)");
    }
  }
  fs::rename(tmp, target);
  return target;
}

fs::path resolve_weights(const std::string& spec, bool allow_zoo_names, const DownloadOptions& o) {
  if (spec.rfind("http://", 0) == 0 || spec.rfind("https://", 0) == 0) return cached_download(spec, o);
  if (fs::exists(spec)) return spec;
  if (allow_zoo_names)
    if (auto url = detr_zoo_url(spec)) return cached_download(*url, o);
  throw std::runtime_error("'" + spec + "' is not a file, a directory, an http(s) URL" +
                           std::string(allow_zoo_names ? " or a model-zoo name (R50, R50-DC5, R101, R101-DC5)" : ""));
}

}  // namespace detr::hub
