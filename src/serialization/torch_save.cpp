// File-level torch.save reading (zip + legacy) and writing (zip).
#include "src/serialization/torch_save.h"

#include <caffe2/serialize/file_adapter.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>

namespace detr::serialization {

namespace fs = std::filesystem;

namespace {

constexpr char kLegacyMagic[] = "\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";  // 0x1950a86a20f9469cfc6c, LE
constexpr int64_t kLegacyProtocolVersion = 1001;

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

class StringAdapter final : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit StringAdapter(const std::string& data) : data_(data) {}
  size_t size() const override { return data_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= data_.size()) return 0;
    n = std::min<size_t>(n, data_.size() - pos);
    std::memcpy(buf, data_.data() + pos, n);
    return n;
  }

 private:
  const std::string& data_;
};

bool is_zip(const char* p, size_t n) { return n >= 4 && std::memcmp(p, "PK\x03\x04", 4) == 0; }

// A zip archive ends with its end-of-central-directory record (22 bytes + a comment < 64 KiB).
bool has_zip_end(const std::string& data) {
  if (data.size() < 22) return false;
  const size_t lowest = data.size() > 22 + 65535 ? data.size() - 22 - 65535 : 0;
  for (size_t i = data.size() - 22 + 1; i-- > lowest;)
    if (std::memcmp(data.data() + i, "PK\x05\x06", 4) == 0) return true;
  return false;
}

uint32_t le32(const std::string& d, size_t at) {
  uint32_t v = 0;
  for (int k = 3; k >= 0; --k) v = (v << 8) | static_cast<uint8_t>(d[at + k]);
  return v;
}
uint16_t le16(const std::string& d, size_t at) {
  return static_cast<uint16_t>(static_cast<uint8_t>(d[at]) | (static_cast<uint8_t>(d[at + 1]) << 8));
}

uint64_t le64(const std::string& d, size_t at) { return le32(d, at) | (uint64_t{le32(d, at + 4)} << 32); }

// torch.save writes every record stored (uncompressed). The zip reader would inflate a compressed
// record whole into memory, whatever size it declares (a zip bomb), so any compressed record is refused
// before anything is read: the central directory (zip64 too) is walked first.
void refuse_compressed_records(const std::string& tail,
                               uint64_t tail_offset,
                               const std::function<std::string(uint64_t, uint64_t)>& read) {
  size_t eocd = std::string::npos;
  for (size_t i = tail.size() >= 22 ? tail.size() - 22 + 1 : 0; i-- > 0;)
    if (tail.compare(i, 4, "PK\x05\x06") == 0) {
      eocd = i;
      break;
    }
  if (eocd == std::string::npos) return;  // the zip reader reports it
  uint64_t entries = le16(tail, eocd + 10), cd_size = le32(tail, eocd + 12), cd_offset = le32(tail, eocd + 16);
  if ((cd_size == 0xFFFFFFFFu || cd_offset == 0xFFFFFFFFu || entries == 0xFFFF) && eocd >= 20 &&
      tail.compare(eocd - 20, 4, "PK\x06\x07") == 0) {  // zip64: its end record holds the real values
    const std::string z = read(le64(tail, eocd - 20 + 8), 56);
    if (z.size() < 56 || z.compare(0, 4, "PK\x06\x06") != 0) fail("corrupt zip64 end of central directory");
    entries = le64(z, 32), cd_size = le64(z, 40), cd_offset = le64(z, 48);
  }
  const uint64_t end = tail_offset + eocd;
  if (cd_size > end || cd_offset > end - cd_size) fail("central directory runs past the end of the file");
  const std::string cd = read(cd_offset, cd_size);
  size_t at = 0;
  for (uint64_t e = 0; e < entries && at + 46 <= cd.size() && cd.compare(at, 4, "PK\x01\x02") == 0; ++e) {
    const uint16_t method = le16(cd, at + 10);
    const size_t name_len = le16(cd, at + 28), extra = le16(cd, at + 30), comment = le16(cd, at + 32);
    const std::string name = cd.substr(at + 46, std::min(name_len, cd.size() - std::min(cd.size(), at + 46)));
    if (method != 0)
      fail("zip record " + name + " is compressed (method " + std::to_string(method) + ", declaring " +
           std::to_string(le32(cd, at + 24)) +
           " bytes): torch.save writes records uncompressed, and a "
           "compressed one is refused rather than inflated");
    at += 46 + name_len + extra + comment;
  }
}

