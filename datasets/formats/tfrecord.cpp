#include "datasets/formats/tfrecord.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <set>
#include <stdexcept>

#include "datasets/formats/text.h"
#include "datasets/read_error.h"
#include "util/atomic_file.h"
#include "util/tfrecord_framing.h"

namespace detr::datasets::formats {

namespace fs = std::filesystem;

namespace {

// A record of a TFRecord file (and an object in it), for read_error.h's one-line errors.
struct RecordAt {
  fs::path file;
  std::string record;  // "record 3", "record 3: object 0"
  [[noreturn]] void fail(const std::string& what) const { fail_at(file, record, what); }
  RecordAt at(const std::string& part) const { return {file, record + ": " + part}; }
};

}  // namespace

TfRecordReader::TfRecordReader(const fs::path& path) : path_(path), file_(std::fopen(path.c_str(), "rb")) {
  if (!file_) throw std::runtime_error(path.string() + ": cannot open: " + std::strerror(errno));
  std::error_code ec;
  size_ = fs::file_size(path, ec);
  if (ec) throw std::runtime_error(path.string() + ": cannot read its size: " + ec.message());
}

bool TfRecordReader::next(std::string& record) {
  using util::kTfRecordFooterBytes;
  using util::kTfRecordHeaderBytes;
  constexpr uint64_t kFraming = kTfRecordHeaderBytes + kTfRecordFooterBytes;
  const RecordAt where{path_, "record " + std::to_string(index_ + 1) + " at byte " + std::to_string(offset_)};
  if (offset_ == size_) return false;
  if (size_ - offset_ < kFraming) where.fail("truncated (" + std::to_string(size_ - offset_) + " bytes left)");
  unsigned char header[kTfRecordHeaderBytes];
  if (std::fread(header, 1, sizeof header, file_.get()) != sizeof header) where.fail("cannot read the length");
  const util::TfRecordHeader h = util::read_tfrecord_header(header);
  if (!h.crc_ok) where.fail("the length's CRC does not match (not a TFRecord, or corrupt)");
  if (h.length > size_ - offset_ - kFraming || h.length > kMaxRecordBytes)
    where.fail("declares " + std::to_string(h.length) + " bytes, but " + std::to_string(size_ - offset_ - kFraming) +
               " are left (limit " + std::to_string(kMaxRecordBytes) + ")");
  record.resize(static_cast<size_t>(h.length));
  unsigned char footer[kTfRecordFooterBytes];
  if (std::fread(record.data(), 1, record.size(), file_.get()) != record.size() ||
      std::fread(footer, 1, sizeof footer, file_.get()) != sizeof footer)
    where.fail("cannot read its " + std::to_string(h.length) + " bytes");
  if (!util::tfrecord_data_crc_ok(record, footer)) where.fail("the data's CRC does not match (corrupt)");
  offset_ += kFraming + h.length;
  ++index_;
  return true;
}

namespace {

// Protobuf text format, as much as label maps use: identifiers, numbers, quoted strings, { } : ; ,
// and # comments.
class PbText {
 public:
  struct Token {
    char kind = 0;  // 'i' identifier, 'n' number, 's' string, a punctuation character, or 0 at the end
    std::string text;
    int64_t line = 1;
  };
  PbText(std::string_view text, const fs::path& file) : t_(text), file_(file) {}

  Token next() {
    skip_blank();
    Token tok;
    tok.line = line_;
    if (pos_ >= t_.size()) return tok;
    const char c = t_[pos_];
    if (c == '"' || c == '\'') return string_token(tok);
    if (std::strchr("{}:;,[]<>", c)) {
      tok.kind = c;
      ++pos_;
      return tok;
    }
    const size_t start = pos_;
    while (pos_ < t_.size() && (std::isalnum(static_cast<unsigned char>(t_[pos_])) || std::strchr("_.-+", t_[pos_])))
      ++pos_;
    if (pos_ == start) fail_at(file_, line_, "unexpected character " + quote(t_.substr(pos_, 1)));
    tok.text = std::string(t_.substr(start, pos_ - start));
    tok.kind = std::isalpha(static_cast<unsigned char>(c)) || c == '_' ? 'i' : 'n';
    return tok;
  }

