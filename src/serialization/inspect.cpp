#include "src/serialization/inspect.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <string>

namespace detr::serialization {

namespace {

bool is_scalar(const PyValue& v) {
  using K = PyValue::Kind;
  switch (v.kind()) {
    case K::None:
    case K::Bool:
    case K::Int:
    case K::Float:
    case K::Str:
    case K::Bytes:
    case K::Global: return true;
    default: return false;
  }
}

std::string element_string(const torch::Tensor& t) {  // t: one element
  if (t.scalar_type() == torch::kBool) return t.item<bool>() ? "True" : "False";
  if (t.is_complex()) return c10::str(t.item<c10::complex<double>>());
  if (t.is_floating_point()) return format_float(t.item<double>(), t.scalar_type() != torch::kFloat64);
  return std::to_string(t.item<int64_t>());
}

class Printer {
 public:
  Printer(std::ostream& os, const InspectOptions& o) : os_(os), o_(o) {}

  void root(const PyValue& v) {
    collect(v, "", 0);
    if (is_container(v)) {
      os_ << header(v) << "\n";
      children(v, 1);
    } else {
      os_ << inline_value(v, "") << "\n";
      if (v.is_object()) children(v, 1);
    }
    summary();
  }

 private:
  static bool is_container(const PyValue& v) { return v.is_dict() || v.is_list() || v.is_tuple(); }

  std::string header(const PyValue& v) const {
    std::string s = v.type_name() + ", " + std::to_string(v.size()) + (v.size() == 1 ? " item" : " items");
    if (v.is_dict() && v.as_dict().attributes.is_dict()) {
      const PyValue& a = v.as_dict().attributes;
      s += " (attributes:";
      for (const auto& [k, e] : a.as_dict().entries)
        s += " " + display_key(k) + (is_container(e) ? " [" + std::to_string(e.size()) + "]" : "");
      s += ")";
    }
    return s;
  }

  // A short scalar list/tuple prints inline: [0, 1] or (0.9, 0.999).
  static bool short_sequence(const PyValue& v) {
    if (!(v.is_list() || v.is_tuple()) || v.size() > 8) return false;
    for (const auto& e : v.items())
      if (!is_scalar(e)) return false;
    return true;
  }

  std::string inline_value(const PyValue& v, const std::string& path) {
    if (v.is_tensor()) return tensor(v.as_tensor(), path);
    if (short_sequence(v)) {
      std::string s = v.is_list() ? "[" : "(";
      for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + repr(v.item(i));
      if (v.is_tuple() && v.size() == 1) s += ",";
      return s + (v.is_list() ? "]" : ")");
    }
    if (is_container(v)) return header(v);
    if (v.is_object()) {
      const auto& o = v.as_object();
      std::string s = o.qualified() + " object";
      if (o.args.is_tuple() && o.args.size() > 0)
        s += ", args " + (short_sequence(o.args) ? inline_value(o.args, "") : repr(o.args));
      return s;
    }
    if (v.is_storage()) return repr(v);
    return repr(v);
  }

  std::string tensor(const torch::Tensor& t, const std::string& path) {
    std::ostringstream s;
    s << dtype_name(t.scalar_type()) << " " << t.sizes();
    if (!t.is_contiguous()) s << " stride " << t.strides();
    if (t.storage_offset() != 0) s << " storage offset " << t.storage_offset();
    if (auto it = storages_.find(t.storage().unsafeGetStorageImpl()); it != storages_.end() && it->second != path)
      s << " (shares storage with " << it->second << ")";
    if (t.numel() > 0 && t.numel() <= static_cast<int64_t>(o_.max_values)) {
      const auto flat = t.reshape({-1});
      s << " = ";
      if (t.dim() == 0) {
        s << element_string(flat[0]);
      } else {
        s << "[";
        for (int64_t i = 0; i < flat.numel(); ++i) s << (i ? ", " : "") << element_string(flat[i]);
        s << "]";
      }
    }
    return s.str();
  }

