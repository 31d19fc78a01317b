// torch.save files without Python: the reader against Python-written golden files (zip and legacy; the
// committed tests/data always, the optional larger set when present), the writer by round trip, malformed
// input, state-dict loading and the structure listing.
#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "src/serialization/inspect.h"
#include "src/serialization/pickle.h"
#include "src/serialization/state_dict.h"
#include "src/serialization/torch_save.h"
#include "tests/fixtures.h"
#include "tests/support.h"

namespace fs = std::filesystem;
using namespace detr::serialization;
using namespace std::string_literals;
using detr::testing::expect_error;
using detr::testing::read_file;

namespace {

// Which set of golden files a test reads: the one committed in tests/data (made by
// tests/reference/make_torchsave.py, always there) or the optional larger set (skipped when absent).
enum class Golden { kCommitted, kOptional };

const char* golden_name(Golden g) { return g == Golden::kCommitted ? "Committed" : "OptionalFixtures"; }

fs::path golden_dir(Golden g) {
  return g == Golden::kCommitted ? detr::testing::data_dir() : detr::testing::fixtures_dir();
}

fs::path torchsave_dir(Golden g) { return golden_dir(g) / "torchsave"; }

// Fails the calling test when committed golden data is missing; skips it when optional data is.
#define REQUIRE_GOLDEN(golden, path)                                                \
  do {                                                                              \
    if ((golden) == Golden::kCommitted) {                                           \
      ASSERT_TRUE(fs::exists(path)) << "committed golden data missing: " << (path); \
    } else {                                                                        \
      DETR_REQUIRE_FIXTURE(path);                                                   \
    }                                                                               \
  } while (0)

void spit(const fs::path& p, const std::string& data) {
  std::ofstream f(p, std::ios::binary);
  f << data;
}

// A fresh directory under the system temp dir, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("detr_torch_save_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

bool bit_equal(const torch::Tensor& a, const torch::Tensor& b) { return equal(PyValue::tensor(a), PyValue::tensor(b)); }

// Checks a state dict against expected.json's "model" section (dtype, shape, sums, first element).
void check_against_expected(const PyValue& model, const nlohmann::json& expected) {
  ASSERT_EQ(model.size(), expected.size());
  for (const auto& [name, e] : expected.items()) {
    SCOPED_TRACE(name);
    const PyValue* v = model.find(name);
    ASSERT_NE(v, nullptr);
    const torch::Tensor& t = v->as_tensor();
    EXPECT_EQ(dtype_name(t.scalar_type()), e["dtype"].get<std::string>());
    EXPECT_EQ(t.sizes().vec(), e["shape"].get<std::vector<int64_t>>());
    const auto d = t.to(torch::kFloat64);
    const double sum = d.sum().item<double>(), abs_sum = d.abs().sum().item<double>();
    const double tol = 1e-12 * std::max(1.0, std::fabs(e["abs_sum"].get<double>()));
    EXPECT_NEAR(sum, e["sum"].get<double>(), tol);
    EXPECT_NEAR(abs_sum, e["abs_sum"].get<double>(), tol);
    if (e["first"].is_null()) {
      EXPECT_EQ(t.numel(), 0);
    } else {
      EXPECT_EQ(d.reshape({-1})[0].item<double>(), e["first"].get<double>());
    }
  }
}

nlohmann::json expected_json(Golden g) {
  std::ifstream f(torchsave_dir(g) / "expected.json");
  return nlohmann::json::parse(f);
}

// One Python-written file of one golden set.
struct GoldenFile {
  Golden golden;
  std::string file;
  fs::path path() const { return torchsave_dir(golden) / file; }
};

void PrintTo(const GoldenFile& g, std::ostream* os) { *os << golden_name(g.golden) << ":" << g.file; }
void PrintTo(Golden g, std::ostream* os) { *os << golden_name(g); }

std::vector<GoldenFile> golden_files(Golden g) {
  return {{g, "detr_style_zip.pth"}, {g, "detr_style_legacy.pth"}, {g, "plain_state_dict.pth"}};
}

// Test-name suffixes: the file's stem, the golden set's name.
std::string file_test_name(const ::testing::TestParamInfo<GoldenFile>& info) {
  return info.param.file.substr(0, info.param.file.find('.'));
}
std::string golden_test_name(const ::testing::TestParamInfo<Golden>& info) { return golden_name(info.param); }

// The DETR-style checkpoints (zip and legacy) of every golden set present, as (path, bytes); the
// committed ones must be there.
std::vector<std::pair<std::string, std::string>> golden_checkpoints() {
  std::vector<std::pair<std::string, std::string>> files;
  for (Golden g : {Golden::kCommitted, Golden::kOptional}) {
    for (const char* name : {"detr_style_zip.pth", "detr_style_legacy.pth"}) {
      const fs::path path = torchsave_dir(g) / name;
      if (fs::exists(path)) {
        files.emplace_back(path.string(), read_file(path));
      } else if (g == Golden::kCommitted) {
        ADD_FAILURE() << "committed golden data missing: " << path;
      }
    }
  }
  return files;
}

}  // namespace

