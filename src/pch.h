// Precompiled header: the heavy LibTorch umbrella and the standard library pieces used everywhere.
#pragma once
#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>
