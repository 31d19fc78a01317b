// detr_train: trains DETR on a COCO / CVAT export with upstream main.py's command line.
// Exit codes: 0 success, 1 failure (or stopped by a signal, checkpoint written), 2 usage error.
#include <torch/torch.h>

#include <iostream>

#include "src/args.h"
#include "src/train.h"
#include "src/cli/guarded_main.h"

int main(int argc, char** argv) {
  return detr::guarded_main("detr_train", [&]() -> int {
    std::string help;
    auto args = detr::parse_train_args(argc, argv, &help);
    if (!help.empty()) {
      std::cout << help << std::endl;
      return 0;
    }
    if (args.parse_only) {
      std::cout << args.to_json().dump() << std::endl;
      return 0;
    }
    return detr::run_train(args);
    });
}