// ---- reading Python's files -----------------------------------------------------------------------

class TorchSaveFixture : public ::testing::TestWithParam<GoldenFile> {};

TEST_P(TorchSaveFixture, MatchesExpectedJson) {
  const fs::path path = GetParam().path();
  const std::string& file = GetParam().file;
  REQUIRE_GOLDEN(GetParam().golden, path);
  const auto expected = expected_json(GetParam().golden);
  LoadInfo info;
  const PyValue v = torch_load(path, &info);
  EXPECT_EQ(info.format, file.find("legacy") != std::string::npos ? "legacy" : "zip");
  EXPECT_EQ(info.protocol, 2);
  if (file == "plain_state_dict.pth") {
    EXPECT_EQ(v.type_name(), "dict");
    check_against_expected(v, expected["model"]);
    return;
  }
  EXPECT_EQ(v.at("epoch").as_int(), expected["epoch"].get<int64_t>());
  const PyValue& args = v.at("args");
  EXPECT_EQ(args.type_name(), "argparse.Namespace");
  EXPECT_EQ(args.attr("backbone").as_str(), expected["args.backbone"].get<std::string>());
  EXPECT_EQ(args.attr("lr").as_float(), expected["args.lr"].get<double>());
  EXPECT_TRUE(args.attr("frozen_weights").is_none());
  EXPECT_TRUE(args.attr("aux_loss").as_bool());

  const PyValue& model = v.at("model");
  EXPECT_EQ(model.type_name(), "collections.OrderedDict");
  EXPECT_TRUE(model.attr("_metadata").is_dict());
  EXPECT_EQ(model.attr("_metadata").at("").at("version").as_int(), 1);
  check_against_expected(model, expected["model"]);

  // The optimizer state dict: int keys, 0-dim step, nested lists and tuples.
  const PyValue& opt = v.at("optimizer");
  EXPECT_EQ(opt.at("state").at(int64_t{0}).at("exp_avg").as_tensor().sizes(), torch::IntArrayRef({2, 2}));
  EXPECT_EQ(opt.at("state").at(int64_t{0}).at("step").as_tensor().dim(), 0);
  const PyValue& groups = opt.at("param_groups");
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups.item(1).at("params").item(1).as_int(), 2);
  EXPECT_TRUE(groups.item(0).at("betas").is_tuple());
  EXPECT_DOUBLE_EQ(groups.item(0).at("betas").item(1).as_float(), 0.999);
  EXPECT_TRUE(groups.item(0).at("foreach").is_none());
  EXPECT_EQ(v.at("lr_scheduler").at("step_size").as_int(), 200);
  EXPECT_EQ(to_state_dict(v).size(), expected["model"].size());  // via "model"
}

TEST_P(TorchSaveFixture, ViewsShareStorage) {
  const fs::path path = GetParam().path();
  REQUIRE_GOLDEN(GetParam().golden, path);
  const auto sd = to_state_dict(torch_load(path));
  const auto& base = sd.at("transformer.encoder.layers.0.self_attn.in_proj_weight");
  const auto& offset_view = sd.at("transformer.encoder.layers.0.self_attn.out_proj.weight");
  const auto& transposed = sd.at("transformer.decoder.norm.weight");
  EXPECT_TRUE(base.is_contiguous());
  EXPECT_EQ(offset_view.storage_offset(), 16);
  EXPECT_FALSE(transposed.is_contiguous());
  EXPECT_EQ(transposed.strides(), torch::IntArrayRef({1, 8}));
  EXPECT_TRUE(base.storage().is_alias_of(offset_view.storage()));
  EXPECT_TRUE(base.storage().is_alias_of(transposed.storage()));
  EXPECT_TRUE(torch::equal(transposed, base.t()));
  EXPECT_TRUE(torch::equal(offset_view.reshape({-1}), base.reshape({-1}).slice(0, 16, 32)));
  EXPECT_EQ(sd.at("counter")[2].item<int64_t>(), int64_t{1} << 40);
  EXPECT_EQ(sd.at("input_proj.bias").dim(), 0);
}

INSTANTIATE_TEST_SUITE_P(Committed,
                         TorchSaveFixture,
                         ::testing::ValuesIn(golden_files(Golden::kCommitted)),
                         file_test_name);
INSTANTIATE_TEST_SUITE_P(OptionalFixtures,
                         TorchSaveFixture,
                         ::testing::ValuesIn(golden_files(Golden::kOptional)),
                         file_test_name);

class TorchSaveGolden : public ::testing::TestWithParam<Golden> {};

TEST_P(TorchSaveGolden, ZipAndLegacyAgree) {
  const fs::path zip = torchsave_dir(GetParam()) / "detr_style_zip.pth",
                 legacy = torchsave_dir(GetParam()) / "detr_style_legacy.pth";
  REQUIRE_GOLDEN(GetParam(), zip);
  REQUIRE_GOLDEN(GetParam(), legacy);
  EXPECT_TRUE(equal(torch_load(zip), torch_load(legacy)));
}

