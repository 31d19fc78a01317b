#include "src/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <cmath>
#include <set>
#include <sstream>
#include <tuple>

#include "models/segmentation.h"
#include "src/serialization/state_dict.h"
#include "src/serialization/torch_save.h"

namespace detr {

namespace fs = std::filesystem;
using serialization::format_float;
using serialization::PyValue;
using serialization::repr;

namespace {

using Items = std::vector<std::pair<PyValue, PyValue>>;

// state_dict() in PyTorch's order: a module's own parameters, its buffers, then each child's.
void ordered_state(const torch::nn::Module& m, const std::string& prefix, Items& out) {
  for (const auto& p : m.named_parameters(/*recurse=*/false))
    out.emplace_back(PyValue::str(prefix + p.key()), PyValue::tensor(p.value().detach().cpu()));
  for (const auto& b : m.named_buffers(/*recurse=*/false))
    out.emplace_back(PyValue::str(prefix + b.key()), PyValue::tensor(b.value().detach().cpu()));
  for (const auto& c : m.named_children()) ordered_state(*c.value(), prefix + c.key() + ".", out);
}

PyValue optimizer_state(const AdamW& opt) {
  Items state, groups_out;
  const auto params = opt.all_params();
  for (size_t i = 0; i < opt.state().size(); ++i) {
    const auto& st = opt.state()[i];
    if (!st.exp_avg.defined()) continue;
    state.emplace_back(
        PyValue::integer(static_cast<int64_t>(i)),
        PyValue::dict({{PyValue::str("step"), PyValue::tensor(torch::tensor(static_cast<float>(st.step)))},
                       {PyValue::str("exp_avg"), PyValue::tensor(st.exp_avg.detach().cpu())},
                       {PyValue::str("exp_avg_sq"), PyValue::tensor(st.exp_avg_sq.detach().cpu())}}));
  }
  serialization::PyList groups;
  int64_t index = 0;
  const auto& o = opt.options();
  for (const auto& g : opt.groups()) {
    serialization::PyList ids;
    for (size_t k = 0; k < g.params.size(); ++k) ids.push_back(PyValue::integer(index++));
    groups.push_back(PyValue::dict(
        {{PyValue::str("lr"), PyValue::floating(g.lr)},
         {PyValue::str("betas"), PyValue::tuple({PyValue::floating(o.beta1), PyValue::floating(o.beta2)})},
         {PyValue::str("eps"), PyValue::floating(o.eps)},
         {PyValue::str("weight_decay"), PyValue::floating(g.weight_decay)},
         {PyValue::str("amsgrad"), PyValue::boolean(false)},
         {PyValue::str("foreach"), PyValue::none()},
         {PyValue::str("maximize"), PyValue::boolean(false)},
         {PyValue::str("capturable"), PyValue::boolean(false)},
         {PyValue::str("initial_lr"), PyValue::floating(g.initial_lr)},
         {PyValue::str("params"), PyValue::list(ids)}}));
  }
  return PyValue::dict(
      {{PyValue::str("state"), PyValue::dict(state)}, {PyValue::str("param_groups"), PyValue::list(groups)}});
}

PyValue scheduler_state(const AdamW& opt, const StepLR& s) {
  serialization::PyList base, last;
  for (const auto& g : opt.groups()) {
    base.push_back(PyValue::floating(g.initial_lr));
    last.push_back(PyValue::floating(g.lr));
  }
  return PyValue::dict({{PyValue::str("step_size"), PyValue::integer(s.step_size())},
                        {PyValue::str("gamma"), PyValue::floating(s.gamma())},
                        {PyValue::str("base_lrs"), PyValue::list(base)},
                        {PyValue::str("last_epoch"), PyValue::integer(s.last_epoch())},
                        {PyValue::str("_step_count"), PyValue::integer(s.last_epoch() + 1)},
                        {PyValue::str("verbose"), PyValue::boolean(false)},
                        {PyValue::str("_get_lr_called_within_step"), PyValue::boolean(false)},
                        {PyValue::str("_last_lr"), PyValue::list(last)}});
}

}  // namespace

namespace {
// The checkpoint's entries in upstream's order (model, optimizer, lr_scheduler, epoch, args), then
// ours; `optimizer` holds the optimizer and lr_scheduler entries, or nothing (best.pth).
PyValue model_record(const torch::nn::Module& model,
                     const models::ModelConfig& config,
                     const CheckpointState& state,
                     const nlohmann::json& args,
                     Items optimizer = {}) {
  Items model_items;
  ordered_state(model, "", model_items);
  serialization::PyList classes;
  for (const auto& c : state.classes)
    classes.push_back(
        PyValue::dict({{PyValue::str("id"), PyValue::integer(c.id)}, {PyValue::str("name"), PyValue::str(c.name)}}));
  Items items{{PyValue::str("model"), PyValue::dict(model_items)}};
  for (auto& item : optimizer) items.push_back(std::move(item));
  for (auto& item : Items{{PyValue::str("epoch"), PyValue::integer(state.epoch)},
                          {PyValue::str("args"), serialization::from_json(args)},
                          {PyValue::str("model_config"), serialization::from_json(models::to_json(config))},
                          {PyValue::str("classes"), PyValue::list(classes)},
                          {PyValue::str("step_in_epoch"), PyValue::integer(state.step_in_epoch)},
                          {PyValue::str("images_per_step"), PyValue::integer(state.images_per_step)},
                          {PyValue::str("best_ap"), PyValue::floating(state.best_ap)},
                          {PyValue::str("format_version"), PyValue::integer(kCheckpointFormatVersion)}})
    items.push_back(std::move(item));
  return PyValue::dict(std::move(items));
}
}  // namespace

void save_checkpoint(const fs::path& path,
                     const torch::nn::Module& model,
                     const models::ModelConfig& config,
                     const AdamW& optimizer,
                     const StepLR& scheduler,
                     const CheckpointState& state,
                     const nlohmann::json& args) {
  auto root = model_record(model, config, state, args,
                           {{PyValue::str("optimizer"), optimizer_state(optimizer)},
                            {PyValue::str("lr_scheduler"), scheduler_state(optimizer, scheduler)}});
  if (state.loss_scale > 0)  // GradScaler.state_dict()'s keys
    root.as_dict().set(
        PyValue::str("scaler"),
        PyValue::dict({{PyValue::str("scale"), PyValue::floating(state.loss_scale)},
                       {PyValue::str("_growth_tracker"), PyValue::integer(state.scaler_growth_tracker)}}));
  serialization::torch_save(root, path);
}

void save_model(const fs::path& path,
                const torch::nn::Module& model,
                const models::ModelConfig& config,
                const CheckpointState& state,
                const nlohmann::json& args) {
  serialization::torch_save(model_record(model, config, state, args), path);
}

namespace {

// Resume state is validated (type and range) before anything uses it: a crafted or corrupted
// checkpoint is refused with one line naming the file and field, never trusted.
constexpr int64_t kMaxEpoch = 1'000'000;
constexpr int64_t kMaxSteps = int64_t{1} << 40;

[[noreturn]] void bad_field(const fs::path& path, const std::string& field, const std::string& what) {
  throw std::runtime_error(path.string() + ": field '" + field + "' " + what + " (a damaged or crafted checkpoint)");
}

int64_t int_in(const PyValue& v, const fs::path& path, const std::string& field, int64_t lo, int64_t hi) {
  if (!v.is_int() || v.is_bool()) bad_field(path, field, "is " + repr(v) + ", expected an integer");
  const int64_t x = v.as_int();
  if (x < lo || x > hi)
    bad_field(path, field,
              "is " + std::to_string(x) + ", outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

double float_in(const PyValue& v, const fs::path& path, const std::string& field, double lo, double hi) {
  if (!(v.is_float() || v.is_int()) || v.is_bool()) bad_field(path, field, "is " + repr(v) + ", expected a number");
  const double x = v.as_float();
  if (!(x >= lo && x <= hi))
    bad_field(path, field, "is " + repr(v) + ", outside [" + format_float(lo) + ", " + format_float(hi) + "]");
  return x;
}

CheckpointState read_state(const PyValue& root, const fs::path& path) {
  CheckpointState st;
  st.epoch = int_in(root.at("epoch"), path, "epoch", -1, kMaxEpoch);
  if (const auto* s = root.find("step_in_epoch")) st.step_in_epoch = int_in(*s, path, "step_in_epoch", 0, kMaxSteps);
  if (const auto* s = root.find("images_per_step"))
    st.images_per_step = int_in(*s, path, "images_per_step", 0, int64_t{1} << 20);
  if (const auto* s = root.find("scaler"); s && !s->is_none()) {
    if (!s->is_dict()) bad_field(path, "scaler", "is " + s->type_name() + ", expected a dict");
    st.loss_scale = float_in(s->at("scale"), path, "scaler.scale", 0x1p-126, 0x1p127);
    st.scaler_growth_tracker = int_in(s->at("_growth_tracker"), path, "scaler._growth_tracker", 0, kMaxSteps);
  }
  if (const auto* b = root.find("best_ap"); b && !b->is_none()) st.best_ap = float_in(*b, path, "best_ap", -1, 1);
  return st;
}

// Runs fn; an error that does not name the file yet (a missing key, a wrong type) gets its path.
template <typename Fn>
auto with_path(const fs::path& path, Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::exception& e) {
    const std::string what = e.what();
    if (what.rfind(path.string(), 0) == 0) throw;
    throw std::runtime_error(path.string() + ": " + what + " (not a usable resume state)");
  }
}

// NaN or infinite weights would answer every image with null scores and boxes: refused by name.
// True when no element's exponent bits are all ones (infinity or NaN): one pass over the bits, no
// temporary. isfinite().all() took 0.10-0.15 s of a 41M-parameter model's load.
template <typename Bits>
bool exponents_finite(const torch::Tensor& t, Bits exponent) {
  const auto* bytes = static_cast<const unsigned char*>(t.data_ptr());
  Bits inf_or_nan = 0;
  for (int64_t i = 0; i < t.numel(); ++i) {
    Bits bits;
    std::memcpy(&bits, bytes + sizeof(Bits) * i, sizeof(Bits));
    inf_or_nan |= static_cast<Bits>((bits & exponent) == exponent);
  }
  return inf_or_nan == 0;
}

bool all_finite(const torch::Tensor& t) {
  if (t.is_contiguous() && t.device().is_cpu()) {
    switch (t.scalar_type()) {
      case torch::kFloat: return exponents_finite<uint32_t>(t, 0x7f800000u);
      case torch::kDouble: return exponents_finite<uint64_t>(t, 0x7ff0000000000000ull);
      case torch::kHalf: return exponents_finite<uint16_t>(t, 0x7c00u);
      case torch::kBFloat16: return exponents_finite<uint16_t>(t, 0x7f80u);
      default: break;
    }
  }
  return torch::isfinite(t).all().item<bool>();
}

void check_finite(const fs::path& path, const std::map<std::string, torch::Tensor>& state) {
  for (const auto& [key, t] : state)
    if (t.is_floating_point() && !all_finite(t))
      throw std::runtime_error(path.string() + ": weight '" + key + "' holds NaN or infinite values");
}

std::vector<datasets::CocoCategory> read_classes(const PyValue& root, const fs::path& path) {
  std::vector<datasets::CocoCategory> classes;
  const auto* cl = root.find("classes");
  if (!cl || cl->is_none()) return classes;
  if (!cl->is_list()) bad_field(path, "classes", "is " + cl->type_name() + ", expected a list");
  for (size_t k = 0; k < cl->size(); ++k) {
    const auto& item = cl->item(k);
    const auto field = "classes[" + std::to_string(k) + "]";
    if (!item.is_dict() || !item.contains("id") || !item.contains("name") || !item.at("name").is_str())
      bad_field(path, field, "is " + repr(item) + ", expected {'id': int, 'name': str}");
    classes.push_back({int_in(item.at("id"), path, field + ".id", 0, kMaxSteps), item.at("name").as_str()});
  }
  return classes;
}

// args: our dict, or upstream's argparse.Namespace (an object whose state holds the flags).
CheckpointArgs read_args(const PyValue& root, const fs::path& path) {
  CheckpointArgs a;
  const auto* args = root.find("args");
  if (!args) return a;
  auto find = [&](const char* name) { return args->is_dict() ? args->find(name) : args->find_attr(name); };
  auto integer = [&](const char* name, int64_t lo, int64_t hi, std::optional<int64_t>& out) {
    if (const auto* v = find(name); v && !v->is_none()) out = int_in(*v, path, std::string("args.") + name, lo, hi);
  };
  integer("nheads", 1, 4096, a.nheads);
  integer("val_size", 1, int64_t{1} << 31, a.val_size);  // what training accepts: positive
  integer("max_size", 1, int64_t{1} << 31, a.max_size);
  if (const auto* v = find("dilation"); v && !v->is_none()) {
    if (!v->is_bool()) bad_field(path, "args.dilation", "is " + repr(*v) + ", expected True or False");
    a.dilation = v->as_bool();
  }
  return a;
}

}  // namespace

LoadedCheckpoint load_checkpoint(const fs::path& path) {
  return read_checkpoint(std::make_shared<const PyValue>(serialization::torch_load(path)), path);
}

LoadedCheckpoint read_checkpoint(std::shared_ptr<const PyValue> root_ptr, const fs::path& path) {
  const PyValue& root = *root_ptr;
  LoadedCheckpoint ck;
  ck.path = path;
  ck.model = naming_file(path, [&] { return serialization::to_state_dict(root); });
  check_finite(path, ck.model);
  if (root.is_dict()) {
    if (const auto* c = root.find("model_config")) {
      try {
        ck.model_config = models::model_config_from_json(serialization::to_json(*c));
      } catch (const std::exception& e) {
        throw std::runtime_error(path.string() + ": model_config: " + e.what());
      }
    }
    if (root.find("epoch")) ck.state = with_path(path, [&] { return read_state(root, path); });
    ck.classes = read_classes(root, path);
    if (ck.state) ck.state->classes = ck.classes;
    ck.args = read_args(root, path);
    ck.has_optimizer = root.contains("optimizer") && root.contains("lr_scheduler");
  }
  ck.root = std::move(root_ptr);
  return ck;
}

models::ModelConfig infer_model_config(const std::map<std::string, torch::Tensor>& state, bool dilation) {
  // A segmentation model (upstream DETRsegm): its DETR's keys carry the prefix.
  auto s = models::split_segmentation_state(state).first;
  const bool masks = !s.empty();
  if (!masks) s = state;
  auto shape = [&](const std::string& k) -> std::vector<int64_t> {  // a matrix: [out, in]
    auto it = s.find(k);
    if (it == s.end()) throw std::runtime_error("state dict has no '" + k + "': not a DETR model");
    if (it->second.dim() != 2)
      throw std::runtime_error("state dict's '" + k + "' has shape " + c10::str(it->second.sizes()) +
                               ", expected a matrix: not a DETR model");
    return it->second.sizes().vec();
  };
  auto count = [&](const std::string& prefix) {  // the distinct N of "<prefix>N." keys
    std::set<int64_t> ids;
    for (const auto& kv : s) {
      const std::string& k = kv.first;
      if (k.rfind(prefix, 0) != 0) continue;
      const size_t end = k.find('.', prefix.size());
      const std::string digits =
          k.substr(prefix.size(), end == std::string::npos ? std::string::npos : end - prefix.size());
      if (end != std::string::npos && !digits.empty() && digits.size() < 10 &&
          std::all_of(digits.begin(), digits.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
        ids.insert(std::stoll(digits));
    }
    return static_cast<int64_t>(ids.size());
  };
  models::ModelConfig c;
  const bool bottleneck = s.count("backbone.0.body.layer1.0.conv3.weight") > 0;
  const int64_t layer3 = count("backbone.0.body.layer3.");
  if (bottleneck)
    c.backbone = layer3 >= 23 ? "resnet101" : "resnet50";
  else
    c.backbone = count("backbone.0.body.layer2.") >= 4 ? "resnet34" : "resnet18";
  c.dilation = dilation;
  c.hidden_dim = shape("query_embed.weight")[1];
  c.num_queries = shape("query_embed.weight")[0];
  c.num_classes = shape("class_embed.weight")[0] - 1;
  c.enc_layers = count("transformer.encoder.layers.");
  c.dec_layers = count("transformer.decoder.layers.");
  c.dim_feedforward = c.enc_layers ? shape("transformer.encoder.layers.0.linear1.weight")[0]
                                   : shape("transformer.decoder.layers.0.linear1.weight")[0];
  c.pre_norm = s.count("transformer.encoder.norm.weight") > 0;
  c.position_embedding =
      s.count("backbone.1.row_embed.weight") ? models::PositionEmbedding::kLearned : models::PositionEmbedding::kSine;
  c.nheads = c.hidden_dim % 8 == 0 ? 8 : 1;  // not visible in weights; upstream's default
  c.dropout = 0;
  c.masks = masks;
  return c;
}

namespace {

// Every size the weights show must agree with the claimed config before anything is built (measured
// before this check: 10.7 GB for a crafted config with huge layer and query counts).
void check_config_against_weights(const fs::path& path,
                                  const models::ModelConfig& c,
                                  const std::map<std::string, torch::Tensor>& state) {
  const auto w = naming_file(path, [&] { return infer_model_config(state, c.dilation); });
  const auto differ = [&](const char* field, const std::string& claimed, const std::string& shown) {
    if (claimed != shown)
      throw std::runtime_error(path.string() + ": model_config says " + field + " " + claimed +
                               ", but the weights have " + shown + " (a damaged or crafted checkpoint)");
  };
  differ("backbone", c.backbone, w.backbone);
  differ("masks", c.masks ? "true" : "false", w.masks ? "true" : "false");
  for (const auto& [field, claimed, shown] :
       {std::tuple<const char*, int64_t, int64_t>{"hidden_dim", c.hidden_dim, w.hidden_dim},
        {"num_queries", c.num_queries, w.num_queries},
        {"num_classes", c.num_classes, w.num_classes},
        {"enc_layers", c.enc_layers, w.enc_layers},
        {"dec_layers", c.dec_layers, w.dec_layers},
        {"dim_feedforward", c.dim_feedforward, w.dim_feedforward}})
    differ(field, std::to_string(claimed), std::to_string(shown));
}

}  // namespace

models::ModelConfig checkpoint_model_config(const LoadedCheckpoint& ck, bool dilation) {
  models::ModelConfig c;
  if (ck.model_config) {
    c = *ck.model_config;
  } else {  // upstream files carry their argparse Namespace: what the weights cannot show comes from it
    c = naming_file(ck.path, [&] { return infer_model_config(ck.model, dilation); });
    if (ck.args.nheads) c.nheads = *ck.args.nheads;
    if (ck.args.dilation) c.dilation = *ck.args.dilation;
  }
  check_config_against_weights(ck.path, c, ck.model);
  return c;
}

static void restore_optimizer_state(const PyValue& root, const fs::path& path, AdamW& optimizer, StepLR& scheduler);

namespace {
// A group's betas and eps, as torch.optim.AdamW.load_state_dict restores them: betas in [0, 1), eps
// in [0, 1]. detr-cpp's AdamW holds one set for every group (upstream's groups share theirs).
void restore_moment_options(const PyValue& group, size_t g, const fs::path& path, AdamW& optimizer) {
  const auto gname = "optimizer.param_groups[" + std::to_string(g) + "].";
  AdamWOptions o = optimizer.options();
  if (const auto* betas = group.find("betas")) {
    if (!(betas->is_tuple() || betas->is_list()) || betas->size() != 2)
      bad_field(path, gname + "betas", "is " + repr(*betas) + ", expected (beta1, beta2)");
    for (size_t i = 0; i < 2; ++i) {
      const auto name = gname + "betas[" + std::to_string(i) + "]";
      const double b = float_in(betas->item(i), path, name, 0, 1);
      if (b >= 1)
        bad_field(path, name, "is " + format_float(b) + ", expected below 1 (AdamW's moments would never decay)");
      (i == 0 ? o.beta1 : o.beta2) = b;
    }
  }
  if (const auto* eps = group.find("eps")) o.eps = float_in(*eps, path, gname + "eps", 0, 1);
  const auto& had = optimizer.options();
  if (g > 0 && (o.beta1 != had.beta1 || o.beta2 != had.beta2 || o.eps != had.eps))
    bad_field(path, gname + "betas", "differ from group 0's (this AdamW shares betas and eps across groups)");
  optimizer.set_moment_options(o.beta1, o.beta2, o.eps);
}
}  // namespace

std::string describe(const LoadedCheckpoint& ck) {
  const auto c = checkpoint_model_config(ck);
  std::ostringstream line;
  line << ck.model.size() << " weights; " << c.backbone << ", hidden " << c.hidden_dim << ", " << c.enc_layers << "+"
       << c.dec_layers << " layers, " << c.num_queries << " queries, num_classes " << c.num_classes
       << (c.masks ? ", mask head" : "") << (ck.model_config ? "" : " (seen in the weights)");
  if (ck.state) line << "; epoch " << ck.state->epoch;
  if (!ck.classes.empty()) line << "; " << ck.classes.size() << " classes";
  line << (ck.has_optimizer ? "; optimizer state: resumable" : "; no optimizer state");
  return line.str();
}

void restore_optimizer(const LoadedCheckpoint& ck, AdamW& optimizer, StepLR& scheduler) {
  if (!ck.root) throw std::runtime_error(ck.path.string() + ": optimizer: the checkpoint's contents were released");
  with_path(ck.path, [&] { restore_optimizer_state(*ck.root, ck.path, optimizer, scheduler); });
}

static void restore_optimizer_state(const PyValue& root, const fs::path& path, AdamW& optimizer, StepLR& scheduler) {
  auto fail = [&](const std::string& what) { throw std::runtime_error(path.string() + ": optimizer: " + what); };
  const auto& opt = root.at("optimizer");
  const auto& groups = opt.at("param_groups");
  if (groups.size() != optimizer.groups().size())
    fail(std::to_string(groups.size()) + " parameter groups, this model has " +
         std::to_string(optimizer.groups().size()));
  const auto params = optimizer.all_params();
  size_t offset = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto& saved = groups.item(g);
    auto& ours = optimizer.groups()[g];
    if (saved.at("params").size() != ours.params.size())
      fail("group " + std::to_string(g) + " has " + std::to_string(saved.at("params").size()) +
           " parameters, this model " + std::to_string(ours.params.size()) + " (another configuration?)");
    const auto gname = "optimizer.param_groups[" + std::to_string(g) + "].";
    // upstream: the checkpoint's lr wins over --lr (issue #301)
    ours.lr = float_in(saved.at("lr"), path, gname + "lr", 0, 1e6);
    if (const auto* il = saved.find("initial_lr")) ours.initial_lr = float_in(*il, path, gname + "initial_lr", 0, 1e6);
    ours.weight_decay = float_in(saved.at("weight_decay"), path, gname + "weight_decay", 0, 1e6);
    restore_moment_options(saved, g, path, optimizer);
    for (size_t k = 0; k < saved.at("params").size(); ++k) {
      const int64_t id = saved.at("params").item(k).as_int();
      const auto* st = opt.at("state").as_dict().find(PyValue::integer(id));
      if (!st) continue;
      auto& mine = optimizer.state()[offset + k];
      const auto& p = params[offset + k];
      auto load = [&](const char* key) {
        const auto& t = st->at(key).as_tensor();
        if (t.sizes() != p.sizes())
          fail("state of parameter " + std::to_string(id) + " ('" + ours.names[k] + "') has shape " +
               c10::str(t.sizes()) + ", the parameter " + c10::str(p.sizes()));
        return t.to(p.device(), p.scalar_type()).clone();
      };
      mine.exp_avg = load("exp_avg");
      mine.exp_avg_sq = load("exp_avg_sq");
      const auto where = "optimizer.state[" + std::to_string(id) + "].";
      if (!torch::isfinite(mine.exp_avg).all().item<bool>() || !torch::isfinite(mine.exp_avg_sq).all().item<bool>())
        bad_field(path, where + "exp_avg/exp_avg_sq", "holds NaN or infinite values");
      if ((mine.exp_avg_sq < 0).any().item<bool>())
        bad_field(path, where + "exp_avg_sq", "holds negative values (a running mean of squared gradients)");
      const auto& step = st->at("step");
      const auto sname = "optimizer.state[" + std::to_string(id) + "].step";
      if (step.is_tensor()) {
        const auto& t = step.as_tensor();
        if (t.numel() != 1) bad_field(path, sname, "has " + std::to_string(t.numel()) + " elements, expected 1");
        const double v = t.item<double>();
        if (!(v >= 0 && v <= double(kMaxSteps)) || v != std::floor(v))
          bad_field(path, sname, "is " + format_float(v) + ", expected a whole number in [0, 2^40]");
        mine.step = static_cast<int64_t>(v);
      } else {
        mine.step = int_in(step, path, sname, 0, kMaxSteps);
      }
    }
    offset += ours.params.size();
  }
  // As upstream's lr_scheduler.load_state_dict: the checkpoint's schedule wins over the flags.
  const auto& sched = root.at("lr_scheduler");
  scheduler.set_last_epoch(int_in(sched.at("last_epoch"), path, "lr_scheduler.last_epoch", -1, kMaxEpoch));
  if (const auto* st = sched.find("step_size"))
    scheduler.set_step_size(int_in(*st, path, "lr_scheduler.step_size", 1, kMaxEpoch));
  if (const auto* g = sched.find("gamma")) scheduler.set_gamma(float_in(*g, path, "lr_scheduler.gamma", 0, 1e6));
}

fs::path resolve_checkpoint_path(const fs::path& p) {
  if (fs::is_regular_file(p)) return p;
  if (!fs::is_directory(p)) throw std::runtime_error(p.string() + ": no such checkpoint file or directory");
  for (const auto& sub : {"output/model", "model", "output", "."})
    for (const auto& name : {"checkpoint.pth", "best.pth"})
      if (fs::is_regular_file(p / sub / name)) return p / sub / name;
  fs::path newest;
  fs::file_time_type newest_time{};
  for (const auto& e : fs::recursive_directory_iterator(p)) {
    if (e.is_regular_file() && e.path().extension() == ".pth" &&
        (newest.empty() || e.last_write_time() > newest_time)) {
      newest = e.path();
      newest_time = e.last_write_time();
    }
  }
  if (newest.empty())
    throw std::runtime_error(
        p.string() + ": no checkpoint found (looked for {output/model,model,output,.}/checkpoint.pth and any *.pth)");
  return newest;
}

}  // namespace detr
