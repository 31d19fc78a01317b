// Protocol-2 pickler for plain data and tensors, in the shape torch.save gives them.
#include <cstring>
#include <stdexcept>
#include <unordered_map>

#include "src/serialization/pickle.h"

namespace detr::serialization {

namespace {

constexpr int kMaxDepth = 1000;
constexpr size_t kBatch = 1000;  // items per APPENDS/SETITEMS, as Python's pickler

std::vector<int64_t> dense_strides(c10::IntArrayRef sizes) {
  std::vector<int64_t> strides(sizes.size(), 1);
  for (int64_t d = static_cast<int64_t>(sizes.size()) - 2; d >= 0; --d)
    strides[d] = strides[d + 1] * std::max<int64_t>(sizes[d + 1], 1);
  return strides;
}

class Pickler {
 public:
  explicit Pickler(const AddStorage& add_storage) : add_storage_(add_storage) {}

  std::string run(const PyValue& v) {
    out_ += "\x80\x02";
    write(v, 0);
    out_ += '.';
    return std::move(out_);
  }

 private:
  void op(char c) { out_ += c; }
  template <typename T>
  void le(T v) {
    char buf[sizeof v];
    std::memcpy(buf, &v, sizeof v);
    out_.append(buf, sizeof v);
  }
  void global(const std::string& module, const std::string& name) { out_ += "c" + module + "\n" + name + "\n"; }

  void write_int(int64_t v) {
    if (v >= 0 && v < 256) {
      op('K');
      le<uint8_t>(static_cast<uint8_t>(v));
    } else if (v >= 0 && v < 65536) {
      op('M');
      le<uint16_t>(static_cast<uint16_t>(v));
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      op('J');
      le<int32_t>(static_cast<int32_t>(v));
    } else {  // LONG1: shortest little-endian two's complement
      uint8_t b[8];
      std::memcpy(b, &v, 8);
      int n = 8;
      while (n > 1 && ((b[n - 1] == 0x00 && !(b[n - 2] & 0x80)) || (b[n - 1] == 0xff && (b[n - 2] & 0x80)))) --n;
      op('\x8a');
      le<uint8_t>(static_cast<uint8_t>(n));
      out_.append(reinterpret_cast<const char*>(b), n);
    }
  }
  void write_float(double v) {  // BINFLOAT: big-endian
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    op('G');
    for (int i = 7; i >= 0; --i) out_ += static_cast<char>((bits >> (8 * i)) & 0xff);
  }
  void write_str(const std::string& s) {
    if (s.size() > UINT32_MAX) throw std::runtime_error("string too long to pickle");
    op('X');
    le<uint32_t>(static_cast<uint32_t>(s.size()));
    out_ += s;
  }
  // As protocol 2 does (and weights_only allows): _codecs.encode(<latin-1 text>, 'latin1').
  void write_bytes(const std::string& s) {
    std::string text;
    for (unsigned char c : s) {
      if (c < 0x80) {
        text += static_cast<char>(c);
      } else {
        text += static_cast<char>(0xc0 | (c >> 6));
        text += static_cast<char>(0x80 | (c & 0x3f));
      }
    }
    global("_codecs", "encode");
    write_str(text);
    write_str("latin1");
    op('\x86');
    op('R');
  }
  void write_int_tuple(c10::IntArrayRef v) {
    PyList items;
    for (int64_t x : v) items.push_back(PyValue::integer(x));
    write(PyValue::tuple(std::move(items)), 0);
  }

  // ('storage', torch.XStorage, key, 'cpu', numel) as a persistent id.
  void write_storage(const torch::Tensor& contiguous) {
    const std::string cls = storage_class_name(contiguous.scalar_type());  // throws for unsupported dtypes
    const std::string key = add_storage_(contiguous);
    op('(');
    write_str("storage");
    global("torch", cls);
    write_str(key);
    write_str("cpu");
    write_int(contiguous.numel());
    op('t');
    op('Q');
  }

