// Hostile and broken input: crafted checkpoints and pickles, decompression bombs, images that do not
// match their annotations, ids outside any sane range, paths leaving the dataset. Every case must end
// in one clear error (or a counted skip), never a crash, a runaway allocation or silent wrong training.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "datasets/coco.h"
#include "datasets/image_header.h"
#include "datasets/image_io.h"
#include "datasets/synthetic.h"
#include "src/cli/guarded_main.h"
#include "src/checkpoint.h"
#include "src/optimizer.h"
#include "src/serialization/inspect.h"
#include "src/serialization/pickle.h"
#include "src/serialization/state_dict.h"
#include "src/serialization/torch_save.h"
#include "util/atomic_file.h"
#include "util/terminal.h"
#include "tests/support.h"

namespace fs = std::filesystem;
using namespace detr;
using detr::testing::expect_error;
using detr::testing::read_file;
using detr::testing::run_command;
using detr::testing::write_file;
using serialization::PyValue;

namespace {

fs::path temp_dir(const std::string& name) { return detr::testing::scratch_dir("detr_faults_", name); }

std::string le(uint64_t v, int bytes) {
  std::string s;
  for (int i = 0; i < bytes; ++i) s += static_cast<char>((v >> (8 * i)) & 0xFF);
  return s;
}

// ---- COCO exports ---------------------------------------------------------------------------------

fs::path make_export(const std::string& name, int64_t images = 4) {
  auto root = temp_dir(name);
  datasets::SyntheticExportOptions o;
  o.num_images = images;
  o.width = 64;
  o.height = 48;
  datasets::write_synthetic_cvat_export(root, o);
  return root;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

void write_json(const fs::path& p, const nlohmann::json& j) {
  std::ofstream out(p);
  out << j.dump();
}

fs::path annotations(const fs::path& root) { return root / "annotations" / "instances_default.json"; }

// Edits the export's annotation file as text (numbers nlohmann would not write, such as 1e19).
void edit_text(const fs::path& root, const std::string& from, const std::string& to) {
  std::ifstream in(annotations(root));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto at = text.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  text.replace(at, from.size(), to);
  write_file(annotations(root), text);
}

datasets::CocoDataset load(const fs::path& root, datasets::CocoLoadOptions o = {}) {
  return datasets::load_coco(datasets::discover_coco(root).train, o);
}

}  // namespace

// ---- torch.save reader: memory amplification ----------------------------------------------------

TEST(Faults, PickleMemoReferencesShareOneString) {
  // [s, s, s, ...]: one 1 MB string memoised once, then 4000 BINGETs of it (Python shares the object).
  const std::string big(1 << 20, 'x');
  std::string p = std::string("\x80\x02]q\x00", 5) + "(X" + le(big.size(), 4) + big + "q\x01";
  for (int i = 0; i < 4000; ++i) p += "h\x01";
  p += "e.";
  auto r = serialization::unpickle(p.data(), p.size(), 0, nullptr);
  ASSERT_EQ(r.value.size(), 4001u);
  const char* first = r.value.item(0).as_str().data();
  for (size_t i = 1; i < r.value.size(); ++i) ASSERT_EQ(r.value.item(i).as_str().data(), first) << i;
  std::cout << "4001 references to a 1 MB string share one buffer\n";
}

TEST(Faults, PickleOfMillionsOfSmallValuesIsRefused) {
  // Measured before: a 10 MB pickle of ten million small ints took 4.7 GB (about 450 bytes each).
  // A pickle makes at most 2^20 values (a DETR checkpoint with its optimizer makes about 10^4).
  std::string p = std::string("\x80\x02]q\x00(", 6);
  for (int i = 0; i < 2'000'000; ++i) p += "K\x01";
  p += "e.";
  expect_error([&] { serialization::unpickle(p.data(), p.size(), 0, nullptr); },
               {"pickle: more than 1048576 values", "refused"});
  std::string ok = std::string("\x80\x02]q\x00(", 6);
  for (int i = 0; i < 100'000; ++i) ok += "K\x01";
  ok += "e.";
  EXPECT_EQ(serialization::unpickle(ok.data(), ok.size(), 0, nullptr).value.size(), 100'000u);
}

TEST(Faults, CompressedZipRecordDeclaringHugeSizeIsRefusedBeforeInflating) {
  // A zip whose data.pkl is deflate-compressed and declares 512 MB (the bytes need not be valid: the
  // central directory is checked before anything is inflated).
  const std::string name = "archive/data.pkl", data(1000, '\0');
  const uint64_t declared = 512ull << 20;
  std::string local = "PK\x03\x04" + le(20, 2) + le(0, 2) + le(8, 2) + le(0, 4) + le(0, 4) + le(data.size(), 4) +
                      le(declared, 4) + le(name.size(), 2) + le(0, 2) + name + data;
  std::string central = "PK\x01\x02" + le(20, 2) + le(20, 2) + le(0, 2) + le(8, 2) + le(0, 4) + le(0, 4) +
                        le(data.size(), 4) + le(declared, 4) + le(name.size(), 2) + le(0, 2) + le(0, 2) + le(0, 2) +
                        le(0, 2) + le(0, 4) + le(0, 4) + name;
  std::string end =
      "PK\x05\x06" + le(0, 2) + le(0, 2) + le(1, 2) + le(1, 2) + le(central.size(), 4) + le(local.size(), 4) + le(0, 2);
  auto dir = temp_dir("zipbomb");
  write_file(dir / "bomb.pth", local + central + end);
  expect_error([&] { serialization::torch_load(dir / "bomb.pth"); },
               {"bomb.pth", "archive/data.pkl", "compressed", "536870912", "refused"});
}

// ---- resume state ---------------------------------------------------------------------------------

namespace {
// A checkpoint with a one-tensor model and the given top-level fields.
fs::path checkpoint_with(const fs::path& dir, std::vector<std::pair<std::string, PyValue>> fields) {
  std::vector<std::pair<PyValue, PyValue>> model{{PyValue::str("w"), PyValue::tensor(torch::ones({2}))}};
  std::vector<std::pair<PyValue, PyValue>> root{{PyValue::str("model"), PyValue::dict(model)}};
  for (auto& [k, v] : fields) root.emplace_back(PyValue::str(k), v);
  const auto path = dir / "checkpoint.pth";
  serialization::torch_save(PyValue::dict(root), path);
  return path;
}
}  // namespace

TEST(Faults, ResumeStateIsValidated) {
  auto dir = temp_dir("resume");
  const int64_t big = std::numeric_limits<int64_t>::max();
  struct Case {
    std::string field;
    PyValue value;
    std::string needle;
  };
  const std::vector<Case> cases{
      {"epoch", PyValue::integer(big), "9223372036854775807"},
      {"epoch", PyValue::integer(-100), "-100"},
      {"epoch", PyValue::floating(3.0), "expected an integer"},
      {"images_per_step", PyValue::integer(int64_t{1} << 62), "4611686018427387904"},
      {"step_in_epoch", PyValue::integer(int64_t{1} << 62), "4611686018427387904"},
      {"best_ap", PyValue::floating(5.0), "best_ap"},
      // read for every use (training, detr_predict, Detector): checked the same way
      {"classes", PyValue::list({PyValue::integer(3)}), "expected {'id': int, 'name': str}"},
      {"classes", PyValue::str("cat"), "expected a list"},
      {"args", PyValue::dict({{PyValue::str("val_size"), PyValue::integer(int64_t{1} << 40)}}), "1099511627776"},
      {"args", PyValue::dict({{PyValue::str("dilation"), PyValue::str("yes")}}), "expected True or False"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.field);
    std::vector<std::pair<std::string, PyValue>> fields{{"epoch", PyValue::integer(3)}};
    if (c.field == "epoch") fields.clear();
    fields.emplace_back(c.field, c.value);
    const auto path = checkpoint_with(dir, fields);
    expect_error([&] { load_checkpoint(path); }, {"checkpoint.pth", "'" + c.field, c.needle});
  }
  const auto ok = load_checkpoint(checkpoint_with(
      dir,
      {{"epoch", PyValue::integer(3)}, {"step_in_epoch", PyValue::integer(5)}, {"best_ap", PyValue::floating(0.25)}}));
  ASSERT_TRUE(ok.state);
  EXPECT_EQ(ok.state->epoch, 3);
  EXPECT_EQ(ok.state->step_in_epoch, 5);
}

TEST(Faults, NonFiniteWeightsAreRefusedByName) {
  // A NaN or infinity anywhere in a weight, in float32 (checked in one pass over its bits) or another
  // float type; finite extremes pass.
  auto dir = temp_dir("finite");
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const auto save = [&](const torch::Tensor& w) {
    std::vector<std::pair<PyValue, PyValue>> model{{PyValue::str("ok"), PyValue::tensor(torch::ones({3}))},
                                                   {PyValue::str("w"), PyValue::tensor(w)}};
    const auto path = dir / "checkpoint.pth";
    serialization::torch_save(PyValue::dict({{PyValue::str("model"), PyValue::dict(model)}}), path);
    return path;
  };
  for (const int64_t at : {0, 1, 16, 999}) {
    for (const float bad : {inf, -inf, nan}) {
      auto w = torch::randn({1000});
      w[at] = bad;
      expect_error([&] { load_checkpoint(save(w)); }, {"checkpoint.pth", "weight 'w'", "NaN or infinite"});
    }
  }
  for (const auto dtype : {torch::kDouble, torch::kHalf, torch::kBFloat16}) {
    auto w = torch::ones({5}, dtype);
    w[4] = inf;
    expect_error([&] { load_checkpoint(save(w)); }, {"weight 'w'", "NaN or infinite"});
  }
  const auto extremes = torch::tensor({std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                                       std::numeric_limits<float>::denorm_min(), -0.0f});
  EXPECT_NO_THROW(load_checkpoint(save(extremes)));
}

TEST(Faults, InferredConfigRefusesTensorsOfTheWrongRank) {
  // A crafted file whose query embedding is a vector: its shape was indexed past its end before.
  std::map<std::string, torch::Tensor> state{{"query_embed.weight", torch::zeros({4})},
                                             {"class_embed.weight", torch::zeros({3, 4})}};
  expect_error([&] { infer_model_config(state); }, {"'query_embed.weight' has shape [4]", "expected a matrix"});
  state["query_embed.weight"] = torch::zeros({5, 4});
  state["class_embed.weight"] = torch::zeros({});
  expect_error([&] { infer_model_config(state); }, {"'class_embed.weight' has shape []", "not a DETR model"});
}

TEST(Faults, ResumedOptimizerStateIsValidated) {
  // Measured before: betas outside [0, 1) and a negative exp_avg_sq were accepted on --resume (the latter
  // surfaced epochs later as a "degenerate box" error).
  auto dir = temp_dir("optimizer");
  auto model = std::make_shared<torch::nn::Module>();
  model->register_parameter("w", torch::ones({2}));
  model->register_module("backbone", std::make_shared<torch::nn::Module>())->register_parameter("w", torch::ones({2}));
  const auto write = [&](double b1, double b2, const torch::Tensor& exp_avg, const torch::Tensor& exp_avg_sq) {
    const auto group = [&](int64_t id) {
      return PyValue::dict({{PyValue::str("lr"), PyValue::floating(1e-4)},
                            {PyValue::str("betas"), PyValue::tuple({PyValue::floating(b1), PyValue::floating(b2)})},
                            {PyValue::str("eps"), PyValue::floating(1e-8)},
                            {PyValue::str("weight_decay"), PyValue::floating(1e-4)},
                            {PyValue::str("params"), PyValue::list({PyValue::integer(id)})}});
    };
    const auto state = PyValue::dict({{PyValue::str("step"), PyValue::tensor(torch::tensor(1.0f))},
                                      {PyValue::str("exp_avg"), PyValue::tensor(exp_avg)},
                                      {PyValue::str("exp_avg_sq"), PyValue::tensor(exp_avg_sq)}});
    return checkpoint_with(
        dir, {{"optimizer", PyValue::dict({{PyValue::str("state"), PyValue::dict({{PyValue::integer(0), state}})},
                                           {PyValue::str("param_groups"), PyValue::list({group(0), group(1)})}})},
              {"lr_scheduler", PyValue::dict({{PyValue::str("last_epoch"), PyValue::integer(1)}})},
              {"epoch", PyValue::integer(1)}});
  };
  const auto ones = torch::ones({2}), nan = torch::tensor({1.0f, std::nanf("")}), neg = torch::tensor({1.0f, -1.0f});
  struct Case {
    double b1, b2;
    torch::Tensor exp_avg, exp_avg_sq;
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases{
      {0.9, 1.5, ones, ones, {"optimizer.param_groups[0].betas[1]", "1.5"}},
      {0.9, 1.0, ones, ones, {"betas[1]", "expected below 1"}},
      {-0.1, 0.999, ones, ones, {"betas[0]", "-0.1"}},
      {0.9, 0.999, ones, neg, {"optimizer.state[0].exp_avg_sq", "negative"}},
      {0.9, 0.999, nan, ones, {"optimizer.state[0]", "NaN"}},
  };
  for (const auto& c : cases) {
    AdamW opt(*model, {});
    StepLR sched(opt, 200);
    const auto path = write(c.b1, c.b2, c.exp_avg, c.exp_avg_sq);
    std::vector<std::string> needles{"checkpoint.pth"};
    needles.insert(needles.end(), c.needles.begin(), c.needles.end());
    expect_error([&] { restore_optimizer(load_checkpoint(path), opt, sched); }, {needles[0], needles[1], needles[2]});
  }
  AdamW opt(*model, {});
  StepLR sched(opt, 200);
  const auto path = write(0.8, 0.99, ones, ones);
  const auto ck = load_checkpoint(path);
  fs::remove(path);  // the file is read once: the optimizer comes from what load_checkpoint read
  restore_optimizer(ck, opt, sched);
  EXPECT_EQ(opt.options().beta1, 0.8);  // the checkpoint's betas, as torch.optim's load_state_dict
  EXPECT_EQ(opt.options().beta2, 0.99);
  EXPECT_TRUE(torch::equal(opt.state()[0].exp_avg_sq, ones));
}

// ---- images -----------------------------------------------------------------------------------------

TEST(Faults, ImageHeadersGiveTheDeclaredSize) {
  auto dir = temp_dir("headers");
  const auto img = torch::full({37, 53, 3}, 100, torch::kUInt8);
  for (const std::string ext : {".jpg", ".png", ".bmp", ".tiff", ".ppm", ".webp"}) {
    try {
      datasets::save_image_rgb(img, dir / ("a" + ext));
    } catch (const std::exception& e) {
      std::cout << "  (this OpenCV cannot write " << ext << ": " << e.what() << ")\n";
      continue;
    }
    const auto buf = read_file(dir / ("a" + ext));
    const auto h = datasets::read_image_header(reinterpret_cast<const uint8_t*>(buf.data()), buf.size());
    ASSERT_TRUE(h) << ext;
    EXPECT_EQ(h->width, 53) << ext;
    EXPECT_EQ(h->height, 37) << ext;
    std::cout << "  " << ext << ": " << h->format << " " << h->width << "x" << h->height << "\n";
  }
  const std::string gif = "GIF89a" + le(640, 2) + le(480, 2) + std::string(8, '\0');
  const auto g = datasets::read_image_header(reinterpret_cast<const uint8_t*>(gif.data()), gif.size());
  ASSERT_TRUE(g);
  EXPECT_EQ(g->width, 640);
  EXPECT_EQ(g->height, 480);
  EXPECT_FALSE(datasets::read_image_header(reinterpret_cast<const uint8_t*>("hello"), 5));
}

TEST(Faults, FormatsWithoutACheckedSizeAreRefusedByContent) {
  // Tiny files that decoders would read as huge images (measured before this rule: a 24 KB BigTIFF of
  // 24000x24000 took 8.5 GB, a 4.4 KB JPEG 2000 of 16000x16000 named .png 6.9 GB and exit 0). Only a
  // size read from the header is ever decoded: JPEG 2000's is read (and over the limit here); the other
  // formats are refused by content, whatever the name, on every path (header check, decode, decode from
  // a request's bytes), in well under a second.
  auto dir = temp_dir("unchecked");
  const std::string be16000 = std::string("\x00\x00\x3E\x80", 4);
  struct Case {
    std::string name, bytes, needle;
  };
  const std::vector<Case> cases = {
      {"bigtiff.tif", std::string("II+\0\x08\0\0\0", 8) + le(16, 8) + std::string(64, '\0'),
       "a BigTIFF image (by its content)"},
      {"j2k_as.png", std::string("\xFF\x4F\xFF\x51\x00\x2F\x00\x00", 8) + be16000 + be16000 + std::string(40, '\0'),
       "JPEG 2000 declares 16000x16000"},
      {"jp2_as.jpg", std::string("\0\0\0\x0CjP  \r\n\x87\n", 12) + std::string(64, '\0'), "cannot read the image size"},
      {"radiance.hdr", "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 16000 +X 16000\n" + std::string(64, '\x02'),
       "a Radiance HDR image (by its content)"},
      {"pam.pnm", "P7\nWIDTH 16000\nHEIGHT 16000\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n" + std::string(64, '\0'),
       "a PAM image (by its content)"},
      {"pfm.png", "PF\n16000 16000\n-1.0\n" + std::string(64, '\0'), "a PFM image (by its content)"},
      {"text.jpg", "these are not the pixels you are looking for",
       "not an image in a format read here (by its content)"},
  };
  for (const auto& c : cases) {
    write_file(dir / c.name, c.bytes);
    const auto t0 = std::chrono::steady_clock::now();
    expect_error([&] { datasets::load_image_rgb(dir / c.name); }, {c.name, c.needle});
    EXPECT_NE(datasets::image_problem(dir / c.name).find(c.needle), std::string::npos) << c.name;
    if (c.needle.find("declares") == std::string::npos)  // a header check only reads the size
      expect_error([&] { datasets::read_image_file_header(dir / c.name); }, {c.name, c.needle});
    expect_error([&] { datasets::decode_image_rgb(c.bytes, "request 1's image"); }, {"request 1's image", c.needle});
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(s, 5.0) << c.name;
  }
}

TEST(Faults, TiffSizeIsReadWhereTheFileKeepsIt) {
  // libtiff writes the IFD (which holds the size) after the pixels: a TIFF over 1 MiB had its size
  // past what the header check read. The IFD is read where the header says it is.
  auto dir = temp_dir("tiff_ifd");
  const uint32_t ifd = 3u << 20;
  std::string t = std::string("II*\0", 4) + le(ifd, 4) + std::string(ifd - 8, '\0');
  t += le(2, 2) + le(256, 2) + le(3, 2) + le(1, 4) + le(123, 4) + le(257, 2) + le(4, 2) + le(1, 4) + le(45, 4);
  write_file(dir / "big.tif", t);
  const auto h = datasets::read_image_file_header(dir / "big.tif");
  EXPECT_EQ(h.format, "TIFF");
  EXPECT_EQ(h.width, 123);
  EXPECT_EQ(h.height, 45);
  // A JP2 file's size from its jp2h/ihdr boxes.
  const std::string jp2 = std::string("\0\0\0\x0CjP  \r\n\x87\n", 12) + le(0x14000000, 4) + "ftypjp2 " +
                          std::string(8, '\0') + std::string("\0\0\0\x2Djp2h", 8) + std::string("\0\0\0\x16ihdr", 8) +
                          std::string("\0\0\0\x30\0\0\0\x40", 8) + std::string(29, '\0');
  write_file(dir / "a.jp2", jp2);
  const auto j = datasets::read_image_file_header(dir / "a.jp2");
  EXPECT_EQ(j.format, "JPEG 2000");
  EXPECT_EQ(j.width, 64);
  EXPECT_EQ(j.height, 48);
}

TEST(Faults, NonRegularFilesAreNeverReadAsImages) {
  // /dev/zero read as an image grew until std::bad_alloc; a FIFO would block for ever.
  auto dir = temp_dir("devices");
  expect_error([&] { datasets::load_image_rgb("/dev/zero"); }, {"/dev/zero", "not a regular file"});
  expect_error([&] { datasets::read_image_file_header("/dev/zero"); }, {"/dev/zero", "not a regular file"});
  ASSERT_EQ(::mkfifo((dir / "fifo.jpg").c_str(), 0600), 0);
  expect_error([&] { datasets::load_image_rgb(dir / "fifo.jpg"); }, {"fifo.jpg", "not a regular file"});
  expect_error([&] { datasets::load_image_rgb(dir); }, {"not a regular file"});
}

TEST(Faults, DecompressionBombIsRefusedFromItsHeader) {
  // A real PNG whose IHDR is patched to declare 16000x16000: refused before any decoding.
  auto dir = temp_dir("bomb");
  datasets::save_image_rgb(torch::zeros({16, 16, 3}, torch::kUInt8), dir / "small.png");
  auto buf = read_file(dir / "small.png");
  for (int k : {16, 20}) {  // width, height: big-endian 16000
    buf[k] = 0, buf[k + 1] = 0, buf[k + 2] = 0x3E, buf[k + 3] = static_cast<char>(0x80);
  }
  write_file(dir / "bomb.png", buf);
  expect_error([&] { datasets::load_image_rgb(dir / "bomb.png"); },
               {"bomb.png", "16000x16000", "178956970", "--max_image_pixels"});
  expect_error([&] { datasets::load_image_rgb(dir / "bomb.png", 100); }, {"bomb.png", "limit of 100"});
  EXPECT_NE(datasets::image_problem(dir / "bomb.png").find("16000x16000"), std::string::npos);
  // A JPEG hiding its frame header behind a restart marker and stray bytes (libjpeg skips them and
  // would decode 32000x32000): the header walk reads it as libjpeg does.
  const std::string sof = "\xFF\xC0" + std::string("\x00\x11\x08\x7D\x00\x7D\x00\x03", 8) + std::string(9, '\x01');
  write_file(dir / "hidden.jpg",
             std::string("\xFF\xD8\xFF\xD0\x00\x06\x00\x00\x00\x00", 10) + sof + "\xFF\xDA\x00\x02\x00\xFF\xD9");
  expect_error([&] { datasets::load_image_rgb(dir / "hidden.jpg"); }, {"hidden.jpg", "32000x32000"});
  // A known format whose size cannot be read is never decoded.
  write_file(dir / "short.png", "\x89PNG\r\n\x1a\n\x00\x00");
  expect_error([&] { datasets::load_image_rgb(dir / "short.png"); }, {"short.png", "cannot read the image size"});
}

TEST(Faults, DeclaredSizeUnlikeTheFileFailsOrIsSkipped) {
  auto root = make_export("size", 4);
  auto j = read_json(annotations(root));
  j["images"][0]["width"] = 48, j["images"][0]["height"] = 64;  // as if EXIF-rotated by the annotator
  write_json(annotations(root), j);
  expect_error([&] { load(root); }, {"declared 48x64", "64x48", "EXIF"});
  auto skipped = load(root, {true, false});
  EXPECT_EQ(skipped.summary.skipped_images, 1);
  EXPECT_EQ(skipped.summary.images, 3);
}

// ---- ids ---------------------------------------------------------------------------------------------

TEST(Faults, IdsOutsideInt64AreRejectedNamingFileAndRecord) {
  const std::pair<std::string, std::string> ids[] = {{"1e19", "1e+19"},
                                                     {"5e19", "5e+19"},
                                                     {"9223372036854775808", "9223372036854775808"},
                                                     {"10000000000000000000", "10000000000000000000"},
                                                     {"3.5", "3.5"}};
  for (const auto& [id, shown] : ids) {
    SCOPED_TRACE(id);
    auto root = make_export("ids", 3);
    edit_text(root, "\"image_id\":0", "\"image_id\":" + id);
    expect_error([&] { load(root); }, {"instances_default.json", "annotation id", "image_id", shown});
  }
  auto root = make_export("ids_float", 3);
  edit_text(root, "\"image_id\":0", "\"image_id\":0.0");  // an integral float is the integer, as in Python
  EXPECT_NO_THROW(load(root));
}

TEST(Faults, HugeCategoryIdsWarnOrFailNamingTheId) {
  auto root = make_export("cats", 3);
  auto j = read_json(annotations(root));
  for (auto& a : j["annotations"])
    if (a["category_id"] == 3) a["category_id"] = 500;
  j["categories"][2]["id"] = 500;
  write_json(annotations(root), j);
  const auto data = load(root);
  const auto& w = data.summary.warnings;
  EXPECT_TRUE(std::any_of(w.begin(), w.end(), [](const auto& s) {
    return s.find("up to 500 for 3 categories") != s.npos;
  })) << datasets::format_summary(data, "train");
  j["categories"][2]["id"] = 1000000;
  for (auto& a : j["annotations"])
    if (a["category_id"] == 500) a["category_id"] = 1000000;
  write_json(annotations(root), j);
  expect_error([&] { load(root); }, {"instances_default.json", "categories[2]", "1000000", "renumber"});
}

// ---- paths ------------------------------------------------------------------------------------------

TEST(Faults, FileNamesStayInsideTheImageFolder) {
  auto root = make_export("paths", 3);
  const auto outside = root.parent_path() / ("outside_" + root.filename().string() + ".jpg");
  fs::copy_file(root / "images" / "0.jpg", outside, fs::copy_options::overwrite_existing);
  auto j = read_json(annotations(root));
  j["images"][1]["file_name"] = "../../" + outside.filename().string();
  write_json(annotations(root), j);
  expect_error([&] { load(root); }, {"not found"});  // never opened outside the folder
  j["images"][1]["file_name"] = outside.string();    // absolute: images/<basename> only
  write_json(annotations(root), j);
  expect_error([&] { load(root); }, {"not found"});
  j["images"][1]["file_name"] = "/home/annotator/task/" + j["images"][2]["file_name"].get<std::string>();
  write_json(annotations(root), j);
  auto data = load(root);  // the annotator's absolute path falls back to images/<basename>
  EXPECT_EQ(data.summary.file_name_fallbacks, 1);
  j["images"][1]["file_name"] = std::string("1.jpg\0../../etc/passwd", 22);
  write_json(annotations(root), j);
  expect_error([&] { load(root); }, {"NUL", "file_name"});
  fs::remove(outside);
}

// ---- detr_inspect -----------------------------------------------------------------------------------

TEST(Faults, InspectEscapesKeysAndTruncatesStrings) {
  std::vector<std::pair<PyValue, PyValue>> d{{PyValue::str("\x1b[31mred\x1b[0m"), PyValue::integer(1)},
                                             {PyValue::str("long"), PyValue::str(std::string(1 << 20, 'y'))},
                                             {PyValue::str(std::string(5000, 'k')), PyValue::integer(2)}};
  std::ostringstream os;
  serialization::print_structure(os, PyValue::dict(d), {});
  const auto out = os.str();
  std::cout << out.substr(0, 600) << "\n";
  EXPECT_EQ(out.find('\x1b'), std::string::npos);
  EXPECT_NE(out.find("\\x1b[31mred"), std::string::npos);
  EXPECT_LT(out.size(), 2000u);
  EXPECT_NE(out.find("(1048576 bytes)"), std::string::npos);
}

// ---- a full disk ------------------------------------------------------------------------------------

namespace {
// A tmpfs of `bytes` mounted on a scratch folder for the test's lifetime (needs root).
struct SmallDisk {
  fs::path dir;
  bool mounted = false;
  int error = 0;
  SmallDisk(const std::string& name, size_t bytes) : dir(temp_dir(name)) {
    const std::string opts = "size=" + std::to_string(bytes);
    mounted = ::mount("tmpfs", dir.c_str(), "tmpfs", 0, opts.c_str()) == 0;
    error = mounted ? 0 : errno;
  }
  ~SmallDisk() {
    if (mounted) ::umount2(dir.c_str(), MNT_DETACH);
  }
};

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}
}  // namespace

TEST(Faults, FullDiskLosesNothing) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root; this test runs as uid " << ::geteuid();
  SmallDisk disk("fulldisk", 1 << 20);
  if (!disk.mounted)
    GTEST_SKIP() << "mount(tmpfs) failed: " << std::strerror(disk.error) << " (no CAP_SYS_ADMIN here?)";
  // A checkpoint that fits, then one that does not: the first stays whole, no temp file is left.
  auto ck = [](int64_t n) {
    std::vector<std::pair<PyValue, PyValue>> sd{{PyValue::str("w"), PyValue::tensor(torch::ones({n}))}};
    return PyValue::dict({{PyValue::str("model"), PyValue::dict(sd)}});
  };
  const auto path = disk.dir / "checkpoint.pth";
  serialization::torch_save(ck(1000), path);
  expect_error([&] { serialization::torch_save(ck(1 << 20), path); }, {"checkpoint.pth", "No space left on device"});
  EXPECT_EQ(files_in(disk.dir), std::vector<std::string>{"checkpoint.pth"});
  EXPECT_EQ(serialization::to_state_dict(serialization::torch_load(path)).at("w").numel(), 1000);
  // Whole files and appended lines: never half written.
  expect_error([&] { util::write_file_atomically(disk.dir / "eval.json", std::string(2 << 20, 'x')); },
               {"eval.json", "No space left on device"});
  EXPECT_EQ(files_in(disk.dir), std::vector<std::string>{"checkpoint.pth"});
  const std::string line = std::string(1000, 'l') + "\n";
  try {
    for (int i = 0; i < 2000; ++i) util::append_line(disk.dir / "log.txt", line);
    ADD_FAILURE() << "1 MB disk took 2 MB of log";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("No space left on device"), std::string::npos) << e.what();
  }
  EXPECT_EQ(fs::file_size(disk.dir / "log.txt") % line.size(), 0u) << "log.txt ends in half a line";
}

TEST(Faults, NumberedCopiesAreSnapshotsThatNeedNoSpaceAndLeaveNoTempFile) {
  // checkpointNNNN.pth and eval/results_NNNN.json: a hard link to the file just saved, so a second
  // signal during the copy leaves no half-written .tmp, and a full disk does not stop it.
  const auto dir = detr::testing::scratch_dir("detr_snapshot_", "plain");
  util::write_file_atomically(dir / "checkpoint.pth", "epoch 99");
  util::snapshot_file(dir / "checkpoint.pth", dir / "checkpoint0099.pth");
  util::write_file_atomically(dir / "checkpoint.pth", "epoch 100");  // replaced by rename, as every save
  std::ifstream in(dir / "checkpoint0099.pth");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "epoch 99");
  EXPECT_EQ(files_in(dir), (std::vector<std::string>{"checkpoint.pth", "checkpoint0099.pth"}));
  util::snapshot_file(dir / "checkpoint.pth", dir / "checkpoint0099.pth");  // again: replaced
  util::snapshot_file(dir / "checkpoint.pth", dir / "checkpoint0099.pth");  // and again: already the same file
  EXPECT_EQ(files_in(dir), (std::vector<std::string>{"checkpoint.pth", "checkpoint0099.pth"}));
  std::ifstream again(dir / "checkpoint0099.pth");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(again), {}), "epoch 100");

  if (::geteuid() != 0) GTEST_SKIP() << "the full-disk half needs root to mount a tmpfs; uid " << ::geteuid();
  SmallDisk disk("snapshot", 1 << 20);
  if (!disk.mounted) GTEST_SKIP() << "mount(tmpfs) failed: " << std::strerror(disk.error);
  util::write_file_atomically(disk.dir / "checkpoint.pth", std::string(700 << 10, 'c'));  // 700 KB of 1 MB
  util::snapshot_file(disk.dir / "checkpoint.pth", disk.dir / "checkpoint0001.pth");      // a copy would not fit
  EXPECT_EQ(fs::file_size(disk.dir / "checkpoint0001.pth"), 700u << 10);
  EXPECT_EQ(files_in(disk.dir), (std::vector<std::string>{"checkpoint.pth", "checkpoint0001.pth"}));
}