INSTANTIATE_TEST_SUITE_P(Golden,
                         TorchSaveGolden,
                         ::testing::Values(Golden::kCommitted, Golden::kOptional),
                         golden_test_name);

// A Python-written fp16 state dict gives the tensors LibTorch's own pickle_load gives.
void expect_same_as_pickle_load(const fs::path& path) {
  const std::string bytes = read_file(path);
  const auto ours = to_state_dict(torch_load(path));
  const auto theirs = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toGenericDict();
  ASSERT_EQ(ours.size(), theirs.size());
  size_t fp16 = 0;
  for (const auto& entry : theirs) {
    const std::string name = entry.key().toStringRef();
    SCOPED_TRACE(name);
    ASSERT_EQ(ours.count(name), 1u);
    EXPECT_TRUE(bit_equal(ours.at(name), entry.value().toTensor()));
    fp16 += ours.at(name).scalar_type() == torch::kFloat16;
  }
  EXPECT_GT(fp16, 0u);
}

TEST(TorchSave, MatchesLibTorchPickleLoad) {
  const fs::path path = torchsave_dir(Golden::kCommitted) / "plain_state_dict.pth";
  REQUIRE_GOLDEN(Golden::kCommitted, path);
  expect_same_as_pickle_load(path);
}

// The upstream fixture's fp16 state dict (optional larger set).
TEST(TorchSaveOptionalFixtures, MatchesLibTorchPickleLoadOnUpstreamModel) {
  const fs::path path = detr::testing::fixtures_dir() / "detr" / "tiny_r18" / "model.pth";
  REQUIRE_GOLDEN(Golden::kOptional, path);
  expect_same_as_pickle_load(path);
}

// ---- writing ---------------------------------------------------------------------------------------

namespace {

PyValue sample_value() {
  torch::manual_seed(0);
  std::vector<std::pair<PyValue, PyValue>> tensors;
  auto add = [&](const std::string& k, torch::Tensor t) { tensors.emplace_back(PyValue::str(k), PyValue::tensor(t)); };
  add("f32", torch::randn({3, 4}));
  add("f16", torch::randn({5, 8}).to(torch::kFloat16));
  add("bf16", torch::randn({5}).to(torch::kBFloat16));
  add("f64", torch::randn({2, 3}, torch::kFloat64));
  add("i64", torch::tensor({int64_t{7}, int64_t{-2}, int64_t{1} << 40, INT64_MIN, INT64_MAX}));
  add("i32", torch::randint(-1000, 1000, {4}, torch::kInt32));
  add("i16", torch::randint(-1000, 1000, {4}, torch::kInt16));
  add("i8", torch::randint(-100, 100, {4}, torch::kInt8));
  add("u8", torch::randint(0, 255, {4}, torch::kUInt8));
  add("bool", torch::tensor({true, false, true}));
  add("c64", torch::randn({3}, torch::kComplexFloat));
  add("scalar", torch::tensor(1.5));
  add("empty", torch::empty({0, 4}));
  const auto base = torch::arange(48, torch::kFloat32).reshape({6, 8});
  add("transposed", base.t());                              // non-contiguous
  add("offset_view", base.reshape({-1}).slice(0, 16, 32));  // storage offset
  add("strided", base.slice(1, 0, 8, 3));                   // step slicing
  add("expanded", torch::ones({1, 3}).expand({4, 3}));      // stride 0
  PyValue model = PyValue::dict(std::move(tensors));

  PyValue group = PyValue::dict({
      {PyValue::str("lr"), PyValue::floating(1e-4)},
      {PyValue::str("betas"), PyValue::tuple({PyValue::floating(0.9), PyValue::floating(0.999)})},
      {PyValue::str("params"), PyValue::list({PyValue::integer(0), PyValue::integer(1)})},
  });
  PyList ints;
  for (int64_t i :
       {int64_t{0}, int64_t{1}, int64_t{255}, int64_t{256}, int64_t{65535}, int64_t{65536}, int64_t{-1}, int64_t{-129},
        int64_t{INT32_MIN}, int64_t{INT32_MAX}, int64_t{INT32_MAX} + 1, int64_t{INT32_MIN} - 1, INT64_MIN, INT64_MAX})
    ints.push_back(PyValue::integer(i));
  PyList floats;
  for (double d : {0.0, -0.0, 1.0, 1e-300, 1e300, 3.141592653589793, std::nan(""), HUGE_VAL, -HUGE_VAL})
    floats.push_back(PyValue::floating(d));
  PyList many;  // more than one APPENDS/SETITEMS batch
  for (int i = 0; i < 2500; ++i) many.push_back(PyValue::integer(i));
  PyValue big_dict = PyValue::dict();
  for (int i = 0; i < 2500; ++i) big_dict.as_dict().set(PyValue::integer(i), PyValue::str(std::to_string(i)));

  return PyValue::dict({
      {PyValue::str("model"), model},
      {PyValue::str("optimizer"),
       PyValue::dict({{PyValue::str("state"),
                       PyValue::dict({{PyValue::integer(0), PyValue::dict({{PyValue::str("step"),
                                                                            PyValue::tensor(torch::tensor(12.0))}})}})},
                      {PyValue::str("param_groups"), PyValue::list({group})}})},
      {PyValue::str("epoch"), PyValue::integer(11)},
      {PyValue::str("ints"), PyValue::list(std::move(ints))},
      {PyValue::str("floats"), PyValue::tuple(std::move(floats))},
      {PyValue::str("strings"),
       PyValue::list({PyValue::str(""), PyValue::str("ünïcödé ✓"), PyValue::str(std::string("nul\0byte", 8))})},
      {PyValue::str("bytes"), PyValue::bytes(std::string("\x00\xff raw", 6))},
      {PyValue::str("flags"), PyValue::list({PyValue::boolean(true), PyValue::boolean(false), PyValue::none()})},
      {PyValue::str("tuples"), PyValue::tuple({PyValue::tuple(), PyValue::tuple({PyValue::integer(1)}),
                                               PyValue::tuple({PyValue::integer(1), PyValue::integer(2),
                                                               PyValue::integer(3), PyValue::integer(4)})})},
      {PyValue::str("many"), PyValue::list(std::move(many))},
      {PyValue::str("big_dict"), big_dict},
      {PyValue::str("nested"),
       PyValue::list({PyValue::list({PyValue::dict({{PyValue::str("deep"), PyValue::list()}})})})},
  });
}

}  // namespace

