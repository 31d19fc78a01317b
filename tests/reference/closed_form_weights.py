"""Closed-form weights: every state_dict entry computed from its key and element index alone.

The committed model-parity fixtures store no weights. Both sides compute them by this rule (the C++
twin is src/tools/closed_form_weights.cpp), so a fixture holds only its configuration and the expected
tensors. The rule, per state_dict key and element i (row-major, 0-based):

    h = FNV-1a-64(key bytes)
    z = splitmix64(h + i * 0x9E3779B97F4A7C15)          # one stateless mixing round, mod 2**64
    u = (z >> 40) / 2**24                               # in [0, 1), exact in float32 and float64
    *.running_var                -> 0.5 + u
    *.running_mean               -> 0.2 * (2u - 1)
    1-D *.weight (norm scales)   -> 0.5 + u
    *bias                        -> 0.1 * (2u - 1)
    other floating tensors       -> sqrt(3 / fan_in) * (2u - 1),  fan_in = numel / size(0)
    integer tensors              -> 0

in float64 arithmetic, rounded once to float32. Frozen-BN statistics are random so that they matter;
weights keep activations at unit scale through any depth of ResNet.
"""
import math

import numpy as np
import torch

MASK64 = (1 << 64) - 1
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def fnv1a64(key: str) -> int:
    h = 0xCBF29CE484222325
    for b in key.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & MASK64
    return h


def uniforms(key: str, n: int) -> np.ndarray:
    """u in [0, 1) for elements 0..n-1 of `key` (float64, exact multiples of 2**-24)."""
    with np.errstate(over="ignore"):
        z = np.uint64(fnv1a64(key)) + np.arange(n, dtype=np.uint64) * GOLDEN + GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)


def value(key: str, shape) -> torch.Tensor:
    n = int(np.prod(shape)) if len(shape) else 1
    u = uniforms(key, n)
    if key.endswith("running_var"):
        v = 0.5 + u
    elif key.endswith("running_mean"):
        v = 0.2 * (2 * u - 1)
    elif key.endswith("weight") and len(shape) == 1:
        v = 0.5 + u
    elif key.endswith("bias"):
        v = 0.1 * (2 * u - 1)
    else:
        fan_in = n // shape[0]
        v = math.sqrt(3.0 / fan_in) * (2 * u - 1)
    return torch.from_numpy(v.astype(np.float32)).reshape(shape)


def apply(model: torch.nn.Module) -> None:
    """Overwrites every floating state_dict entry of `model` by the rule (integers become 0)."""
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(value(key, list(t.shape)))
            else:
                t.zero_()
