// Instance masks through the transforms (datasets/transforms.h) against upstream's
// datasets/transforms.py: the committed golden data (tests/reference/make_transforms_masks.py) and
// the optional set's transforms_masks/, then torch's own "nearest" on many sizes, the pipelines'
// invariants, the collate and the error contract.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "datasets/loader.h"
#include "datasets/transforms.h"
#include "src/serialization/torch_save.h"
#include "tests/fixtures.h"

namespace {

namespace dd = detr::datasets;
namespace F = torch::nn::functional;
using detr::serialization::PyValue;
using nlohmann::json;

json load_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path.string() + ": cannot open");
  return json::parse(in);
}

// A tensor of the case file, or an undefined one when the key is absent.
torch::Tensor tensor_at(const PyValue& store, const std::string& key) {
  const PyValue* v = store.find(key);
  return v ? v->as_tensor() : torch::Tensor();
}

// The case's input sample. The optional set stores boxes and masks only: its labels are 1..n in
// input order and its areas the masks' pixel counts (what its cases.json says and its outputs show).
dd::Sample input_of(const json& c, const PyValue& store) {
  const std::string k = std::to_string(c.at("case").get<int>()) + ".in.";
  dd::Sample s;
  s.image = torch::zeros({3, c.at("image_hw")[0].get<int64_t>(), c.at("image_hw")[1].get<int64_t>()});
  auto& t = s.target;
  t.masks = tensor_at(store, k + "masks");
  t.boxes = tensor_at(store, k + "boxes");
  t.labels = tensor_at(store, k + "labels");
  t.area = tensor_at(store, k + "area");
  t.iscrowd = tensor_at(store, k + "iscrowd");
  if (!t.labels.defined()) t.labels = torch::arange(1, t.masks.size(0) + 1, torch::kLong);
  if (!t.area.defined()) t.area = t.masks.flatten(1).sum(1).to(torch::kFloat);
  return s;
}

std::vector<json> ops_of(const json& c) {
  if (c.contains("ops")) return c.at("ops").get<std::vector<json>>();
  return {json{{"op", c.at("op")}, {"params", c.at("params")}}};
}

dd::Sample apply(dd::Sample s, const json& op) {
  const std::string name = op.at("op");
  const json& p = op.at("params");
  auto max_size = [](const json& v) { return v.is_null() ? std::nullopt : std::optional<int64_t>(v.get<int64_t>()); };
  if (name == "crop") return dd::crop(std::move(s), p[0], p[1], p[2], p[3]);
  if (name == "hflip") return dd::hflip(std::move(s));
  if (name == "resize") return dd::resize(std::move(s), p[0], max_size(p[1]));
  if (name == "pad") return dd::pad(std::move(s), p[0], p[1]);
  if (name == "normalize") return dd::normalize(std::move(s));
  if (name == "val") {
    dd::TransformConfig config;
    config.val_size = p[0];
    config.max_size = p[1];
    return dd::val_transforms(std::move(s), config);
  }
  throw std::runtime_error("unknown op " + name);
}

// How far one case's output is from upstream's; a field upstream does not give is not compared.
struct Deviation {
  int64_t mask_pixels = 0;        // differing mask pixels (all of them when the shapes differ)
  double boxes = 0, area = 0;     // max |ours - upstream|
  int64_t labels = 0, other = 0;  // differing labels; iscrowd / size / mask dtype / shape differences

  bool any() const { return mask_pixels || boxes != 0 || area != 0 || labels || other; }
};

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  if (!a.defined() || a.sizes() != b.sizes()) return INFINITY;
  return a.numel() ? (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>() : 0.0;
}

int64_t differing(const torch::Tensor& a, const torch::Tensor& b) {  // elements, or all if shapes differ
  if (!a.defined() || a.sizes() != b.sizes()) return std::max<int64_t>(b.numel(), 1);
  return a.ne(b).sum().item<int64_t>();
}