TEST(Faults, TrainingOnAFullDiskExitsWithOneLine) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root; this test runs as uid " << ::geteuid();
  SmallDisk disk("fulldisk_train", 4 << 20);  // the tiny model's checkpoint is ~45 MB
  if (!disk.mounted) GTEST_SKIP() << "mount(tmpfs) failed: " << std::strerror(disk.error);
  auto data = make_export("fulldisk_data", 3);
  const std::string cmd = std::string(DETR_TOOLS_DIR) + "/detr_train --coco_path " + data.string() + " --output_dir " +
                          (disk.dir / "out").string() +
                          " --epochs 1 --batch_size 1 --device cpu --num_threads 2 --backbone resnet18 --hidden_dim 32"
                          " --nheads 2 --enc_layers 1 --dec_layers 1 --dim_feedforward 64 --num_queries 4"
                          " --scales 48 --max_size 64 --val_size 48 --val_split 0 --backbone_weights none 2>&1";
  const auto [code, output] = run_command(cmd);
  EXPECT_EQ(code, 1) << output;
  ASSERT_NE(output.rfind("detr_train: error:"), std::string::npos) << output;
  const auto last = output.substr(output.rfind("detr_train: error:"));
  std::cout << last;
  EXPECT_NE(last.find("No space left on device"), std::string::npos) << output;
  EXPECT_EQ(last.find('\n'), last.size() - 1) << "not one line: " << last;
  EXPECT_EQ(output.find("terminate called"), std::string::npos) << output;
  for (const auto& f : files_in(disk.dir / "out")) EXPECT_EQ(f.find(".tmp"), std::string::npos) << f;
}

