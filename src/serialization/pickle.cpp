// PyValue, its helpers, and the storage-class <-> dtype table.
#include "src/serialization/pickle.h"

#include <algorithm>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>

namespace detr::serialization {

namespace {

constexpr int kMaxDepth = 1000;  // recursive walkers refuse deeper (or cyclic) structures

[[noreturn]] void type_error(const PyValue& v, const char* wanted) {
  throw std::runtime_error(std::string("expected ") + wanted + ", got " + v.type_name() + " (" + repr(v) + ")");
}

void check_depth(int depth) {
  if (depth > kMaxDepth)
    throw std::runtime_error("value nested deeper than " + std::to_string(kMaxDepth) + " levels (cyclic?)");
}

// Walks over values visit shared containers once per reference, so a few hundred bytes of pickle
// that share one list at each of 40 levels would take 2^40 steps: every walk has a budget.
// JSON conversion serves configurations (hundreds of values); comparison whole checkpoints.
constexpr size_t kMaxJsonNodes = size_t{1} << 16, kMaxCompareNodes = size_t{1} << 20;
void count_node(size_t& nodes, size_t limit) {
  if (++nodes > limit)
    throw std::runtime_error("value has more than " + std::to_string(limit) +
                             " elements to visit (containers shared many times over?)");
}

// A hashable spelling of a dict key, equal for keys Python considers equal (1 == True == 1.0).
bool hash_key(const PyValue& k, std::string& out) {
  switch (k.kind()) {
    case PyValue::Kind::None: out = "n"; return true;
    case PyValue::Kind::Bool:
    case PyValue::Kind::Int: out = "i" + std::to_string(k.as_int()); return true;
    case PyValue::Kind::Float: {
      const double d = k.as_float();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.2e18) {
        out = "i" + std::to_string(static_cast<int64_t>(d));
      } else {
        uint64_t bits;
        std::memcpy(&bits, &d, 8);
        out = "f" + std::to_string(bits);
      }
      return true;
    }
    case PyValue::Kind::Str: out = "s" + k.as_str(); return true;
    case PyValue::Kind::Bytes: out = "b" + k.as_bytes(); return true;
    default: return false;
  }
}

std::string shape_string(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

// Python-style quoting with control characters escaped; at most kShownChars bytes of a long string.
constexpr size_t kShownChars = 200;
std::string quote(const std::string& full, char q) {
  const bool cut = full.size() > kShownChars;
  const std::string_view s = cut ? std::string_view(full).substr(0, kShownChars) : std::string_view(full);
  std::string out(1, q);
  for (unsigned char c : s) {
    if (c == '\\' || c == static_cast<unsigned char>(q)) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + q + (cut ? "... (" + std::to_string(full.size()) + " bytes)" : "");
}

}  // namespace

std::string format_float(double v, bool single) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  int p = 1;
  for (; p <= 17; ++p) {
    std::snprintf(buf, sizeof buf, "%.*e", p - 1, v);
    const double back = std::strtod(buf, nullptr);
    if (single ? static_cast<float>(back) == static_cast<float>(v) : back == v) break;
  }
  const int exp = std::atoi(std::strchr(buf, 'e') + 1);
  if (exp < -4 || exp >= 16) return buf;  // Python's repr switches to exponent form here too
  std::snprintf(buf, sizeof buf, "%.*f", std::max(p - 1 - exp, 1), v);
  return buf;
}

std::string dtype_name(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kFloat32: return "float32";
    case torch::kFloat64: return "float64";
    case torch::kFloat16: return "float16";
    case torch::kBFloat16: return "bfloat16";
    case torch::kInt64: return "int64";
    case torch::kInt32: return "int32";
    case torch::kInt16: return "int16";
    case torch::kInt8: return "int8";
    case torch::kUInt8: return "uint8";
    case torch::kBool: return "bool";
    case torch::kComplexFloat: return "complex64";
    case torch::kComplexDouble: return "complex128";
    default: return c10::toString(dtype);
  }
}

