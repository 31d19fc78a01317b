// detr_train (upstream main.py's main()): data, model, optimizer, the epoch loop, evaluation and every
// output the Onepanel workflow uploads. Exit codes: 0 done, 1 failure or interrupted, 2 usage.
#pragma once
#include "src/args.h"
#include "src/run_context.h"

namespace detr {

// SIGINT/SIGTERM during the run ask it to stop after the current step (a checkpoint is written); a
// second signal exits at once.
int run_train(const TrainArgs& args, const Launch& launch);

}  // namespace detr
