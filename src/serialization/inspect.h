// A readable listing of what a torch.save file holds (detr_inspect).
#pragma once
#include <cstddef>
#include <ostream>

#include "src/serialization/pickle.h"
#include "src/serialization/torch_save.h"

namespace detr::serialization {

struct InspectOptions {
  size_t max_items = 0;   // entries listed per container (0: all); the rest are counted
  size_t max_depth = 64;  // deeper containers are summarized
  size_t max_values = 8;  // tensors with at most this many elements show their values
};

// One line per entry, indented by nesting: dict keys, tensors as "float16 [5, 8]" (with
// non-contiguous strides, storage offsets and storage sharing noted), scalars as Python repr,
// short scalar lists/tuples inline, objects as module.name followed by their state. Ends with a
// tensor summary (count, elements, bytes, per dtype).
void print_structure(std::ostream& os, const PyValue& value, const InspectOptions& options = {});

// The header line: format, archive name, pickle protocol, storages, size.
void print_load_info(std::ostream& os, const LoadInfo& info);

}  // namespace detr::serialization