// ---- construction --------------------------------------------------------------------------------

PyValue PyValue::boolean(bool v) {
  PyValue r;
  r.kind_ = Kind::Bool;
  r.b_ = v;
  return r;
}
PyValue PyValue::integer(int64_t v) {
  PyValue r;
  r.kind_ = Kind::Int;
  r.i_ = v;
  return r;
}
PyValue PyValue::floating(double v) {
  PyValue r;
  r.kind_ = Kind::Float;
  r.f_ = v;
  return r;
}
PyValue PyValue::str(std::string v) {
  PyValue r;
  r.kind_ = Kind::Str;
  r.s_ = std::make_shared<const std::string>(std::move(v));
  return r;
}
PyValue PyValue::bytes(std::string v) {
  PyValue r;
  r.kind_ = Kind::Bytes;
  r.s_ = std::make_shared<const std::string>(std::move(v));
  return r;
}
PyValue PyValue::list(PyList items) {
  PyValue r;
  r.kind_ = Kind::List;
  r.list_ = std::make_shared<PyList>(std::move(items));
  return r;
}
PyValue PyValue::tuple(PyList items) {
  PyValue r = list(std::move(items));
  r.kind_ = Kind::Tuple;
  return r;
}
PyValue PyValue::dict(std::vector<std::pair<PyValue, PyValue>> items, std::string type) {
  PyValue r;
  r.kind_ = Kind::Dict;
  r.dict_ = std::make_shared<PyDict>();
  r.dict_->type = std::move(type);
  for (auto& [k, v] : items) r.dict_->set(std::move(k), std::move(v));
  return r;
}
PyValue PyValue::tensor(torch::Tensor t) {
  PyValue r;
  r.kind_ = Kind::Tensor;
  r.t_ = std::move(t);
  return r;
}
PyValue PyValue::storage(torch::Tensor flat) {
  PyValue r;
  r.kind_ = Kind::Storage;
  r.t_ = std::move(flat);
  return r;
}
PyValue PyValue::global(std::string module, std::string name) {
  PyValue r;
  r.kind_ = Kind::Global;
  r.obj_ = std::make_shared<PyObject>();
  r.obj_->module = std::move(module);
  r.obj_->name = std::move(name);
  return r;
}
PyValue PyValue::object(std::string module, std::string name, PyValue args, PyValue state) {
  PyValue r = global(std::move(module), std::move(name));
  r.kind_ = Kind::Object;
  r.obj_->args = std::move(args);
  r.obj_->state = std::move(state);
  return r;
}

PyValue PyValue::object(std::string module, std::string name, PyValue args) {
  return object(std::move(module), std::move(name), std::move(args), PyValue());
}

// ---- destruction ---------------------------------------------------------------------------------

namespace {
thread_local std::vector<PyValue>* g_graveyard = nullptr;  // set while a teardown is running
}  // namespace

PyValue::~PyValue() {
  if (list_ || dict_ || obj_) release_children();
}

// Moves the children of containers about to die (sole owner) into a worklist, so that destroying
// a value nested a million levels deep takes a loop, not a million stack frames.
void PyValue::release_children() noexcept {
  auto harvest = [this](std::vector<PyValue>& out) {
    if (list_ && list_.use_count() == 1) {
      for (auto& e : *list_) out.push_back(std::move(e));
      list_->clear();
    }
    if (dict_ && dict_.use_count() == 1) {
      for (auto& [k, e] : dict_->entries) {
        out.push_back(std::move(k));
        out.push_back(std::move(e));
      }
      dict_->entries.clear();
      out.push_back(std::move(dict_->attributes));
    }
    if (obj_ && obj_.use_count() == 1) {
      out.push_back(std::move(obj_->args));
      out.push_back(std::move(obj_->state));
      out.push_back(std::move(obj_->items));
    }
  };
  if (g_graveyard) {
    harvest(*g_graveyard);
    return;
  }
  std::vector<PyValue> graveyard;
  g_graveyard = &graveyard;
  harvest(graveyard);
  while (!graveyard.empty()) {
    PyValue v = std::move(graveyard.back());
    graveyard.pop_back();
  }  // each v's destructor harvests into the graveyard
  g_graveyard = nullptr;
}