TEST(TorchSave, RoundTripIsBitExact) {
  const PyValue v = sample_value();
  const std::string bytes = torch_save_bytes(v);
  LoadInfo info;
  const PyValue back = torch_load_bytes(bytes, "roundtrip", &info);
  EXPECT_EQ(info.format, "zip");
  EXPECT_EQ(info.archive_name, "archive");
  EXPECT_TRUE(equal(v, back));
  // Spot checks beyond equal(): the values are what went in, written contiguous.
  const auto& m = back.at("model");
  EXPECT_TRUE(m.at("transposed").as_tensor().is_contiguous());
  EXPECT_TRUE(torch::equal(m.at("transposed").as_tensor(), v.at("model").at("transposed").as_tensor()));
  EXPECT_TRUE(torch::equal(m.at("expanded").as_tensor(), torch::ones({4, 3})));
  EXPECT_EQ(back.at("ints").item(12).as_int(), INT64_MIN);
  EXPECT_TRUE(std::signbit(back.at("floats").item(1).as_float()));
  EXPECT_TRUE(std::isnan(back.at("floats").item(6).as_float()));
  EXPECT_EQ(back.at("big_dict").at(int64_t{2499}).as_str(), "2499");
  EXPECT_EQ(back.at("model").type_name(), "dict");
  // Second pass: what we read writes back identically.
  EXPECT_EQ(torch_save_bytes(back), bytes);
}

TEST(TorchSave, ZipLayoutAsTorchSave) {
  const std::string bytes = torch_save_bytes(PyValue::dict({{PyValue::str("w"), PyValue::tensor(torch::ones({2}))}}));
  for (const char* record : {"archive/data.pkl", "archive/data/0", "archive/version", "archive/byteorder"})
    EXPECT_NE(bytes.find(record), std::string::npos) << record;
  // The pickle names the rebuild function and the storage class as torch.save does.
  for (const char* s : {"torch._utils\n_rebuild_tensor_v2\n", "torch\nFloatStorage\n", "collections\nOrderedDict\n"})
    EXPECT_NE(bytes.find(s), std::string::npos) << s;
}

TEST(TorchSave, SameTensorTwiceSharesStorage) {
  const auto t = torch::randn({3});
  const PyValue back = torch_load_bytes(torch_save_bytes(
      PyValue::dict({{PyValue::str("a"), PyValue::tensor(t)}, {PyValue::str("b"), PyValue::tensor(t)}})));
  EXPECT_TRUE(back.at("a").as_tensor().storage().is_alias_of(back.at("b").as_tensor().storage()));
}

TEST(TorchSave, FileWriteIsAtomic) {
  TempDir dir;
  const fs::path path = dir.path / "checkpoint.pth";
  const PyValue v = sample_value();
  torch_save(v, path);
  EXPECT_TRUE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
  EXPECT_TRUE(equal(torch_load(path), v));

  // A failing write (an object we cannot pickle) leaves the old file and no temp file behind.
  const auto before = read_file(path);
  expect_error(
      [&] {
        torch_save(PyValue::dict({{PyValue::str("x"), PyValue::object("argparse", "Namespace", PyValue::tuple())}}),
                   path);
      },
      {path.string(), "argparse.Namespace"});
  EXPECT_EQ(read_file(path), before);
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
  expect_error([&] { torch_save(v, dir.path / "no_such_dir" / "x.pth"); }, {"no_such_dir", "cannot open"});
}

