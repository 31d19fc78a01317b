// detr_train: trains DETR on a COCO / CVAT export with upstream main.py's command line.
// Exit codes: 0 success, 1 failure (or stopped by a signal, checkpoint written), 2 usage error.
#include <torch/torch.h>

#include <iostream>

#include "src/args.h"
#include "src/cli/guarded_main.h"
#include "src/train.h"

int main(int argc, char** argv) {
  return detr::guarded_main("detr_train", [&]() -> int {
    const auto cmd = detr::parse_train_command(argc, argv);
    if (!cmd.help.empty()) {
      std::cout << cmd.help << std::endl;
      return 0;
    }
    if (cmd.args.parse_only) {
      std::cout << cmd.args.to_json().dump() << std::endl;
      return 0;
    }
    return detr::run_train(cmd.args, cmd.launch);
  });
}