// ---- access --------------------------------------------------------------------------------------

bool PyValue::as_bool() const {
  if (kind_ != Kind::Bool) type_error(*this, "bool");
  return b_;
}
int64_t PyValue::as_int() const {
  if (kind_ == Kind::Bool) return b_ ? 1 : 0;
  if (kind_ != Kind::Int) type_error(*this, "int");
  return i_;
}
double PyValue::as_float() const {
  if (kind_ == Kind::Float) return f_;
  if (kind_ == Kind::Int || kind_ == Kind::Bool) return static_cast<double>(as_int());
  type_error(*this, "float");
}
const std::string& PyValue::as_str() const {
  if (kind_ != Kind::Str) type_error(*this, "str");
  return *s_;
}
const std::string& PyValue::as_bytes() const {
  if (kind_ != Kind::Bytes && kind_ != Kind::Str) type_error(*this, "bytes");
  return *s_;
}
const torch::Tensor& PyValue::as_tensor() const {
  if (kind_ != Kind::Tensor) type_error(*this, "tensor");
  return t_;
}
const torch::Tensor& PyValue::as_storage() const {
  if (kind_ != Kind::Storage) type_error(*this, "storage");
  return t_;
}
const PyList& PyValue::items() const { return mutable_items(); }
PyList& PyValue::mutable_items() const {
  if (kind_ != Kind::List && kind_ != Kind::Tuple) type_error(*this, "list or tuple");
  return *list_;
}
PyDict& PyValue::as_dict() const {
  if (kind_ != Kind::Dict) type_error(*this, "dict");
  return *dict_;
}
PyObject& PyValue::as_object() const {
  if (kind_ != Kind::Object && kind_ != Kind::Global) type_error(*this, "object");
  return *obj_;
}

size_t PyValue::size() const {
  if (kind_ == Kind::Dict) return dict_->entries.size();
  return items().size();
}
const PyValue& PyValue::item(size_t index) const {
  const auto& v = items();
  if (index >= v.size())
    throw std::runtime_error("index " + std::to_string(index) + " out of range for " + type_name() + " of size " +
                             std::to_string(v.size()));
  return v[index];
}
const PyValue* PyValue::find(const std::string& key) const { return kind_ == Kind::Dict ? dict_->find(key) : nullptr; }
const PyValue& PyValue::at(const std::string& key) const {
  if (kind_ == Kind::Object) return attr(key);
  if (const PyValue* v = as_dict().find(key)) return *v;
  throw std::runtime_error("key '" + key + "' not found in " + type_name() + " of " + std::to_string(size()) +
                           " entries");
}
const PyValue& PyValue::at(int64_t key) const {
  if (const PyValue* v = as_dict().find(integer(key))) return *v;
  throw std::runtime_error("key " + std::to_string(key) + " not found in " + type_name() + " of " +
                           std::to_string(size()) + " entries");
}
const PyValue* PyValue::find_attr(const std::string& name) const {
  const PyValue* state = nullptr;
  if (kind_ == Kind::Object) state = &obj_->state;
  if (kind_ == Kind::Dict) state = &dict_->attributes;
  if (!state) return nullptr;
  if (state->is_tuple() && !state->items().empty()) state = &state->items()[0];  // (dict, slots)
  return state->find(name);
}
const PyValue& PyValue::attr(const std::string& name) const {
  if (kind_ != Kind::Object && kind_ != Kind::Dict) type_error(*this, "object with attributes");
  if (const PyValue* v = find_attr(name)) return *v;
  throw std::runtime_error(type_name() + " has no attribute '" + name + "'");
}

