// Batches for the training loop (upstream: DataLoader + BatchSampler + collate_fn): worker threads
// with a bounded prefetch queue. The order of samples and each sample's augmentation depend only on
// (seed, epoch, index), so a seed reproduces an epoch exactly whatever the number of workers.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "datasets/coco_detection.h"
#include "util/misc.h"

namespace detr::datasets {

struct Batch {
  util::NestedTensor samples;         // [B, 3, H, W], mask [B, H, W] true on padding
  std::vector<util::Target> targets;  // normalized cxcywh boxes; masks (optional) [N_b, H_b, W_b]
};

// upstream collate_fn: pads the images bottom/right to the batch's largest; targets pass through
// unpadded, masks included (upstream's criterion pads them to the batch, as the images). Checks that
// each sample's masks have its image's size and one row per box.
Batch collate(std::vector<Sample> samples);

struct LoaderOptions {
  int64_t batch_size = 2;
  bool shuffle = true;       // train: a seeded permutation per epoch; val: sequential
  bool drop_last = true;     // train: as upstream
  int num_workers = 2;       // 0 = load on the calling thread
  int prefetch_batches = 0;  // queue bound; 0 = max(2, num_workers) (each batch is tens of MB)
  uint64_t seed = 42;
  int rank = 0, world_size = 1;  // DistributedSampler: padded to a multiple of world_size, strided
  bool pad_to_world = true;      // false (evaluation): strided without repeats, every image once
  bool pin_memory = false;       // page-locked batches (CUDA runs: asynchronous host-to-device copies)
};

// The indices this rank visits in an epoch (upstream RandomSampler / DistributedSampler semantics).
std::vector<size_t> epoch_indices(size_t dataset_size, const LoaderOptions& options, int64_t epoch);
// Batches per epoch; throws a clear error where upstream would divide by zero (no full batch).
int64_t batches_per_epoch(size_t dataset_size, const LoaderOptions& options);
// The seed of one sample's augmentation.
uint64_t sample_seed(uint64_t seed, int64_t epoch, size_t index);

class DataLoader {
 public:
  DataLoader(const CocoDetection& dataset, LoaderOptions options);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t size() const { return num_batches_; }
  // Starts producing the batches of `epoch` from batch `first_batch` on (a resumed epoch skips the
  // batches it already trained on); stops any earlier epoch.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // The next batch in order, or nullopt at the end of the epoch. Rethrows a worker's error.
  std::optional<Batch> next();

 private:
  Batch make_batch(int64_t b) const;
  void worker_loop();
  void stop();

  const CocoDetection& dataset_;
  LoaderOptions options_;
  int64_t num_batches_ = 0;
  int64_t epoch_ = 0;
  std::vector<size_t> order_;

  std::mutex mutex_;
  std::condition_variable cv_;
  int64_t next_to_make_ = 0;  // next batch index a worker takes
  int64_t next_to_give_ = 0;  // next batch index next() returns
  std::map<int64_t, Batch> ready_;
  std::exception_ptr error_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace detr::datasets