// ---- the error contract -------------------------------------------------------------------------------

TEST(Faults, TrainingMessagesEscapeWhatComesFromFiles) {
  // The summary and warning lines quote paths and names from the data; before, they went out raw.
  std::ostringstream sink;
  {
    util::TerminalSafeStream out(sink);
    out << "train: /data/evil\x1b]0;title\x07/ann.json: 2 images, caf\xc3\xa9" << 3 << "\n";
    out << "partial \xe2\x9c";
    out << "\x93 then flushed" << std::flush;
    out << "no newline at the end \xff";
  }
  std::cout << sink.str() << "\n";
  EXPECT_EQ(sink.str(),
            "train: /data/evil\\x1b]0;title\\x07/ann.json: 2 images, caf\xc3\xa9"
            "3\n"
            "partial \xe2\x9c\x93 then flushed"
            "no newline at the end \\xff");

  // detr_train --check_data on an export in a folder whose name carries an escape sequence.
  const auto dir = temp_dir("escapes") / "export\x1b[2J";
  datasets::SyntheticExportOptions o;
  o.num_images = 4;
  datasets::write_synthetic_cvat_export(dir, o);
  const std::string cmd = std::string(DETR_TOOLS_DIR) + "/detr_train --check_data --coco_path '" + dir.string() +
                          "' --device cpu --backbone_weights none 2>&1";
  const auto [code, output] = run_command(cmd);
  std::cout << output;
  EXPECT_EQ(code, 0) << output;
  EXPECT_NE(output.find("export\\x1b[2J"), std::string::npos) << output;
  EXPECT_EQ(output.find('\x1b'), std::string::npos) << "raw escape bytes reached the terminal";
}

