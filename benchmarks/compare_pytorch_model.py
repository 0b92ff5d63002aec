#!/usr/bin/python3
"""Training steps and DDIM sampling of whole U-Nets in PyTorch and in progdiff, side by side.

Run with the system Python (PyTorch 1.13) from the repository root, after building
progdiff_model_timing (benchmarks/CMakeLists.txt):

    /usr/bin/python3 benchmarks/compare_pytorch_model.py \
        --binary build/benchmarks/progdiff_model_timing --threads 2 --rounds 3

Two models, the same on both sides (the script checks that the parameter counts agree):
  default  1x32x32 images, 32 channels, multipliers 1-2-2, one ResBlock per encoder level,
           no attention, 8 GroupNorm groups (the main job's model, apps/progressive)
  cifar    3x32x32 images, 64 channels, multipliers 1-2-2, two ResBlocks per encoder level,
           one attention block after the last encoder ResBlock at 16x16, 32 GroupNorm groups
(the decoder has one ResBlock more per level than the encoder; no dropout). Two measurements:
  train    forward, epsilon MSE, backward and AdamW at batch 64 (seconds per step)
  ddim     deterministic DDIM, 100 steps, batch 16 (seconds per run)

Each round runs progdiff and PyTorch one after the other, alternating which goes first, so
both see the same load on a shared machine. Both sides get the same thread count (OpenMP for
progdiff, torch.set_num_threads for PyTorch). PyTorch runs in a child process under either or
both of two environments: "best" (OPENBLAS_NUM_THREADS=1 and glibc malloc that keeps its
memory) and "installed" (the environment as it is). The table gives images per second from the
medians over every timed call and progdiff's time over PyTorch's.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

BEST_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "GLIBC_TUNABLES": "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184",
}

MODELS = {  # name: (image channels, base channels, multipliers, ResBlocks per encoder level, attention side,
    #        GroupNorm groups)
    "default": (1, 32, (1, 2, 2), 1, None, 8),
    "cifar": (3, 64, (1, 2, 2), 2, 16, 32),
}
BATCH = {"train": 64, "ddim": 16}


# ------------------------------------------------------------------------------- the PyTorch model
def build_model(name):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    image_channels, base, multipliers, res_blocks, attention_side, groups = MODELS[name]
    eps = 1e-6  # progdiff's GroupNorm epsilon (DDPM's)

    class TimeEmbedding(nn.Module):
        """Sinusoid of `dim` features (sin half, cos half), Linear, SiLU, Linear."""

        def __init__(self, dim, width):
            super().__init__()
            self.dim = dim
            self.linear_1 = nn.Linear(dim, width)
            self.linear_2 = nn.Linear(width, width)

        def forward(self, t):
            half = self.dim // 2
            freq = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / (half - 1))
            angle = t.float()[:, None] * freq[None]
            return self.linear_2(F.silu(self.linear_1(torch.cat([angle.sin(), angle.cos()], dim=1))))

    class ResBlock(nn.Module):
        """GN, SiLU, conv3x3, + Linear(SiLU(temb)), GN, SiLU, conv3x3, + x (1x1 conv if widths differ)."""

        def __init__(self, cin, cout, temb):
            super().__init__()
            self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
            self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
            self.temb_proj = nn.Linear(temb, cout)
            self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
            self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

        def forward(self, x, temb):
            h = self.conv1(F.silu(self.norm1(x))) + self.temb_proj(F.silu(temb))[:, :, None, None]
            h = self.conv2(F.silu(self.norm2(h)))
            return h + (self.skip(x) if self.skip is not None else x)

    class Attention(nn.Module):
        """Single-head spatial self-attention: GN, 1x1 qkv, softmax(q^T k / sqrt(C)), 1x1 proj, + x."""

        def __init__(self, c):
            super().__init__()
            self.norm = nn.GroupNorm(groups, c, eps=eps)
            self.qkv = nn.Conv2d(c, 3 * c, 1)
            self.proj = nn.Conv2d(c, c, 1)

        def forward(self, x):
            n, c, h, w = x.shape
            q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).unbind(1)
            a = torch.softmax(torch.bmm(q.transpose(1, 2), k) * c**-0.5, dim=-1)
            return x + self.proj(torch.bmm(v, a.transpose(1, 2)).reshape(n, c, h, w))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            temb = 4 * base
            self.temb = TimeEmbedding(base, temb)
            self.conv_in = nn.Conv2d(image_channels, base, 3, padding=1)
            self.encoder = nn.ModuleList()  # (kind, module) in forward order
            self.kinds = []
            skips, width, side, attended = [base], base, 32, False
            for level, m in enumerate(multipliers):
                for j in range(res_blocks):
                    self.encoder.append(ResBlock(width, base * m, temb))
                    self.kinds.append("res")
                    width = base * m
                    if side == attention_side and j == res_blocks - 1 and not attended:
                        self.encoder.append(Attention(width))
                        self.kinds.append("attn")
                        attended = True
                    skips.append(width)
                if level + 1 < len(multipliers):
                    self.encoder.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
                    self.kinds.append("down")
                    skips.append(width)
                    side //= 2
            self.mid = nn.ModuleList([ResBlock(width, width, temb), ResBlock(width, width, temb)])
            self.decoder = nn.ModuleList()
            self.up_kinds = []
            for level in reversed(range(len(multipliers))):
                for _ in range(res_blocks + 1):
                    self.decoder.append(ResBlock(width + skips.pop(), base * multipliers[level], temb))
                    self.up_kinds.append("res")
                    width = base * multipliers[level]
                if level > 0:
                    self.decoder.append(nn.Conv2d(width, width, 3, padding=1))
                    self.up_kinds.append("up")
            self.norm_out = nn.GroupNorm(groups, width, eps=eps)
            self.conv_out = nn.Conv2d(width, image_channels, 3, padding=1)

        def forward(self, x, t):
            temb = self.temb(t)
            h = self.conv_in(x)
            skips = [h]
            for kind, layer in zip(self.kinds, self.encoder):
                h = layer(h, temb) if kind == "res" else layer(h)
                if kind == "attn":
                    skips[-1] = h  # the skip is the attention's output
                else:
                    skips.append(h)
            for layer in self.mid:
                h = layer(h, temb)
            for kind, layer in zip(self.up_kinds, self.decoder):
                if kind == "res":
                    h = layer(torch.cat([h, skips.pop()], dim=1), temb)
                else:
                    h = layer(F.interpolate(h, scale_factor=2.0, mode="nearest"))
            return self.conv_out(F.silu(self.norm_out(h)))

    return UNet()


def linear_alpha_bars():
    import torch

    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, 0)


def torch_worker(a):
    """Times one configuration in this process and prints JSON like progdiff_model_timing."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build_model(a.model)
    params = sum(p.numel() for p in model.parameters())
    batch = BATCH[a.what]
    channels = MODELS[a.model][0]
    seconds = []
    if a.what == "train":
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=2e-4)
        abar = linear_alpha_bars().float()
        x0 = torch.randn(batch, channels, 32, 32)

        def step():
            t = torch.randint(0, 1000, (batch,))
            noise = torch.randn_like(x0)
            ab = abar[t][:, None, None, None]
            loss = F.mse_loss(model(ab.sqrt() * x0 + (1 - ab).sqrt() * noise, t), noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        step()
        for _ in range(a.repetitions):
            t0 = time.perf_counter()
            step()
            seconds.append(time.perf_counter() - t0)
    else:
        model.eval()
        abar = linear_alpha_bars()
        steps = list(range(990, -1, -1000 // a.ddim_steps))  # leading spacing: 990, 980, ..., 0

        def ddim(timesteps):
            x = torch.randn(batch, channels, 32, 32)
            with torch.no_grad():
                for i, t in enumerate(timesteps):
                    a_t = abar[t].item()
                    a_s = abar[timesteps[i + 1]].item() if i + 1 < len(timesteps) else 1.0
                    eps = model(x, torch.full((batch,), t, dtype=torch.long))
                    x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
                    x = math.sqrt(a_s) * x0 + math.sqrt(1 - a_s) * eps
            return x

        ddim(steps[:2])
        for _ in range(a.repetitions):
            t0 = time.perf_counter()
            ddim(steps)
            seconds.append(time.perf_counter() - t0)
    import resource

    print(json.dumps({"model": a.model, "what": a.what, "batch": batch, "parameters": params, "seconds": seconds,
                      "threads": torch.get_num_threads(),
                      "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


# ------------------------------------------------------------------------------- the driver
def run_json(cmd, env):
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="build/benchmarks/progdiff_model_timing")
    ap.add_argument("--models", default="default,cifar")
    ap.add_argument("--what", default="train,ddim")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--train-repetitions", type=int, default=3, help="timed steps per round and side")
    ap.add_argument("--ddim-repetitions", type=int, default=1, help="timed sampling runs per round and side")
    ap.add_argument("--ddim-steps", type=int, default=100)
    ap.add_argument("--torch-env", default="best", choices=["best", "installed", "both"])
    ap.add_argument("--wait-policy", default="", choices=["", "passive", "active"],
                    help="OMP_WAIT_POLICY for both sides (both use libgomp); passive keeps idle threads from "
                         "spinning, which matters when other processes share the cores")
    ap.add_argument("--json", default="", help="write every timing to this file")
    # child-process mode
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--repetitions", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        a.what = a.what.split(",")[0]
        return torch_worker(a)

    base_env = dict(os.environ)
    if a.wait_policy:
        base_env["OMP_WAIT_POLICY"] = a.wait_policy
    ours_env = dict(base_env, OMP_NUM_THREADS=str(a.threads))
    torch_envs = {"best": dict(base_env, **BEST_ENV), "installed": dict(base_env)}
    if a.torch_env != "both":
        torch_envs = {a.torch_env: torch_envs[a.torch_env]}
    print(f"threads {a.threads}, rounds {a.rounds}, PyTorch environment(s): {', '.join(torch_envs)}, "
          f"OMP_WAIT_POLICY={base_env.get('OMP_WAIT_POLICY', '(unset)')}", flush=True)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)

    results = []
    for model in a.models.split(","):
        for what in a.what.split(","):
            reps = a.train_repetitions if what == "train" else a.ddim_repetitions
            ours_cmd = [a.binary, model, what, str(BATCH[what]), str(reps), str(a.ddim_steps)]
            times = {"progdiff": []}
            times.update({f"torch_{k}": [] for k in torch_envs})
            extra = {}
            for r in range(a.rounds):
                sides = [("progdiff", ours_cmd, ours_env)]
                for k, env in torch_envs.items():
                    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--model", model, "--what", what,
                           "--threads", str(a.threads), "--repetitions", str(reps), "--ddim-steps", str(a.ddim_steps)]
                    sides.append((f"torch_{k}", cmd, env))
                if r % 2:
                    sides.reverse()
                for side, cmd, env in sides:
                    res = run_json(cmd, env)
                    times[side] += res["seconds"]
                    extra.setdefault(side, res)
                    print(f"  {model} {what} round {r}: {side:16s} " + " ".join(f"{s:.3f}" for s in res["seconds"]) +
                          " s", flush=True)
            ours_params = extra["progdiff"]["parameters"]
            for side, res in extra.items():
                assert res["parameters"] == ours_params, (
                    f"{model}: {side} has {res['parameters']} parameters, progdiff {ours_params}")
            row = {"model": model, "what": what, "batch": BATCH[what], "parameters": ours_params,
                   "median_s": {k: statistics.median(v) for k, v in times.items()}, "all_s": times,
                   "progdiff": extra["progdiff"], "torch": {k[6:]: v for k, v in extra.items() if k != "progdiff"}}
            results.append(row)

    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    envs = list(torch_envs)
    header = "| model | measurement | parameters | progdiff s | progdiff img/s | " + " | ".join(
        f"PyTorch ({k}) s | PyTorch ({k}) img/s | progdiff time / PyTorch ({k})" for k in envs) + " |"
    print(header)
    print("|" + "---|" * (5 + 3 * len(envs)))
    for row in results:
        n = row["batch"]
        label = f"train step, batch {n}" if row["what"] == "train" else f"DDIM {a.ddim_steps} steps, batch {n}"
        ours = row["median_s"]["progdiff"]
        cells = [row["model"], label, f"{row['parameters']:,}", f"{ours:.2f}", f"{n / ours:.2f}"]
        for k in envs:
            t = row["median_s"][f"torch_{k}"]
            cells += [f"{t:.2f}", f"{n / t:.2f}", f"{ours / t:.2f}"]
        print("| " + " | ".join(cells) + " |")
    for row in results:
        if row["what"] == "train":
            p = row["progdiff"]
            print(f"{row['model']} training step: tensor memory {p['tensor_bytes_before'] / 2**20:.1f} MiB between steps, "
                  f"peak {p['tensor_bytes_peak'] / 2**20:.1f} MiB, {p['tensor_bytes_after'] / 2**20:.1f} MiB after; "
                  f"max RSS {p['max_rss_kb'] / 1024:.0f} MiB; PyTorch's max RSS " +
                  ", ".join(f"{k} {row['torch'][k]['max_rss_kb'] / 1024:.0f} MiB" for k in row["torch"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
