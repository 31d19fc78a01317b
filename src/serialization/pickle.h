// Python values as torch.save stores them, and the pickle protocol that carries them (no Python).
//
// PyValue is a small dynamically typed value. Containers (list, tuple, dict, object) are shared on
// copy, like Python references: the unpickler relies on that (the memo and later SETITEMS/BUILD see
// the same object), and copying a PyValue is cheap. Accessors throw std::runtime_error naming what
// was expected and what was found.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace detr::serialization {

class PyValue;
using PyList = std::vector<PyValue>;
struct PyDict;
struct PyObject;

class PyValue {
 public:
  enum class Kind {
    None,
    Bool,
    Int,
    Float,
    Str,
    Bytes,
    List,
    Tuple,
    Dict,
    Tensor,   // torch.Tensor (nn.Parameter too); a view keeps sharing its storage
    Storage,  // a bare storage (1-D tensor of its dtype): persistent ids resolve to these
    Global,   // a class or function reference (pickle GLOBAL): module + name
    Object,   // an instance of a class we do not model (argparse.Namespace, ...): module, name, args, state
  };

  PyValue() = default;  // None
  PyValue(const PyValue&) = default;
  PyValue(PyValue&&) noexcept = default;
  PyValue& operator=(const PyValue&) = default;
  PyValue& operator=(PyValue&&) noexcept = default;
  ~PyValue();  // iterative: deeply nested values do not recurse on destruction
  static PyValue none() { return {}; }
  static PyValue boolean(bool v);
  static PyValue integer(int64_t v);
  static PyValue floating(double v);
  static PyValue str(std::string v);
  static PyValue bytes(std::string v);
  static PyValue list(PyList items = {});
  static PyValue tuple(PyList items = {});
  // type: "dict" or e.g. "collections.OrderedDict" (what the pickle constructed).
  static PyValue dict(std::vector<std::pair<PyValue, PyValue>> items = {}, std::string type = "dict");
  static PyValue tensor(torch::Tensor t);
  static PyValue storage(torch::Tensor flat);
  static PyValue global(std::string module, std::string name);
  static PyValue object(std::string module, std::string name, PyValue args, PyValue state);
  static PyValue object(std::string module, std::string name, PyValue args);

  Kind kind() const { return kind_; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_int() const { return kind_ == Kind::Int; }
  bool is_float() const { return kind_ == Kind::Float; }
  bool is_str() const { return kind_ == Kind::Str; }
  bool is_bytes() const { return kind_ == Kind::Bytes; }
  bool is_list() const { return kind_ == Kind::List; }
  bool is_tuple() const { return kind_ == Kind::Tuple; }
  bool is_dict() const { return kind_ == Kind::Dict; }
  bool is_tensor() const { return kind_ == Kind::Tensor; }
  bool is_storage() const { return kind_ == Kind::Storage; }
  bool is_global() const { return kind_ == Kind::Global; }
  bool is_object() const { return kind_ == Kind::Object; }

  bool as_bool() const;
  int64_t as_int() const;   // Int or Bool
  double as_float() const;  // Float, Int or Bool
  const std::string& as_str() const;
  const std::string& as_bytes() const;  // Bytes (or Str: its UTF-8)
  const torch::Tensor& as_tensor() const;
  const torch::Tensor& as_storage() const;
  const PyList& items() const;  // List or Tuple elements
  PyList& mutable_items() const;
  PyDict& as_dict() const;
  PyObject& as_object() const;  // Object or Global

  // Elements: List/Tuple by index, Dict by key (Str or Int keys).
  size_t size() const;  // List, Tuple, Dict
  const PyValue& item(size_t index) const;
  const PyValue& at(const std::string& key) const;
  const PyValue& at(int64_t key) const;
  const PyValue* find(const std::string& key) const;  // nullptr when absent (or not a dict)
  bool contains(const std::string& key) const { return find(key) != nullptr; }
  // Attributes: an Object's state (a dict, or the dict of a (dict, slots) tuple) or a Dict's
  // BUILD attributes (an OrderedDict's `_metadata`). `attr("backbone")` on argparse.Namespace.
  const PyValue& attr(const std::string& name) const;
  const PyValue* find_attr(const std::string& name) const;

  std::string kind_name() const;  // "int", "dict", "tensor", ...
  std::string type_name() const;  // Python's: "dict", "collections.OrderedDict", "argparse.Namespace"

 private:
  void release_children() noexcept;

  Kind kind_ = Kind::None;
  bool b_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::shared_ptr<const std::string> s_;  // shared: memo GET/DUP copy a reference, as Python does
  torch::Tensor t_;
  std::shared_ptr<PyList> list_;
  std::shared_ptr<PyDict> dict_;
  std::shared_ptr<PyObject> obj_;
};

// An insertion-ordered dict. Keys are usually Str or Int; None/Bool/Float/Str/Bytes/Int keys are
// hashed, others compared linearly.
struct PyDict {
  std::string type = "dict";
  std::vector<std::pair<PyValue, PyValue>> entries;
  PyValue attributes;  // None, or a Dict set by BUILD (OrderedDict's _metadata)