// Records written on a big-endian machine (byteorder = "big") are swapped to native order.
TEST(TorchSave, BigEndianArchive) {
  const auto f = torch::tensor({1.5f, -2.25f, 3e7f});
  const auto h = torch::tensor({1.5, -0.25}).to(torch::kFloat16);
  const auto z = torch::tensor({c10::complex<double>(1, -2)});
  std::vector<torch::Tensor> storages;
  const std::string pkl = pickle(PyValue::dict({{PyValue::str("f"), PyValue::tensor(f)},
                                                {PyValue::str("h"), PyValue::tensor(h)},
                                                {PyValue::str("z"), PyValue::tensor(z)}}),
                                 [&](const torch::Tensor& t) {
                                   storages.push_back(t);
                                   return std::to_string(storages.size() - 1);
                                 });
  std::string zip;
  {
    caffe2::serialize::PyTorchStreamWriter w([&](const void* p, size_t n) {
      zip.append(static_cast<const char*>(p), n);
      return n;
    });
    w.writeRecord("data.pkl", pkl.data(), pkl.size());
    w.writeRecord("byteorder", "big", 3);
    for (size_t k = 0; k < storages.size(); ++k) {
      const auto& t = storages[k];
      std::string raw(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
      const size_t w_ = t.is_complex() ? t.element_size() / 2 : t.element_size();
      for (size_t i = 0; i < raw.size(); i += w_) std::reverse(raw.begin() + i, raw.begin() + i + w_);
      w.writeRecord("data/" + std::to_string(k), raw.data(), raw.size());
    }
    w.writeEndOfFile();
  }
  const PyValue back = torch_load_bytes(zip, "big.pth");
  EXPECT_TRUE(bit_equal(back.at("f").as_tensor(), f));
  EXPECT_TRUE(bit_equal(back.at("h").as_tensor(), h));
  EXPECT_TRUE(bit_equal(back.at("z").as_tensor(), z));
}

TEST(TorchSave, JsonBridge) {
  const auto j = nlohmann::json::parse(R"({"a": 1, "b": [1.5, "x", null, true], "c": {"d": -3}})");
  const PyValue v = from_json(j);
  EXPECT_EQ(v.at("c").at("d").as_int(), -3);
  EXPECT_EQ(to_json(v), j);
  EXPECT_EQ(to_json(torch_load_bytes(torch_save_bytes(v))), j);
}

// ---- malformed input ---------------------------------------------------------------------------------

TEST(TorchSave, TruncatedFilesThrowNamingTheFile) {
  std::vector<std::pair<std::string, std::string>> files = {{"ours.pth", torch_save_bytes(sample_value())}};
  for (auto& golden : golden_checkpoints()) files.push_back(std::move(golden));
  for (const auto& [name, bytes] : files) {
    SCOPED_TRACE(name);
    const size_t step = std::max<size_t>(1, bytes.size() / 3000);
    for (size_t n = 0; n < bytes.size(); n += (n < 64 ? 1 : step)) {
      try {
        torch_load_bytes(bytes.substr(0, n), name);
        ADD_FAILURE() << "truncated to " << n << " bytes loaded";
      } catch (const std::runtime_error& e) {
        ASSERT_EQ(std::string(e.what()).rfind(name + ": ", 0), 0u) << e.what();
      } catch (...) {
        FAIL() << "truncated to " << n << " bytes: not a std::runtime_error";
      }
    }
  }
}

TEST(TorchSave, CorruptedBytesNeverCrash) {
  std::vector<std::string> files = {torch_save_bytes(sample_value())};
  for (auto& golden : golden_checkpoints()) files.push_back(std::move(golden.second));
  std::mt19937 rng(1234);
  for (const auto& original : files) {
    for (int trial = 0; trial < 1500; ++trial) {
      std::string bytes = original;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < flips; ++i) bytes[rng() % bytes.size()] = static_cast<char>(rng() & 0xff);
      try {
        torch_load_bytes(bytes, "corrupt.pth");
      } catch (const std::runtime_error& e) {
        ASSERT_EQ(std::string(e.what()).rfind("corrupt.pth: ", 0), 0u) << e.what();
      } catch (...) {
        FAIL() << "trial " << trial << ": not a std::runtime_error";
      }
    }
  }
}

