#include "src/args.h"

#include <cxxopts.hpp>

#include <stdexcept>

namespace detr {

namespace {

using M = models::ModelConfig;

// detr-cpp's own flags (upstream's are in flag_table).
void add_our_flags(FlagTable<TrainArgs>& t, const char* ours) {
  // clang-format off
  t.add(ours, "dataset_format", "auto|coco|yolo|ultralytics|voc|labelme|mot|tfrecord|cvat|datumaro|kitti|createml|open_images (also CVAT's and Onepanel's names: cvat_yolo, \"PASCAL VOC 1.1\", \"Ultralytics YOLO Detection 1.0\", ...); auto: detected from the files under --coco_path", &TrainArgs::dataset_format);
  t.add(ours, "num_classes", "max category id + 1 (default 0: from the data)", &TrainArgs::num_classes);
  t.add(ours, run_flags::kNumThreads, &TrainArgs::num_threads);
  t.add_switch(ours, "check_data", "validate the dataset, print a summary and exit", [](TrainArgs& a) -> bool& { return a.check_data; });
  t.add_switch(ours, "skip_bad_images", "skip (and count) images that would make training wrong instead of failing", [](TrainArgs& a) -> bool& { return a.skip_bad_images; });
  t.add(ours, "max_image_pixels", "refuse images whose header declares more pixels (decompression bombs); default: PIL's refusal point", &TrainArgs::max_image_pixels);
  t.add(ours, "val_split", "share of images held out for validation when the export has no validation subset (default -1: 0.1 with >= 10 images, else validate on the training images; 0 = never split)", &TrainArgs::val_split);
  t.add(ours, "train_annotations", "explicit training annotation file", &TrainArgs::train_annotations);
  t.add(ours, "val_annotations", "explicit validation annotation file", &TrainArgs::val_annotations);
  t.add(ours, "image_dir", "explicit image folder", &TrainArgs::image_dir);
  t.add(ours, "scales", "training sizes of the shorter side, comma-separated (default: 480,512,...,800)", &TrainArgs::scales);
  t.add(ours, "max_size", "longest side cap", &TrainArgs::max_size);
  t.add(ours, "val_size", "validation shorter side", &TrainArgs::val_size);
  t.add(ours, "pretrained", "initial weights: NAME (upstream's model zoo: R50, R50-DC5, R101, R101-DC5), PATH (our checkpoint, an upstream DETR .pth, or a directory) or URL; the class head is skipped when num_classes differs", &TrainArgs::pretrained);
  t.add(ours, "backbone_weights", "auto (torchvision's ImageNet ResNet, downloaded into the torch.hub cache, as upstream), none (random), PATH or URL", &TrainArgs::backbone_weights);
  t.add(ours, "crowd", "auto|ignore|objects: RLE crowd annotations (CVAT writes brush and SAM masks so) as objects, or ignored as upstream does; auto: objects when the export is CVAT's (its annotations carry attributes)", &TrainArgs::crowd);
  t.add_switch(ours, "boxes_from_masks", "derive each box from its object's mask (CVAT boxes often disagree with their polygons; --check_data counts them)", [](TrainArgs& a) -> bool& { return a.boxes_from_masks; });
  t.add(ours, "best_metric", "bbox|segm: which AP picks best.pth (segm needs --masks)", &TrainArgs::best_metric);
  t.add(ours, "eval_every", "evaluate every N epochs (0 = only at the end)", &TrainArgs::eval_every);
  t.add(ours, "tb_images", "validation images drawn with their ground truth and predictions into TensorBoard at every evaluation (the same images each time, spread over the classes; 0 = none)", &TrainArgs::tb_images);
  t.add(ours, "print_freq", "log every N steps when not on a terminal", &TrainArgs::print_freq);
  t.add(ours, "dist_backend", "nccl|gloo (default: nccl on CUDA, gloo on CPU)", &TrainArgs::dist_backend);
  t.add(ours, "dist_timeout", "seconds a distributed rendezvous or collective may wait for a peer before every rank exits with an error", &TrainArgs::dist_timeout);
  t.add(ours, run_flags::kAmp, &TrainArgs::amp);
  t.add(ours, run_flags::kConvAlgorithm, &TrainArgs::conv_algorithm);
  t.add_switch(ours, "parse_only", "check the command line, print the resolved flags as JSON and exit", [](TrainArgs& a) -> bool& { return a.parse_only; });
  t.add(ours, "sys_metrics", "write final metrics for Onepanel here (default: /tmp/sys-metrics.json when ONEPANEL_RESOURCE_UID is set)", &TrainArgs::sys_metrics);
  // clang-format on
}

const FlagTable<TrainArgs>& flag_table() {
  static const FlagTable<TrainArgs> table = [] {
    FlagTable<TrainArgs> t("detr_train", "Trains DETR on a COCO / CVAT export (upstream main.py's flags).");
    const char* up = "upstream";
    const char* ours = "detr-cpp";
    auto model_switch = [](bool M::*field) { return [field](TrainArgs& a) -> bool& { return a.model.*field; }; };
    // clang-format off
    t.add(up, "lr", "learning rate of the transformer and heads", &TrainArgs::lr);
    t.add(up, "lr_backbone", "learning rate of the backbone; <= 0 freezes it", &TrainArgs::lr_backbone);
    t.add(up, "batch_size", "images per process", &TrainArgs::batch_size);
    t.add(up, "weight_decay", "AdamW weight decay", &TrainArgs::weight_decay);
    t.add(up, "epochs", "epochs to train", &TrainArgs::epochs);
    t.add(up, "lr_drop", "StepLR step (epochs)", &TrainArgs::lr_drop);
    t.add(up, "clip_max_norm", "gradient clipping max norm (0 = off)", &TrainArgs::clip_max_norm);
    t.add(up, "frozen_weights", "segmentation: a trained box model (checkpoint or upstream .pth) whose DETR is loaded and frozen; only the mask head trains (upstream's two-stage recipe; needs --masks)", &TrainArgs::frozen_weights);
    t.add(up, "backbone", "resnet18|resnet34|resnet50|resnet101", &TrainArgs::model, &M::backbone);
    t.add_switch(up, "dilation", "DC5: dilate the last stage", model_switch(&M::dilation));
    t.add(up, "position_embedding", "sine|learned", &TrainArgs::model, &M::position_embedding);
    t.add(up, "enc_layers", "encoder layers", &TrainArgs::model, &M::enc_layers);
    t.add(up, "dec_layers", "decoder layers", &TrainArgs::model, &M::dec_layers);
    t.add(up, "dim_feedforward", "FFN width", &TrainArgs::model, &M::dim_feedforward);
    t.add(up, "hidden_dim", "transformer width", &TrainArgs::model, &M::hidden_dim);
    t.add(up, "dropout", "transformer dropout", &TrainArgs::model, &M::dropout);
    t.add(up, "nheads", "attention heads", &TrainArgs::model, &M::nheads);
    t.add(up, "num_queries", "object queries", &TrainArgs::model, &M::num_queries);
    t.add_switch(up, "pre_norm", "pre-norm transformer layers", model_switch(&M::pre_norm));
    t.add_switch(up, "masks", "instance segmentation: DETRsegm's mask head on top of DETR, trained on the export's polygons and masks", model_switch(&M::masks));
    t.add_switch(up, "no_aux_loss", "disable the per-decoder-layer losses", model_switch(&M::aux_loss), false, "aux_loss");
    t.add(up, "set_cost_class", "matcher class cost", &TrainArgs::model, &M::set_cost_class);
    t.add(up, "set_cost_bbox", "matcher L1 cost", &TrainArgs::model, &M::set_cost_bbox);
    t.add(up, "set_cost_giou", "matcher GIoU cost", &TrainArgs::model, &M::set_cost_giou);
    t.add(up, "mask_loss_coef", "segmentation: weight of the sigmoid focal mask loss", &TrainArgs::model, &M::mask_loss_coef);
    t.add(up, "dice_loss_coef", "segmentation: weight of the DICE mask loss", &TrainArgs::model, &M::dice_loss_coef);
    t.add(up, "bbox_loss_coef", "L1 box loss weight", &TrainArgs::model, &M::bbox_loss_coef);
    t.add(up, "giou_loss_coef", "GIoU loss weight", &TrainArgs::model, &M::giou_loss_coef);
    t.add(up, "eos_coef", "no-object class weight", &TrainArgs::model, &M::eos_coef);
    t.add(up, "dataset_file", "coco", &TrainArgs::dataset_file);
    t.add(up, "coco_path", "dataset root: a CVAT export in any --dataset_format, Datumaro subsets or upstream's COCO layout", &TrainArgs::coco_path);
    t.add_unused(up, "coco_panoptic_path", "panoptic only (unsupported)", true);
    t.add_unused(up, "remove_difficult", "unused, as upstream");
    t.add(up, "output_dir", "where checkpoints, logs, classes.csv and TensorBoard events go (empty: nothing saved)", &TrainArgs::output_dir);
    t.add(up, run_flags::kDevice, &TrainArgs::device);
    t.add(up, "seed", "random seed", &TrainArgs::seed);
    t.add(up, "resume", "checkpoint (file or directory) to resume from", &TrainArgs::resume);
    t.add(up, "start_epoch", "first epoch (overridden by --resume)", &TrainArgs::start_epoch);
    t.add_switch(up, "eval", "evaluate the --resume checkpoint and exit", [](TrainArgs& a) -> bool& { return a.eval; });
    t.add(up, "num_workers", "data loading threads", &TrainArgs::num_workers);
    t.add(up, "world_size", "processes (overridden by WORLD_SIZE)", &TrainArgs::world_size);
    t.add(up, "dist_url", "process-group init method", &TrainArgs::dist_url);
    add_our_flags(t, ours);
    // clang-format on
    return t;
  }();
  return table;
}

void require(bool ok, const std::string& what) {
  if (!ok) throw UsageError(what);
}

void validate(TrainArgs& a, const std::set<std::string>& r, const Launch& launch) {
  require(!r.count("coco_panoptic_path"),
          "panoptic segmentation (--coco_panoptic_path) is not supported: CVAT exports no panoptic format");
  require(a.frozen_weights.empty() || a.model.masks,
          "--frozen_weights is for training segmentation only (add --masks)");
  require(a.best_metric == datasets::IouType::bbox || a.model.masks, "--best_metric segm needs --masks");
  require(a.dataset_file == "coco", "--dataset_file: only 'coco' is supported, got '" + a.dataset_file + "'");
  require(!a.coco_path.empty(), "--coco_path is required");
  for (const auto& [flag, v] : {std::pair<const char*, int64_t>{"batch_size", a.batch_size},
                                {"lr_drop", a.lr_drop},
                                {"max_size", a.max_size},
                                {"val_size", a.val_size},
                                {"print_freq", a.print_freq},
                                {"max_image_pixels", a.max_image_pixels},
                                {"world_size", a.world_size}})
    require(v > 0, std::string("--") + flag + " must be positive, got " + std::to_string(v));
  for (const auto& [flag, v] : {std::pair<const char*, int64_t>{"epochs", a.epochs},
                                {"num_workers", a.num_workers},
                                {"eval_every", a.eval_every},
                                {"num_classes", a.num_classes},
                                {"num_threads", a.num_threads}})
    require(v >= 0, std::string("--") + flag + " must be >= 0, got " + std::to_string(v));
  require(a.val_split == -1 || (a.val_split >= 0 && a.val_split < 1),
          "--val_split must be in [0, 1), got " + std::to_string(a.val_split));
  require(a.tb_images >= 0 && a.tb_images <= 64, "--tb_images must be in [0, 64], got " + std::to_string(a.tb_images));
  require(a.lr > 0, "--lr must be positive, got " + flag_codec::text(a.lr));
  require(a.dist_timeout > 0, "--dist_timeout must be positive seconds, got " + flag_codec::text(a.dist_timeout));
  require(a.world_size == 1 || launch.job,
          "--world_size " + std::to_string(a.world_size) +
              " needs a launcher that starts the processes and sets RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT "
              "(torchrun --nproc_per_node=N --no-python detr_train ..., a PyTorchJob, SLURM)");
  a.model.train_backbone = a.lr_backbone > 0;
  if (a.num_classes > 0) a.model.num_classes = a.num_classes;
  try {
    auto probe = a.model;
    probe.num_classes = a.num_classes > 0 ? a.num_classes : 1;  // 0: decided by the data
    probe.validate();
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
}

}  // namespace

ParsedTrainCommand parse_train_command(int argc, const char* const* argv) {
  ParsedTrainCommand cmd;
  const auto line = flag_table().parse(argc, argv, cmd.args);
  if (!line.print.empty()) {
    cmd.help = line.print;
    return cmd;
  }
  cmd.launch = Launch::from_environment(cmd.args.dist_url);  // a malformed variable: runtime_error, exit 1
  validate(cmd.args, line.given, cmd.launch);
  return cmd;
}

nlohmann::json TrainArgs::to_json() const {
  auto j = models::to_json(model);
  j.update(flag_table().to_json(*this));
  j["num_classes"] = model.num_classes;  // the head's size (the flag's 0 means "from the data")
  j["distributed"] = world_size > 1;
  return j;
}

RunOptions TrainArgs::run_options() const {
  RunOptions o;
  o.device = device;
  o.num_threads = num_threads;
  o.conv_algorithm = conv_algorithm;
  o.dist_backend = dist_backend;
  o.dist_timeout_s = dist_timeout;
  o.watch_signals = true;
  o.cudnn_benchmark = true;
  return o;
}

}  // namespace detr