  // Pre-pass over everything (listed or not): tensor statistics and each storage's first user.
  void collect(const PyValue& v, const std::string& path, size_t depth) {
    if (depth > 1000) return;
    if (const void* c = container_of(v); c && !collected_.insert(c).second) return;  // shared: once
    auto join = [&](const std::string& k) { return path.empty() ? k : path + "." + k; };
    if (v.is_tensor()) {
      const auto& t = v.as_tensor();
      const bool first = storages_.emplace(t.storage().unsafeGetStorageImpl(), path).second;
      tensors_++;
      elements_ += t.numel();
      if (first) bytes_ += t.storage().nbytes();
      per_dtype_[dtype_name(t.scalar_type())]++;
    } else if (v.is_dict()) {
      for (const auto& [k, e] : v.as_dict().entries) collect(e, join(display_key(k)), depth + 1);
    } else if (v.is_list() || v.is_tuple()) {
      for (size_t i = 0; i < v.size(); ++i) collect(v.item(i), join("[" + std::to_string(i) + "]"), depth + 1);
    } else if (v.is_object()) {
      const auto& o = v.as_object();
      const PyValue* state = &o.state;
      if (state->is_tuple() && state->size() > 0) state = &state->item(0);
      if (state->is_dict())
        for (const auto& [k, e] : state->as_dict().entries) collect(e, join(display_key(k)), depth + 1);
      else
        collect(*state, join("<state>"), depth + 1);
      collect(o.args, join("<args>"), depth + 1);
      collect(o.items, join("<items>"), depth + 1);
    }
  }

  void line(size_t depth, const std::string& key, const PyValue& v, const std::string& path) {
    if (const void* c = container_of(v); c && !short_sequence(v)) {  // a shared container is listed once
      auto [it, first] = shown_.emplace(c, path);
      if (!first) {
        os_ << std::string(2 * depth, ' ') << key << ": (the same " << v.type_name() << " as " << it->second << ")\n";
        return;
      }
    }
    os_ << std::string(2 * depth, ' ') << key << ": " << inline_value(v, path) << "\n";
    if (short_sequence(v)) return;
    if (is_container(v) || v.is_object()) {
      if (depth >= std::min<size_t>(o_.max_depth, 1000)) {
        if (is_container(v) && v.size() > 0)
          os_ << std::string(2 * depth + 2, ' ') << "... (deeper levels not shown)\n";
        return;
      }
      children(v, depth + 1, path);
    }
  }

  void children(const PyValue& v, size_t depth, const std::string& path = "") {
    auto join = [&](const std::string& k) { return path.empty() ? k : path + "." + k; };
    size_t shown = 0, total = 0;
    auto visit = [&](const std::string& key, const PyValue& e) {
      ++total;
      if (o_.max_items && shown >= o_.max_items) return;
      ++shown;
      line(depth, key, e, join(key));
    };
    if (v.is_dict()) {
      for (const auto& [k, e] : v.as_dict().entries) visit(display_key(k), e);
    } else if (v.is_list() || v.is_tuple()) {
      for (size_t i = 0; i < v.size(); ++i) visit("[" + std::to_string(i) + "]", v.item(i));
    } else if (v.is_object()) {
      const auto& o = v.as_object();
      const PyValue* state = &o.state;
      if (state->is_tuple() && state->size() > 0) state = &state->item(0);  // (dict, slots)
      if (state->is_dict()) {
        for (const auto& [k, e] : state->as_dict().entries) visit(display_key(k), e);
      } else if (!state->is_none()) {
        visit("<state>", *state);
      }
      if (o.args.is_tuple() && o.args.size() > 0 && !short_sequence(o.args)) visit("<args>", o.args);
      if (!o.items.is_none()) visit("<items>", o.items);
    }
    if (total > shown) os_ << std::string(2 * depth, ' ') << "... " << total - shown << " more (of " << total << ")\n";
  }

  void summary() {
    os_ << "-- " << tensors_ << (tensors_ == 1 ? " tensor" : " tensors") << ", " << elements_ << " elements, " << bytes_
        << " bytes of storage";
    for (const auto& [dtype, n] : per_dtype_)
      os_ << (dtype == per_dtype_.begin()->first ? ": " : ", ") << dtype << " x" << n;
    os_ << "\n";
  }

  std::ostream& os_;
  const InspectOptions& o_;
  static const void* container_of(const PyValue& v) {
    if (v.is_list() || v.is_tuple()) return &v.items();
    if (v.is_dict()) return &v.as_dict();
    if (v.is_object()) return &v.as_object();
    return nullptr;
  }

  std::map<const void*, std::string> storages_;  // storage -> first tensor's path
  std::set<const void*> collected_;              // containers the pre-pass has walked
  std::map<const void*, std::string> shown_;     // container -> the path it was listed under
  std::map<std::string, size_t> per_dtype_;
  size_t tensors_ = 0;
  int64_t elements_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace

void print_structure(std::ostream& os, const PyValue& value, const InspectOptions& options) {
  Printer(os, options).root(value);
}

void print_load_info(std::ostream& os, const LoadInfo& info) {
  os << "torch.save " << info.format << " format";
  if (!info.archive_name.empty()) os << " (archive '" << info.archive_name << "')";
  os << ", pickle protocol " << info.protocol << ", " << info.storages << " storages, " << info.bytes << " bytes\n";
}

}  // namespace detr::serialization