TEST(TorchSave, ClearErrors) {
  TempDir dir;
  const fs::path text = dir.path / "notes.pth";
  spit(text, "just some text\n");
  expect_error([&] { torch_load(text); }, {text.string(), "not a torch.save file"});
  const fs::path empty = dir.path / "empty.pth";
  spit(empty, "");
  expect_error([&] { torch_load(empty); }, {empty.string(), "empty"});
  expect_error([&] { torch_load(dir.path / "missing.pth"); }, {"missing.pth", "cannot open"});
  // Truncated files on disk (read through the file, not memory).
  const std::string good = torch_save_bytes(sample_value());
  const fs::path cut_zip = dir.path / "cut.pth";
  spit(cut_zip, good.substr(0, good.size() / 2));
  expect_error([&] { torch_load(cut_zip); }, {cut_zip.string(), "truncated zip archive"});
  std::string no_records = good;  // end record intact, central directory damaged
  no_records.replace(no_records.size() - 200, 100, std::string(100, 'x'));
  spit(cut_zip, no_records);
  expect_error([&] { torch_load(cut_zip); }, {cut_zip.string()});
  // A plain pickle (not torch.save): no magic number.
  expect_error([&] { torch_load_bytes(std::string("\x80\x02K\x05.", 5), "plain.pkl"); }, {"plain.pkl", "magic number"});
  // Legacy header, then an unsupported opcode (EXT1) in the main pickle.
  std::string legacy = std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15) +
                       std::string("\x80\x02M\xe9\x03.", 6) + std::string("\x80\x02}.", 4) +
                       std::string("\x80\x02\x82\x01.", 5);
  expect_error([&] { torch_load_bytes(legacy, "ext.pth"); }, {"ext.pth", "unsupported pickle opcode 0x82 (EXT1)"});
  // A zip archive without data.pkl.
  std::string zip;
  {
    caffe2::serialize::PyTorchStreamWriter w([&](const void* p, size_t n) {
      zip.append(static_cast<const char*>(p), n);
      return n;
    });
    w.writeRecord("other", "x", 1);
    w.writeEndOfFile();
  }
  expect_error([&] { torch_load_bytes(zip, "other.pth"); }, {"other.pth", "data.pkl"});
}

TEST(Unpickle, RejectsTensorsOutsideTheirStorage) {
  // _rebuild_tensor_v2(storage of 4 floats, offset 2, size (3,), stride (1,))
  const std::string p =
      "\x80\x02"s + "ctorch._utils\n_rebuild_tensor_v2\n(" + "X\x01\x00\x00\x00"s + "sQK\x02K\x03\x85K\x01\x85\x89)tR.";
  auto storage = [](const PyValue&) { return PyValue::storage(torch::zeros({4})); };
  expect_error([&] { unpickle(p.data(), p.size(), 0, storage); }, {"exceeds its storage of 4 elements"});
  auto ok = [](const PyValue&) { return PyValue::storage(torch::arange(5, torch::kFloat32)); };
  const auto r = unpickle(p.data(), p.size(), 0, ok);
  EXPECT_TRUE(torch::equal(r.value.as_tensor(), torch::tensor({2.f, 3.f, 4.f})));

  // PyTorch 2.x's _rebuild_tensor_v3: an untyped (byte) storage viewed as the dtype argument.
  const std::string v3 = "\x80\x02"s + "ctorch._utils\n_rebuild_tensor_v3\n(" + "X\x01\x00\x00\x00"s +
                         "sQK\x01K\x02\x85K\x01\x85\x89)ctorch\nfloat32\ntR.";
  const auto floats = torch::tensor({0.f, 1.5f, -2.f});
  auto untyped = [&](const PyValue&) {
    return PyValue::storage(torch::from_blob(floats.data_ptr(), {12}, torch::kUInt8).clone());
  };
  EXPECT_TRUE(torch::equal(unpickle(v3.data(), v3.size(), 0, untyped).value.as_tensor(), torch::tensor({1.5f, -2.f})));
}

TEST(Unpickle, OlderProtocolsAndOpcodes) {
  // Protocol 0 text opcodes: (lp0\nI1\naI01\naF2.5\naS'a\\nb'\naL12345678901234L\na.
  const std::string p0 = "(lp0\nI1\naI01\naF2.5\naS'a\\nb'\naL12345678901234L\naVx\\u00e9\na.";
  const auto r0 = unpickle(p0.data(), p0.size(), 0, nullptr).value;
  ASSERT_EQ(r0.size(), 6u);
  EXPECT_EQ(r0.item(0).as_int(), 1);
  EXPECT_TRUE(r0.item(1).as_bool());
  EXPECT_EQ(r0.item(2).as_float(), 2.5);
  EXPECT_EQ(r0.item(3).as_str(), "a\nb");
  EXPECT_EQ(r0.item(4).as_int(), 12345678901234);
  EXPECT_EQ(r0.item(5).as_str(), "x\xc3\xa9");
  // Protocol 4: FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, NEWOBJ + BUILD of an unknown class.
  const std::string p4 = "\x80\x04\x95"s + std::string(8, '\0') +
                         "\x8c\x08"
                         "argparse"
                         "\x94\x8c\x09"
                         "Namespace" +
                         "\x94\x93\x94)\x81\x94}\x94\x8c\x01"
                         "x"
                         "\x94K\x07"
                         "sb.";
  const auto r4 = unpickle(p4.data(), p4.size(), 0, nullptr);
  EXPECT_EQ(r4.protocol, 4);
  EXPECT_EQ(r4.value.type_name(), "argparse.Namespace");
  EXPECT_EQ(r4.value.attr("x").as_int(), 7);
  // Truncated input and stray opcodes are errors with offsets, not crashes.
  expect_error([&] { unpickle(p4.data(), 20, 0, nullptr); }, {"truncated", "offset"});
  expect_error(
      [&] {
        unpickle(
            "\x80\x02"
            "a.",
            4, 0, nullptr);
      },
      {"stack underflow", "offset 2"});
  expect_error([&] { unpickle("\x80\x02h\x05.", 5, 0, nullptr); }, {"memo key 5"});
  expect_error([&] { unpickle("\x80\x02\xff.", 4, 0, nullptr); }, {"invalid pickle opcode 0xff"});
}