Deviation compare(const dd::Sample& ours, const json& c, const PyValue& store) {
  const std::string k = std::to_string(c.at("case").get<int>()) + ".out.";
  const auto& t = ours.target;
  Deviation d;
  const auto masks = tensor_at(store, k + "masks");
  d.mask_pixels = differing(t.masks.defined() ? t.masks.to(torch::kBool) : t.masks, masks.to(torch::kBool));
  if (c.contains("out_masks_dtype"))
    d.other += (t.masks.scalar_type() == torch::kBool ? "bool" : "uint8") != c.at("out_masks_dtype");
  if (const auto boxes = tensor_at(store, k + "boxes"); boxes.defined())
    d.boxes = max_abs_diff(t.boxes, boxes);
  else
    d.other += t.boxes.defined();
  d.area = max_abs_diff(t.area, tensor_at(store, k + "area"));
  d.labels = differing(t.labels, tensor_at(store, k + "labels"));
  for (const auto& [name, ours_field] : {std::pair{"iscrowd", t.iscrowd}, std::pair{"size", t.size}})
    if (const auto e = tensor_at(store, k + name); e.defined()) d.other += differing(ours_field, e);
  return d;
}

std::string describe(const json& c, const Deviation& d) {
  std::ostringstream out;
  out << "case " << c.at("case") << " (" << c.value("note", c.value("op", std::string())) << "): " << d.mask_pixels
      << " mask pixels, boxes " << d.boxes << ", area " << d.area << ", labels " << d.labels << ", other fields "
      << d.other;
  return out.str();
}

// Runs every case of a transforms_masks/ directory; prints the deviations and expects none.
void check_cases(const std::filesystem::path& dir, const std::string& label) {
  const auto doc = load_json(dir / "cases.json");
  const PyValue store = detr::serialization::torch_load(dir / "cases.pth");
  int cases = 0, deviating = 0;
  Deviation worst;
  for (const auto& c : doc.at("cases")) {
    auto s = input_of(c, store);
    for (const auto& op : ops_of(c)) s = apply(std::move(s), op);
    const auto d = compare(s, c, store);
    EXPECT_FALSE(d.any()) << describe(c, d);
    if (d.any()) std::cout << "[ " << label << " ] " << describe(c, d) << "\n";
    worst.mask_pixels += d.mask_pixels;
    worst.boxes = std::max(worst.boxes, d.boxes);
    worst.area = std::max(worst.area, d.area);
    deviating += d.any();
    ++cases;
  }
  EXPECT_GT(cases, 0);
  std::cout << "[ " << label << " ] " << cases << " cases, " << deviating << " deviating from upstream; "
            << worst.mask_pixels << " mask pixels differ, boxes max |diff| " << worst.boxes << ", area max |diff| "
            << worst.area << "\n";
}

// ---- golden data: upstream's answers ---------------------------------------------------------------

TEST(TransformsMasks, MatchUpstreamOnCommittedCases) {
  const auto dir = detr::testing::data_dir() / "transforms_masks";
  ASSERT_TRUE(std::filesystem::exists(dir / "cases.pth")) << "committed golden data missing: " << dir;
  check_cases(dir, "transforms_masks");
}

TEST(TransformsMasksOptionalFixtures, MatchUpstream) {
  const auto dir = detr::testing::fixtures_dir() / "transforms_masks";
  DETR_REQUIRE_FIXTURE(dir / "cases.pth");
  check_cases(dir, "transforms_masks (optional set)");
}

// ---- resize: torch's legacy "nearest" on many sizes ------------------------------------------------

torch::Tensor random_masks(int64_t n, int64_t h, int64_t w, uint64_t seed) {  // [n, h, w] bool
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randint(0, 10, {n, h, w}, gen, torch::kByte) < 4;  // no float copy of a large case
}

dd::Sample sample_with_masks(const torch::Tensor& masks) {
  dd::Sample s;
  const auto n = masks.size(0), h = masks.size(1), w = masks.size(2);
  s.image = torch::zeros({3, h, w});
  s.target.masks = masks;
  s.target.boxes = torch::tensor({0.0f, 0.0f, static_cast<float>(w), static_cast<float>(h)}).repeat({n, 1});
  s.target.labels = torch::arange(n, torch::kLong);
  return s;
}

// upstream: interpolate(masks[:, None].float(), size, mode="nearest")[:, 0] > 0.5
torch::Tensor float_nearest(const torch::Tensor& masks, int64_t oh, int64_t ow) {
  return F::interpolate(masks.unsqueeze(1).to(torch::kFloat),
                        F::InterpolateFuncOptions().size(std::vector<int64_t>{oh, ow}).mode(torch::kNearest))
      .squeeze(1)
      .gt(0.5);
}