  void write_tensor(const torch::Tensor& t) {
    if (!t.defined()) throw std::runtime_error("cannot pickle an undefined tensor");
    if (t.layout() != torch::kStrided || t.is_quantized())
      throw std::runtime_error("cannot pickle a sparse or quantized tensor");
    auto it = written_.find(t.unsafeGetTensorImpl());
    torch::Tensor c;
    if (it == written_.end()) {
      c = t.detach().to(torch::kCPU).contiguous();
      storage_class_name(c.scalar_type());
      keep_.push_back(t);
    }
    global("torch._utils", "_rebuild_tensor_v2");
    op('(');
    if (it == written_.end()) {
      const size_t mark = out_.size();
      write_storage(c);
      written_.emplace(t.unsafeGetTensorImpl(), out_.substr(mark));
    } else {
      out_ += it->second;  // same tensor again: same storage key
    }
    write_int(0);
    write_int_tuple(t.sizes());
    write_int_tuple(dense_strides(t.sizes()));
    op('\x89');  // requires_grad False
    global("collections", "OrderedDict");
    op(')');
    op('R');  // backward_hooks: OrderedDict()
    op('t');
    op('R');
  }

  void write_items(const PyList& items, char one, char many, int depth) {
    for (size_t i = 0; i < items.size(); i += kBatch) {
      const size_t n = std::min(kBatch, items.size() - i);
      if (n > 1) op('(');
      for (size_t j = i; j < i + n; ++j) write(items[j], depth + 1);
      op(n > 1 ? many : one);
    }
  }

  void write(const PyValue& v, int depth) {
    if (depth > kMaxDepth) throw std::runtime_error("value nested deeper than 1000 levels (cyclic?)");
    using K = PyValue::Kind;
    switch (v.kind()) {
      case K::None: op('N'); break;
      case K::Bool: op(v.as_bool() ? '\x88' : '\x89'); break;
      case K::Int: write_int(v.as_int()); break;
      case K::Float: write_float(v.as_float()); break;
      case K::Str: write_str(v.as_str()); break;
      case K::Bytes: write_bytes(v.as_bytes()); break;
      case K::List:
        op(']');
        write_items(v.items(), 'a', 'e', depth);
        break;
      case K::Tuple: {
        const auto& items = v.items();
        if (items.empty()) {
          op(')');
        } else if (items.size() <= 3) {
          for (const auto& e : items) write(e, depth + 1);
          op(static_cast<char>(0x84 + items.size()));
        } else {
          op('(');
          for (const auto& e : items) write(e, depth + 1);
          op('t');
        }
        break;
      }
      case K::Dict: {
        op('}');
        PyList kv;
        for (const auto& [k, e] : v.as_dict().entries) {
          kv.push_back(k);
          kv.push_back(e);
        }
        for (size_t i = 0; i < kv.size(); i += 2 * kBatch) {
          const size_t n = std::min(2 * kBatch, kv.size() - i);
          if (n > 2) op('(');
          for (size_t j = i; j < i + n; ++j) write(kv[j], depth + 1);
          op(n > 2 ? 'u' : 's');
        }
        break;
      }
      case K::Tensor: write_tensor(v.as_tensor()); break;
      case K::Storage: write_storage(v.as_storage().contiguous()); break;
      case K::Global: global(v.as_object().module, v.as_object().name); break;
      case K::Object:
        throw std::runtime_error("cannot pickle " + v.type_name() +
                                 " objects: only plain data (dict, list, tuple, numbers, str) and tensors");
    }
  }

  const AddStorage& add_storage_;
  std::string out_;
  std::unordered_map<const void*, std::string> written_;  // tensor -> its persistent id bytes
  std::vector<torch::Tensor> keep_;                       // keeps those addresses unique
};

}  // namespace

std::string pickle(const PyValue& value, const AddStorage& add_storage) { return Pickler(add_storage).run(value); }

}  // namespace detr::serialization
