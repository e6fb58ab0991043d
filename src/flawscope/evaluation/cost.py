"""What a model costs: parameters, FLOPs (torch's own flop counter) and measured latency."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from flawscope.errors import ConfigError
from flawscope.inference.backend import resolve_device


def _check_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(
            f"input_shape {tuple(input_shape)} is not one image's (channels, height, width); "
            "give e.g. (1, 224, 224) — the batch size is a separate argument"
        )
    return shape


def _model_device(model: Any) -> Any:
    import torch

    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def count_params(model: Any, trainable_only: bool = False) -> int:
    """Number of parameters (all of them, or only those that require grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: Any, input_shape: Sequence[int]) -> int:
    """FLOPs of one forward pass on one image, counted by torch.utils.flop_counter.FlopCounterMode.

    Convention: FLOPs = 2 x multiply-accumulates (a Linear(i, o) costs 2*i*o), as torch counts them; only
    matmuls, convolutions and attention are counted (bias adds, activations and pooling are negligible and
    left out). Divide by 2 to compare with papers that report MACs as "FLOPs".

    Args:
        model: an nn.Module taking (B, C, H, W).
        input_shape: one image's (channels, height, width).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    shape = _check_shape(input_shape)
    x = torch.zeros((1, *shape), device=_model_device(model))
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def measure_latency(
    model: Any,
    input_shape: Sequence[int],
    batch_size: int = 1,
    device: str = "cpu",
    warmup: int = 3,
    iters: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Wall-clock inference time of one batch, measured under torch.inference_mode.

    On a GPU every timed call ends with torch.cuda.synchronize() so the time covers the kernels, not only
    their launch. The model is moved to `device` for the measurement and moved back afterwards.

    Args:
        model: an nn.Module taking (B, C, H, W).
        input_shape: one image's (channels, height, width).
        batch_size: images per forward pass.
        device: "cpu", "cuda", "cuda:N" or "auto".
        warmup: untimed passes first (allocator, cuDNN autotuning, lazy init).
        iters: timed passes.
        seed: seed of the random input.

    Returns:
        ms_per_image, ms_per_batch (mean), std (of ms_per_batch), batch_size, device, iters, threads.
    """
    import numpy as np
    import torch

    shape = _check_shape(input_shape)
    if batch_size < 1 or iters < 1 or warmup < 0:
        raise ConfigError(
            f"batch_size={batch_size}, iters={iters}, warmup={warmup}: "
            "need batch_size >= 1, iters >= 1, warmup >= 0"
        )
    dev = resolve_device(device)
    home, was_training = _model_device(model), model.training
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((batch_size, *shape), generator=gen).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = []
    model.to(dev).eval()
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            sync()
            for _ in range(iters):
                start = time.perf_counter()
                model(x)
                sync()
                times.append((time.perf_counter() - start) * 1000.0)
    finally:
        model.to(home).train(was_training)
    t = np.asarray(times)
    return {
        "ms_per_image": float(t.mean() / batch_size),
        "ms_per_batch": float(t.mean()),
        "std": float(t.std(ddof=1)) if t.size > 1 else 0.0,
        "batch_size": batch_size,
        "device": str(dev),
        "iters": iters,
        "threads": torch.get_num_threads(),  # CPU timings depend on it; record it with the number
    }


def model_cost(
    model: Any,
    input_shape: Sequence[int],
    batch_sizes: Sequence[int] = (1, 32),
    device: str = "cpu",
    warmup: int = 3,
    iters: int = 10,
) -> dict[str, Any]:
    """Parameters, FLOPs per image and latency at several batch sizes, with the achieved GFLOP/s.

    Returns:
        params, flops (per image, 2 x MACs), gflops, input_shape, device, and latency {batch_size: dict of
        measure_latency plus gflops_per_s = flops x batch / time}.
    """
    flops = count_flops(model, input_shape)
    latency = {}
    for bs in batch_sizes:
        lat = measure_latency(model, input_shape, bs, device=device, warmup=warmup, iters=iters)
        seconds = lat["ms_per_batch"] / 1000.0
        lat["gflops_per_s"] = flops * bs / seconds / 1e9 if seconds > 0 else math.nan
        latency[int(bs)] = lat
    return {
        "params": count_params(model),
        "flops": flops,
        "gflops": flops / 1e9,
        "input_shape": tuple(int(v) for v in input_shape),
        "device": next(iter(latency.values()))["device"] if latency else device,
        "latency": latency,
    }
