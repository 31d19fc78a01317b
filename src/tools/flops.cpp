#include "src/tools/flops.h"

#include <stdexcept>
#include <string>
#include <vector>

namespace detr::models {

namespace {

// A convolution's output side and 2 * multiply-adds; `side` is updated to the output's.
struct Plane {
  int64_t h, w;
};

int64_t out_side(int64_t in, int64_t k, int64_t stride, int64_t padding, int64_t dilation) {
  return (in + 2 * padding - dilation * (k - 1) - 1) / stride + 1;
}

double conv(Plane& p, int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t dilation = 1) {
  const int64_t pad = dilation * (k - 1) / 2;
  p = {out_side(p.h, k, stride, pad, dilation), out_side(p.w, k, stride, pad, dilation)};
  return 2.0 * static_cast<double>(cin * cout * k * k) * static_cast<double>(p.h * p.w);
}

struct ResNetFlops {
  double frozen = 0, trained = 0;
  int64_t channels = 0;
  Plane out{0, 0};
};

// torchvision's resnet18/34/50/101 (v1.5: the stride on the bottleneck's 3x3), up to layer4.
ResNetFlops resnet(const std::string& name, bool dilation, int64_t height, int64_t width) {
  const bool bottleneck = name == "resnet50" || name == "resnet101";
  std::vector<int64_t> blocks;
  if (name == "resnet18")
    blocks = {2, 2, 2, 2};
  else if (name == "resnet34")
    blocks = {3, 4, 6, 3};
  else if (name == "resnet50")
    blocks = {3, 4, 6, 3};
  else if (name == "resnet101")
    blocks = {3, 4, 23, 3};
  else
    throw std::invalid_argument("model_flops: backbone '" + name + "' is not a ResNet we build");
  const int64_t expansion = bottleneck ? 4 : 1;
  ResNetFlops r;
  Plane p{height, width};
  r.frozen += conv(p, 3, 64, 7, 2);
  p = {out_side(p.h, 3, 2, 1, 1), out_side(p.w, 3, 2, 1, 1)};  // max pool
  int64_t inplanes = 64, current_dilation = 1;
  for (int layer = 0; layer < 4; ++layer) {
    const int64_t planes = 64 << layer;
    int64_t stride = layer == 0 ? 1 : 2;
    const int64_t previous_dilation = current_dilation;
    if (layer == 3 && dilation) {  // DC5: layer4 dilated instead of strided
      current_dilation *= stride;
      stride = 1;
    }
    double& sum = layer == 0 ? r.frozen : r.trained;
    for (int64_t b = 0; b < blocks[layer]; ++b) {
      const int64_t s = b == 0 ? stride : 1;
      const int64_t d = b == 0 ? previous_dilation : current_dilation;
      Plane in = p, shortcut = p;
      if (b == 0 && (s != 1 || inplanes != planes * expansion))
        sum += conv(shortcut, inplanes, planes * expansion, 1, s);
      if (bottleneck) {
        sum += conv(in, inplanes, planes, 1, 1);
        sum += conv(in, planes, planes, 3, s, d);
        sum += conv(in, planes, planes * expansion, 1, 1);
      } else {
        sum += conv(in, inplanes, planes, 3, s);
        sum += conv(in, planes, planes, 3, 1);
      }
      p = in;
      inplanes = planes * expansion;
    }
  }
  r.channels = inplanes;
  r.out = p;
  return r;
}

}  // namespace

ModelFlops model_flops(const ModelConfig& c, int64_t height, int64_t width) {
  const auto net = resnet(c.backbone, c.dilation, height, width);
  ModelFlops f;
  if (c.train_backbone) {
    f.backbone_frozen = net.frozen;
    f.backbone_trained = net.trained;
  } else {
    f.backbone_frozen = net.frozen + net.trained;
  }
  const double S = static_cast<double>(net.out.h * net.out.w);  // encoder tokens
  const double Q = static_cast<double>(c.num_queries);
  const double d = static_cast<double>(c.hidden_dim), F = static_cast<double>(c.dim_feedforward);
  auto linear = [](double rows, double in, double out) { return 2 * rows * in * out; };
  // attention of `q` queries over `k` keys: projections in and out, scores and weighted sum
  auto attention = [&](double q, double k) {
    return linear(q, d, d) + 2 * linear(k, d, d) + 2 * (2 * q * k * d) + linear(q, d, d);
  };
  auto ffn = [&](double rows) { return linear(rows, d, F) + linear(rows, F, d); };
  f.transformer = linear(S, static_cast<double>(net.channels), d);  // input_proj (1x1 conv)
  f.transformer += static_cast<double>(c.enc_layers) * (attention(S, S) + ffn(S));
  f.transformer += static_cast<double>(c.dec_layers) * (attention(Q, Q) + attention(Q, S) + ffn(Q));
  const double head_rows = Q * static_cast<double>(c.aux_loss ? c.dec_layers : 1);
  f.heads = linear(head_rows, d, static_cast<double>(c.num_classes + 1)) + linear(head_rows, d, d) +
            linear(head_rows, d, d) + linear(head_rows, d, 4);
  return f;
}

}  // namespace detr::models
