// Training and evaluation loops (upstream engine.py): one optimisation step as upstream takes it,
// an epoch over a loader with upstream's logged keys, and evaluation with native COCO AP.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "datasets/coco.h"
#include "datasets/coco_eval.h"
#include "datasets/eval_tables.h"
#include "datasets/loader.h"
#include "models/build.h"
#include "models/detr.h"
#include "models/set_criterion.h"
#include "src/amp.h"
#include "src/distributed.h"
#include "src/metric_logger.h"
#include "src/optimizer.h"

namespace detr {

struct StepOutput {
  double loss = 0;                                    // Σ weighted terms (upstream's loss_value)
  double grad_norm = 0;                               // total gradient norm before clipping
  std::vector<std::pair<std::string, double>> terms;  // every loss-dict entry, unscaled, in order
  bool skipped = false;                               // fp16: inf/NaN gradients, the optimizer step was skipped
  double loss_scale = 1;                              // fp16: the scale this step used
};

// Seconds per phase of one step, filled only when asked for (the device is synchronised at each
// boundary, which costs a little on GPU).
struct StepTimings {
  double h2d = 0, forward = 0, matcher = 0, loss = 0, backward = 0, grad_sync = 0, optimizer = 0;
};

// What the loops work on besides the data: upstream passes these to train_one_epoch one by one.
struct TrainSetup {
  models::DetrModel model;  // DETR, or DETRsegm (--masks)
  models::SetCriterion criterion{nullptr};
  AdamW* optimizer = nullptr;  // training only
  torch::Device device = torch::kCPU;
  double max_norm = 0.1;  // --clip_max_norm (0: no clipping)
  dist::StepSync sync;    // a job's process group and gradient reducer; empty: one process
  AmpState amp;           // mixed precision; float32 by default

  dist::ProcessGroup* group() const {  // the job's group when it has more than one process
    return sync.group && sync.group->world_size() > 1 ? sync.group : nullptr;
  }
};

// One optimisation step: forward, criterion, weighted total, non-finite check (throws with every
// term), zero_grad, backward, clip_grad_norm over all parameters, AdamW step.
// In a job (`sync` given) as upstream under DDP: num_boxes summed over ranks and divided by the world
// size, the logged terms averaged over ranks (so every rank takes the same finiteness decision), and
// gradients averaged over ranks before clipping. With `amp`, the network's forward runs under
// autocast and everything after it in float32; fp16 scales the loss and unscales before clipping.
StepOutput train_step(TrainSetup& t, const datasets::Batch& batch, StepTimings* timings = nullptr);

// Adds one step's values to `logger` as upstream's MetricLogger does (lr, class_error, loss, scaled
// terms, *_unscaled terms).
void log_step(MetricLogger& logger,
              const StepOutput& step,
              const std::map<std::string, double>& weight_dict,
              double lr);

struct EpochCallbacks {
  // After each step: (step index in epoch, steps in epoch, step output, images in the batch, seconds).
  std::function<void(int64_t, int64_t, const StepOutput&, int64_t, double)> on_step;
  // Polled before each step; true stops the epoch early. In a job it must give every rank the same
  // answer (RunContext::stopping votes).
  std::function<bool()> should_stop;
};

// upstream train_one_epoch: returns the epoch means (keys without the train_ prefix). first_step > 0
// continues an interrupted epoch; callbacks.should_stop, polled before each step, ends it early (in a
// job it must answer the same on every rank: RunContext::stopping votes).
MetricLogger train_one_epoch(TrainSetup& t,
                             datasets::DataLoader& loader,
                             int64_t epoch,
                             const EpochCallbacks& callbacks = {},
                             int64_t first_step = 0);

struct EvalOutput {
  MetricLogger stats;                            // loss terms, epoch means
  datasets::CocoEvalResult coco;                 // the 12 COCO bbox stats, per-category AP
  std::vector<datasets::CocoResult> detections;  // COCO results (xywh, raw category ids)
  // Segmentation models (outputs with pred_masks) only: upstream's segm evaluation.
  datasets::CocoEvalResult coco_masks;                // the 12 COCO segm stats
  std::vector<datasets::CocoResult> mask_detections;  // one RLE mask per query and image
  // Rank 0: the per-class figures and the confusion matrix of boxes (datasets/eval_tables.h).
  std::vector<datasets::PerClassRow> per_class;
  datasets::ConfusionMatrix confusion;
};

// upstream evaluate: losses, PostProcess on the original sizes, COCO bbox evaluation against the
// split's annotations (crowd regions included, as pycocotools sees the file).
// should_stop, when given, is polled before each batch; a stopped evaluation throws.
// In a job each rank evaluates its shard of the loader; the loss meters and detections are gathered
// and every rank returns the merged losses and detections, while the COCO evaluation runs on rank 0
// only (other ranks' `coco` is left empty).
EvalOutput evaluate(TrainSetup& t,
                    datasets::DataLoader& loader,
                    const datasets::CocoDataset& data,
                    const std::function<bool()>& should_stop = {});

// One evaluation batch: the model's outputs, its loss terms into `stats`, and the post-processed
// detections on the original image sizes appended to `detections` (upstream evaluate's loop body).
// With a segmentation model, PostProcessSegm's masks go to `out.mask_detections` as compressed RLE
// (upstream's CocoEvaluator 'segm'). `timings`, when given, receives the matcher's share.
models::DetrOutput evaluate_batch(TrainSetup& t,
                                  const datasets::Batch& batch,
                                  EvalOutput& out,
                                  StepTimings* timings = nullptr);

}  // namespace detr
