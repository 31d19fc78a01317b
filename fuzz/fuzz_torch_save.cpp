// Fuzz target: the torch.save reader (zip and legacy formats, the unpickler) on arbitrary bytes, and
// what every consumer does with a value that loads: detr_inspect's listing, state-dict extraction,
// the JSON bridge, and a write + read round trip.
//
// Expected outcome for bad input: a std::exception (c10::Error derives from it). A crash, an abort,
// a sanitizer report, a hang or a huge allocation is a finding. So is a value that the writer
// accepts but that does not read back equal.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <sstream>
#include <string>

#include "src/serialization/inspect.h"
#include "src/serialization/pickle.h"
#include "src/serialization/torch_save.h"

namespace {

using detr::serialization::PyValue;

// Elements the round trip would write (the writer makes every tensor contiguous: a stride-0 view
// of a tiny storage can stand for a huge tensor). -1: too deep or too many nodes to count (shared
// containers make a DAG whose walk can be exponential): no round trip.
int64_t elements_to_write(const PyValue& v, int depth, int64_t& budget) {
  if (depth > 200 || --budget < 0) return -1;
  int64_t n = 0;
  auto add = [&](const PyValue& e) {
    const int64_t k = elements_to_write(e, depth + 1, budget);
    if (k < 0 || n < 0) return void(n = -1);
    n += k;
  };
  switch (v.kind()) {
    case PyValue::Kind::Tensor: return v.as_tensor().numel();
    case PyValue::Kind::Storage: return v.as_storage().numel();
    case PyValue::Kind::List:
    case PyValue::Kind::Tuple:
      for (const auto& e : v.items()) add(e);
      return n;
    case PyValue::Kind::Dict:
      for (const auto& [k, e] : v.as_dict().entries) {
        add(k);
        add(e);
      }
      return n;
    default: return 0;  // objects make the writer throw
  }
}

template <typename F>
void expect_only_exceptions(F&& f) {
  try {
    f();
  } catch (const std::exception&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace ser = detr::serialization;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  ser::LoadInfo info;
  PyValue value;
  try {
    value = ser::torch_load_bytes(bytes, "<fuzz>", &info);
  } catch (const std::exception&) {
    return 0;  // refused: the expected outcome for most inputs
  }

  std::ostringstream os;
  expect_only_exceptions([&] { ser::print_load_info(os, info); });
  expect_only_exceptions([&] { ser::print_structure(os, value); });  // detr_inspect's defaults
  expect_only_exceptions([&] { ser::print_structure(os, value, ser::InspectOptions{4, 3, 2}); });
  expect_only_exceptions([&] { os << ser::repr(value); });
  expect_only_exceptions([&] {
    for (const auto& [name, t] : ser::to_state_dict(value)) os << name << t.numel();
  });
  expect_only_exceptions([&] { os << ser::to_json(value).dump(); });

  // Round trip: what the writer accepts must read back equal.
  int64_t budget = 100000;
  const int64_t elements = elements_to_write(value, 0, budget);
  if (elements < 0 || elements > (int64_t{1} << 20)) return 0;
  std::string written;
  try {
    written = ser::torch_save_bytes(value);
  } catch (const std::exception&) {
    return 0;  // objects, unsupported dtypes, ...: refusing is fine
  }
  PyValue again;
  try {
    again = ser::torch_load_bytes(written, "<fuzz round trip>");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "round trip: the writer's output does not load: %s\n", e.what());
    std::abort();
  }
  bool same = false;
  try {
    same = ser::equal(value, again);
  } catch (const std::exception&) {
    same = true;  // nested too deep to compare
  }
  if (!same) {
    std::fprintf(stderr, "round trip: the value read back differs: %s vs %s\n", ser::repr(value).c_str(),
                 ser::repr(again).c_str());
    std::abort();
  }
  return 0;
}