 private:
  void skip_blank() {
    while (pos_ < t_.size()) {
      if (t_[pos_] == '#') {
        while (pos_ < t_.size() && t_[pos_] != '\n') ++pos_;
      } else if (std::isspace(static_cast<unsigned char>(t_[pos_]))) {
        line_ += t_[pos_++] == '\n';
      } else {
        return;
      }
    }
  }
  Token string_token(Token& tok) {
    const char q = t_[pos_++];
    tok.kind = 's';
    while (true) {
      if (pos_ >= t_.size() || t_[pos_] == '\n') fail_at(file_, tok.line, "unterminated string");
      char c = t_[pos_++];
      if (c == q) return tok;
      if (c == '\\' && pos_ < t_.size()) {
        c = t_[pos_++];
        c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
      }
      tok.text += c;
    }
  }
  std::string_view t_;
  const fs::path& file_;
  size_t pos_ = 0;
  int64_t line_ = 1;
};

// Skips a { ... } block whose '{' was just read.
void skip_block(PbText& in, const fs::path& file, int depth) {
  if (depth > 64) fail_at(file, 0, "blocks nested deeper than 64");
  while (true) {
    const auto tok = in.next();
    if (tok.kind == 0) fail_at(file, tok.line, "unterminated block");
    if (tok.kind == '}') return;
    if (tok.kind == '{') skip_block(in, file, depth + 1);
  }
}

// One `item { ... }` after its '{': id and name (display_name where name is absent).
std::pair<int64_t, std::string> read_item(PbText& in, const fs::path& file, int64_t item_line) {
  std::optional<int64_t> id;
  std::optional<std::string> name, display;
  while (true) {
    auto tok = in.next();
    if (tok.kind == '}') break;
    if (tok.kind == 0) fail_at(file, item_line, "unterminated block");
    if (tok.kind == ';' || tok.kind == ',') continue;
    if (tok.kind != 'i')
      fail_at(file, tok.line,
              "expected a field name in item, got " + quote(tok.text.empty() ? std::string(1, tok.kind) : tok.text));
    const std::string key = tok.text;
    auto value = in.next();
    if (value.kind == ':') value = in.next();
    if (value.kind == '{') {
      skip_block(in, file, 1);
      continue;
    }
    if (value.kind != 'n' && value.kind != 's' && value.kind != 'i')
      fail_at(file, value.line, "item." + key + " has no value");
    if (key == "id") {
      id = parse_int(value.text);
      if (!id || *id < 1) fail_at(file, value.line, "item.id must be a positive integer, got " + quote(value.text));
    } else if (key == "name") {
      name = value.text;
    } else if (key == "display_name") {
      display = value.text;
    }
  }
  if (!id) fail_at(file, item_line, "item without an id");
  if (!name && !display) fail_at(file, item_line, "item id " + std::to_string(*id) + " has no name");
  return {*id, name ? *name : *display};
}

}  // namespace

std::vector<std::pair<int64_t, std::string>> read_label_map(const fs::path& path) {
  const std::string text = read_text_file(path);
  PbText in(text, path);
  std::vector<std::pair<int64_t, std::string>> items;
  std::set<int64_t> ids;
  while (true) {
    auto tok = in.next();
    if (tok.kind == 0) break;
    if (tok.kind != 'i' || tok.text != "item")
      fail_at(path, tok.line,
              "expected 'item {', got " + quote(tok.text.empty() ? std::string(1, tok.kind) : tok.text));
    auto open = in.next();
    if (open.kind == ':') open = in.next();
    if (open.kind != '{') fail_at(path, open.line, "expected '{' after item");
    auto item = read_item(in, path, tok.line);
    if (!ids.insert(item.first).second) fail_at(path, tok.line, "duplicate item id " + std::to_string(item.first));
    items.push_back(std::move(item));
  }
  if (items.empty()) fail_at(path, 0, "no items");
  return items;
}

namespace {

struct LabelMap {
  std::map<int64_t, int64_t> index_of_id;  // label map id -> label index
  std::map<std::string, int64_t> index_of_name;
  std::vector<std::string> labels;  // in id order
};

LabelMap make_label_map(const fs::path& file) {
  auto items = read_label_map(file);
  std::stable_sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  LabelMap map;
  for (const auto& [id, name] : items) {
    map.index_of_id[id] = static_cast<int64_t>(map.labels.size());
    map.index_of_name[name] = static_cast<int64_t>(map.labels.size());
    map.labels.push_back(name);
  }
  check_labels(map.labels, file);
  return map;
}

const TfFeature* feature(const std::map<std::string, TfFeature>& f,
                         const std::string& key,
                         TfFeature::Kind kind,
                         const RecordAt& where) {
  const auto it = f.find(key);
  if (it == f.end() || it->second.kind == TfFeature::Kind::none) return nullptr;
  if (it->second.kind != kind) where.fail(key + " has the wrong list type");
  return &it->second;
}

// The label index of object k from class/label and class/text; -1 for an unlabelled one.
int64_t object_label(
    const TfFeature* label, const TfFeature* text, size_t k, const LabelMap& map, const RecordAt& where) {
  const std::string name = text ? std::string(text->bytes[k]) : std::string();
  if (label) {
    const int64_t id = label->ints[k];
    if (id == 0 && name.empty()) return -1;
    const auto it = map.index_of_id.find(id);
    if (it == map.index_of_id.end())
      where.fail("image/object/class/label " + std::to_string(id) + " is not in label_map.pbtxt");
    if (!name.empty() && map.labels[it->second] != name)
      where.fail("image/object/class/text " + quote(name) + " is not label " + std::to_string(id) + "'s name " +
                 quote(map.labels[it->second]));
    return it->second;
  }
  if (name.empty()) return -1;
  const auto it = map.index_of_name.find(name);
  if (it == map.index_of_name.end())
    where.fail("image/object/class/text " + quote(name) + " is not in label_map.pbtxt");
  return it->second;
}

std::vector<RawObject> record_objects(const std::map<std::string, TfFeature>& f,
                                      const LabelMap& map,
                                      const RecordAt& where) {
  using K = TfFeature::Kind;
  const char* keys[] = {"image/object/bbox/xmin", "image/object/bbox/ymin", "image/object/bbox/xmax",
                        "image/object/bbox/ymax"};
  const TfFeature* box[4];
  for (int i = 0; i < 4; ++i) box[i] = feature(f, keys[i], K::floats, where);
  const TfFeature* label = feature(f, "image/object/class/label", K::ints, where);
  const TfFeature* text = feature(f, "image/object/class/text", K::bytes, where);
  const size_t n = box[0] ? box[0]->floats.size() : 0;
  for (int i = 0; i < 4; ++i)
    if ((box[i] ? box[i]->floats.size() : 0) != n)
      where.fail(std::string(keys[i]) + " has " + std::to_string(box[i] ? box[i]->floats.size() : 0) + " values, " +
                 keys[0] + " " + std::to_string(n));
  if ((label && label->ints.size() != n) || (text && text->bytes.size() != n) || (n && !label && !text))
    where.fail("image/object/class/label and class/text must give one label per box (" + std::to_string(n) + ")");
  std::vector<RawObject> objects;
  for (size_t k = 0; k < n; ++k) {
    RawObject o;
    o.where = "object " + std::to_string(k);
    o.label = object_label(label, text, k, map, where.at(o.where));
    const double x0 = box[0]->floats[k], y0 = box[1]->floats[k], x1 = box[2]->floats[k], y1 = box[3]->floats[k];
    if (!std::isfinite(x0) || !std::isfinite(y0) || !std::isfinite(x1) || !std::isfinite(y1))
      where.fail(o.where + ": image/object/bbox holds a non-finite value");
    o.bbox = {x0, y0, x1 - x0, y1 - y0};
    o.normalized = true;
    objects.push_back(std::move(o));
  }
  return objects;
}

struct RecordContext {
  fs::path root, file, extract_dir;
  std::string subset;             // the file's stem, as named
  std::string folder;             // the subset's folder name: safe_folder(subset)
  std::set<std::string> written;  // names extracted for this subset
};

// A subset's folder under the extraction (and images/) folder: its name, unless that is no folder name
// ("...tfrecord" names its subset "..", which must not become a path), then ".subset<n>".
std::string safe_folder(const std::string& subset, size_t n) {
  const bool plain =
      !subset.empty() && subset != "." && subset != ".." &&
      std::none_of(subset.begin(), subset.end(), [](unsigned char ch) { return ch < 0x20 || ch == '/'; });
  return plain ? subset : ".subset" + std::to_string(n);
}

// Where the record's image is: written out from image/encoded, else looked for on disk.
void place_image(const std::map<std::string, TfFeature>& f,
                 int64_t index,
                 RecordContext& c,
                 RawImage& image,
                 const RecordAt& where) {
  using K = TfFeature::Kind;
  const TfFeature* encoded = feature(f, "image/encoded", K::bytes, where);
  const TfFeature* format = feature(f, "image/format", K::bytes, where);
  const bool embedded = encoded && !encoded->bytes.empty() && !encoded->bytes[0].empty();
  if (!embedded) {
    for (const auto& dir : {c.file.parent_path(), c.root / "images" / c.folder, c.root / "images"})
      if (auto found = find_inside(dir, image.file_name)) {
        image.path = *found;
        return;
      }
    image.path = c.file.parent_path() / fs::path(image.file_name).filename();
    return;
  }
  if (c.extract_dir.empty()) where.fail("image/encoded holds the image: an extraction folder is needed to train on it");
  std::string name = fs::path(image.file_name).filename().string();
  if (name.empty() || name == "." || name == "..") {
    const std::string ext = format && !format->bytes.empty() && format->bytes[0] == "png" ? ".png" : ".jpg";
    name = std::to_string(index + 1) + ext;
  }
  if (!c.written.insert(name).second)
    where.fail("image/filename " + quote(image.file_name) + " repeats in subset " + quote(c.subset));
  image.path = c.extract_dir / c.folder / name;
  fs::create_directories(image.path.parent_path());
  util::write_file_atomically(image.path, encoded->bytes[0]);
  if (image.file_name.empty()) image.file_name = name;
}

int64_t int_feature(const std::map<std::string, TfFeature>& f, const std::string& key, const RecordAt& where) {
  const TfFeature* v = feature(f, key, TfFeature::Kind::ints, where);
  if (!v) return 0;
  if (v->ints.size() != 1 || v->ints[0] <= 0)
    where.fail(key + " must be one positive integer, got " +
               (v->ints.empty() ? std::string("none") : std::to_string(v->ints[0])));
  return v->ints[0];
}

RawSubset read_subset(const fs::path& file, const LabelMap& map, RecordContext& c) {
  RawSubset subset{c.subset, file, {}};
  TfRecordReader reader(file);
  std::string record;
  while (reader.next(record)) {
    const RecordAt where{file, "record " + std::to_string(reader.index())};
    std::map<std::string, TfFeature> f;
    try {
      f = parse_tf_example(record);
    } catch (const TfExampleTooLarge& e) {
      where.fail(e.what());
    } catch (const std::runtime_error& e) {
      where.fail(std::string("not a valid tf.train.Example: ") + e.what());
    }
    RawImage image;
    image.id = reader.index() + 1;
    image.source = file.string() + ": record " + std::to_string(reader.index());
    if (const TfFeature* name = feature(f, "image/filename", TfFeature::Kind::bytes, where);
        name && !name->bytes.empty())
      image.file_name = std::string(name->bytes[0]);
    if (image.file_name.find('\0') != std::string::npos) where.fail("image/filename contains a NUL");
    image.width = int_feature(f, "image/width", where);
    image.height = int_feature(f, "image/height", where);
    if ((image.width == 0) != (image.height == 0)) where.fail("image/width and image/height come together");
    image.objects = record_objects(f, map, where);
    place_image(f, reader.index(), c, image, where);
    subset.images.push_back(std::move(image));
  }
  return subset;
}

std::vector<fs::path> tfrecord_files(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file(ec) && e.path().extension() == ".tfrecord") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

// A folder's label map: label_map.pbtxt, else its one *label_map.pbtxt (Roboflow names it
// <project>_label_map.pbtxt).
fs::path label_map_of(const fs::path& dir) {
  if (std::error_code ec; fs::is_regular_file(dir / "label_map.pbtxt", ec)) return dir / "label_map.pbtxt";
  std::vector<fs::path> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file(ec) && name.size() >= 15 && name.compare(name.size() - 15, 15, "label_map.pbtxt") == 0)
      found.push_back(e.path());
  }
  return found.size() == 1 ? found.front() : dir / "label_map.pbtxt";
}

}  // namespace