// Reverses each scalar's bytes (files written on a big-endian machine).
void byteswap(torch::Tensor& t) {
  size_t w = t.element_size();
  if (t.is_complex()) w /= 2;
  if (w == 1) return;
  auto* p = static_cast<uint8_t*>(t.data_ptr());
  const size_t n = t.numel() * t.element_size();
  for (size_t i = 0; i + w <= n; i += w) std::reverse(p + i, p + i + w);
}

struct StorageRef {
  torch::Dtype dtype;
  std::string key;
  int64_t numel;
  PyValue view;  // legacy: (view_key, offset, size) or None
};

// ('storage', storage_type, key, location, numel[, view_metadata])
StorageRef parse_storage_pid(const PyValue& pid) {
  if (!pid.is_tuple() || pid.size() < 5 || !pid.item(0).is_str() || pid.item(0).as_str() != "storage")
    fail("unsupported persistent id " + repr(pid) + " (expected ('storage', type, key, location, numel))");
  const PyValue& type = pid.item(1);
  if (!type.is_global()) fail("storage type is " + type.type_name() + ", not a class");
  StorageRef r;
  r.dtype = dtype_from_storage_class(type.as_object().module, type.as_object().name);
  r.key = pid.item(2).is_str() ? pid.item(2).as_str() : std::to_string(pid.item(2).as_int());
  r.numel = pid.item(4).as_int();
  if (r.numel < 0) fail("negative storage size " + std::to_string(r.numel) + " for key " + r.key);
  if (pid.size() > 5) r.view = pid.item(5);
  return r;
}

uint64_t checked_nbytes(int64_t numel, torch::Dtype dtype, const std::string& key) {
  const uint64_t elem = c10::elementSize(dtype);
  if (static_cast<uint64_t>(numel) > UINT64_MAX / 16)
    fail("storage " + key + " of " + std::to_string(numel) + " elements is implausibly large");
  return static_cast<uint64_t>(numel) * elem;
}

// ---- zip -----------------------------------------------------------------------------------------

std::string record_string(caffe2::serialize::PyTorchStreamReader& reader, const std::string& name) {
  auto [ptr, n] = reader.getRecord(name);
  return std::string(static_cast<const char*>(ptr.get()), n);
}

PyValue load_zip(caffe2::serialize::PyTorchStreamReader& reader, LoadInfo& info) {
  if (!reader.hasRecord("data.pkl")) fail("zip archive has no data.pkl record (a TorchScript or other zip file?)");
  const std::string pkl = record_string(reader, "data.pkl");
  bool big_endian = false;
  if (reader.hasRecord("byteorder")) {
    const std::string order = record_string(reader, "byteorder");
    if (order != "little" && order != "big") fail("unknown byteorder record '" + order + "'");
    big_endian = order == "big";
  }
  std::map<std::string, torch::Tensor> storages;
  auto persistent_load = [&](const PyValue& pid) -> PyValue {
    const StorageRef ref = parse_storage_pid(pid);
    if (auto it = storages.find(ref.key); it != storages.end()) {
      if (it->second.scalar_type() != ref.dtype)
        fail("storage " + ref.key + " used as both " + dtype_name(it->second.scalar_type()) + " and " +
             dtype_name(ref.dtype));
      return PyValue::storage(it->second);
    }
    const std::string record = "data/" + ref.key;
    if (!reader.hasRecord(record)) fail("zip archive has no record " + record);
    auto [ptr, n] = reader.getRecord(record);
    const uint64_t nbytes = checked_nbytes(ref.numel, ref.dtype, ref.key);
    if (n < nbytes)
      fail("record " + record + " has " + std::to_string(n) + " bytes but its storage needs " + std::to_string(nbytes) +
           " (" + std::to_string(ref.numel) + " x " + dtype_name(ref.dtype) + ")");
    // The record's buffer (the reader's CPU allocation, CRC-checked) becomes the storage: no second copy.
    torch::Tensor t;
    if (nbytes) {
      auto owner = std::make_shared<at::DataPtr>(std::move(ptr));
      t = torch::from_blob(
          owner->get(), {ref.numel}, [owner](void*) {}, torch::TensorOptions().dtype(ref.dtype));
    } else {
      t = torch::empty({ref.numel}, torch::TensorOptions().dtype(ref.dtype));
    }
    if (big_endian) byteswap(t);
    storages.emplace(ref.key, t);
    return PyValue::storage(t);
  };
  auto r = unpickle(pkl.data(), pkl.size(), 0, persistent_load);
  info.format = "zip";
  info.protocol = r.protocol;
  info.storages = storages.size();
  return r.value;
}