std::string PyValue::kind_name() const {
  switch (kind_) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::List: return "list";
    case Kind::Tuple: return "tuple";
    case Kind::Dict: return "dict";
    case Kind::Tensor: return "tensor";
    case Kind::Storage: return "storage";
    case Kind::Global: return "global";
    case Kind::Object: return "object";
  }
  return "?";
}
std::string PyValue::type_name() const {
  switch (kind_) {
    case Kind::Dict: return dict_->type;
    case Kind::Tensor: return "torch.Tensor";
    case Kind::Storage: return "torch." + storage_class_name(t_.scalar_type());
    case Kind::Global: return "class " + obj_->qualified();
    case Kind::Object: return obj_->qualified();
    default: return kind_name();
  }
}

// ---- dict ----------------------------------------------------------------------------------------

void PyDict::set(PyValue key, PyValue value) {
  std::string h;
  if (hash_key(key, h)) {
    auto [it, inserted] = index_.emplace(h, entries.size());
    if (!inserted) {
      entries[it->second].second = std::move(value);
      return;
    }
  } else {
    for (auto& e : entries)
      if (equal(e.first, key)) {
        e.second = std::move(value);
        return;
      }
  }
  entries.emplace_back(std::move(key), std::move(value));
}
const PyValue* PyDict::find(const PyValue& key) const {
  std::string h;
  if (hash_key(key, h)) {
    auto it = index_.find(h);
    return it == index_.end() ? nullptr : &entries[it->second].second;
  }
  for (const auto& e : entries)
    if (equal(e.first, key)) return &e.second;
  return nullptr;
}
const PyValue* PyDict::find(const std::string& key) const {
  auto it = index_.find("s" + key);
  return it == index_.end() ? nullptr : &entries[it->second].second;
}

// ---- equality, repr ------------------------------------------------------------------------------

namespace {

bool tensors_equal(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  if (a.numel() == 0) return true;
  auto ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * ca.element_size()) == 0;
}

bool equal_at(const PyValue& a, const PyValue& b, int depth, size_t& nodes) {
  check_depth(depth);
  count_node(nodes, kMaxCompareNodes);
  if (a.kind() != b.kind()) return false;
  using K = PyValue::Kind;
  switch (a.kind()) {
    case K::None: return true;
    case K::Bool: return a.as_bool() == b.as_bool();
    case K::Int: return a.as_int() == b.as_int();
    case K::Float: {
      const double x = a.as_float(), y = b.as_float();
      return x == y || (std::isnan(x) && std::isnan(y));
    }
    case K::Str:
    case K::Bytes: return a.as_bytes() == b.as_bytes();
    case K::List:
    case K::Tuple: {
      const auto &x = a.items(), &y = b.items();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (!equal_at(x[i], y[i], depth + 1, nodes)) return false;
      return true;
    }
    case K::Dict: {
      const auto &x = a.as_dict().entries, &y = b.as_dict().entries;
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (!equal_at(x[i].first, y[i].first, depth + 1, nodes) ||
            !equal_at(x[i].second, y[i].second, depth + 1, nodes))
          return false;
      return true;
    }
    case K::Tensor: return tensors_equal(a.as_tensor(), b.as_tensor());
    case K::Storage: return tensors_equal(a.as_storage(), b.as_storage());
    case K::Global:
    case K::Object: {
      const auto &x = a.as_object(), &y = b.as_object();
      return x.module == y.module && x.name == y.name && equal_at(x.args, y.args, depth + 1, nodes) &&
             equal_at(x.state, y.state, depth + 1, nodes) && equal_at(x.items, y.items, depth + 1, nodes);
    }
  }
  return false;
}

}  // namespace

bool equal(const PyValue& a, const PyValue& b) {
  size_t nodes = 0;
  return equal_at(a, b, 0, nodes);
}