// A value nested a million levels deep (a list in a list ..., built through the memo) is read and
// destroyed without recursion; walkers that recurse refuse it with an error.
TEST(Unpickle, DeepNestingDoesNotOverflowTheStack) {
  std::string p = "\x80\x02]r"s + std::string(4, '\0');
  const uint32_t n = 500000;  // 10^6 values: within the unpickler's 2^20, and 500,000 levels deep
  for (uint32_t i = 1; i < n; ++i) {
    const uint32_t prev = i - 1;
    p += "]j";
    p.append(reinterpret_cast<const char*>(&prev), 4);
    p += "ar";
    p.append(reinterpret_cast<const char*>(&i), 4);
    p += "0";
  }
  const uint32_t last = n - 1;
  p += "0j";  // drop the innermost list from the stack, push the outermost
  p.append(reinterpret_cast<const char*>(&last), 4);
  p += ".";
  const auto r = unpickle(p.data(), p.size(), 0, nullptr);
  ASSERT_TRUE(r.value.is_list());
  EXPECT_TRUE(r.value.item(0).item(0).is_list());
  PyValue deep = PyValue::list();
  for (int i = 0; i < 1000000; ++i) deep = PyValue::list({deep});
  expect_error([&] { torch_save_bytes(deep); }, {"nested deeper"});
  expect_error([&] { to_json(deep); }, {"nested deeper"});
  std::ostringstream os;
  InspectOptions o;
  o.max_depth = 1u << 30;
  print_structure(os, deep, o);
  EXPECT_NE(os.str().find("deeper levels not shown"), std::string::npos);
}

// ---- state dicts into modules ----------------------------------------------------------------------

namespace {

struct BodyImpl : torch::nn::Module {
  BodyImpl() {
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3).bias(false)));
    running_mean = register_buffer("running_mean", torch::zeros({4}));
  }
  torch::nn::Conv2d conv1{nullptr};
  torch::Tensor running_mean;
};
TORCH_MODULE(Body);

struct JoinerImpl : torch::nn::Module {
  JoinerImpl() { body = register_module("body", Body()); }
  Body body{nullptr};
};
TORCH_MODULE(Joiner);

struct TinyImpl : torch::nn::Module {
  explicit TinyImpl(int64_t num_classes = 5) {
    backbone = register_module("backbone", torch::nn::ModuleList(Joiner()));
    input_proj = register_module("input_proj", torch::nn::Linear(4, 8));
    class_embed = register_module("class_embed", torch::nn::Linear(8, num_classes + 1));
  }
  torch::nn::ModuleList backbone{nullptr};
  torch::nn::Linear input_proj{nullptr}, class_embed{nullptr};
};
TORCH_MODULE(Tiny);

// A state dict for Tiny(num_classes) in float16, with recognizable values.
std::map<std::string, torch::Tensor> tiny_state(int64_t num_classes = 5) {
  std::map<std::string, torch::Tensor> s;
  Tiny reference(num_classes);
  int i = 0;
  for (const auto& [k, t] : module_state(*reference)) s[k] = torch::full(t.sizes(), 0.5 * ++i, torch::kFloat16);
  return s;
}

}  // namespace

TEST(StateDict, StrictLoadConvertsDtypes) {
  Tiny model;
  const auto state = tiny_state();
  const auto report = load_state_dict(*model, state);
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.loaded.size(), state.size());
  EXPECT_EQ(report.converted.size(), state.size());
  for (const auto& [k, t] : module_state(*model)) {
    EXPECT_EQ(t.scalar_type(), torch::kFloat32) << k;
    EXPECT_TRUE(torch::equal(t, state.at(k).to(torch::kFloat32))) << k;
  }
  EXPECT_TRUE(model->input_proj->weight.requires_grad());
  EXPECT_TRUE(module_state(*model).count("backbone.0.body.running_mean"));
}

TEST(StateDict, StrictReportsEveryProblemByName) {
  Tiny model;
  const auto before = model->input_proj->weight.clone();
  auto state = tiny_state();
  state.erase("input_proj.bias");
  state["extra.weight"] = torch::ones({1});
  state["class_embed.weight"] = torch::ones({3, 8});
  expect_error([&] { load_state_dict(*model, state); }, {"missing (1): input_proj.bias", "unexpected (1): extra.weight",
                                                         "class_embed.weight: checkpoint [3, 8] vs model [6, 8]"});
  EXPECT_TRUE(torch::equal(model->input_proj->weight, before));  // nothing copied on failure

  const auto report = load_state_dict(*model, state, LoadOptions::non_strict());
  EXPECT_EQ(report.missing, std::vector<std::string>{"input_proj.bias"});
  EXPECT_EQ(report.unexpected, std::vector<std::string>{"extra.weight"});
  EXPECT_EQ(report.mismatched.size(), 1u);
  EXPECT_TRUE(torch::equal(model->input_proj->weight, state.at("input_proj.weight").to(torch::kFloat32)));
  EXPECT_NE(report.summary().find("missing (1): input_proj.bias"), std::string::npos);
}