// ---- legacy --------------------------------------------------------------------------------------

// The legacy format's storage records after the pickles: per listed key, its element count (8 bytes)
// and data, in the file's byte order. Each filled storage leaves `storages`.
void read_legacy_storages(const char* p,
                          size_t n,
                          size_t pos,
                          const PyValue& keys,
                          bool little_endian,
                          std::map<std::string, torch::Tensor>& storages,
                          LoadInfo& info) {
  for (const auto& k : keys.items()) {
    const std::string key = k.is_str() ? k.as_str() : repr(k);
    auto it = storages.find(key);
    if (it == storages.end()) fail("storage key " + key + " is listed but not used by the pickle");
    torch::Tensor& t = it->second;
    int64_t numel = 0;
    if (n - pos < 8) fail("truncated file: storage " + key + " missing at offset " + std::to_string(pos));
    std::memcpy(&numel, p + pos, 8);
    if (!little_endian) std::reverse(reinterpret_cast<uint8_t*>(&numel), reinterpret_cast<uint8_t*>(&numel) + 8);
    pos += 8;
    if (numel != t.numel())
      fail("storage " + key + " has " + std::to_string(numel) + " elements in the file but " +
           std::to_string(t.numel()) + " in the pickle");
    const uint64_t nbytes = checked_nbytes(numel, t.scalar_type(), key);
    if (n - pos < nbytes)
      fail("truncated file: storage " + key + " needs " + std::to_string(nbytes) + " bytes at offset " +
           std::to_string(pos) + ", " + std::to_string(n - pos) + " left");
    if (nbytes) std::memcpy(t.data_ptr(), p + pos, nbytes);
    if (!little_endian) byteswap(t);
    pos += nbytes;
    storages.erase(it);
    info.storages++;
  }
}

