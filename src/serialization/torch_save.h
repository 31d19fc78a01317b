// torch.save files, read and written without Python.
//
// Reading: the zip format (PyTorch >= 1.6: <name>/data.pkl + <name>/data/<key> + <name>/version)
// and the legacy format (magic number, protocol version, sys_info and main pickles, storage keys,
// raw storages). Tensors land on the CPU whatever their saved location; views keep sharing their
// storage as in Python. Every failure is a std::runtime_error that starts with the file's name.
//
// Writing: the zip format with protocol-2 pickles as torch.save writes them, so that Python's
// torch.load(path, weights_only=True) reads plain dicts, lists, numbers, strings and tensors.
// (PyTorch 1.13's weights_only unpickler lacks BINFLOAT, so files holding Python floats need
// weights_only=False there, as do files Python itself saves; PyTorch >= 2.0 reads them.)
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include "src/serialization/pickle.h"

namespace detr::serialization {

struct LoadInfo {
  std::string format;        // "zip" or "legacy"
  std::string archive_name;  // zip: the records' top folder ("archive", or the file's stem)
  int protocol = 0;          // the main pickle's protocol
  size_t storages = 0;       // distinct storages read
  uint64_t bytes = 0;        // size of the file
};

PyValue torch_load(const std::filesystem::path& path, LoadInfo* info = nullptr);
// The same from bytes in memory; `name` stands for the file in error messages.
PyValue torch_load_bytes(const std::string& data, const std::string& name = "<memory>", LoadInfo* info = nullptr);

// Writes `path` atomically: `path`.tmp first (flushed and fsynced), then renamed over `path`.
void torch_save(const PyValue& value, const std::filesystem::path& path);
std::string torch_save_bytes(const PyValue& value);

}  // namespace detr::serialization