TEST(Faults, InspectEscapesEveryByteFromTheFile) {
  // Measured before: escape sequences in the zip's folder name and in pickled class names reached the
  // terminal raw (one set its title).
  auto dir = temp_dir("inspect_escapes");
  const auto value = PyValue::dict({{PyValue::str("note\x1b[31m"), PyValue::str("caf\xc3\xa9 \xe2\x9c\x93")}});
  serialization::torch_save(value, dir / "plain.pth");
  auto bytes = read_file(dir / "plain.pth");
  for (size_t at = 0; (at = bytes.find("archive/", at)) != std::string::npos; at += 8)
    bytes.replace(at, 8, "arc\x1b[2J/");  // the same length: offsets stay valid, names are not CRC-checked
  write_file(dir / "evil.pth", bytes);
  const auto [code, output] = run_command(std::string(DETR_TOOLS_DIR) + "/detr_inspect " + (dir / "evil.pth").string());
  std::cout << output;
  EXPECT_EQ(code, 0) << output;
  EXPECT_EQ(output.find('\x1b'), std::string::npos) << "raw escape bytes reached the terminal";
  EXPECT_NE(output.find("arc\\x1b[2J"), std::string::npos) << output;               // the archive's folder
  EXPECT_NE(output.find("caf\xc3\xa9 \xe2\x9c\x93"), std::string::npos) << output;  // printable UTF-8 stays

  // A pickled class whose module and name carry control bytes, C1 controls and invalid UTF-8 (our
  // writer pickles no objects: the pickle is written by hand: GLOBAL, EMPTY_TUPLE, NEWOBJ, STOP).
  const std::string pkl = std::string(
      "\x80\x02"
      "cevil\x1b]0;pwned\x07\nCls\xc2\x9b"
      "2J\xff\n)\x81.");
  const auto obj = serialization::unpickle(pkl.data(), pkl.size(), 0, nullptr).value;
  std::ostringstream listing;
  serialization::print_structure(listing, obj);
  const auto safe = util::terminal_safe(listing.str());
  std::cout << safe;
  for (const std::string raw : {"\x1b", "\x07", "\xc2\x9b", "\xff"})
    EXPECT_EQ(safe.find(raw), std::string::npos) << "raw control bytes in: " << safe;
  EXPECT_NE(safe.find("evil\\x1b]0;pwned\\x07.Cls\\xc2\\x9b2J\\xff"), std::string::npos) << safe;
  EXPECT_EQ(util::terminal_safe("a\tb\nc\x7f"), "a\tb\nc\\x7f");
}

