// detr_train (upstream main.py's main()): data, model, optimizer, the epoch loop, evaluation and every
// output the Onepanel workflow uploads. Exit codes: 0 done, 1 failure or interrupted, 2 usage.
#pragma once
#include "src/args.h"

namespace detr {

int run_train(const TrainArgs& args);

// Installs SIGINT/SIGTERM handlers: the first signal asks training to stop after the current step
// (a checkpoint is written), a second one exits at once.
void install_stop_handlers();
bool stop_requested();
int stop_signal();

}  // namespace detr