TEST(StateDict, FineTuneSkipsClassHeadOfOtherNumClasses) {
  Tiny model(/*num_classes=*/2);
  const auto state = tiny_state(/*num_classes=*/91);  // upstream's COCO head
  const auto report = load_state_dict(*model, state, LoadOptions::fine_tune());
  EXPECT_EQ(report.skipped.size(), 2u);  // class_embed.weight, class_embed.bias
  EXPECT_NE(report.summary().find("class_embed.weight: checkpoint [92, 8] vs model [3, 8]"), std::string::npos);
  EXPECT_TRUE(torch::equal(model->input_proj->weight, state.at("input_proj.weight").to(torch::kFloat32)));
  // Other mismatches still throw.
  auto bad = state;
  bad["input_proj.weight"] = torch::ones({9, 4});
  expect_error([&] { load_state_dict(*model, bad, LoadOptions::fine_tune()); }, {"input_proj.weight"});
}

TEST(StateDict, FromCheckpointFileAndBackbone) {
  TempDir dir;
  const auto state = tiny_state();
  const fs::path ck = dir.path / "checkpoint.pth";
  torch_save(
      PyValue::dict({{PyValue::str("model"), from_state_dict(state)}, {PyValue::str("epoch"), PyValue::integer(3)}}),
      ck);
  Tiny model;
  EXPECT_TRUE(load_state_dict(*model, ck).ok());
  EXPECT_TRUE(torch::equal(model->class_embed->bias, state.at("class_embed.bias").to(torch::kFloat32)));

  // A torchvision-style ResNet state dict: keys without the backbone.0.body. prefix, plus fc.*.
  std::map<std::string, torch::Tensor> resnet = {{"conv1.weight", torch::full({4, 3, 3, 3}, 2.0)},
                                                 {"running_mean", torch::full({4}, 3.0)},
                                                 {"fc.weight", torch::ones({10, 4})},
                                                 {"bn1.num_batches_tracked", torch::tensor(int64_t{5})}};
  const fs::path rn = dir.path / "resnet.pth";
  torch_save(from_state_dict(resnet), rn);
  Tiny fresh;
  const auto report = load_backbone_weights(*fresh, rn);
  EXPECT_EQ(report.loaded.size(), 2u);
  EXPECT_EQ(report.ignored.size(), 2u);
  EXPECT_TRUE(torch::equal(fresh->backbone[0]->as<Joiner>()->body->conv1->weight, torch::full({4, 3, 3, 3}, 2.0)));
  resnet.erase("conv1.weight");
  torch_save(from_state_dict(resnet), rn);
  expect_error([&] { load_backbone_weights(*fresh, rn); }, {rn.string(), "backbone.0.body.conv1.weight"});
  // A whole DETR checkpoint works as the backbone source too.
  Tiny third;
  EXPECT_EQ(load_backbone_weights(*third, ck).loaded.size(), 2u);
}

TEST(StateDict, ToStateDictErrors) {
  expect_error(
      [] {
        to_state_dict(PyValue::dict({{PyValue::str("a"), PyValue::integer(1)}}));
      },
      {"'a'", "not a tensor"});
  expect_error([] { to_state_dict(PyValue::object("torch.nn.modules.linear", "Linear", PyValue::tuple())); },
               {"torch.nn.modules.linear.Linear", "state_dict()"});
}

// ---- inspect -----------------------------------------------------------------------------------------

class InspectGolden : public ::testing::TestWithParam<Golden> {};

TEST_P(InspectGolden, ListsStructure) {
  const fs::path path = torchsave_dir(GetParam()) / "detr_style_zip.pth";
  REQUIRE_GOLDEN(GetParam(), path);
  std::ostringstream os;
  print_structure(os, torch_load(path));
  const std::string s = os.str();
  for (const char* needle : {"model: collections.OrderedDict, 12 items", "class_embed.weight: float16 [5, 8]",
                             "transformer.decoder.norm.weight: float32 [8, 6] stride [1, 8] (shares storage with "
                             "model.transformer.encoder.layers.0.self_attn.in_proj_weight)",
                             "input_proj.bias: float32 [] = 1.5", "counter: int64 [3] = [7, -2, 1099511627776]",
                             "args: argparse.Namespace object", "    backbone: 'resnet50'", "betas: (0.9, 0.999)",
                             "eps: 1e-08", "-- 15 tensors"})
    EXPECT_NE(s.find(needle), std::string::npos) << needle << "\n" << s;

  InspectOptions capped;
  capped.max_items = 2;
  std::ostringstream os2;
  print_structure(os2, torch_load(path), capped);
  EXPECT_NE(os2.str().find("... 10 more (of 12)"), std::string::npos) << os2.str();
}

INSTANTIATE_TEST_SUITE_P(Golden,
                         InspectGolden,
                         ::testing::Values(Golden::kCommitted, Golden::kOptional),
                         golden_test_name);