std::string display_key(const PyValue& k) {
  if (!k.is_str()) return repr(k);
  const auto& s = k.as_str();
  const bool plain = s.size() <= kShownChars && std::all_of(s.begin(), s.end(), [](unsigned char c) {
                       return c >= 0x20 && c != 0x7f && c != '\\' && c != '\'';
                     });
  return plain ? s : repr(k);
}

std::string repr(const PyValue& v) {
  using K = PyValue::Kind;
  switch (v.kind()) {
    case K::None: return "None";
    case K::Bool: return v.as_bool() ? "True" : "False";
    case K::Int: return std::to_string(v.as_int());
    case K::Float: return format_float(v.as_float());
    case K::Str: return quote(v.as_str(), '\'');
    case K::Bytes: return "b" + quote(v.as_bytes(), '\'');
    case K::List:
    case K::Tuple:
    case K::Dict: return v.type_name() + " of " + std::to_string(v.size());
    case K::Tensor: {
      const auto& t = v.as_tensor();
      return "tensor " + dtype_name(t.scalar_type()) + " " + shape_string(t);
    }
    case K::Storage: return v.type_name() + " of " + std::to_string(v.as_storage().numel());
    case K::Global: return "<" + v.type_name() + ">";
    case K::Object: return "<" + v.type_name() + " object>";
  }
  return "?";
}

// ---- state dicts ---------------------------------------------------------------------------------

std::map<std::string, torch::Tensor> to_state_dict(const PyValue& v) {
  if (v.is_object())
    throw std::runtime_error("expected a state dict, got a pickled " + v.type_name() +
                             " object (save its state_dict() instead)");
  if (!v.is_dict()) throw std::runtime_error("expected a state dict, got " + v.type_name());
  const PyValue* sd = &v;
  for (int depth = 0; depth < 2; ++depth)  // checkpoint["model"], or a wrapper of one
    for (const char* key : {"model", "state_dict"})
      if (const PyValue* inner = sd->find(key); inner && inner->is_dict()) {
        sd = inner;
        break;
      }
  std::map<std::string, torch::Tensor> out;
  for (const auto& [k, val] : sd->as_dict().entries) {
    if (!k.is_str()) throw std::runtime_error("state dict key " + repr(k) + " is not a string");
    if (!val.is_tensor())
      throw std::runtime_error("state dict entry " + repr(k) + " is " + repr(val) + ", not a tensor");
    out.emplace(k.as_str(), val.as_tensor());
  }
  return out;
}

PyValue from_state_dict(const std::map<std::string, torch::Tensor>& state) {
  PyValue d = PyValue::dict();
  for (const auto& [k, t] : state) d.as_dict().set(PyValue::str(k), PyValue::tensor(t));
  return d;
}

// ---- JSON ----------------------------------------------------------------------------------------

PyValue from_json(const nlohmann::json& j) {
  using T = nlohmann::json::value_t;
  switch (j.type()) {
    case T::null: return PyValue::none();
    case T::boolean: return PyValue::boolean(j.get<bool>());
    case T::number_integer: return PyValue::integer(j.get<int64_t>());
    case T::number_unsigned: {
      const auto u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return PyValue::floating(static_cast<double>(u));
      return PyValue::integer(static_cast<int64_t>(u));
    }
    case T::number_float: return PyValue::floating(j.get<double>());
    case T::string: return PyValue::str(j.get<std::string>());
    case T::array: {
      PyList items;
      for (const auto& e : j) items.push_back(from_json(e));
      return PyValue::list(std::move(items));
    }
    case T::object: {
      PyValue d = PyValue::dict();
      for (const auto& [k, e] : j.items()) d.as_dict().set(PyValue::str(k), from_json(e));
      return d;
    }
    default: throw std::runtime_error("cannot convert JSON value " + j.dump() + " to a Python value");
  }
}

