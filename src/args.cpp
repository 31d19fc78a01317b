#include "src/args.h"

#include <cxxopts.hpp>

#include <sstream>
#include <stdexcept>

#include "models/winograd_conv.h"

namespace detr {

namespace {

std::vector<int64_t> parse_int_list(const std::string& flag, const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      const long long v = std::stoll(item, &used);
      if (used != item.size() || v <= 0) throw std::invalid_argument("");
      out.push_back(v);
    } catch (const std::exception&) {
      throw UsageError("--" + flag + ": '" + item + "' is not a positive integer (expected e.g. 480,512,544)");
    }
  }
  if (out.empty()) throw UsageError("--" + flag + " needs at least one size");
  return out;
}

cxxopts::Options make_options() {
  cxxopts::Options o("detr_train", "Trains DETR on a COCO / CVAT export (upstream main.py's flags).");
  TrainArgs d;
  const auto& m = d.model;
  auto num = [](double v) {
    std::ostringstream s;
    s << v;
    return s.str();
  };
  // clang-format off
  o.add_options("upstream")
    ("lr", "learning rate of the transformer and heads", cxxopts::value<double>()->default_value(num(d.lr)))
    ("lr_backbone", "learning rate of the backbone; <= 0 freezes it", cxxopts::value<double>()->default_value(num(m.lr_backbone)))
    ("batch_size", "images per process", cxxopts::value<int64_t>()->default_value(std::to_string(d.batch_size)))
    ("weight_decay", "AdamW weight decay", cxxopts::value<double>()->default_value(num(d.weight_decay)))
    ("epochs", "epochs to train", cxxopts::value<int64_t>()->default_value(std::to_string(d.epochs)))
    ("lr_drop", "StepLR step (epochs)", cxxopts::value<int64_t>()->default_value(std::to_string(d.lr_drop)))
    ("clip_max_norm", "gradient clipping max norm (0 = off)", cxxopts::value<double>()->default_value(num(d.clip_max_norm)))
    ("frozen_weights", "segmentation only (unsupported)", cxxopts::value<std::string>())
    ("backbone", "resnet18|resnet34|resnet50|resnet101", cxxopts::value<std::string>()->default_value(m.backbone))
    ("dilation", "DC5: dilate the last stage")
    ("position_embedding", "sine|learned", cxxopts::value<std::string>()->default_value(m.position_embedding))
    ("enc_layers", "encoder layers", cxxopts::value<int64_t>()->default_value(std::to_string(m.enc_layers)))
    ("dec_layers", "decoder layers", cxxopts::value<int64_t>()->default_value(std::to_string(m.dec_layers)))
    ("dim_feedforward", "FFN width", cxxopts::value<int64_t>()->default_value(std::to_string(m.dim_feedforward)))
    ("hidden_dim", "transformer width", cxxopts::value<int64_t>()->default_value(std::to_string(m.hidden_dim)))
    ("dropout", "transformer dropout", cxxopts::value<double>()->default_value(num(m.dropout)))
    ("nheads", "attention heads", cxxopts::value<int64_t>()->default_value(std::to_string(m.nheads)))
    ("num_queries", "object queries", cxxopts::value<int64_t>()->default_value(std::to_string(m.num_queries)))
    ("pre_norm", "pre-norm transformer layers")
    ("masks", "segmentation head (unsupported)")
    ("no_aux_loss", "disable the per-decoder-layer losses")
    ("set_cost_class", "matcher class cost", cxxopts::value<double>()->default_value(num(m.set_cost_class)))
    ("set_cost_bbox", "matcher L1 cost", cxxopts::value<double>()->default_value(num(m.set_cost_bbox)))
    ("set_cost_giou", "matcher GIoU cost", cxxopts::value<double>()->default_value(num(m.set_cost_giou)))
    ("mask_loss_coef", "segmentation only", cxxopts::value<double>()->default_value("1"))
    ("dice_loss_coef", "segmentation only", cxxopts::value<double>()->default_value("1"))
    ("bbox_loss_coef", "L1 box loss weight", cxxopts::value<double>()->default_value(num(m.bbox_loss_coef)))
    ("giou_loss_coef", "GIoU loss weight", cxxopts::value<double>()->default_value(num(m.giou_loss_coef)))
    ("eos_coef", "no-object class weight", cxxopts::value<double>()->default_value(num(m.eos_coef)))
    ("dataset_file", "coco", cxxopts::value<std::string>()->default_value(d.dataset_file))
    ("coco_path", "dataset root (CVAT export, Datumaro subsets or upstream's COCO layout)", cxxopts::value<std::string>())
    ("coco_panoptic_path", "panoptic only (unsupported)", cxxopts::value<std::string>())
    ("remove_difficult", "unused, as upstream")
    ("output_dir", "where checkpoints, logs, classes.csv and TensorBoard events go (empty: nothing saved)", cxxopts::value<std::string>()->default_value(""))
    ("device", "auto|cpu|cuda|cuda:N (auto: CUDA when available)", cxxopts::value<std::string>()->default_value(d.device))
    ("seed", "random seed", cxxopts::value<int64_t>()->default_value(std::to_string(d.seed)))
    ("resume", "checkpoint (file or directory) to resume from", cxxopts::value<std::string>()->default_value(""))
    ("start_epoch", "first epoch (overridden by --resume)", cxxopts::value<int64_t>()->default_value("0"))
    ("eval", "evaluate the --resume checkpoint and exit")
    ("num_workers", "data loading threads", cxxopts::value<int64_t>()->default_value(std::to_string(d.num_workers)))
    ("world_size", "processes (overridden by WORLD_SIZE)", cxxopts::value<int64_t>()->default_value("1"))
    ("dist_url", "process-group init method", cxxopts::value<std::string>()->default_value(d.dist_url));
  o.add_options("detr-cpp")
    ("num_classes", "max category id + 1 (default: from the data)", cxxopts::value<int64_t>()->default_value("0"))
    ("num_threads", "intra-op CPU threads (0 = all cores)", cxxopts::value<int64_t>()->default_value("0"))
    ("check_data", "validate the dataset, print a summary and exit")
    ("skip_bad_images", "skip (and count) images that would make training wrong instead of failing")
    ("max_image_pixels", "refuse images whose header declares more pixels (decompression bombs); default: "
     "PIL's refusal point, 178956970", cxxopts::value<int64_t>()->default_value("178956970"))
    ("val_split", "share of images held out for validation when the export has no validation subset "
                  "(default 0.1 with >= 10 images, else validate on the training images; 0 = never split)",
     cxxopts::value<double>()->default_value("-1"))
    ("train_annotations", "explicit training annotation file", cxxopts::value<std::string>()->default_value(""))
    ("val_annotations", "explicit validation annotation file", cxxopts::value<std::string>()->default_value(""))
    ("image_dir", "explicit image folder", cxxopts::value<std::string>()->default_value(""))
    ("scales", "training sizes of the shorter side, comma-separated (default 480,512,...,800)", cxxopts::value<std::string>()->default_value(""))
    ("max_size", "longest side cap", cxxopts::value<int64_t>()->default_value("1333"))
    ("val_size", "validation shorter side", cxxopts::value<int64_t>()->default_value("800"))
    ("pretrained", "initial weights: NAME (upstream's model zoo: R50, R50-DC5, R101, R101-DC5), PATH (our checkpoint, an upstream DETR .pth, or a directory) or URL; the class head is skipped when num_classes differs", cxxopts::value<std::string>()->default_value(""))
    ("backbone_weights", "auto (torchvision's ImageNet ResNet, downloaded into the torch.hub cache, as upstream), none (random), PATH or URL", cxxopts::value<std::string>()->default_value("auto"))
    ("eval_every", "evaluate every N epochs (0 = only at the end)", cxxopts::value<int64_t>()->default_value("1"))
    ("print_freq", "log every N steps when not on a terminal", cxxopts::value<int64_t>()->default_value("10"))
    ("dist_backend", "nccl|gloo (default: nccl on CUDA, gloo on CPU)", cxxopts::value<std::string>()->default_value(""))
    ("amp", "mixed precision: off (float32, upstream's arithmetic), bf16 (autocast), fp16 (autocast + dynamic loss scaling, CUDA)", cxxopts::value<std::string>()->default_value("off"))
    ("conv_algorithm", "CPU 3x3 convolutions: winograd (oneDNN's Winograd kernels where the CPU has them; about 2.5x faster, float32-rounding differences) or direct (LibTorch's kernels, as upstream)", cxxopts::value<std::string>()->default_value("winograd"))
    ("dist_timeout", "seconds a distributed rendezvous or collective may wait for a peer before every rank exits with an error", cxxopts::value<double>()->default_value("1800"))
    ("parse_only", "check the command line, print the resolved flags as JSON and exit")
    ("sys_metrics", "write final metrics for Onepanel here (default: /tmp/sys-metrics.json when ONEPANEL_RESOURCE_UID is set)", cxxopts::value<std::string>()->default_value(""))
    ("h,help", "print this help");
  // clang-format on
  return o;
}

}  // namespace

