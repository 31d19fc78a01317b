// detr_train: trains DETR on a COCO / CVAT export with upstream main.py's command line.
// Exit codes: 0 success, 1 failure (or stopped by a signal, checkpoint written), 2 usage error.
#include <torch/torch.h>

#include <iostream>

#include "src/args.h"
#include "src/train.h"

int main(int argc, char** argv) {
  try {
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
  } catch (const detr::UsageError& e) {
    std::cerr << "detr_train: " << e.what() << "\nTry 'detr_train --help'.\n";
    return 2;
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    std::cerr << "detr_train: error: " << msg.substr(0, msg.find('\n')) << "\n";
    if (msg.find("out of memory") != std::string::npos)
      std::cerr << "detr_train: hint: lower --batch_size, or train on smaller images (--scales, --max_size), "
                   "or use a smaller --backbone / --hidden_dim\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "detr_train: error: " << e.what() << "\n";
    return 1;
  }
}