PyValue load_legacy(const std::string& data, LoadInfo& info) {
  if (data.size() > 262 && std::memcmp(data.data() + 257, "ustar", 5) == 0)
    fail("the tar-based torch.save format of PyTorch < 0.4 is not supported");
  const char* p = data.data();
  const size_t n = data.size();
  UnpickleResult magic;
  try {
    magic = unpickle(p, n, 0, nullptr);
  } catch (const std::exception& e) {
    fail(std::string("not a torch.save file (neither a zip archive nor a legacy torch pickle): ") + e.what());
  }
  const PyValue& m = magic.value;
  if (!m.is_object() || m.as_object().qualified() != "builtins.int" ||
      m.as_object().args.item(0).as_bytes() != std::string(kLegacyMagic, 10))
    fail("not a torch.save file: a pickle, but without torch's magic number (a plain pickle?)");
  auto version = unpickle(p, n, magic.end, nullptr);
  if (!version.value.is_int() || version.value.as_int() != kLegacyProtocolVersion)
    fail("unsupported legacy protocol version " + repr(version.value));
  auto sys_info = unpickle(p, n, version.end, nullptr);
  bool little_endian = true;
  if (const PyValue* le = sys_info.value.find("little_endian"); le && le->is_bool()) little_endian = le->as_bool();

  std::map<std::string, torch::Tensor> storages;  // root key -> storage (filled below)
  std::map<std::string, torch::Tensor> views;     // view key -> slice of a root storage
  auto persistent_load = [&](const PyValue& pid) -> PyValue {
    if (pid.is_tuple() && pid.size() >= 2 && pid.item(0).is_str() && pid.item(0).as_str() == "module")
      return pid.item(1);  // a pickled nn.Module's class: kept as it is
    const StorageRef ref = parse_storage_pid(pid);
    auto it = storages.find(ref.key);
    if (it == storages.end()) {
      if (checked_nbytes(ref.numel, ref.dtype, ref.key) > n)
        fail("storage " + ref.key + " of " + std::to_string(ref.numel) + " " + dtype_name(ref.dtype) +
             " elements is larger than the whole file of " + std::to_string(n) + " bytes (truncated or corrupt?)");
      it = storages.emplace(ref.key, torch::empty({ref.numel}, torch::TensorOptions().dtype(ref.dtype))).first;
    } else if (it->second.scalar_type() != ref.dtype) {
      fail("storage " + ref.key + " used with two dtypes");
    }
    if (ref.view.is_none()) return PyValue::storage(it->second);
    // (view_key, offset, size): a slice of the root storage (PyTorch < 0.4)
    const std::string view_key = ref.view.item(0).is_str() ? ref.view.item(0).as_str() : repr(ref.view.item(0));
    if (auto v = views.find(view_key); v != views.end()) return PyValue::storage(v->second);
    const int64_t off = ref.view.item(1).as_int(), len = ref.view.item(2).as_int();
    if (off < 0 || len < 0 || off > ref.numel || len > ref.numel - off)
      fail("storage view " + view_key + " [" + std::to_string(off) + ", +" + std::to_string(len) +
           ") outside its storage of " + std::to_string(ref.numel));
    auto view = it->second.narrow(0, off, len);
    views.emplace(view_key, view);
    return PyValue::storage(view);
  };
  auto main = unpickle(p, n, sys_info.end, persistent_load);
  auto keys = unpickle(p, n, main.end, nullptr);
  if (!keys.value.is_list() && !keys.value.is_tuple())
    fail("expected the list of storage keys after the main pickle, got " + keys.value.type_name());

  read_legacy_storages(p, n, keys.end, keys.value, little_endian, storages, info);
  if (!storages.empty()) fail("no data for storage " + storages.begin()->first + " (keys list incomplete)");
  info.format = "legacy";
  info.protocol = main.protocol;
  return main.value;
}

// ---- common --------------------------------------------------------------------------------------

std::string describe(const std::exception& e) {
  if (auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

template <typename F>
auto with_context(const std::string& name, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    throw std::runtime_error(name + ": " + describe(e));
  }
}

// The bytes of a file or buffer: all of it (legacy format), or just what the zip checks need.
struct Source {
  std::string name;
  uint64_t size = 0;
  std::function<std::string(uint64_t offset, uint64_t n)> read;  // n clipped to the end
  std::function<std::shared_ptr<caffe2::serialize::ReadAdapterInterface>()> adapter;
};

PyValue load_zip_source(const Source& src, LoadInfo& i) {
  const uint64_t tail_len = std::min<uint64_t>(src.size, 22 + 65535);
  const std::string tail = src.read(src.size - tail_len, tail_len);
  if (!has_zip_end(tail)) fail("truncated zip archive: no end-of-central-directory record");
  refuse_compressed_records(tail, src.size - tail_len,
                            [&](uint64_t offset, uint64_t n) { return src.read(offset, n); });
  // The archive's top folder: the prefix of its first entry's name (local header at offset 0).
  const std::string head = src.read(0, 30);
  const size_t name_len = head.size() < 30 ? 0 : static_cast<uint8_t>(head[26]) | (static_cast<uint8_t>(head[27]) << 8);
  const std::string first = src.read(30, name_len);
  i.archive_name = first.substr(0, first.find('/'));
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(src.adapter());
  } catch (const std::exception& e) {
    fail("not a readable torch.save zip archive (truncated or corrupt?): " + describe(e));
  }
  return load_zip(*reader, i);
}

PyValue load_source(const Source& src, LoadInfo* info) {
  return with_context(src.name, [&] {
    LoadInfo local;
    LoadInfo& i = info ? *info : local;
    i = LoadInfo{};
    i.bytes = src.size;
    if (src.size == 0) fail("file is empty");
    const std::string magic = src.read(0, 4);
    if (is_zip(magic.data(), magic.size())) return load_zip_source(src, i);
    const std::string all = src.read(0, src.size);
    return load_legacy(all, i);
  });
}