TEST(TransformsMasks, ResizeIsTorchsNearestForEveryRatio) {
  int64_t checked = 0;
  for (int64_t h : {1, 7, 13, 30, 61}) {
    for (int64_t w : {1, 5, 24, 47}) {
      const auto masks = random_masks(3, h, w, static_cast<uint64_t>(h * 100 + w));
      for (int64_t size : {1, 2, 3, 11, 26, 60, 97, 122}) {
        for (auto max_size : {std::optional<int64_t>(), std::optional<int64_t>(90)}) {
          const auto out = dd::resize(sample_with_masks(masks), size, max_size);
          const auto& m = out.target.masks;
          ASSERT_EQ(m.scalar_type(), torch::kBool);
          ASSERT_TRUE(torch::equal(m, float_nearest(masks, out.image.size(1), out.image.size(2))))
              << h << "x" << w << " -> " << out.image.sizes();
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, 5 * 4 * 8 * 2);
}

TEST(TransformsMasks, ResizeOfUint8MasksGivesBool) {
  const auto masks = random_masks(4, 21, 34, 7).to(torch::kByte);
  const auto out = dd::resize(sample_with_masks(masks), 50, std::nullopt);
  EXPECT_EQ(out.target.masks.scalar_type(), torch::kBool);
  EXPECT_TRUE(torch::equal(out.target.masks, float_nearest(masks, 50, 80)));
  const auto same = dd::resize(sample_with_masks(masks), 21, std::nullopt);  // identity size: still bool
  EXPECT_TRUE(torch::equal(same.target.masks, masks.to(torch::kBool)));
}

// A 2000 x 100 panorama with 300 objects through the validation transform: the masks stay bool at
// every step (upstream's float copy would be 240 MB here).
TEST(TransformsMasks, PanoramaWithManyObjects) {
  const auto masks = random_masks(300, 100, 2000, 11);
  const auto out = dd::val_transforms(sample_with_masks(masks), dd::TransformConfig{});
  const auto& m = out.target.masks;
  ASSERT_EQ(m.sizes(), torch::IntArrayRef({300, 67, 1340}));
  EXPECT_EQ(m.scalar_type(), torch::kBool);
  for (int64_t first : {0, 150, 296})  // the float reference, a few objects at a time
    EXPECT_TRUE(torch::equal(m.narrow(0, first, 4), float_nearest(masks.narrow(0, first, 4), 67, 1340)));
}

// ---- the pipelines ---------------------------------------------------------------------------------

// Objects with boxes and the masks of those boxes (some clipped by crops later).
dd::Sample boxes_and_masks(int64_t h, int64_t w, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const int64_t n = 6;
  auto xy = torch::rand({n, 2}, gen) * torch::tensor({w * 0.7f, h * 0.7f});
  auto wh = 1 + torch::rand({n, 2}, gen) * torch::tensor({w * 0.3f, h * 0.3f});
  dd::Sample s = sample_with_masks(torch::zeros({n, h, w}, torch::kBool));
  s.target.boxes = torch::cat({xy, xy + wh}, 1);
  for (int64_t k = 0; k < n; ++k) {
    const auto b = s.target.boxes[k].to(torch::kLong);
    s.target.masks[k]
        .slice(0, b[1].item<int64_t>(), b[3].item<int64_t>() + 1)
        .slice(1, b[0].item<int64_t>(), b[2].item<int64_t>() + 1)
        .fill_(true);
  }
  s.target.area = s.target.masks.flatten(1).sum(1).to(torch::kFloat);
  s.target.iscrowd = torch::zeros({n}, torch::kLong);
  return s;
}

dd::Sample without_masks(dd::Sample s) {
  s.target.masks = torch::Tensor();
  return s;
}

TEST(TransformsMasks, TrainPipelineKeepsMasksAlignedAndChangesNothingElse) {
  auto config = dd::TransformConfig::with_scales({96, 112, 128}, 200, 128);
  for (uint64_t seed = 0; seed < 16; ++seed) {
    const auto in = boxes_and_masks(90, 130, seed);
    dd::Rng rng_with(seed), rng_without(seed);
    const auto with = dd::train_transforms(in, config, rng_with);
    const auto plain = dd::train_transforms(without_masks(in), config, rng_without);
    const auto& t = with.target;
    ASSERT_EQ(t.masks.dim(), 3);
    EXPECT_EQ(t.masks.sizes().slice(1), with.image.sizes().slice(1)) << "seed " << seed;
    EXPECT_EQ(t.masks.size(0), t.boxes.size(0));
    EXPECT_EQ(t.masks.scalar_type(), torch::kBool);
    EXPECT_FALSE(plain.target.masks.defined());
    // The masks draw no random numbers and touch no other field.
    EXPECT_TRUE(torch::equal(with.image, plain.image));
    EXPECT_TRUE(torch::equal(t.boxes, plain.target.boxes));
    EXPECT_TRUE(torch::equal(t.labels, plain.target.labels));
    EXPECT_TRUE(torch::equal(t.area, plain.target.area));
    EXPECT_EQ(rng_with(), rng_without());
  }
}

// The same choices applied by the public transforms one at a time (each mask step materialised).
dd::Sample one_by_one(dd::Sample s, const dd::TrainAugmentation& a, const dd::TransformConfig& c) {
  if (a.flip) s = dd::hflip(std::move(s));
  if (a.crop) {
    s = dd::resize(std::move(s), a.crop_resize, std::nullopt);
    s = dd::crop(std::move(s), a.top, a.left, a.crop_h, a.crop_w);
  }
  return dd::normalize(dd::resize(std::move(s), a.size, c.max_size));
}

TEST(TransformsMasks, TrainAugmentationEqualsTheTransformsOneByOne) {
  auto config = dd::TransformConfig::with_scales({96, 112, 128}, 200, 128);
  int crops = 0;
  for (uint64_t seed = 0; seed < 24; ++seed) {
    auto in = boxes_and_masks(90, 130, seed);
    if (seed % 2) in.target.masks = in.target.masks.to(torch::kByte);
    dd::Rng rng(seed);
    const auto a = dd::draw_train_augmentation(90, 130, config, rng);
    const auto fused = dd::apply_train_augmentation(in, a, config), expected = one_by_one(in, a, config);
    ASSERT_TRUE(torch::equal(fused.target.masks, expected.target.masks)) << "seed " << seed;
    EXPECT_TRUE(torch::equal(fused.target.boxes, expected.target.boxes));
    EXPECT_TRUE(torch::equal(fused.target.labels, expected.target.labels));
    EXPECT_TRUE(torch::equal(fused.image, expected.image));
    crops += a.crop;
  }
  EXPECT_GT(crops, 4);  // both branches are covered
  EXPECT_LT(crops, 20);
}

TEST(TransformsMasks, ValTransformIsResizeThenNormalize) {
  const auto in = boxes_and_masks(70, 110, 3);
  auto config = dd::TransformConfig::with_scales({96}, 150, 96);
  const auto val = dd::val_transforms(in, config);
  const auto manual = dd::normalize(dd::resize(in, 96, 150));
  EXPECT_TRUE(torch::equal(val.target.masks, manual.target.masks));
  EXPECT_EQ(val.target.masks.sizes(), torch::IntArrayRef({6, 95, 149}));  // 95 x int(95 * 110 / 70)
}

TEST(TransformsMasks, CropKeepsTheMasksOfKeptBoxes) {
  auto s = boxes_and_masks(60, 80, 5);
  const auto out = dd::crop(s, 10, 20, 30, 40);
  const auto& t = out.target;
  ASSERT_EQ(t.masks.sizes().slice(1), torch::IntArrayRef({30, 40}));
  ASSERT_EQ(t.masks.size(0), t.boxes.size(0));
  EXPECT_TRUE(t.masks.is_contiguous());
}

TEST(TransformsMasks, PadAddsFalseBottomRight) {
  const auto masks = random_masks(2, 9, 11, 4);
  const auto out = dd::pad(sample_with_masks(masks), 5, 3);
  const auto& m = out.target.masks;
  ASSERT_EQ(m.sizes(), torch::IntArrayRef({2, 12, 16}));
  EXPECT_TRUE(torch::equal(m.slice(1, 0, 9).slice(2, 0, 11), masks));
  EXPECT_EQ(m.sum().item<int64_t>(), masks.sum().item<int64_t>());
  EXPECT_EQ(out.image.sizes(), torch::IntArrayRef({3, 12, 16}));
  EXPECT_TRUE(torch::equal(out.target.size, torch::tensor({12, 16}, torch::kLong)));
}

// ---- collate and errors ----------------------------------------------------------------------------

TEST(TransformsMasks, CollateCarriesMasksUnpadded) {
  std::vector<dd::Sample> samples{sample_with_masks(random_masks(2, 10, 12, 1)),
                                  sample_with_masks(random_masks(3, 14, 9, 2)),
                                  sample_with_masks(random_masks(1, 4, 4, 3))};
  samples[2].target.masks = torch::Tensor();  // a box-only sample in the same batch
  const auto expected = samples[1].target.masks;
  const auto batch = dd::collate(samples);
  EXPECT_EQ(batch.samples.tensors.sizes(), torch::IntArrayRef({3, 3, 14, 12}));
  EXPECT_EQ(batch.targets[0].masks.sizes(), torch::IntArrayRef({2, 10, 12}));
  EXPECT_TRUE(torch::equal(batch.targets[1].masks, expected));
  EXPECT_FALSE(batch.targets[2].masks.defined());
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "";
}

TEST(TransformsMasks, MismatchedMasksAreRejectedWithTheirSizes) {
  auto s = sample_with_masks(random_masks(2, 10, 12, 1));
  s.target.masks = random_masks(2, 10, 13, 1);
  for (const auto& msg : {error_of([&] { dd::resize(s, 20, std::nullopt); }), error_of([&] { dd::hflip(s); }),
                          error_of([&] { dd::crop(s, 0, 0, 5, 5); }), error_of([&] { dd::pad(s, 1, 1); }),
                          error_of([&] { dd::collate({s}); })}) {
    EXPECT_NE(msg.find("[2, 10, 13]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[10, 12]"), std::string::npos) << msg;
  }
  s.target.masks = torch::zeros({2, 10, 12}, torch::kFloat);
  EXPECT_NE(error_of([&] { dd::hflip(s); }).find("got Float"), std::string::npos);
  s.target.masks = torch::zeros({3, 10, 12}, torch::kBool);
  EXPECT_NE(error_of([&] { dd::collate({s}); }).find("3 masks for 2 boxes"), std::string::npos);
}

// ---- masks as RLEs (what CocoDetection gives): decoded only at the final pixels --------------------

// The sample's dense masks as one RLE each, target.masks cleared.
dd::Sample as_rles(dd::Sample s) {
  const auto masks = s.target.masks.to(torch::kByte).contiguous();
  std::vector<dd::Rle> rles;
  for (int64_t k = 0; k < masks.size(0); ++k)
    rles.push_back(dd::encode(masks[k].data_ptr<uint8_t>(), masks.size(1), masks.size(2), dd::MaskLayout::row_major));
  s.target.masks = torch::Tensor();
  s.mask_rles = std::move(rles);
  return s;
}

TEST(TransformsMasks, RleMasksGiveTheDenseMasksThroughEveryPipeline) {
  auto config = dd::TransformConfig::with_scales({96, 112, 128, 260}, 300, 128);
  int64_t compared = 0, mismatched = 0;
  auto compare = [&](const dd::Sample& dense, const dd::Sample& rle, const std::string& what) {
    ASSERT_FALSE(rle.mask_rles.has_value()) << what;
    ASSERT_EQ(dense.target.masks.sizes(), rle.target.masks.sizes()) << what;
    EXPECT_EQ(rle.target.masks.scalar_type(), torch::kBool) << what;
    compared += dense.target.masks.numel();
    mismatched += dense.target.masks.ne(rle.target.masks).sum().item<int64_t>();
    EXPECT_TRUE(torch::equal(dense.target.boxes, rle.target.boxes)) << what;
  };
  for (uint64_t seed = 0; seed < 24; ++seed) {
    auto dense = boxes_and_masks(90, 130, seed);
    dense.target.masks = random_masks(6, 90, 130, seed) & (torch::rand({6, 1, 1}) < 0.8);  // some empty
    const auto rle = as_rles(dense);
    dd::Rng rng(seed);
    const auto a = dd::draw_train_augmentation(90, 130, config, rng);
    compare(dd::apply_train_augmentation(dense, a, config), dd::apply_train_augmentation(rle, a, config),
            "train seed " + std::to_string(seed));
    if (seed < 4) {
      compare(dd::val_transforms(dense, config), dd::val_transforms(rle, config), "val");
      compare(dd::hflip(dense), dd::hflip(rle), "hflip");
      compare(dd::crop(dense, 10, 20, 50, 60), dd::crop(rle, 10, 20, 50, 60), "crop");
      compare(dd::resize(dense, 300, std::nullopt), dd::resize(rle, 300, std::nullopt), "resize");
    }
  }
  std::cout << "[ rle masks ] " << compared << " pixels compared, " << mismatched << " differ\n";
  EXPECT_EQ(mismatched, 0);
  EXPECT_GT(compared, 1'000'000);
}

TEST(TransformsMasks, RleMasksOfAHugeImageCostOnlyTheFinalSize) {
  // 300 objects on a 6000 x 6000 image: dense, 10.8 GB; read at the final 800 x 800, 192 MB.
  const int64_t side = 6000, n = 300;
  dd::Sample s;
  s.image = torch::zeros({3, 1, 1}).expand({3, side, side});  // no pixels behind it
  std::vector<float> boxes;
  std::vector<dd::Rle> rles;
  for (int64_t k = 0; k < n; ++k) {
    const double x = 19.0 * k, y = 17.0 * k;
    rles.push_back(dd::rle_from_box({x, y, 40, 30}, side, side));
    boxes.insert(boxes.end(), {static_cast<float>(x), static_cast<float>(y), static_cast<float>(x + 40),
                               static_cast<float>(y + 30)});
  }
  s.target.boxes = torch::tensor(boxes).view({n, 4});
  s.target.labels = torch::ones({n}, torch::kLong);
  s.mask_rles = rles;
  const auto out = dd::val_transforms(s, dd::TransformConfig{});
  ASSERT_EQ(out.target.masks.sizes(), torch::IntArrayRef({n, 800, 800}));
  // Object k covers rows and columns [k*17, k*17+30) x [k*19, k*19+40) of 6000, 2/15 of that at 800.
  const auto counts = out.target.masks.flatten(1).sum(1);
  std::cout << "[ huge image ] " << n << " masks of 6000x6000 read as " << out.target.masks.sizes()
            << ", pixels per object " << counts.min().item<int64_t>() << ".." << counts.max().item<int64_t>() << "\n";
  EXPECT_GE(counts.min().item<int64_t>(), 5 * 3);
  EXPECT_LE(counts.max().item<int64_t>(), 6 * 5);

  // Beyond kMaxSampleMaskBytes: refused in one line, before anything is allocated.
  s.mask_rles = std::vector<dd::Rle>(4000, rles[0]);
  s.target.boxes = s.target.boxes[0].repeat({4000, 1});
  s.target.labels = torch::ones({4000}, torch::kLong);
  const auto msg = error_of([&] { dd::val_transforms(s, dd::TransformConfig{}); });
  EXPECT_NE(msg.find("4000 objects at 800x800"), std::string::npos) << msg;
  EXPECT_NE(msg.find("more than the 2048 MiB"), std::string::npos) << msg;
}

TEST(TransformsMasks, MalformedRleMasksAreRefused) {
  auto s = as_rles(boxes_and_masks(20, 30, 1));
  s.mask_rles->at(2).counts.pop_back();  // the runs no longer cover the image
  EXPECT_NE(error_of([&] { dd::val_transforms(s, dd::TransformConfig{}); }).find("runs sum to"), std::string::npos);
  s = as_rles(boxes_and_masks(20, 30, 1));
  s.mask_rles->at(0).width = 31;
  EXPECT_NE(error_of([&] { dd::hflip(s); }).find("a mask RLE of 20x31"), std::string::npos);
  s = as_rles(boxes_and_masks(20, 30, 1));
  s.target.masks = torch::zeros({6, 20, 30}, torch::kBool);
  EXPECT_NE(error_of([&] { dd::val_transforms(s, dd::TransformConfig{}); }).find("not both"), std::string::npos);
  s = as_rles(boxes_and_masks(20, 30, 1));
  EXPECT_NE(error_of([&] { dd::collate({s}); }).find("not yet decoded"), std::string::npos);
}

}  // namespace
