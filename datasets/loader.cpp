#include "datasets/loader.h"

#include <ATen/Parallel.h>

#include <numeric>
#include <random>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace detr::datasets {

namespace {

// Upstream's criterion pads the batch's target masks bottom/right (nested_tensor_from_tensor_list),
// which lines them up with the padded images only if each sample's masks have its image's size.
void check_masks(const Sample& s, size_t index) {
  TORCH_CHECK(!s.mask_rles, "collate: sample ", index, ": its masks are RLEs not yet decoded (transform it first)");
  const auto& m = s.target.masks;
  if (!m.defined()) return;
  TORCH_CHECK(m.dim() == 3 && m.size(1) == s.image.size(1) && m.size(2) == s.image.size(2), "collate: sample ", index,
              ": target.masks must be [N, H, W] with the image's H x W ", s.image.sizes().slice(1), ", got ",
              m.sizes());
  const auto& b = s.target.boxes;
  TORCH_CHECK(!b.defined() || b.size(0) == m.size(0), "collate: sample ", index, ": ", m.size(0), " masks for ",
              b.size(0), " boxes");
}

}  // namespace

Batch collate(std::vector<Sample> samples) {
  std::vector<torch::Tensor> images;
  Batch batch;
  for (size_t i = 0; i < samples.size(); ++i) {
    check_masks(samples[i], i);
    images.push_back(std::move(samples[i].image));
    batch.targets.push_back(std::move(samples[i].target));
  }
  batch.samples = util::nested_tensor_from_tensor_list(images);
  return batch;
}

uint64_t sample_seed(uint64_t seed, int64_t epoch, size_t index) {
  // splitmix64 over the three numbers: well mixed, cheap, platform independent.
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  return mix(mix(mix(seed) ^ static_cast<uint64_t>(epoch)) ^ static_cast<uint64_t>(index));
}

std::vector<size_t> epoch_indices(size_t n, const LoaderOptions& o, int64_t epoch) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (o.shuffle) {
    std::mt19937_64 rng(sample_seed(o.seed, epoch, ~size_t{0}));
    for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[std::uniform_int_distribution<size_t>(0, i - 1)(rng)]);
  }
  if (o.world_size <= 1) return order;
  // DistributedSampler: pad by repeating from the start to a multiple of world_size, take every
  // world_size-th index from rank.
  const size_t ws = static_cast<size_t>(o.world_size);
  const size_t total = o.pad_to_world ? (n + ws - 1) / ws * ws : n;
  for (size_t i = n; i < total; ++i) order.push_back(order[i - n]);
  std::vector<size_t> mine;
  for (size_t i = static_cast<size_t>(o.rank); i < total; i += ws) mine.push_back(order[i]);
  return mine;
}

int64_t batches_per_epoch(size_t n, const LoaderOptions& o) {
  if (o.batch_size <= 0)
    throw std::invalid_argument("--batch_size must be positive, got " + std::to_string(o.batch_size));
  if (n == 0) throw std::runtime_error("the dataset has no images");
  const size_t ws = static_cast<size_t>(std::max(1, o.world_size));
  const size_t rank = static_cast<size_t>(std::max(0, o.rank));
  const int64_t per_rank = static_cast<int64_t>(o.pad_to_world ? (n + ws - 1) / ws : (n + ws - 1 - rank) / ws);
  const int64_t b = o.drop_last ? per_rank / o.batch_size : (per_rank + o.batch_size - 1) / o.batch_size;
  if (b == 0 && o.drop_last)  // an evaluation shard may be empty (more ranks than images)
    throw std::runtime_error("--batch_size " + std::to_string(o.batch_size) + " is larger than the " +
                             std::to_string(per_rank) + " training images" + (ws > 1 ? " per process" : std::string()) +
                             ": no full batch (upstream fails with ZeroDivisionError); use --batch_size " +
                             std::to_string(per_rank) + " or less");
  return b;
}

DataLoader::DataLoader(const CocoDetection& dataset, LoaderOptions options) : dataset_(dataset), options_(options) {
  num_batches_ = batches_per_epoch(dataset.size(), options_);
  if (options_.prefetch_batches <= 0) options_.prefetch_batches = std::max(2, options_.num_workers);
}

DataLoader::~DataLoader() { stop(); }

void DataLoader::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  stopping_ = false;
}

Batch DataLoader::make_batch(int64_t b) const {
  std::vector<Sample> samples;
  const auto first = static_cast<size_t>(b * options_.batch_size);
  const auto last = std::min(order_.size(), first + static_cast<size_t>(options_.batch_size));
  for (size_t k = first; k < last; ++k)
    samples.push_back(dataset_.get(order_[k], sample_seed(options_.seed, epoch_, order_[k])));
  auto batch = collate(std::move(samples));
  if (options_.pin_memory) {
    batch.samples.tensors = batch.samples.tensors.pin_memory();
    batch.samples.mask = batch.samples.mask.pin_memory();
    for (auto& t : batch.targets)  // the largest target field: copied to the GPU asynchronously too
      if (t.masks.defined() && t.masks.numel()) t.masks = t.masks.pin_memory();
  }
  return batch;
}

void DataLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  stop();
  epoch_ = epoch;
  order_ = epoch_indices(dataset_.size(), options_, epoch);
  next_to_make_ = next_to_give_ = std::min(std::max<int64_t>(first_batch, 0), num_batches_);
  ready_.clear();
  error_ = nullptr;
  for (int w = 0; w < options_.num_workers; ++w) workers_.emplace_back([this] { worker_loop(); });
}

// Loader threads decode and resize one image at a time: they must not each open an OpenMP team as
// wide as the training step's, which would oversubscribe the cores the step runs on (upstream's
// worker processes likewise run with one thread).
static void single_threaded_ops() {
  at::init_num_threads();  // ATen's per-thread lazy initialisation first, so it cannot undo this
#ifdef _OPENMP
  omp_set_num_threads(1);  // this thread's OpenMP teams only
#endif
}

void DataLoader::worker_loop() {
  single_threaded_ops();
  torch::NoGradGuard no_grad;
  for (;;) {
    int64_t b;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] {
        return stopping_ || next_to_make_ >= num_batches_ || next_to_make_ - next_to_give_ < options_.prefetch_batches;
      });
      if (stopping_ || next_to_make_ >= num_batches_) return;
      b = next_to_make_++;
    }
    try {
      auto batch = make_batch(b);
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.emplace(b, std::move(batch));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    cv_.notify_all();
  }
}

std::optional<Batch> DataLoader::next() {
  if (next_to_give_ >= num_batches_) return std::nullopt;
  if (options_.num_workers == 0) {
    torch::NoGradGuard no_grad;
    return make_batch(next_to_give_++);
  }
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [&] { return error_ || ready_.count(next_to_give_); });
  if (error_) std::rethrow_exception(error_);
  auto node = ready_.extract(next_to_give_++);
  lock.unlock();
  cv_.notify_all();
  return std::move(node.mapped());
}

}  // namespace detr::datasets