  void set(PyValue key, PyValue value);  // replaces an existing key in place
  const PyValue* find(const PyValue& key) const;
  const PyValue* find(const std::string& key) const;

 private:
  std::unordered_map<std::string, size_t> index_;
};

struct PyObject {
  std::string module, name;
  PyValue args;   // constructor/reduce arguments (a Tuple), None for a Global
  PyValue state;  // BUILD state (usually a Dict of attributes)
  PyValue items;  // List/Dict items appended by APPENDS/SETITEMS (dict or list subclasses)
  std::string qualified() const { return module.empty() ? name : module + "." + name; }
};

// Equality of values (tensors: same dtype, shape and bytes; containers element-wise).
bool equal(const PyValue& a, const PyValue& b);

// One-line Python-like repr for scalars and strings (floats shortest round-trip), a summary for
// containers, tensors as "tensor float32 [2, 3]".
// Strings show at most 200 bytes ("'abc...'... (N bytes)"), control characters escaped.
std::string repr(const PyValue& v);

// A dict key for display: a short printable str as it is, anything else as repr (escaped, truncated).
std::string display_key(const PyValue& key);

// ---- state dicts ---------------------------------------------------------------------------------

// name -> tensor from a plain state dict, an OrderedDict state dict, or a checkpoint dict holding
// one under "model" (or "state_dict"). Throws naming the first non-tensor entry.
std::map<std::string, torch::Tensor> to_state_dict(const PyValue& v);
PyValue from_state_dict(const std::map<std::string, torch::Tensor>& state);

// JSON bridge for plain data (None, bool, numbers, str, list/tuple, dicts with Str/Int keys);
// tensors and other objects throw in to_json.
PyValue from_json(const nlohmann::json& j);
nlohmann::json to_json(const PyValue& v);

// ---- pickle --------------------------------------------------------------------------------------

// Resolves a persistent id (torch: ('storage', storage_type, key, location, numel[, view])).
using PersistentLoad = std::function<PyValue(const PyValue& pid)>;

struct UnpickleResult {
  PyValue value;
  size_t end = 0;    // offset just past STOP
  int protocol = 0;  // from PROTO, 0 when absent
};

// Unpickles one pickle starting at data[offset]. Protocols 0-5 except out-of-band buffers and the
// extension registry. torch's rebuild functions (_rebuild_tensor_v2 etc.) become Tensors over the
// storages persistent_load returns; collections.OrderedDict becomes a Dict; other classes become
// Objects. Throws std::runtime_error("pickle: <problem> at offset N") on malformed input.
UnpickleResult unpickle(const char* data, size_t size, size_t offset, const PersistentLoad& persistent_load);

// Receives each tensor to write (contiguous, CPU) and returns its storage key.
using AddStorage = std::function<std::string(const torch::Tensor& contiguous)>;

// Pickles with protocol 2 as torch.save does, readable by torch.load(weights_only=True): dicts as
// plain dicts, tensors via torch._utils._rebuild_tensor_v2 with ('storage', torch.XStorage, key,
// 'cpu', numel) persistent ids. Non-contiguous tensors are written contiguous. Objects throw.
std::string pickle(const PyValue& value, const AddStorage& add_storage);

// Python's dtype name: "float32", "float16", "bfloat16", "int64", "bool", ...
std::string dtype_name(torch::Dtype dtype);

// Shortest Python-style repr of a float that reads back as the same float32 (single) or double.
std::string format_float(double v, bool single = false);

// torch.<Name>Storage class name <-> dtype ("FloatStorage" <-> kFloat).
std::string storage_class_name(torch::Dtype dtype);
torch::Dtype dtype_from_storage_class(const std::string& module, const std::string& name);

}  // namespace detr::serialization
