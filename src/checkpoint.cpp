#include "src/checkpoint.h"

#include <cmath>

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
    state.emplace_back(PyValue::integer(static_cast<int64_t>(i)),
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
    groups.push_back(PyValue::dict({{PyValue::str("lr"), PyValue::floating(g.lr)},
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
  return PyValue::dict({{PyValue::str("state"), PyValue::dict(state)}, {PyValue::str("param_groups"), PyValue::list(groups)}});
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
PyValue model_record(const torch::nn::Module& model, const models::ModelConfig& config, const CheckpointState& state,
                     const nlohmann::json& args, Items optimizer = {}) {
  Items model_items;
  ordered_state(model, "", model_items);
  serialization::PyList classes;
  for (const auto& c : state.classes)
    classes.push_back(PyValue::dict({{PyValue::str("id"), PyValue::integer(c.id)}, {PyValue::str("name"), PyValue::str(c.name)}}));
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

void save_checkpoint(const fs::path& path, const torch::nn::Module& model, const models::ModelConfig& config,
                     const AdamW& optimizer, const StepLR& scheduler, const CheckpointState& state,
                     const nlohmann::json& args) {
  auto root = model_record(model, config, state, args,
                           {{PyValue::str("optimizer"), optimizer_state(optimizer)},
                            {PyValue::str("lr_scheduler"), scheduler_state(optimizer, scheduler)}});
  if (state.loss_scale > 0)  // GradScaler.state_dict()'s keys
    root.as_dict().set(PyValue::str("scaler"),
                       PyValue::dict({{PyValue::str("scale"), PyValue::floating(state.loss_scale)},
                                      {PyValue::str("_growth_tracker"), PyValue::integer(state.scaler_growth_tracker)}}));
  serialization::torch_save(root, path);
}

void save_model(const fs::path& path, const torch::nn::Module& model, const models::ModelConfig& config,
                const CheckpointState& state, const nlohmann::json& args) {
  serialization::torch_save(model_record(model, config, state, args), path);
}

namespace {

// Resume state is validated (type and range) before anything uses it: a crafted or corrupted
// checkpoint is refused with one line naming the file and field, never trusted.
constexpr int64_t kMaxEpoch = 1'000'000;
constexpr int64_t kMaxSteps = int64_t{1} << 40;

[[noreturn]] void bad_field(const fs::path& path, const std::string& field, const std::string& what) {
  throw std::runtime_error(path.string() + ": field '" + field + "' " + what + " (not a usable resume state)");
}

int64_t int_in(const PyValue& v, const fs::path& path, const std::string& field, int64_t lo, int64_t hi) {
  if (!v.is_int() || v.is_bool()) bad_field(path, field, "is " + repr(v) + ", expected an integer");
  const int64_t x = v.as_int();
  if (x < lo || x > hi)
    bad_field(path, field, "is " + std::to_string(x) + ", outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

double float_in(const PyValue& v, const fs::path& path, const std::string& field, double lo, double hi) {
  if (!(v.is_float() || v.is_int()) || v.is_bool()) bad_field(path, field, "is " + repr(v) + ", expected a number");
  const double x = v.as_float();
  if (!(x >= lo && x <= hi)) bad_field(path, field, "is " + repr(v) + ", outside [" + format_float(lo) + ", " + format_float(hi) + "]");
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
  if (const auto* cl = root.find("classes"); cl && cl->is_list())
    for (size_t k = 0; k < cl->size(); ++k) {
      const auto& item = cl->item(k);
      const auto field = "classes[" + std::to_string(k) + "]";
      if (!item.is_dict() || !item.contains("id") || !item.contains("name") || !item.at("name").is_str())
        bad_field(path, field, "is " + repr(item) + ", expected {'id': int, 'name': str}");
      st.classes.push_back({int_in(item.at("id"), path, field + ".id", 0, kMaxSteps), item.at("name").as_str()});
    }
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

}  // namespace

LoadedCheckpoint load_checkpoint(const fs::path& path) {
  const auto root = serialization::torch_load(path);
  LoadedCheckpoint ck;
  ck.path = path;
  ck.model = naming_file(path, [&] { return serialization::to_state_dict(root); });
  if (!root.is_dict()) return ck;
  if (const auto* c = root.find("model_config")) {
    try {
      ck.model_config = models::model_config_from_json(serialization::to_json(*c));
    } catch (const std::exception& e) {
      throw std::runtime_error(path.string() + ": model_config: " + e.what());
    }
  }
  if (root.find("epoch")) ck.state = with_path(path, [&] { return read_state(root, path); });
  ck.has_optimizer = root.contains("optimizer") && root.contains("lr_scheduler");
  return ck;
}

static void restore_optimizer_state(const fs::path& path, AdamW& optimizer, StepLR& scheduler);

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
      if (b >= 1) bad_field(path, name, "is " + format_float(b) + ", expected below 1 (AdamW's moments would never decay)");
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

void restore_optimizer(const fs::path& path, AdamW& optimizer, StepLR& scheduler) {
  with_path(path, [&] { restore_optimizer_state(path, optimizer, scheduler); });
}

static void restore_optimizer_state(const fs::path& path, AdamW& optimizer, StepLR& scheduler) {
  const auto root = serialization::torch_load(path);
  auto fail = [&](const std::string& what) {
    throw std::runtime_error(path.string() + ": optimizer: " + what);
  };
  const auto& opt = root.at("optimizer");
  const auto& groups = opt.at("param_groups");
  if (groups.size() != optimizer.groups().size())
    fail(std::to_string(groups.size()) + " parameter groups, this model has " + std::to_string(optimizer.groups().size()));
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
    if (e.is_regular_file() && e.path().extension() == ".pth" && (newest.empty() || e.last_write_time() > newest_time)) {
      newest = e.path();
      newest_time = e.last_write_time();
    }
  }
  if (newest.empty())
    throw std::runtime_error(p.string() + ": no checkpoint found (looked for {output/model,model,output,.}/checkpoint.pth and any *.pth)");
  return newest;
}

}  // namespace detr