namespace {
nlohmann::json to_json_at(const PyValue& v, int depth, size_t& nodes) {
  check_depth(depth);
  count_node(nodes, kMaxJsonNodes);
  using K = PyValue::Kind;
  switch (v.kind()) {
    case K::None: return nullptr;
    case K::Bool: return v.as_bool();
    case K::Int: return v.as_int();
    case K::Float: return v.as_float();
    case K::Str: return v.as_str();
    case K::List:
    case K::Tuple: {
      auto a = nlohmann::json::array();
      for (const auto& e : v.items()) a.push_back(to_json_at(e, depth + 1, nodes));
      return a;
    }
    case K::Dict: {
      auto o = nlohmann::json::object();
      for (const auto& [k, e] : v.as_dict().entries) {
        if (!k.is_str() && !k.is_int()) throw std::runtime_error("cannot convert dict key " + repr(k) + " to JSON");
        o[k.is_str() ? k.as_str() : std::to_string(k.as_int())] = to_json_at(e, depth + 1, nodes);
      }
      return o;
    }
    default: throw std::runtime_error("cannot convert " + repr(v) + " to JSON");
  }
}
}  // namespace

nlohmann::json to_json(const PyValue& v) {
  size_t nodes = 0;
  return to_json_at(v, 0, nodes);
}

// ---- storage classes -----------------------------------------------------------------------------

namespace {
struct StorageClass {
  const char* name;
  torch::Dtype dtype;
};
constexpr StorageClass kStorageClasses[] = {
    {"FloatStorage", torch::kFloat32},
    {"DoubleStorage", torch::kFloat64},
    {"HalfStorage", torch::kFloat16},
    {"BFloat16Storage", torch::kBFloat16},
    {"LongStorage", torch::kInt64},
    {"IntStorage", torch::kInt32},
    {"ShortStorage", torch::kInt16},
    {"CharStorage", torch::kInt8},
    {"ByteStorage", torch::kUInt8},
    {"BoolStorage", torch::kBool},
    {"ComplexFloatStorage", torch::kComplexFloat},
    {"ComplexDoubleStorage", torch::kComplexDouble},
};
// dtype globals (torch.float32, ...) that newer files may use in place of a storage class
const std::map<std::string, torch::Dtype>& dtype_names() {
  static const std::map<std::string, torch::Dtype> m = {{"float32", torch::kFloat32},
                                                        {"float", torch::kFloat32},
                                                        {"float64", torch::kFloat64},
                                                        {"double", torch::kFloat64},
                                                        {"float16", torch::kFloat16},
                                                        {"half", torch::kFloat16},
                                                        {"bfloat16", torch::kBFloat16},
                                                        {"int64", torch::kInt64},
                                                        {"long", torch::kInt64},
                                                        {"int32", torch::kInt32},
                                                        {"int", torch::kInt32},
                                                        {"int16", torch::kInt16},
                                                        {"short", torch::kInt16},
                                                        {"int8", torch::kInt8},
                                                        {"uint8", torch::kUInt8},
                                                        {"bool", torch::kBool},
                                                        {"complex64", torch::kComplexFloat},
                                                        {"complex128", torch::kComplexDouble},
                                                        {"cfloat", torch::kComplexFloat},
                                                        {"cdouble", torch::kComplexDouble}};
  return m;
}
}  // namespace

std::string storage_class_name(torch::Dtype dtype) {
  for (const auto& c : kStorageClasses)
    if (c.dtype == dtype) return c.name;
  throw std::runtime_error(std::string("no torch storage class for dtype ") + c10::toString(dtype));
}

torch::Dtype dtype_from_storage_class(const std::string& module, const std::string& name) {
  if (module == "torch" || module == "torch.cuda") {
    for (const auto& c : kStorageClasses)
      if (name == c.name) return c.dtype;
    if (name == "UntypedStorage" || name == "_UntypedStorage") return torch::kUInt8;
    if (auto it = dtype_names().find(name); it != dtype_names().end()) return it->second;
  }
  throw std::runtime_error("unsupported storage type " + module + "." + name);
}

}  // namespace detr::serialization