TrainArgs parse_train_args(int argc, const char* const* argv, std::string* help) {
  auto options = make_options();
  cxxopts::ParseResult r;
  try {
    r = options.parse(argc, argv);
  } catch (const cxxopts::exceptions::exception& e) {
    throw UsageError(e.what());
  }
  if (!r.unmatched().empty()) throw UsageError("unexpected argument '" + r.unmatched()[0] + "'");
  TrainArgs a;
  if (r.count("help")) {
    if (help) *help = options.help({"upstream", "detr-cpp"});
    return a;
  }
  auto& m = a.model;
  try {
    a.lr = r["lr"].as<double>();
    m.lr_backbone = r["lr_backbone"].as<double>();
    a.batch_size = r["batch_size"].as<int64_t>();
    a.weight_decay = r["weight_decay"].as<double>();
    a.epochs = r["epochs"].as<int64_t>();
    a.lr_drop = r["lr_drop"].as<int64_t>();
    a.clip_max_norm = r["clip_max_norm"].as<double>();
    m.backbone = r["backbone"].as<std::string>();
    m.dilation = r.count("dilation") > 0;
    m.position_embedding = r["position_embedding"].as<std::string>();
    m.enc_layers = r["enc_layers"].as<int64_t>();
    m.dec_layers = r["dec_layers"].as<int64_t>();
    m.dim_feedforward = r["dim_feedforward"].as<int64_t>();
    m.hidden_dim = r["hidden_dim"].as<int64_t>();
    m.dropout = r["dropout"].as<double>();
    m.nheads = r["nheads"].as<int64_t>();
    m.num_queries = r["num_queries"].as<int64_t>();
    m.pre_norm = r.count("pre_norm") > 0;
    m.aux_loss = r.count("no_aux_loss") == 0;
    m.set_cost_class = r["set_cost_class"].as<double>();
    m.set_cost_bbox = r["set_cost_bbox"].as<double>();
    m.set_cost_giou = r["set_cost_giou"].as<double>();
    m.bbox_loss_coef = r["bbox_loss_coef"].as<double>();
    m.giou_loss_coef = r["giou_loss_coef"].as<double>();
    m.eos_coef = r["eos_coef"].as<double>();
    a.dataset_file = r["dataset_file"].as<std::string>();
    if (r.count("coco_path")) a.coco_path = r["coco_path"].as<std::string>();
    a.output_dir = r["output_dir"].as<std::string>();
    a.device = r["device"].as<std::string>();
    a.seed = r["seed"].as<int64_t>();
    a.resume = r["resume"].as<std::string>();
    a.start_epoch = r["start_epoch"].as<int64_t>();
    a.eval = r.count("eval") > 0;
    a.num_workers = r["num_workers"].as<int64_t>();
    a.world_size = r["world_size"].as<int64_t>();
    a.dist_url = r["dist_url"].as<std::string>();
    a.num_classes = r["num_classes"].as<int64_t>();
    a.num_threads = r["num_threads"].as<int64_t>();
    a.check_data = r.count("check_data") > 0;
    a.skip_bad_images = r.count("skip_bad_images") > 0;
    a.max_image_pixels = r["max_image_pixels"].as<int64_t>();
    a.val_split = r["val_split"].as<double>();
    a.train_annotations = r["train_annotations"].as<std::string>();
    a.val_annotations = r["val_annotations"].as<std::string>();
    a.image_dir = r["image_dir"].as<std::string>();
    if (!r["scales"].as<std::string>().empty()) a.scales = parse_int_list("scales", r["scales"].as<std::string>());
    a.max_size = r["max_size"].as<int64_t>();
    a.val_size = r["val_size"].as<int64_t>();
    a.pretrained = r["pretrained"].as<std::string>();
    a.backbone_weights = r["backbone_weights"].as<std::string>();
    a.eval_every = r["eval_every"].as<int64_t>();
    a.print_freq = r["print_freq"].as<int64_t>();
    a.dist_backend = r["dist_backend"].as<std::string>();
    a.dist_timeout = r["dist_timeout"].as<double>();
    a.amp = r["amp"].as<std::string>();
    a.conv_algorithm = r["conv_algorithm"].as<std::string>();
    a.sys_metrics = r["sys_metrics"].as<std::string>();
    a.parse_only = r.count("parse_only") > 0;
  } catch (const cxxopts::exceptions::exception& e) {
    throw UsageError(e.what());
  }
  if (r.count("masks") || r.count("frozen_weights") || r.count("coco_panoptic_path"))
    throw UsageError("segmentation (--masks, --frozen_weights, --coco_panoptic_path) is not supported; "
                     "detr_train trains box detection");
  if (a.dataset_file != "coco") throw UsageError("--dataset_file: only 'coco' is supported, got '" + a.dataset_file + "'");
  if (a.coco_path.empty()) throw UsageError("--coco_path is required");
  auto positive = [](const char* flag, int64_t v) {
    if (v <= 0) throw UsageError(std::string("--") + flag + " must be positive, got " + std::to_string(v));
  };
  positive("batch_size", a.batch_size);
  positive("lr_drop", a.lr_drop);
  positive("max_size", a.max_size);
  positive("val_size", a.val_size);
  positive("print_freq", a.print_freq);
  if (a.epochs < 0) throw UsageError("--epochs must be >= 0, got " + std::to_string(a.epochs));
  if (a.num_workers < 0) throw UsageError("--num_workers must be >= 0");
  if (a.eval_every < 0) throw UsageError("--eval_every must be >= 0");
  if (a.num_classes < 0) throw UsageError("--num_classes must be >= 0");
  if (a.max_image_pixels < 1)
    throw UsageError("--max_image_pixels must be positive, got " + std::to_string(a.max_image_pixels));
  if (a.val_split != -1 && (a.val_split < 0 || a.val_split >= 1))
    throw UsageError("--val_split must be in [0, 1), got " + std::to_string(a.val_split));
  if (a.lr <= 0) throw UsageError("--lr must be positive");
  if (a.world_size < 1) throw UsageError("--world_size must be positive, got " + std::to_string(a.world_size));
  if (a.world_size > 1 && !std::getenv("WORLD_SIZE") && !std::getenv("SLURM_NTASKS"))
    throw UsageError("--world_size " + std::to_string(a.world_size) +
                     " needs a launcher that starts the processes and sets RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT "
                     "(torchrun --nproc_per_node=N --no-python detr_train ..., a PyTorchJob, SLURM)");
  if (!(a.dist_timeout > 0)) throw UsageError("--dist_timeout must be positive seconds");
  try {
    models::parse_conv_algorithm(a.conv_algorithm);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (a.amp != "off" && a.amp != "bf16" && a.amp != "fp16")
    throw UsageError("--amp must be off, bf16 or fp16, got '" + a.amp + "'");
  if (!a.dist_backend.empty() && a.dist_backend != "gloo" && a.dist_backend != "nccl")
    throw UsageError("--dist_backend must be gloo or nccl, got '" + a.dist_backend + "'");
  try {
    if (a.num_classes == 0) {
      auto probe = m;
      probe.num_classes = 1;
      probe.validate();
    } else {
      m.num_classes = a.num_classes;
      m.validate();
    }
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (a.device != "auto" && a.device != "cpu" && a.device.rfind("cuda", 0) != 0)
    throw UsageError("--device must be auto, cpu, cuda or cuda:N, got '" + a.device + "'");
  return a;
}

nlohmann::json TrainArgs::to_json() const {
  auto j = models::to_json(model);
  j["lr"] = lr;
  j["batch_size"] = batch_size;
  j["weight_decay"] = weight_decay;
  j["epochs"] = epochs;
  j["lr_drop"] = lr_drop;
  j["clip_max_norm"] = clip_max_norm;
  j["dataset_file"] = dataset_file;
  j["coco_path"] = coco_path;
  j["output_dir"] = output_dir;
  j["device"] = device;
  j["seed"] = seed;
  j["resume"] = resume;
  j["start_epoch"] = start_epoch;
  j["eval"] = eval;
  j["num_workers"] = num_workers;
  j["world_size"] = world_size;
  j["dist_url"] = dist_url;
  j["dist_backend"] = dist_backend;
  j["dist_timeout"] = dist_timeout;
  j["amp"] = amp;
  j["conv_algorithm"] = conv_algorithm;
  j["masks"] = false;
  j["num_threads"] = num_threads;
  j["val_split"] = val_split;
  j["train_annotations"] = train_annotations;
  j["val_annotations"] = val_annotations;
  j["image_dir"] = image_dir;
  j["scales"] = scales;
  j["max_size"] = max_size;
  j["val_size"] = val_size;
  j["pretrained"] = pretrained;
  j["backbone_weights"] = backbone_weights;
  j["eval_every"] = eval_every;
  j["skip_bad_images"] = skip_bad_images;
  j["max_image_pixels"] = max_image_pixels;
  j["distributed"] = world_size > 1;
  return j;
}

}  // namespace detr