std::vector<std::pair<std::string, torch::Tensor>> pickle_with_storages(const PyValue& value, std::string& pkl) {
  std::vector<std::pair<std::string, torch::Tensor>> storages;
  pkl = pickle(value, [&](const torch::Tensor& t) {
    storages.emplace_back(std::to_string(storages.size()), t);
    return storages.back().first;
  });
  return storages;
}

void write_archive(const PyValue& value, const std::function<size_t(const void*, size_t)>& sink) {
  std::string pkl;
  const auto storages = pickle_with_storages(value, pkl);
  caffe2::serialize::PyTorchStreamWriter writer(sink);
  writer.writeRecord("data.pkl", pkl.data(), pkl.size());
  writer.writeRecord("byteorder", "little", 6);
  for (const auto& [key, t] : storages)
    writer.writeRecord("data/" + key, t.data_ptr(), static_cast<size_t>(t.numel()) * t.element_size());
  writer.writeEndOfFile();  // writes <archive>/version = "3"
}

}  // namespace

PyValue torch_load_bytes(const std::string& data, const std::string& name, LoadInfo* info) {
  Source src;
  src.name = name;
  src.size = data.size();
  src.read = [&](uint64_t offset, uint64_t n) {
    return offset >= data.size() ? std::string() : data.substr(offset, n);
  };
  src.adapter = [&] { return std::make_shared<StringAdapter>(data); };
  return load_source(src, info);
}

// Zip files are read record by record (no copy of the whole file); legacy files whole.
PyValue torch_load(const fs::path& path, LoadInfo* info) {
  auto file = std::make_shared<std::ifstream>(path, std::ios::binary);
  Source src;
  src.name = path.string();
  with_context(src.name, [&] {
    if (!*file) fail(std::string("cannot open file: ") + std::strerror(errno));
    std::error_code ec;
    src.size = fs::file_size(path, ec);
    if (ec) fail("cannot read file size: " + ec.message());
    return 0;
  });
  src.read = [&](uint64_t offset, uint64_t n) {
    n = offset >= src.size ? 0 : std::min(n, src.size - offset);
    std::string buf(n, '\0');
    file->clear();
    file->seekg(static_cast<std::streamoff>(offset));
    file->read(buf.data(), static_cast<std::streamsize>(n));
    if (static_cast<uint64_t>(file->gcount()) != n) fail("read error at offset " + std::to_string(offset));
    return buf;
  };
  src.adapter = [&] { return std::make_shared<caffe2::serialize::FileAdapter>(path.string()); };
  return load_source(src, info);
}

std::string torch_save_bytes(const PyValue& value) {
  return with_context("torch_save", [&] {
    std::string out;
    write_archive(value, [&](const void* buf, size_t n) {
      if (n) out.append(static_cast<const char*>(buf), n);
      return n;
    });
    return out;
  });
}

void torch_save(const PyValue& value, const fs::path& path) {
  const fs::path tmp = path.string() + ".tmp";
  with_context(path.string(), [&] {
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) fail("cannot open " + tmp.string() + " for writing: " + std::strerror(errno));
    try {
      // A short write is recorded, not reported to the zip writer: it would throw, and throw again
      // from its destructor while unwinding (std::terminate). Reported once the archive is closed.
      int write_errno = 0;
      write_archive(value, [&](const void* buf, size_t n) {
        if (n && !write_errno && std::fwrite(buf, 1, n, f) != n) write_errno = errno ? errno : EIO;
        return n;
      });
      if (!write_errno && (std::fflush(f) != 0 || ::fsync(fileno(f)) != 0)) write_errno = errno ? errno : EIO;
      if (write_errno) fail("cannot write " + tmp.string() + ": " + std::strerror(write_errno));
    } catch (...) {
      std::fclose(f);
      std::error_code ec;
      fs::remove(tmp, ec);
      throw;
    }
    if (std::fclose(f) != 0) {
      std::error_code ec;
      fs::remove(tmp, ec);
      fail(std::string("write failed: ") + std::strerror(errno));
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) {
      const std::string why = ec.message();
      fs::remove(tmp, ec);
      fail("cannot rename " + tmp.string() + " to the file: " + why);
    }
    return 0;
  });
}

}  // namespace detr::serialization
