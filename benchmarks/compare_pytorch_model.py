#!/usr/bin/python3
"""Training steps and DDIM sampling of whole U-Nets in progdiff and in the strongest CPU peers, side by side.

Run from the repository root, after building progdiff_model_timing (benchmarks/CMakeLists.txt).
The PyTorch 1.13 peer uses the system Python (Debian's PyTorch); the others need a PyTorch 2.x
virtual environment, created once with

    python3 -m venv VENV && VENV/bin/pip install torch onnxruntime onnx numpy

and then

    /usr/bin/python3 benchmarks/compare_pytorch_model.py \
        --binary build/benchmarks/progdiff_model_timing --threads 2 --rounds 3 \
        --torch1-python /usr/bin/python3 --torch2-python VENV/bin/python

The peers, each a column of the table (--peers picks a subset; a peer whose interpreter or
modules are missing is skipped with a line saying why):
  torch1.13             PyTorch 1.13, eager, NCHW
  torch2-eager          PyTorch 2.x, eager, NCHW
  torch2-channels-last  PyTorch 2.x, eager, model and inputs in torch.channels_last
  torch2-compile        PyTorch 2.x, torch.compile of the model (compiled during warm-up calls
                        that are not timed; a peer that fails to compile is skipped)
  onnxruntime           DDIM only: the PyTorch model exported with torch.onnx.export and run in an
                        onnxruntime session on the same threads, the DDIM update in numpy
The channels-last, compiled and ONNX peers first compare their output on one fixed input with
the eager output of the same weights and stop with an error when the largest difference
exceeds 1e-3.

Two models, the same on every side (the script checks that the parameter counts agree):
  default  1x32x32 images, 32 channels, multipliers 1-2-2, one ResBlock per encoder level,
           no attention, 8 GroupNorm groups (the main job's model, apps/progressive)
  cifar    3x32x32 images, 64 channels, multipliers 1-2-2, two ResBlocks per encoder level,
           one attention block after the last encoder ResBlock at 16x16, 32 GroupNorm groups
(the decoder has one ResBlock more per level than the encoder; no dropout). Two measurements:
  train    forward, epsilon MSE, backward and AdamW at batch 64 (seconds per step)
  ddim     deterministic DDIM, 100 steps, batch 16 (seconds per run)

Each round runs progdiff and every peer one after the other, reversing the order every other
round, so all see the same load on a shared machine. Every side gets the same thread count
(OpenMP for progdiff, torch.set_num_threads for PyTorch, intra_op_num_threads for onnxruntime).
Each peer runs in a child process under either or both of two environments: "best"
(OPENBLAS_NUM_THREADS=1 and glibc malloc that keeps its memory) and "installed" (the
environment as it is). The table gives each side's median over every timed call and
progdiff's time over the fastest peer's; --json keeps every timing.
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

_TORCH = "import torch; print('torch', torch.__version__)"
PEERS = {  # name: (interpreter flag, worker variant, measurements, what its interpreter must run)
    "torch1.13": ("torch1", "eager", ("train", "ddim"), _TORCH),
    "torch2-eager": ("torch2", "eager", ("train", "ddim"), _TORCH),
    "torch2-channels-last": ("torch2", "channels-last", ("train", "ddim"), _TORCH),
    "torch2-compile": ("torch2", "compile", ("train", "ddim"),
                       _TORCH + "; assert hasattr(torch, 'compile'), 'this PyTorch has no torch.compile'"),
    "onnxruntime": ("torch2", "onnx", ("ddim",),
                    "import torch, onnx, onnxruntime; print('torch', torch.__version__, 'onnx', onnx.__version__, "
                    "'onnxruntime', onnxruntime.__version__)"),
}
AGREEMENT = 1e-3  # the largest |difference| allowed between a converted twin's output and the eager model's


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


def agreement(out, ref, variant):
    """Max |out - ref|; stops the worker (an error, not a skip) when the twins disagree."""
    diff = float((out.float() - ref).abs().max())
    if not diff <= AGREEMENT:  # NaN fails too
        sys.exit(f"{variant}: max |difference| from eager PyTorch {diff:.3g} on the check input, above {AGREEMENT}")
    return diff


def onnx_session(model, x, t, threads):
    """Exports the model at the check input's shapes and opens it in onnxruntime on `threads` threads."""
    import inspect
    import tempfile
    import torch
    import onnxruntime as ort

    # PyTorch 2.9 made the dynamo exporter the default; it needs onnxscript, the TorchScript one does not
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads  # the calling thread counts as one of them
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if os.environ.get("OMP_WAIT_POLICY", "").lower() == "passive":
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # its pool's own spin
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "unet.onnx")
        torch.onnx.export(model, (x, t), path, input_names=["x", "t"], output_names=["eps"], **legacy)
        return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def torch_worker(a):
    """Times one configuration of one peer in this process and prints JSON like progdiff_model_timing."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build_model(a.model)
    params = sum(p.numel() for p in model.parameters())
    batch = BATCH[a.what]
    channels = MODELS[a.model][0]
    training = a.what == "train"
    assert not (training and a.variant == "onnx"), "the ONNX peer times sampling only"
    model.train(training)
    info = {"torch_version": torch.__version__}
    net, prep, session = model, (lambda x: x), None
    seconds = []
    abar = linear_alpha_bars()
    steps = list(range(990, -1, -1000 // a.ddim_steps))  # leading spacing: 990, 980, ..., 0

    def step():
        t = torch.randint(0, 1000, (batch,))
        noise = torch.randn_like(x0)
        ab = abar_f[t][:, None, None, None]
        loss = F.mse_loss(net(prep(ab.sqrt() * x0 + (1 - ab).sqrt() * noise), t), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def ddim(timesteps):
        x = prep(torch.randn(batch, channels, 32, 32))
        with torch.no_grad():
            for i, t in enumerate(timesteps):
                a_t = abar[t].item()
                a_s = abar[timesteps[i + 1]].item() if i + 1 < len(timesteps) else 1.0
                eps = net(x, torch.full((batch,), t, dtype=torch.long))
                x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
                x = math.sqrt(a_s) * x0 + math.sqrt(1 - a_s) * eps
        return x

    def ddim_onnx(timesteps):
        import numpy as np

        x = torch.randn(batch, channels, 32, 32).numpy()
        for i, t in enumerate(timesteps):
            a_t = abar[t].item()
            a_s = abar[timesteps[i + 1]].item() if i + 1 < len(timesteps) else 1.0
            eps = session.run(None, {"x": x, "t": np.full((batch,), t, dtype=np.int64)})[0]
            x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
            x = (math.sqrt(a_s) * x0 + math.sqrt(1 - a_s) * eps).astype(np.float32, copy=False)
        return x

    setup_start = time.perf_counter()
    try:
        if a.variant != "eager":
            # the reference: the eager NCHW model on one fixed input, before any conversion of its weights
            gen = torch.Generator().manual_seed(1)
            x_check = torch.randn(batch, channels, 32, 32, generator=gen)
            t_check = torch.linspace(0, 999, batch).long()
            with torch.set_grad_enabled(training):
                ref = model(x_check, t_check).detach()
            if a.variant == "onnx":
                import onnxruntime

                info["onnxruntime_version"] = onnxruntime.__version__
                session = onnx_session(model, x_check, t_check, a.threads)
                out = torch.from_numpy(session.run(None, {"x": x_check.numpy(), "t": t_check.numpy()})[0])
            else:
                if a.variant == "channels-last":
                    model = model.to(memory_format=torch.channels_last)
                    net, prep = model, (lambda x: x.contiguous(memory_format=torch.channels_last))
                else:
                    net = torch.compile(model)
                # in the measurement's grad mode, so that the compiled peer's check is also its first compilation
                with torch.set_grad_enabled(training):
                    out = net(prep(x_check), t_check).detach()
            info["max_abs_difference"] = agreement(out, ref, a.variant)
        if training:
            opt = torch.optim.AdamW(model.parameters(), lr=2e-4)
            abar_f = abar.float()
            x0 = prep(torch.randn(batch, channels, 32, 32))
            run = step
        else:
            run = (lambda: ddim_onnx(steps)) if a.variant == "onnx" else (lambda: ddim(steps))
        # warm-up: a compiled model compiles its backward on the first step and may recompile once more
        warm_up = step if training else lambda: (ddim_onnx if a.variant == "onnx" else ddim)(steps[:2])
        for _ in range(3 if a.variant == "compile" else 1):
            warm_up()
    except Exception as e:  # a peer that cannot be set up here is skipped, not an error
        if a.variant == "eager":
            raise
        why = (str(e).strip().splitlines() or [""])[0][:300]
        print(json.dumps({"skipped": f"{a.variant} setup failed: {type(e).__name__}: {why}"}))
        return
    info["setup_s"] = time.perf_counter() - setup_start
    for _ in range(a.repetitions):
        t0 = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - t0)
    import resource

    print(json.dumps({"model": a.model, "what": a.what, "batch": batch, "parameters": params, "seconds": seconds,
                      "threads": torch.get_num_threads(),
                      "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, **info}))


# ------------------------------------------------------------------------------- the driver
def run_json(cmd, env):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def probe(python, needs):
    """(True, module versions) when `python` runs the peer's check `needs`, else (False, why not)."""
    if not python:
        return False, "no interpreter given"
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        return False, f"no interpreter at {python}"
    p = subprocess.run([python, "-c", needs], capture_output=True, text=True)
    if p.returncode != 0:
        return False, f"{python}: " + (p.stderr.strip().splitlines() or ["failed"])[-1]
    return True, p.stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="build/benchmarks/progdiff_model_timing")
    ap.add_argument("--models", default="default,cifar")
    ap.add_argument("--what", default="train,ddim")
    ap.add_argument("--peers", default=",".join(PEERS), help="a comma-separated subset of " + ", ".join(PEERS))
    ap.add_argument("--torch1-python", default="/usr/bin/python3", help="interpreter with PyTorch 1.13")
    ap.add_argument("--torch2-python", default="",
                    help="interpreter with PyTorch 2.x, onnxruntime and onnx (the peers that need it are skipped "
                         "without one)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--train-repetitions", type=int, default=3, help="timed steps per round and side")
    ap.add_argument("--ddim-repetitions", type=int, default=1, help="timed sampling runs per round and side")
    ap.add_argument("--ddim-steps", type=int, default=100)
    ap.add_argument("--torch-env", default="best", choices=["best", "installed", "both"])
    ap.add_argument("--wait-policy", default="", choices=["", "passive", "active"],
                    help="OMP_WAIT_POLICY for every side (progdiff and PyTorch use libgomp; passive also stops "
                         "onnxruntime's pool from spinning), which matters when other processes share the cores")
    ap.add_argument("--json", default="", help="write every timing to this file")
    # child-process mode
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--variant", default="eager", choices=["eager", "channels-last", "compile", "onnx"],
                    help=argparse.SUPPRESS)
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

    peers = {}  # name: (interpreter, worker variant, measurements)
    for name in a.peers.split(","):
        if name not in PEERS:
            sys.exit(f"unknown peer {name!r}; the peers are {', '.join(PEERS)}")
        which, variant, measurements, needs = PEERS[name]
        python = getattr(a, f"{which}_python")
        ok, text = probe(python, needs)
        if not ok:
            print(f"peer {name}: skipped, {text}", flush=True)
            continue
        print(f"peer {name}: {python}, {text}", flush=True)
        peers[name] = (python, variant, measurements)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)

    def side_name(peer, env):
        return peer if len(torch_envs) == 1 else f"{peer} ({env})"

    results = []
    for model in a.models.split(","):
        for what in a.what.split(","):
            reps = a.train_repetitions if what == "train" else a.ddim_repetitions
            ours_cmd = [a.binary, model, what, str(BATCH[what]), str(reps), str(a.ddim_steps)]
            sides = [("progdiff", ours_cmd, ours_env)]
            for peer, (python, variant, measurements) in peers.items():
                if what not in measurements:
                    continue
                for k, env in torch_envs.items():
                    cmd = [python, os.path.abspath(__file__), "--worker", "--variant", variant, "--model", model,
                           "--what", what, "--threads", str(a.threads), "--repetitions", str(reps),
                           "--ddim-steps", str(a.ddim_steps)]
                    sides.append((side_name(peer, k), cmd, env))
            times = {side: [] for side, _, _ in sides}
            extra, skipped = {}, {}
            for r in range(a.rounds):
                order = [s for s in sides if s[0] not in skipped]
                if r % 2:
                    order.reverse()
                for side, cmd, env in order:
                    res = run_json(cmd, env)
                    if "skipped" in res:
                        skipped[side] = res["skipped"]
                        del times[side]
                        print(f"  {model} {what}: {side} skipped, {res['skipped']}", flush=True)
                        continue
                    times[side] += res["seconds"]
                    extra.setdefault(side, res)
                    note = ""
                    if "max_abs_difference" in res:
                        note = f" (setup {res['setup_s']:.1f} s, max |difference| from eager " \
                               f"{res['max_abs_difference']:.1e})"
                    print(f"  {model} {what} round {r}: {side:26s} " + " ".join(f"{s:.3f}" for s in res["seconds"]) +
                          " s" + note, flush=True)
            ours_params = extra["progdiff"]["parameters"]
            for side, res in extra.items():
                assert res["parameters"] == ours_params, (
                    f"{model}: {side} has {res['parameters']} parameters, progdiff {ours_params}")
            median = {k: statistics.median(v) for k, v in times.items()}
            fastest = min((k for k in median if k != "progdiff"), key=median.get, default=None)
            row = {"model": model, "what": what, "batch": BATCH[what], "parameters": ours_params,
                   "median_s": median, "all_s": times, "fastest_peer": fastest,
                   "progdiff_over_fastest": median["progdiff"] / median[fastest] if fastest else None,
                   "progdiff": extra["progdiff"], "peers": {k: v for k, v in extra.items() if k != "progdiff"},
                   "skipped": skipped}
            results.append(row)

    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    columns = [side_name(p, k) for p in peers for k in torch_envs]
    columns = [c for c in columns if any(c in row["median_s"] for row in results)]
    print("| model | measurement | parameters | " + " | ".join(f"{c} s" for c in columns) +
          " | progdiff s | fastest peer | progdiff / fastest |")
    print("|" + "---|" * (6 + len(columns)))
    for row in results:
        n = row["batch"]
        label = f"train step, batch {n}" if row["what"] == "train" else f"DDIM {a.ddim_steps} steps, batch {n}"
        cells = [row["model"], label, f"{row['parameters']:,}"]
        cells += [f"{row['median_s'][c]:.2f}" if c in row["median_s"] else "-" for c in columns]
        cells += [f"{row['median_s']['progdiff']:.2f}", row["fastest_peer"] or "-",
                  f"{row['progdiff_over_fastest']:.2f}" if row["fastest_peer"] else "-"]
        print("| " + " | ".join(cells) + " |")
    for row in results:
        if row["what"] == "train":
            p = row["progdiff"]
            print(f"{row['model']} training step: tensor memory {p['tensor_bytes_before'] / 2**20:.1f} MiB between steps, "
                  f"peak {p['tensor_bytes_peak'] / 2**20:.1f} MiB, {p['tensor_bytes_after'] / 2**20:.1f} MiB after; "
                  f"max RSS {p['max_rss_kb'] / 1024:.0f} MiB; the peers' max RSS " +
                  ", ".join(f"{k} {v['max_rss_kb'] / 1024:.0f} MiB" for k, v in row["peers"].items()))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