std::vector<fs::path> tfrecord_roboflow_dirs(const fs::path& root) {
  std::vector<fs::path> dirs;
  std::error_code ec;
  if (!tfrecord_files(root).empty()) return dirs;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_directory(ec) && !tfrecord_files(e.path()).empty()) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

RawExport read_tfrecord(const fs::path& root, const fs::path& extract_dir) {
  RawExport data;
  data.format = "tfrecord";
  auto dirs = tfrecord_roboflow_dirs(root);
  const bool roboflow = !dirs.empty();
  if (!roboflow) dirs = {root};
  const LabelMap map = make_label_map(label_map_of(dirs.front()));
  data.labels = map.labels;
  size_t n = 0;
  for (const auto& dir : dirs) {
    if (roboflow && make_label_map(label_map_of(dir)).labels != map.labels)
      throw std::runtime_error(label_map_of(dir).string() + ": its labels differ from " +
                               label_map_of(dirs.front()).string() + "'s");
    const auto files = tfrecord_files(dir);
    if (files.empty()) throw std::runtime_error(root.string() + ": no *.tfrecord files");
    for (const auto& file : files) {
      // Roboflow's subsets are its folders (train/, valid/, test/).
      const std::string subset = !roboflow           ? file.stem().string()
                                 : files.size() == 1 ? dir.filename().string()
                                                     : dir.filename().string() + "_" + file.stem().string();
      RecordContext c{dir, file, extract_dir, subset, safe_folder(subset, n++), {}};
      data.subsets.push_back(read_subset(file, map, c));
    }
  }
  return data;
}

}  // namespace detr::datasets::formats