TEST(Faults, ErrorsAreOneLineNamingTheFile) {
  // A JSON number out of range names the file (nlohmann's out_of_range, not a parse error).
  auto root = make_export("json_range", 3);
  edit_text(root, "\"image_id\":0", "\"image_id\":1e400");
  expect_error([&] { load(root); }, {"instances_default.json", "not valid JSON"});
  // A state dict that does not match: one line, however many problems.
  auto dir = temp_dir("contract");
  torch::nn::Linear lin(2, 3);
  std::map<std::string, torch::Tensor> sd{{"weight", torch::zeros({4, 2})}, {"other", torch::zeros({1})}};
  expect_error([&] { serialization::load_state_dict(*lin, sd, serialization::LoadOptions::strict()); },
               {"missing (1): bias", "unexpected (1): other", "shape mismatch (1): weight"});
  // A resume field of the wrong type deep inside: the file is named.
  std::vector<std::pair<PyValue, PyValue>> scaler{{PyValue::str("_growth_tracker"), PyValue::integer(0)}};
  const auto path = checkpoint_with(dir, {{"epoch", PyValue::integer(1)}, {"scaler", PyValue::dict(scaler)}});
  expect_error([&] { load_checkpoint(path); }, {"checkpoint.pth", "scale"});
  // What reaches the terminal: control characters escaped, one line.
  EXPECT_EQ(detr::one_line("a\nb\x1b[31m\tc\n"), "a\\nb\\x1b[31m\\x09c");
  // Invalid UTF-8 and C1 controls from a file are escaped too; printable UTF-8 stays.
  EXPECT_EQ(detr::one_line("caf\xc3\xa9 \xff\xc2\x9b"
                           "2J"),
            "caf\xc3\xa9 \\xff\\xc2\\x9b2J");
}

