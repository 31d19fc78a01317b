// The pickle virtual machine (protocols 0-5), with torch's rebuild functions built in.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "src/serialization/pickle.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "detr serialization assumes a little-endian host"
#endif

namespace detr::serialization {

namespace {

const char* opcode_name(uint8_t op) {
  switch (op) {
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    default: return nullptr;
  }
}

std::string hex(uint8_t op) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", op);
  return buf;
}

// Code points 0..255 of a UTF-8 string as bytes (Python's str.encode('latin1')).
std::string latin1_bytes(const std::string& utf8) {
  std::string out;
  for (size_t i = 0; i < utf8.size(); ++i) {
    const auto c = static_cast<unsigned char>(utf8[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if ((c & 0xe0) == 0xc0 && i + 1 < utf8.size()) {
      const unsigned cp = ((c & 0x1fu) << 6) | (static_cast<unsigned char>(utf8[++i]) & 0x3fu);
      if (cp > 0xff) throw std::runtime_error("latin1 encode: code point above 255");
      out += static_cast<char>(cp);
    } else {
      throw std::runtime_error("latin1 encode: code point above 255");
    }
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// numpy.dtype(code) for the scalar codes we turn into Python numbers ('f8', 'i4', 'b1', ...).
PyValue numpy_scalar(const PyValue& dtype, const std::string& raw) {
  if (!dtype.is_object() || !dtype.as_object().args.is_tuple() || dtype.as_object().args.size() == 0 ||
      !dtype.as_object().args.item(0).is_str())
    return {};
  const std::string code = dtype.as_object().args.item(0).as_str();
  auto get = [&](auto zero) {
    decltype(zero) v{};
    if (raw.size() != sizeof v)
      throw std::runtime_error("numpy scalar of " + code + " has " + std::to_string(raw.size()) + " bytes");
    std::memcpy(&v, raw.data(), sizeof v);
    return v;
  };
  if (code == "f8") return PyValue::floating(get(double{}));
  if (code == "f4") return PyValue::floating(get(float{}));
  if (code == "i8") return PyValue::integer(get(int64_t{}));
  if (code == "i4") return PyValue::integer(get(int32_t{}));
  if (code == "i2") return PyValue::integer(get(int16_t{}));
  if (code == "i1") return PyValue::integer(get(int8_t{}));
  if (code == "u1") return PyValue::integer(get(uint8_t{}));
  if (code == "u2") return PyValue::integer(get(uint16_t{}));
  if (code == "u4") return PyValue::integer(get(uint32_t{}));
  if (code == "b1") return PyValue::boolean(get(uint8_t{}) != 0);
  return {};
}

// The containers directly inside v (list/tuple items, dict keys, values and attributes, an object's
// args, state and items).
std::vector<const PyValue*> children(const PyValue& v) {
  std::vector<const PyValue*> out;
  if (v.is_list() || v.is_tuple()) {
    for (const auto& e : v.items()) out.push_back(&e);
  } else if (v.is_dict()) {
    for (const auto& [k, e] : v.as_dict().entries) out.insert(out.end(), {&k, &e});
    out.push_back(&v.as_dict().attributes);
  } else if (v.is_object()) {
    const auto& o = v.as_object();
    out.insert(out.end(), {&o.args, &o.state, &o.items});
  }
  return out;
}

const void* node_of(const PyValue& v) {
  if (v.is_list() || v.is_tuple()) return &v.items();
  if (v.is_dict()) return &v.as_dict();
  if (v.is_object()) return &v.as_object();
  return nullptr;
}

// Depth-first, iterative (a pickle can nest a million levels): whether a container reaches itself.
bool has_reference_cycle(const PyValue& root) {
  std::unordered_map<const void*, int> state;  // 1: on the current path, 2: done
  struct Frame {
    const void* node;
    std::vector<const PyValue*> kids;
    size_t next = 0;
  };
  std::vector<Frame> path;
  auto enter = [&](const PyValue& v) {
    const void* n = node_of(v);
    if (!n) return false;
    int& st = state[n];
    if (st == 1) return true;
    if (st == 0) {
      st = 1;
      path.push_back({n, children(v)});
    }
    return false;
  };
  if (enter(root)) return true;
  while (!path.empty()) {
    Frame& f = path.back();
    if (f.next == f.kids.size()) {
      state[f.node] = 2;
      path.pop_back();
    } else if (enter(*f.kids[f.next++])) {
      return true;
    }
  }
  return false;
}

// Empties every container reachable from roots, so that cycles among them are freed.
void break_references(const std::vector<PyValue>& roots) {
  std::unordered_set<const void*> seen;
  std::vector<PyValue> all;  // keeps each container alive while the others are emptied
  std::vector<const PyValue*> todo;
  for (const auto& r : roots) todo.push_back(&r);
  while (!todo.empty()) {
    const PyValue* v = todo.back();
    todo.pop_back();
    const void* n = node_of(*v);
    if (!n || !seen.insert(n).second) continue;
    all.push_back(*v);
    for (const PyValue* c : children(*v)) todo.push_back(c);
  }
  for (auto& v : all) {
    if (v.is_list() || v.is_tuple()) {
      v.mutable_items().clear();
    } else if (v.is_dict()) {
      v.as_dict().entries.clear();
      v.as_dict().attributes = PyValue();
    } else if (v.is_object()) {
      auto& o = v.as_object();
      o.args = o.state = o.items = PyValue();
    }
  }
}

class Unpickler {
 public:
  Unpickler(const char* data, size_t size, size_t offset, const PersistentLoad& persistent_load)
      : p_(reinterpret_cast<const uint8_t*>(data)), size_(size), pos_(offset), persistent_load_(persistent_load) {}

  // Containers are shared (shared_ptr), so a pickle can tie them into a cycle (a list holding a list
  // that holds the first), which reference counting would never free. Python supports cycles; state
  // dicts and checkpoints never have them: a cycle is refused, and on any failure every container
  // built so far is emptied, so nothing leaks either way.
  UnpickleResult run() {
    try {
      UnpickleResult r = run_ops();
      if (has_reference_cycle(r.value)) {
        op_pos_ = r.end - 1;
        fail("a container that contains itself (a reference cycle) is not supported");
      }
      return r;
    } catch (...) {
      std::vector<PyValue> roots(stack_.begin(), stack_.end());
      for (auto& [k, v] : memo_) roots.push_back(v);
      if (last_.kind() != PyValue::Kind::None) roots.push_back(last_);
      stack_.clear();
      memo_.clear();
      last_ = PyValue();
      break_references(roots);
      throw;
    }
  }

  UnpickleResult run_ops() {
    if (pos_ >= size_) fail("no pickle data (empty or truncated input)");
    while (true) {
      op_pos_ = pos_;
      const uint8_t op = u8();
      if (op == '.') {
        UnpickleResult r;
        r.value = pop();
        last_ = r.value;
        r.end = pos_;
        r.protocol = protocol_;
        return r;
      }
      try {
        step(op);
      } catch (const c10::Error& e) {
        fail(e.what_without_backtrace());
      } catch (const std::exception& e) {
        if (std::strncmp(e.what(), "pickle: ", 8) == 0) throw;
        fail(e.what());  // a type error from an accessor: give it the offset
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("pickle: " + what + " at offset " + std::to_string(op_pos_));
  }

  // ---- reading ----
  const uint8_t* read(uint64_t n) {
    if (n > size_ - pos_)
      fail("truncated data: needs " + std::to_string(n) + " bytes, " + std::to_string(size_ - pos_) + " left");
    const uint8_t* r = p_ + pos_;
    pos_ += n;
    return r;
  }
  template <typename T>
  T le() {
    T v;
    std::memcpy(&v, read(sizeof v), sizeof v);
    return v;
  }
  uint8_t u8() { return le<uint8_t>(); }
  std::string str(uint64_t n) {
    const auto* d = read(n);
    return std::string(reinterpret_cast<const char*>(d), n);
  }
  std::string line() {  // text opcodes: up to and excluding '\n'
    const void* nl = std::memchr(p_ + pos_, '\n', size_ - pos_);
    if (!nl) fail("truncated data: unterminated line");
    const size_t n = static_cast<const uint8_t*>(nl) - (p_ + pos_);
    std::string s = str(n);
    ++pos_;
    if (!s.empty() && s.back() == '\r') s.pop_back();
    return s;
  }
  int64_t parse_int(std::string s) {
    if (!s.empty() && (s.back() == 'L')) s.pop_back();
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno == ERANGE) fail("bad or too large integer '" + s + "'");
    return v;
  }
  // Little-endian two's complement of n bytes (LONG1/LONG4). Integers beyond int64 (torch's legacy
  // magic number) become an opaque builtins.int object holding those bytes.
  PyValue long_value(uint64_t n) {
    const uint8_t* d = read(n);
    if (n == 0) return PyValue::integer(0);
    const bool negative = d[n - 1] & 0x80;
    bool fits = true;
    for (uint64_t i = 8; i < n; ++i) fits &= d[i] == (negative ? 0xff : 0x00);
    if (n > 8) fits &= static_cast<bool>(d[7] & 0x80) == negative;
    if (!fits)
      return PyValue::object("builtins", "int",
                             PyValue::tuple({PyValue::bytes(std::string(reinterpret_cast<const char*>(d), n))}));
    uint64_t v = negative ? ~uint64_t{0} : 0;
    for (uint64_t i = 0; i < n && i < 8; ++i) {
      v &= ~(uint64_t{0xff} << (8 * i));
      v |= uint64_t{d[i]} << (8 * i);
    }
    return PyValue::integer(static_cast<int64_t>(v));
  }
  std::string unescape_string(const std::string& s);     // 'S' (repr of a str)
  std::string raw_unicode_escape(const std::string& s);  // 'V'

  // ---- stack ----
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  // Every value a pickle makes passes here, so their number is bounded whatever the file declares:
  // a checkpoint holds thousands, and ten million one-byte ints once cost 4.7 GB.
  void push(PyValue v) {
    if (++values_ > kMaxValues)
      fail("more than " + std::to_string(kMaxValues) + " values (a checkpoint holds thousands): refused");
    stack_.push_back(std::move(v));
  }
  PyValue pop() {
    if (stack_.size() <= floor()) fail("stack underflow");
    PyValue v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  PyValue& top() {
    if (stack_.size() <= floor()) fail("stack underflow");
    return stack_.back();
  }
  PyList pop_mark() {
    if (marks_.empty()) fail("no MARK on the stack");
    const size_t m = marks_.back();
    marks_.pop_back();
    PyList items(std::make_move_iterator(stack_.begin() + m), std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return items;
  }
  const PyValue& memo_get(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) fail("memo key " + std::to_string(key) + " not found");
    return it->second;
  }

  void step(uint8_t op);
  bool step_scalar(uint8_t op);
  bool step_container(uint8_t op);
  bool step_object(uint8_t op);
  PyValue call(const PyValue& callable, const PyValue& args);
  PyValue instantiate(const PyValue& cls, const PyValue& args);
  PyValue rebuild_tensor(const PyList& args);
  void build(PyValue& inst, const PyValue& state);
  void set_items(PyValue& target, PyList kv);
  void append_items(PyValue& target, PyList items);
  PyValue persistent(const PyValue& pid) {
    if (!persistent_load_) fail("persistent id " + repr(pid) + " but no persistent_load");
    return persistent_load_(pid);
  }

  static constexpr size_t kMaxValues = size_t{1} << 20;
  const uint8_t* p_;
  size_t size_, pos_, op_pos_ = 0, values_ = 0;
  const PersistentLoad& persistent_load_;
  int protocol_ = 0;
  std::vector<PyValue> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PyValue> memo_;
  PyValue last_;  // the result, until it is known to be free of cycles
};

// Framing, the stack, constants and numbers; false when `op` is not one of them.
bool Unpickler::step_scalar(uint8_t op) {
  switch (op) {
    // ---- framing, protocol
    case 0x80: {  // PROTO
      protocol_ = u8();
      if (protocol_ > 5) fail("unsupported pickle protocol " + std::to_string(protocol_));
      break;
    }
    case 0x95: {  // FRAME: a length hint only
      le<uint64_t>();
      break;
    }
    // ---- stack manipulation
    case '(': marks_.push_back(stack_.size()); break;  // MARK
    case '0': pop(); break;                            // POP
    case '1': pop_mark(); break;                       // POP_MARK
    case '2': {                                        // DUP
      PyValue copy = top();
      push(std::move(copy));
      break;
    }
    // ---- constants and numbers
    case 'N': push({}); break;
    case 0x88: push(PyValue::boolean(true)); break;
    case 0x89: push(PyValue::boolean(false)); break;
    case 'I': {
      const std::string s = line();
      if (s == "01" || s == "00")
        push(PyValue::boolean(s == "01"));
      else
        push(PyValue::integer(parse_int(s)));
      break;
    }
    case 'J': push(PyValue::integer(le<int32_t>())); break;
    case 'K': push(PyValue::integer(u8())); break;
    case 'M': push(PyValue::integer(le<uint16_t>())); break;
    case 'L': push(PyValue::integer(parse_int(line()))); break;
    case 0x8a: push(long_value(u8())); break;
    case 0x8b: {
      const int32_t n = le<int32_t>();
      if (n < 0) fail("negative LONG4 size");
      push(long_value(static_cast<uint64_t>(n)));
      break;
    }
    case 'F': {
      const std::string s = line();
      char* end = nullptr;
      const double d = std::strtod(s.c_str(), &end);
      if (s.empty() || *end != '\0') fail("bad float '" + s + "'");
      push(PyValue::floating(d));
      break;
    }
    case 'G': {  // BINFLOAT: big-endian double
      const uint8_t* d = read(8);
      uint64_t bits = 0;
      for (int i = 0; i < 8; ++i) bits = (bits << 8) | d[i];
      double v;
      std::memcpy(&v, &bits, 8);
      push(PyValue::floating(v));
      break;
    }
    default: return false;
  }
  return true;
}

// Strings, bytes and containers; false when `op` is not one of them.
bool Unpickler::step_container(uint8_t op) {
  switch (op) {
    // ---- strings and bytes
    case 'S': push(PyValue::str(unescape_string(line()))); break;
    case 'V': push(PyValue::str(raw_unicode_escape(line()))); break;
    case 'T': {
      const int32_t n = le<int32_t>();
      if (n < 0) fail("negative BINSTRING size");
      push(PyValue::str(str(static_cast<uint64_t>(n))));
      break;
    }
    case 'U': push(PyValue::str(str(u8()))); break;
    case 'X': push(PyValue::str(str(le<uint32_t>()))); break;
    case 0x8c: push(PyValue::str(str(u8()))); break;
    case 0x8d: push(PyValue::str(str(le<uint64_t>()))); break;
    case 'B': push(PyValue::bytes(str(le<uint32_t>()))); break;
    case 'C': push(PyValue::bytes(str(u8()))); break;
    case 0x8e:
    case 0x96: push(PyValue::bytes(str(le<uint64_t>()))); break;
    // ---- containers
    case ']': push(PyValue::list()); break;
    case 'l': push(PyValue::list(pop_mark())); break;
    case 'a': {
      PyValue item = pop();
      append_items(top(), PyList{std::move(item)});
      break;
    }
    case 'e': {
      PyList items = pop_mark();
      append_items(top(), std::move(items));
      break;
    }
    case ')': push(PyValue::tuple()); break;
    case 't': push(PyValue::tuple(pop_mark())); break;
    case 0x85:
    case 0x86:
    case 0x87: {
      const size_t n = op - 0x84u;
      if (stack_.size() < floor() + n) fail("stack underflow");
      PyList items(std::make_move_iterator(stack_.end() - n), std::make_move_iterator(stack_.end()));
      stack_.resize(stack_.size() - n);
      push(PyValue::tuple(std::move(items)));
      break;
    }
    case '}': push(PyValue::dict()); break;
    case 'd': {
      PyValue d = PyValue::dict();
      set_items(d, pop_mark());
      push(std::move(d));
      break;
    }
    case 's': {
      PyValue v = pop();
      PyValue k = pop();
      set_items(top(), PyList{std::move(k), std::move(v)});
      break;
    }
    case 'u': {
      PyList kv = pop_mark();
      set_items(top(), std::move(kv));
      break;
    }
    case 0x8f: push(PyValue::list()); break;  // EMPTY_SET: sets become lists
    case 0x90: {                              // ADDITEMS
      PyList items = pop_mark();
      append_items(top(), std::move(items));
      break;
    }
    case 0x91: {  // FROZENSET
      PyList items = pop_mark();
      push(PyValue::list(std::move(items)));
      break;
    }
    default: return false;
  }
  return true;
}

// The memo, classes, calls and objects; false when `op` is not one of them.
bool Unpickler::step_object(uint8_t op) {
  switch (op) {
    // ---- memo
    case 'p': memo_[static_cast<uint64_t>(parse_int(line()))] = top(); break;
    case 'q': memo_[u8()] = top(); break;
    case 'r': memo_[le<uint32_t>()] = top(); break;
    case 0x94: memo_[memo_.size()] = top(); break;
    case 'g': push(memo_get(static_cast<uint64_t>(parse_int(line())))); break;
    case 'h': push(memo_get(u8())); break;
    case 'j': push(memo_get(le<uint32_t>())); break;
    // ---- classes, calls, objects
    case 'c': {
      std::string module = line();
      std::string name = line();
      push(PyValue::global(std::move(module), std::move(name)));
      break;
    }
    case 0x93: {  // STACK_GLOBAL
      PyValue name = pop();
      PyValue module = pop();
      if (!module.is_str() || !name.is_str()) fail("STACK_GLOBAL needs two strings");
      push(PyValue::global(module.as_str(), name.as_str()));
      break;
    }
    case 'R': {
      PyValue args = pop();
      PyValue callable = pop();
      push(call(callable, args));
      break;
    }
    case 0x81: {  // NEWOBJ
      PyValue args = pop();
      PyValue cls = pop();
      push(instantiate(cls, args));
      break;
    }
    case 0x92: {  // NEWOBJ_EX (kwargs ignored)
      pop();
      PyValue args = pop();
      PyValue cls = pop();
      push(instantiate(cls, args));
      break;
    }
    case 'o': {  // OBJ: MARK cls args... OBJ
      PyList items = pop_mark();
      if (items.empty()) fail("OBJ without a class");
      PyValue cls = items.front();
      items.erase(items.begin());
      push(instantiate(cls, PyValue::tuple(std::move(items))));
      break;
    }
    case 'i': {  // INST module\nname\n: MARK args... INST
      std::string module = line();
      std::string name = line();
      push(instantiate(PyValue::global(std::move(module), std::move(name)), PyValue::tuple(pop_mark())));
      break;
    }
    case 'b': {
      PyValue state = pop();
      build(top(), state);
      break;
    }
    case 'P': push(persistent(PyValue::str(line()))); break;
    case 'Q': {
      PyValue pid = pop();
      push(persistent(pid));
      break;
    }
    default: return false;
  }
  return true;
}

void Unpickler::step(uint8_t op) {
  if (step_scalar(op) || step_container(op) || step_object(op)) return;
  const char* name = opcode_name(op);
  if (name) fail("unsupported pickle opcode " + hex(op) + " (" + name + ")");
  fail("invalid pickle opcode " + hex(op));
}

void Unpickler::append_items(PyValue& target, PyList items) {
  if (target.is_list()) {
    auto& v = target.mutable_items();
    for (auto& e : items) {
      if (e.is_list() && &e.items() == &v) fail("a list containing itself is not supported");
      v.push_back(std::move(e));
    }
  } else if (target.is_object()) {  // a list subclass
    auto& obj = target.as_object();
    if (obj.items.is_none()) obj.items = PyValue::list();
    if (!obj.items.is_list()) fail("APPEND to " + target.type_name() + " that already holds dict items");
    for (auto& e : items) obj.items.mutable_items().push_back(std::move(e));
  } else {
    fail("APPEND to " + target.type_name() + ", not a list");
  }
}

void Unpickler::set_items(PyValue& target, PyList kv) {
  if (kv.size() % 2) fail("SETITEMS with an odd number of items");
  PyDict* d = nullptr;
  if (target.is_dict()) {
    d = &target.as_dict();
  } else if (target.is_object()) {  // a dict subclass
    auto& obj = target.as_object();
    if (obj.items.is_none()) obj.items = PyValue::dict();
    if (!obj.items.is_dict()) fail("SETITEM on " + target.type_name() + " that already holds list items");
    d = &obj.items.as_dict();
  } else {
    fail("SETITEM on " + target.type_name() + ", not a dict");
  }
  for (size_t i = 0; i < kv.size(); i += 2) d->set(std::move(kv[i]), std::move(kv[i + 1]));
}

void Unpickler::build(PyValue& inst, const PyValue& state) {
  if (inst.is_object()) {
    inst.as_object().state = state;
  } else if (inst.is_dict()) {
    inst.as_dict().attributes = state.is_tuple() && state.size() > 0 ? state.item(0) : state;
  } else if (inst.is_tensor() || inst.is_list()) {
    // Parameter/tensor-subclass state or list-subclass attributes: not modelled.
  } else {
    fail("BUILD on " + inst.type_name());
  }
}

PyValue Unpickler::rebuild_tensor(const PyList& args) {
  if (args.size() < 4) fail("_rebuild_tensor needs (storage, offset, size, stride)");
  const torch::Tensor& base = args[0].as_storage();
  const int64_t offset = args[1].as_int();
  auto ints = [&](const PyValue& v, const char* what) {
    std::vector<int64_t> out;
    for (const auto& e : v.items()) out.push_back(e.as_int());
    for (int64_t x : out)
      if (x < 0) fail(std::string("negative tensor ") + what + " " + std::to_string(x));
    return out;
  };
  const auto size = ints(args[2], "size");
  const auto stride = ints(args[3], "stride");
  if (size.size() != stride.size())
    fail("tensor size has " + std::to_string(size.size()) + " dims but stride " + std::to_string(stride.size()));
  if (offset < 0) fail("negative storage offset " + std::to_string(offset));
  // Highest element index, overflow-checked: every element must lie inside the storage.
  bool empty = false;
  for (int64_t s : size) empty |= (s == 0);
  if (!empty) {
    unsigned __int128 last = static_cast<uint64_t>(offset);
    for (size_t d = 0; d < size.size(); ++d)
      last += static_cast<unsigned __int128>(size[d] - 1) * static_cast<uint64_t>(stride[d]);
    if (last >= static_cast<unsigned __int128>(base.numel()))
      fail("tensor of size " + c10::str(c10::IntArrayRef(size)) + ", stride " + c10::str(c10::IntArrayRef(stride)) +
           ", offset " + std::to_string(offset) + " exceeds its storage of " + std::to_string(base.numel()) +
           " elements");
  } else if (offset > base.numel()) {
    fail("storage offset " + std::to_string(offset) + " beyond storage of " + std::to_string(base.numel()));
  }
  return PyValue::tensor(base.as_strided(size, stride, base.storage_offset() + offset));
}

PyValue Unpickler::call(const PyValue& callable, const PyValue& args_value) {
  if (!callable.is_global()) fail("REDUCE on " + callable.type_name() + ", not a class or function");
  if (!args_value.is_tuple()) fail("REDUCE arguments are " + args_value.type_name() + ", not a tuple");
  const auto& g = callable.as_object();
  const std::string q = g.qualified();
  const PyList& args = args_value.items();
  auto arg = [&](size_t i) -> const PyValue& {
    if (i >= args.size()) fail(q + " needs at least " + std::to_string(i + 1) + " arguments");
    return args[i];
  };
  if (q == "torch._utils._rebuild_tensor_v2" || q == "torch._utils._rebuild_tensor") return rebuild_tensor(args);
  if (q == "torch._utils._rebuild_tensor_v3") {  // (untyped storage, offset, size, stride, grad, hooks, dtype, ...)
    if (!arg(6).is_global()) fail(q + " dtype is " + arg(6).type_name());
    const torch::Dtype dtype = dtype_from_storage_class(arg(6).as_object().module, arg(6).as_object().name);
    const torch::Tensor& bytes = arg(0).as_storage();
    if (bytes.scalar_type() != dtype && (bytes.numel() * bytes.element_size()) % c10::elementSize(dtype) != 0)
      fail(q + ": storage of " + std::to_string(bytes.numel() * bytes.element_size()) +
           " bytes is not a whole number of " + dtype_name(dtype));
    PyList typed = args;
    typed[0] = PyValue::storage(bytes.scalar_type() == dtype ? bytes : bytes.view(dtype));
    return rebuild_tensor(typed);
  }
  if (q == "torch._utils._rebuild_parameter" || q == "torch._utils._rebuild_parameter_with_state" ||
      q == "torch.nn.parameter.Parameter") {
    if (!arg(0).is_tensor()) fail(q + " of " + arg(0).type_name());
    return arg(0);
  }
  if (q == "torch._tensor._rebuild_from_type_v2" || q == "torch._tensor._rebuild_from_type") {
    // (func, type, args, state): a tensor subclass or a tensor with attributes, kept as a tensor
    if (!arg(0).is_global() || arg(0).as_object().module == "torch._tensor") fail(q + " of " + repr(arg(0)));
    return call(arg(0), arg(2));
  }
  if (q == "collections.OrderedDict" || q == "collections.defaultdict" || q == "builtins.dict" ||
      q == "__builtin__.dict") {
    PyValue d = PyValue::dict({}, q.rfind("collections.", 0) == 0 ? q : "dict");
    if (q != "collections.defaultdict" && !args.empty() && (args[0].is_list() || args[0].is_tuple()))
      for (const auto& pair : args[0].items()) {
        if ((!pair.is_list() && !pair.is_tuple()) || pair.size() != 2) fail(q + " item is not a pair");
        d.as_dict().set(pair.item(0), pair.item(1));
      }
    return d;
  }
  if (q == "builtins.set" || q == "builtins.frozenset" || q == "__builtin__.set" || q == "__builtin__.frozenset" ||
      q == "builtins.list" || q == "__builtin__.list")
    return PyValue::list(args.empty() ? PyList{} : arg(0).items());
  if (q == "builtins.tuple" || q == "__builtin__.tuple" || q == "torch.Size")
    return PyValue::tuple(args.empty() ? PyList{} : arg(0).items());
  if (q == "_codecs.encode" || q == "builtins.bytearray" || q == "__builtin__.bytearray" || q == "builtins.bytes" ||
      q == "__builtin__.bytes") {
    if (args.empty()) return PyValue::bytes("");
    if (arg(0).is_bytes()) return PyValue::bytes(arg(0).as_bytes());
    const std::string enc = args.size() > 1 && args[1].is_str() ? args[1].as_str() : "utf-8";
    if (enc == "latin1" || enc == "latin-1" || enc == "iso-8859-1")
      return PyValue::bytes(latin1_bytes(arg(0).as_str()));
    return PyValue::bytes(arg(0).as_str());
  }
  if (q == "numpy.core.multiarray.scalar" || q == "numpy._core.multiarray.scalar") {
    if (args.size() == 2 && args[1].is_bytes()) {
      PyValue v = numpy_scalar(args[0], args[1].as_bytes());
      if (!v.is_none()) return v;
    }
  }
  if (q == "copyreg._reconstructor" || q == "copy_reg._reconstructor") {
    if (!arg(0).is_global()) fail(q + " of " + arg(0).type_name());
    return instantiate(arg(0), PyValue::tuple());
  }
  return PyValue::object(g.module, g.name, args_value);  // anything else: opaque, inspectable
}

PyValue Unpickler::instantiate(const PyValue& cls, const PyValue& args) {
  if (!cls.is_global()) fail("NEWOBJ on " + cls.type_name() + ", not a class");
  const std::string q = cls.as_object().qualified();
  if (q == "collections.OrderedDict" || q == "torch.nn.parameter.Parameter" || q == "builtins.set" ||
      q == "builtins.dict" || q == "builtins.list" || q == "torch.Size")
    return call(cls, args);
  return PyValue::object(cls.as_object().module, cls.as_object().name, args);
}

std::string Unpickler::unescape_string(const std::string& s) {
  if (s.size() < 2 || (s.front() != '\'' && s.front() != '"') || s.back() != s.front())
    fail("STRING argument is not quoted");
  std::string out;
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    char c = s[i];
    if (c != '\\' || i + 2 >= s.size()) {
      out += c;
      continue;
    }
    c = s[++i];
    switch (c) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case '0': out += '\0'; break;
      case 'x':
        if (i + 2 >= s.size()) fail("bad \\x escape");
        out += static_cast<char>(std::strtol(s.substr(i + 1, 2).c_str(), nullptr, 16));
        i += 2;
        break;
      default: out += c;
    }
  }
  return out;
}

std::string Unpickler::raw_unicode_escape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\' && i + 1 < s.size() && (s[i + 1] == 'u' || s[i + 1] == 'U')) {
      const size_t n = s[i + 1] == 'u' ? 4 : 8;
      if (i + 2 + n > s.size()) fail("bad \\u escape");
      append_utf8(out, static_cast<uint32_t>(std::strtoul(s.substr(i + 2, n).c_str(), nullptr, 16)));
      i += 1 + n;
    } else {
      append_utf8(out, c);  // other bytes are latin-1 code points
    }
  }
  return out;
}

}  // namespace

UnpickleResult unpickle(const char* data, size_t size, size_t offset, const PersistentLoad& persistent_load) {
  return Unpickler(data, size, offset, persistent_load).run();
}

}  // namespace detr::serialization
