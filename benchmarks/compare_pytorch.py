#!/usr/bin/python3
"""Times U-Net layers forward and backward in PyTorch and in progdiff, side by side.

Run with the system Python (PyTorch 1.13) from the repository root, after building
progdiff_layer_timing (benchmarks/CMakeLists.txt):

    OPENBLAS_NUM_THREADS=1 \
    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184 \
    /usr/bin/python3 benchmarks/compare_pytorch.py --binary build/benchmarks/progdiff_layer_timing

Each repetition runs PyTorch and progdiff one after the other (alternating which goes
first), so both see the same load on a shared machine; the table gives medians over all
repetitions and progdiff's time over PyTorch's per layer.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import time

import torch
import torch.nn.functional as F

LAYERS = [  # (name, N, C, HW)
    ("conv3x3", 64, 64, 32),
    ("conv3x3", 64, 128, 32),
    ("conv3x3", 64, 128, 16),
    ("conv3x3", 64, 256, 16),
    ("conv3x3", 64, 256, 8),
    ("conv1x1", 64, 128, 32),
    ("groupnorm", 64, 128, 32),
    ("silu", 64, 128, 32),
    ("linear", 64, 256, 1),
    ("downsample", 64, 128, 32),
    ("upsample", 64, 128, 16),
    ("attention", 64, 128, 16),
    ("resblock", 64, 128, 16),
    ("temb", 64, 64, 1),
]

TEMB_CHANNELS = 256  # the ResBlock's time-embedding width, as progdiff_layer_timing uses


class AttnBlock(torch.nn.Module):
    """DDPM's spatial self-attention: GroupNorm, 1x1 qkv, softmax(q k^T / sqrt(C)) v, 1x1 proj, + x."""

    def __init__(self, c):
        super().__init__()
        self.norm = torch.nn.GroupNorm(32, c, eps=1e-6)
        self.qkv = torch.nn.Conv2d(c, 3 * c, 1)
        self.proj = torch.nn.Conv2d(c, c, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).unbind(1)
        a = torch.softmax(q.transpose(1, 2) @ k / c**0.5, dim=-1)
        o = (v @ a.transpose(1, 2)).reshape(n, c, h, w)
        return x + self.proj(o)


class ResBlock(torch.nn.Module):
    """DDPM's ResnetBlock, C -> C: GroupNorm, SiLU, conv3x3, + Linear(SiLU(temb)), GroupNorm, SiLU, conv3x3, + x."""

    def __init__(self, c):
        super().__init__()
        self.norm1 = torch.nn.GroupNorm(32, c, eps=1e-6)
        self.conv1 = torch.nn.Conv2d(c, c, 3, padding=1)
        self.temb_proj = torch.nn.Linear(TEMB_CHANNELS, c)
        self.norm2 = torch.nn.GroupNorm(32, c, eps=1e-6)
        self.conv2 = torch.nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        return x + self.conv2(F.silu(self.norm2(h)))


class TimestepEmbedding(torch.nn.Module):
    """Sinusoidal embedding of dim C (DDPM's shift 1), Linear(C, 4C), SiLU, Linear(4C, 4C)."""

    def __init__(self, c):
        super().__init__()
        self.dim = c
        self.linear_1 = torch.nn.Linear(c, 4 * c)
        self.linear_2 = torch.nn.Linear(4 * c, 4 * c)

    def forward(self, t):
        half = self.dim // 2
        freq = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / (half - 1))
        arg = t[:, None] * freq[None, :]
        e = torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)
        return self.linear_2(F.silu(self.linear_1(e)))


class Upsample(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = torch.nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def torch_layer(name, c):
    if name == "conv3x3":
        return torch.nn.Conv2d(c, c, 3, padding=1)
    if name == "conv1x1":
        return torch.nn.Conv2d(c, c, 1)
    if name == "resblock":
        return ResBlock(c)
    if name == "temb":
        return TimestepEmbedding(c)
    if name == "groupnorm":
        return torch.nn.GroupNorm(32, c)
    if name == "silu":
        return torch.nn.SiLU()
    if name == "linear":
        return torch.nn.Linear(c, c)
    if name == "downsample":
        return torch.nn.Conv2d(c, c, 3, stride=2, padding=1)
    if name == "upsample":
        return Upsample(c)
    if name == "attention":
        return AttnBlock(c)
    raise ValueError(name)


def time_torch(name, n, c, hw, iterations):
    layer = torch_layer(name, c)
    if name == "temb":  # timesteps get no gradient, as in progdiff
        inputs = (torch.arange(n, dtype=torch.float32) * 997 % 1000,)
    elif name == "resblock":
        inputs = (torch.full((n, c, hw, hw), 0.5, requires_grad=True),
                  torch.full((n, TEMB_CHANNELS), 0.5, requires_grad=True))
    else:
        shape = (n, c) if name == "linear" else (n, c, hw, hw)
        inputs = (torch.full(shape, 0.5, requires_grad=True),)
    fwd, bwd = [], []
    for it in range(iterations + 1):
        t0 = time.perf_counter()
        y = layer(*inputs)
        t1 = time.perf_counter()
        y.backward(torch.full_like(y, 0.25))
        t2 = time.perf_counter()
        if it:  # the first iteration warms up, as in progdiff_layer_timing
            fwd.append((t1 - t0) * 1e3)
            bwd.append((t2 - t1) * 1e3)
        for x in inputs:
            x.grad = None
        layer.zero_grad(set_to_none=True)
    return fwd, bwd


def time_progdiff(binary, name, n, c, hw, iterations):
    out = subprocess.run([binary, name, str(n), str(c), str(hw), str(iterations)], check=True,
                         capture_output=True, text=True).stdout
    result = json.loads(out)
    return result["forward_ms"], result["backward_ms"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default="build/benchmarks/progdiff_layer_timing")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per repetition")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated layer names to run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, "
          f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES')}")
    only = set(filter(None, args.only.split(",")))
    header = f"{'layer':<24}{'torch fwd':>11}{'ours fwd':>10}{'ratio':>7}{'torch bwd':>11}{'ours bwd':>10}{'ratio':>7}" \
             f"{'f+b ratio':>11}"
    print(header + "\n" + "-" * len(header))
    for name, n, c, hw in LAYERS:
        if only and name not in only:
            continue
        t = {"torch": ([], []), "ours": ([], [])}
        for rep in range(args.repetitions):
            order = ["torch", "ours"] if rep % 2 == 0 else ["ours", "torch"]
            for who in order:
                f, b = (time_torch(name, n, c, hw, args.iterations) if who == "torch" else
                        time_progdiff(args.binary, name, n, c, hw, args.iterations))
                t[who][0].extend(f)
                t[who][1].extend(b)
        tf, tb = statistics.median(t["torch"][0]), statistics.median(t["torch"][1])
        of, ob = statistics.median(t["ours"][0]), statistics.median(t["ours"][1])
        label = f"{name} {n}x{c}x{hw}x{hw}" if name not in ("linear", "temb") else f"{name} {n}x{c}"
        print(f"{label:<24}{tf:>9.2f}ms{of:>8.2f}ms{of / tf:>7.2f}{tb:>9.2f}ms{ob:>8.2f}ms{ob / tb:>7.2f}"
              f"{(of + ob) / (tf + tb):>11.2f}", flush=True)


if __name__ == "__main__":
    main()