// ---- shapes of value graphs a crafted pickle or JSON file can build -------------------------------------

TEST(Faults, PickleReferenceCyclesAreRefusedAndFreed) {
  // a = []; b = [a]; a.append(b): a cycle that reference counting would never free.
  const std::string p(
      "\x80\x02]q\x00(]q\x01(h\x00"
      "ee.",
      15);
  expect_error([&] { serialization::unpickle(p.data(), p.size(), 0, nullptr); }, {"reference cycle"});
}

TEST(Faults, SharedContainersDoNotBlowUpWalks) {
  // l0 = []; l(k+1) = [lk, lk] for 40 levels: 2^40 paths through 41 lists.
  std::string p("\x80\x02]q\x00", 5);
  for (int k = 1; k <= 40; ++k) p += std::string("(h") + char(k - 1) + "h" + char(k - 1) + "lq" + char(k);
  p += ".";
  const auto v = serialization::unpickle(p.data(), p.size(), 0, nullptr).value;
  std::ostringstream os;
  serialization::print_structure(os, v, {});
  std::cout << os.str().substr(0, 300) << "...\n";
  EXPECT_LT(os.str().size(), 20000u);
  EXPECT_NE(os.str().find("(the same list as"), std::string::npos);
  expect_error([&] { serialization::to_json(v); }, {"more than 65536 elements"});
}

TEST(Faults, DeeplyNestedJsonGivesOneShortLine) {
  auto root = make_export("deep_json", 3);
  const int depth = 100000;
  edit_text(root, "\"image_id\":0", "\"image_id\":" + std::string(depth, '[') + std::string(depth, ']'));
  const auto msg = expect_error([&] { load(root); }, {"instances_default.json", "image_id", "a list of 1 elements"});
  EXPECT_LT(msg.size(), 400u);
}
