#!/usr/bin/python3
"""Data-parallel scaling of the papers' U-Nets, worked out on paper.

Prints the tables of docs/scaling.md: parameter counts and FLOPs derived from the
architectures, the compute time of a training step, the ring all-reduce time of the
gradients on 8 and 64 GPUs, the scaling efficiency with and without overlapping the
all-reduce with backward, and what TDC's per-group fan-out and the multi-stage model's
shared encoder change. Python 3 standard library only; no GPU, no network.

    /usr/bin/python3 tools/scaling_model.py            # all tables (markdown)
    /usr/bin/python3 tools/scaling_model.py --check    # only the cross-checks; exit 1 on a mismatch
"""

import math
import sys
from dataclasses import dataclass

# ----------------------------------------------------------------------------------------
# Architecture: parameters and forward FLOPs of a DDPM / IDDPM U-Net, from its structure.
# FLOPs count a multiply-add as 2 (convolutions, linear layers and the two attention GEMMs);
# normalization, activations and additions count zero, as progdiff's flops() does.
# ----------------------------------------------------------------------------------------


@dataclass
class Tally:
    params: int = 0
    flops: int = 0  # forward, one image
    attn_gemm_flops: int = 0  # the QK^T and AV part of `flops` (absent from some papers' counts)


@dataclass
class UNetSpec:
    name: str
    base: int  # channels of level 0
    mults: tuple  # channel multiplier per level
    res_blocks: int  # ResBlocks per encoder level (the decoder has one more)
    attn_at: tuple  # side lengths (pixels) that get attention
    image: int  # side length of the input
    in_ch: int = 3
    out_ch: int = 3  # 6 when the variance is learned (IDDPM)
    scale_shift: bool = False  # IDDPM's time projection gives scale and shift: 2x its width
    classes: int = 0  # class-conditional: one embedding row per class, width of the time embedding
    decoder_base: int = 0  # multi-decoder: the decoder's own base width (0: same as the encoder)


def _conv(t: Tally, cin, cout, k, side_out):
    t.params += cin * cout * k * k + cout
    t.flops += 2 * side_out * side_out * cout * cin * k * k


def _linear(t: Tally, fin, fout):
    t.params += fin * fout + fout
    t.flops += 2 * fin * fout


def _norm(t: Tally, c):
    t.params += 2 * c  # GroupNorm gamma and beta


def _res_block(t: Tally, cin, cout, temb, side, scale_shift):
    _norm(t, cin)
    _conv(t, cin, cout, 3, side)
    _linear(t, temb, cout * (2 if scale_shift else 1))
    _norm(t, cout)
    _conv(t, cout, cout, 3, side)
    if cin != cout:
        _conv(t, cin, cout, 1, side)  # 1x1 shortcut


def _attention(t: Tally, c, side):
    hw = side * side
    _norm(t, c)
    _conv(t, c, 3 * c, 1, side)  # q, k, v (three 1x1 maps, or one of 3c outputs: same count)
    _conv(t, c, c, 1, side)  # output projection
    gemm = 2 * 2 * hw * hw * c  # scores QK^T and the weighted sum AV, all heads together
    t.flops += gemm
    t.attn_gemm_flops += gemm


def unet_tally(s: UNetSpec):
    """Returns (encoder, decoder) tallies. The encoder holds the time embedding, the input
    convolution, the down path and the middle block, as progdiff's MultiDecoderUNet splits it."""
    enc, dec = Tally(), Tally()
    temb = 4 * s.base
    _linear(enc, s.base, temb)
    _linear(enc, temb, temb)
    if s.classes:
        enc.params += s.classes * temb
    side = s.image
    _conv(enc, s.in_ch, s.base, 3, side)
    skips = [s.base]
    ch = s.base
    for level, m in enumerate(s.mults):
        for _ in range(s.res_blocks):
            _res_block(enc, ch, s.base * m, temb, side, s.scale_shift)
            ch = s.base * m
            if side in s.attn_at:
                _attention(enc, ch, side)
            skips.append(ch)
        if level + 1 < len(s.mults):
            side //= 2
            _conv(enc, ch, ch, 3, side)  # stride-2 downsample
            skips.append(ch)
    _res_block(enc, ch, ch, temb, side, s.scale_shift)
    _attention(enc, ch, side)
    _res_block(enc, ch, ch, temb, side, s.scale_shift)

    d = s.decoder_base or s.base
    for level in reversed(range(len(s.mults))):
        for _ in range(s.res_blocks + 1):
            _res_block(dec, ch + skips.pop(), d * s.mults[level], temb, side, s.scale_shift)
            ch = d * s.mults[level]
            if side in s.attn_at:
                _attention(dec, ch, side)
        if level > 0:
            side *= 2
            _conv(dec, ch, ch, 3, side)  # nearest upsample, then a 3x3 convolution
    _norm(dec, ch)
    _conv(dec, ch, s.out_ch, 3, side)
    assert not skips
    return enc, dec


def total(s: UNetSpec) -> Tally:
    e, d = unet_tally(s)
    return Tally(e.params + d.params, e.flops + d.flops, e.attn_gemm_flops + d.attn_gemm_flops)


# ----------------------------------------------------------------------------------------
# Models and the papers' training settings.
# ----------------------------------------------------------------------------------------


@dataclass
class Model:
    spec: UNetSpec
    batch: int  # global batch of the paper / released configuration
    steps: int  # training steps of the paper
    paper_params: str  # as printed in the paper
    paper_flops: str  # as printed (the TDC paper's "FLOPs" are multiply-adds)
    source: str


DDPM_CIFAR = Model(
    UNetSpec("DDPM CIFAR-10", 128, (1, 2, 2, 2), 2, (16,), 32),
    128, 800_000, "35.7M", "6.06G (TDC table, as DDPM)", "DDPM paper; TDC Table I")
IDDPM_CIFAR = Model(
    UNetSpec("IDDPM CIFAR-10", 128, (1, 2, 2, 2), 3, (16, 8), 32, out_ch=6, scale_shift=True),
    128, 500_000, "52.5M", "8.14G", "IDDPM release flags; TDC Table I")
IDDPM_IN64 = Model(
    UNetSpec("IDDPM ImageNet-64", 128, (1, 2, 3, 4), 3, (16, 8), 64, out_ch=6, scale_shift=True),
    128, 1_500_000, "121M", "39.3G", "IDDPM release flags; TDC Table I")
IDDPM_IN64_192 = Model(
    UNetSpec("IDDPM ImageNet-64 cond., base 192", 192, (1, 2, 3, 4), 3, (16, 8), 64, out_ch=6,
             scale_shift=True, classes=1000),
    2048, 250_000, "270M", "-", "IDDPM release flags (not used by TDC)")
MODELS = [DDPM_CIFAR, IDDPM_CIFAR, IDDPM_IN64, IDDPM_IN64_192]

# ----------------------------------------------------------------------------------------
# Hardware assumptions.
# ----------------------------------------------------------------------------------------

GPUS_PER_NODE = 8
NVLINK_BPS = 450e9  # NVLink 4, H100 / H200 SXM: 900 GB/s both directions = 450 GB/s each way
IB_BPS = 50e9  # InfiniBand NDR, 400 Gb/s per GPU (one NIC per GPU)
ALPHA_NVLINK = 2e-6  # seconds per ring step inside a node
ALPHA_IB = 5e-6  # seconds per ring step that crosses nodes
BUCKET_BYTES = 25 * 2**20  # gradient bucket (PyTorch DDP's default size)
OPT_BYTES_PER_PARAM = 28 + 12  # AdamW: p, g, m, v read, p, m, v written; EMA: ema, p read, ema written

# The measured step: progdiff's CUDA back end, DDPM CIFAR-10 U-Net, batch 64, TF32, one H200
# (docs/cuda.md, "Status"): 163 ms for forward, loss, backward, AdamW and EMA; AdamW alone
# 815 us at 1.23 TB/s.
MEASURED_STEP_S = 0.163
MEASURED_BATCH = 64
MEASURED_BW = 1.23e12


@dataclass
class Scenario:
    name: str
    flops_rate: float  # FLOP/s sustained over forward + backward
    mem_bw: float  # bytes/s for the optimizer and EMA update


def measured_scenario() -> Scenario:
    ddpm = total(DDPM_CIFAR.spec)
    opt = OPT_BYTES_PER_PARAM * ddpm.params / MEASURED_BW
    rate = 3 * ddpm.flops * MEASURED_BATCH / (MEASURED_STEP_S - opt)
    return Scenario("progdiff measured (H200, TF32)", rate, MEASURED_BW)


ROOFLINE = Scenario("roofline (TF32 dense peak)", 494.7e12, 3.35e12)  # benchmarks/cuda/roofline.hpp
SCENARIOS = [measured_scenario(), ROOFLINE]

# ----------------------------------------------------------------------------------------
# Communication: ring all-reduce of `nbytes` over p GPUs, plus a latency term per bucket.
# ----------------------------------------------------------------------------------------


def buckets(nbytes):
    return max(1, math.ceil(nbytes / BUCKET_BYTES))


def allreduce_s(nbytes, p, layout="hier", n_buckets=None):
    """Seconds for one all-reduce of nbytes (in n_buckets pieces) over p GPUs.
    p <= 8: one ring over NVLink. p > 8 (whole nodes): 'flat' is one ring over all p GPUs,
    bounded by the slowest (InfiniBand) hop; 'hier' reduces inside each node over NVLink,
    all-reduces 1/8 of the bytes per GPU across nodes on its own NIC, gathers inside the node."""
    if p <= 1 or nbytes == 0:
        return 0.0
    nb = buckets(nbytes) if n_buckets is None else n_buckets
    if p <= GPUS_PER_NODE:
        return 2 * (p - 1) / p * nbytes / NVLINK_BPS + nb * 2 * (p - 1) * ALPHA_NVLINK
    g = GPUS_PER_NODE
    n = math.ceil(p / g)
    if layout == "flat":
        return 2 * (p - 1) / p * nbytes / IB_BPS + nb * 2 * (p - 1) * ALPHA_IB
    return (2 * (g - 1) / g * nbytes / NVLINK_BPS + 2 * (n - 1) / n * (nbytes / g) / IB_BPS
            + nb * (2 * (g - 1) * ALPHA_NVLINK + 2 * (n - 1) * ALPHA_IB))


@dataclass
class Step:
    compute: float  # forward + backward, seconds
    comm: float  # all gradient all-reduces
    last: float  # the last bucket's all-reduce (cannot overlap: backward is over)
    opt: float  # optimizer + EMA (every GPU updates every parameter)

    @property
    def serial(self):
        return self.compute + self.comm + self.opt

    @property
    def overlapped(self):
        fwd, bwd = self.compute / 3, 2 * self.compute / 3
        return fwd + max(bwd, self.comm - self.last) + self.last + self.opt


def dp_step(flops_per_image, params, batch, p, sc: Scenario, layout="hier") -> Step:
    nbytes = 4 * params
    compute = 3 * flops_per_image * batch / p / sc.flops_rate
    comm = allreduce_s(nbytes, p, layout)
    last = allreduce_s(min(nbytes, BUCKET_BYTES), p, layout, n_buckets=1)
    opt = OPT_BYTES_PER_PARAM * params / sc.mem_bw
    return Step(compute, comm, last, opt)


def efficiency(flops_per_image, params, batch, p, sc, overlap, layout="hier"):
    one = dp_step(flops_per_image, params, batch, 1, sc).serial
    st = dp_step(flops_per_image, params, batch, p, sc, layout)
    return one / (p * (st.overlapped if overlap else st.serial))


# ----------------------------------------------------------------------------------------
# Printing helpers.
# ----------------------------------------------------------------------------------------


def ms(s):
    v = s * 1e3
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def rel(got, want):
    d = 100 * (got / want - 1)
    return f"{0.0 if abs(d) < 0.05 else d:+.1f}%"


def pct(x):
    return f"{100 * x:.0f}%"


def hours(s):
    h = s / 3600
    if h < 1:
        return f"{60 * h:.3g} min"
    return f"{h:.3g} h" if h < 48 else f"{h / 24:.3g} d"


def row(*cells):
    print("| " + " | ".join(str(c) for c in cells) + " |")


def header(*cells, right=()):
    row(*cells)
    print("|" + "|".join("---:" if i in right else "---" for i in range(len(cells))) + "|")


# ----------------------------------------------------------------------------------------
# Cross-checks against published and library figures.
# ----------------------------------------------------------------------------------------


def checks():
    ok = True
    ddpm = total(DDPM_CIFAR.spec)
    enc, _ = unet_tally(DDPM_CIFAR.spec)
    multi = {d: total(UNetSpec("", 128, (1, 2, 2, 2), 2, (16,), 32, decoder_base=d)) for d in (192, 128, 16)}
    dec_only = {d: multi[d].params - enc.params for d in multi}
    expect = [
        ("DDPM CIFAR-10 parameters (DDPM paper: 35.7M; progdiff: 35,746,307)", ddpm.params, 35_746_307),
        ("DDPM CIFAR-10 forward FLOP per image (progdiff: 12.444 G)", round(ddpm.flops / 1e6), 12_444),
        ("multi-decoder shared encoder parameters (progdiff: 13,411,712)", enc.params, 13_411_712),
        ("multi-decoder encoder FLOP per image (progdiff: 3.326 G)", round(enc.flops / 1e6), 3_326),
        ("encoder + decoder 192 parameters (progdiff: 57,564,483)", multi[192].params, 57_564_483),
        ("encoder + decoder 16 parameters (progdiff: 14,654,803)", multi[16].params, 14_654_803),
        ("encoder + 3 decoders (progdiff: 81,142,169)", enc.params + sum(dec_only.values()), 81_142_169),
    ]
    header("check", "this model", "reference", "match", right=(1, 2))
    for what, got, want in expect:
        good = got == want
        ok &= good
        shown = (f"{got / 1e3:.3f} G", f"{want / 1e3:.3f} G") if "FLOP" in what else (f"{got:,}", f"{want:,}")
        row(what, *shown, "exact" if good else "MISMATCH")
    # Published figures that are rounded: report the relative difference.
    for m in (IDDPM_CIFAR, IDDPM_IN64, IDDPM_IN64_192):
        t = total(m.spec)
        want = float(m.paper_params.rstrip("M")) * 1e6
        good = abs(t.params / want - 1) < 0.02
        ok &= good
        row(f"{m.spec.name} parameters (published: {m.paper_params})", f"{t.params:,}", f"{want:,.0f}",
            rel(t.params, want))
    for m in (DDPM_CIFAR, IDDPM_CIFAR, IDDPM_IN64):
        t = total(m.spec)
        macs = (t.flops - t.attn_gemm_flops) / 2
        want = float(m.paper_flops.split("G")[0]) * 1e9
        good = abs(macs / want - 1) < 0.03
        ok &= good
        row(f"{m.spec.name} multiply-adds without attention GEMMs (TDC table: {m.paper_flops.split(' ')[0]})",
            f"{macs / 1e9:.3f} G", f"{want / 1e9:.2f} G", rel(macs, want))
    return ok


# ----------------------------------------------------------------------------------------
# Tables.
# ----------------------------------------------------------------------------------------


def table_models():
    header("model", "base, levels, blocks, attention", "parameters", "gradient MB (fp32)", "buckets",
           "forward GFLOP / image", "train GFLOP / image (3x)", "batch", "steps",
           right=(2, 3, 4, 5, 6, 7, 8))
    for m in MODELS:
        s, t = m.spec, total(m.spec)
        arch = f"{s.base}, {'-'.join(map(str, s.mults))}, {s.res_blocks}, at {','.join(map(str, s.attn_at))}"
        row(s.name, arch, f"{t.params / 1e6:.2f}M", f"{4 * t.params / 1e6:.0f}", buckets(4 * t.params),
            f"{t.flops / 1e9:.2f}", f"{3 * t.flops / 1e9:.1f}", m.batch, f"{m.steps:,}")


def table_steps(sc: Scenario):
    print(f"Scenario: {sc.name}, {sc.flops_rate / 1e12:.1f} TFLOP/s sustained, "
          f"optimizer + EMA at {sc.mem_bw / 1e12:.2f} TB/s.\n")
    header("model", "GPUs", "per-GPU batch", "compute ms", "all-reduce ms", "opt. ms",
           "step ms (serial / overlap)", "efficiency serial", "efficiency overlap", "training time (overlap)",
           right=(1, 2, 3, 4, 5, 6, 7, 8, 9))
    for m in MODELS:
        t = total(m.spec)
        one = dp_step(t.flops, t.params, m.batch, 1, sc)
        row(m.spec.name, 1, m.batch, ms(one.compute), "-", ms(one.opt), ms(one.serial), "-", "-",
            hours(m.steps * one.serial))
        for p, layout in ((8, "hier"), (64, "flat"), (64, "hier")):
            st = dp_step(t.flops, t.params, m.batch, p, sc, layout)
            label = f"{p}" if p <= 8 else f"{p} ({'one flat ring' if layout == 'flat' else 'hierarchical'})"
            row("", label, f"{m.batch / p:g}", ms(st.compute), ms(st.comm), ms(st.opt),
                f"{ms(st.serial)} / {ms(st.overlapped)}",
                pct(efficiency(t.flops, t.params, m.batch, p, sc, False, layout)),
                pct(efficiency(t.flops, t.params, m.batch, p, sc, True, layout)),
                hours(m.steps * st.overlapped))


# TDC: N groups, minimum FLOPs ratio k; steps from the step-adaptive paper, Sec. 5.1 and 5.4.
TDC_N, TDC_K = 10, 0.5


def tdc_budgets():
    """Each group's FLOPs budget as a fraction of the base model's: the upper edge of its
    interval of [kF, F] (progdiff's FlopsInterval, docs/grouping.md)."""
    return [TDC_K + (1 - TDC_K) * (i + 1) / TDC_N for i in range(TDC_N)]


@dataclass
class TdcRun:
    label: str
    model: Model
    stage1: int
    stage2_per_group: int
    pruned: bool


TDC_RUNS = [
    TdcRun("CIFAR-10, copies (no pruning)", IDDPM_CIFAR, 250_000, 3_000, False),
    TdcRun("CIFAR-10, pruned (TDC)", IDDPM_CIFAR, 200_000, 25_000, True),
    TdcRun("ImageNet-64, copies (no pruning)", IDDPM_IN64, 800_000, 30_000, False),
    TdcRun("ImageNet-64, pruned (TDC)", IDDPM_IN64, 800_000, 50_000, True),
]


def step_s(flops, params, batch, p, sc):
    return dp_step(flops, params, batch, p, sc, "hier").overlapped


def _waves(fl, q, p, run, params, sc):
    """Groups (FLOPs per image, largest first) in waves of p // q groups, q GPUs each; the
    last, smaller wave spreads its groups over the GPUs it has (powers of two). Returns the
    seconds and the layout, e.g. "8 x 8 GPUs, then 2 x 32"."""
    remaining, wall, parts = list(fl), 0.0, []
    while remaining:
        slots = p // q
        wave, remaining = remaining[:slots], remaining[slots:]
        qq = q if len(wave) == slots else 1 << ((p // len(wave)).bit_length() - 1)
        wall += run.stage2_per_group * step_s(max(wave), params, run.model.batch, qq, sc)
        parts.append((len(wave), qq))
    merged = []  # equal consecutive waves written once, with a count
    for part in parts:
        if merged and merged[-1][0] == part:
            merged[-1][1] += 1
        else:
            merged.append([part, 1])
    desc = ", then ".join(f"{n} x {g} GPU{'s' if g > 1 else ''}" + (f" ({k} waves)" if k > 1 else "")
                          for (n, g), k in merged)
    return wall, desc


def _one_wave(fl, p, run, params, sc):
    """All groups at once (p >= N): every group starts on one GPU; the slowest group's GPUs are
    doubled while GPUs are left. Power-of-two counts up to 8 pack into 8-GPU nodes, so a group
    of at most 8 GPUs exchanges its gradients over NVLink only."""
    q = [1] * len(fl)

    def t(i, qi):
        return run.stage2_per_group * step_s(fl[i], params, run.model.batch, qi, sc)

    while True:
        i = max(range(len(fl)), key=lambda j: t(j, q[j]))  # the slowest group
        if sum(q) + q[i] > p or t(i, 2 * q[i]) >= t(i, q[i]):
            break
        q[i] *= 2
    return max(t(i, q[i]) for i in range(len(fl))), q


def fan_out_s(run: TdcRun, p, sc):
    """Stage 2 with the groups trained side by side (no gradient exchange between groups).
    Tries every uniform q (GPUs per group) in waves, and, when p >= N, one wave with
    per-group GPU counts; returns (seconds, layout description)."""
    t = total(run.model.spec)
    fl = sorted((b * t.flops if run.pruned else t.flops for b in tdc_budgets()), reverse=True)
    best = None
    q = 1
    while q <= p:
        wall, desc = _waves(fl, q, p, run, t.params, sc)
        if best is None or wall < best[0]:
            best = (wall, desc)
        q *= 2
    if p >= TDC_N:
        wall, qs = _one_wave(fl, p, run, t.params, sc)
        if wall < best[0]:
            best = (wall, "all at once, GPUs per group " + "/".join(map(str, qs)))
    return best


def table_tdc(sc: Scenario):
    print(f"Scenario: {sc.name}. Groups N = {TDC_N}, k = {TDC_K}; "
          f"group budgets {', '.join(f'{b:.2f}' for b in tdc_budgets())} of the base model's FLOPs.\n")
    header("run", "GPUs", "baseline (one model)", "stage 1", "stage 2 sequential", "stage 2 fan-out",
           "fan-out layout (groups x GPUs each)", "total, sequential", "total, fan-out",
           right=(1, 2, 3, 4, 5, 7, 8))
    for run in TDC_RUNS:
        m, t = run.model, total(run.model.spec)
        for p in (8, 64):
            base = m.steps * step_s(t.flops, t.params, m.batch, p, sc)
            s1 = run.stage1 * step_s(t.flops, t.params, m.batch, p, sc)
            fl = [b * t.flops if run.pruned else t.flops for b in tdc_budgets()]
            seq = sum(run.stage2_per_group * step_s(f, t.params, m.batch, p, sc) for f in fl)
            fan, desc = fan_out_s(run, p, sc)
            row(run.label if p == 8 else "", p, hours(base), hours(s1), hours(seq), hours(fan), desc,
                f"{hours(s1 + seq)} ({pct((s1 + seq) / base)})", f"{hours(s1 + fan)} ({pct((s1 + fan) / base)})")
    print("\nWith up to 64 GPUs, the fastest plan per run (stage 1 and the baseline on whichever of 1, 8, 64 GPUs"
          " is fastest; stage 2 fanned out over 64):\n")
    header("run", "best baseline", "stage 1", "stage 2 fan-out (64)", "total", "vs best baseline",
           right=(1, 2, 3, 4, 5))
    for run in TDC_RUNS:
        m, t = run.model, total(run.model.spec)
        base = min((m.steps * step_s(t.flops, t.params, m.batch, p, sc), p) for p in (1, 8, 64))
        s1 = min((run.stage1 * step_s(t.flops, t.params, m.batch, p, sc), p) for p in (1, 8, 64))
        fan, _ = fan_out_s(run, 64, sc)
        row(run.label, f"{hours(base[0])} on {base[1]}", f"{hours(s1[0])} on {s1[1]}", hours(fan),
            hours(s1[0] + fan), pct((s1[0] + fan) / base[0]))


def table_tdc_efficiency(sc: Scenario):
    """Stage 2 on 64 GPUs: a group's fine-tuning on all 64 (sequential) vs on its own node."""
    header("model", "stage 2 layout", "GPUs per group", "per-GPU batch", "all-reduce over",
           "step ms (overlap)", "efficiency (overlap)", right=(2, 3, 5, 6))
    for m in (IDDPM_CIFAR, IDDPM_IN64):
        t = total(m.spec)
        for label, q, over in (("sequential, every group on all 64", 64, "8 nodes"),
                               ("fan-out, 8 groups at a time", 8, "NVLink only")):
            st = dp_step(t.flops, t.params, m.batch, q, sc, "hier")
            row(m.spec.name if q == 64 else "", label, q, f"{m.batch / q:g}", over, ms(st.overlapped),
                pct(efficiency(t.flops, t.params, m.batch, q, sc, True)))


# Multi-stage: progdiff's MultiDecoderUNet for CIFAR-10 (the paper's DPM-Solver setting):
# DDPM encoder, base 128; decoders 192, 128, 16 for intervals 0, 1, 2.
MS_DECODERS = (192, 128, 16)
MS_FRACTIONS = (1 / 3, 1 / 3, 1 / 3)  # share of timesteps in each interval (assumed thirds)
MS_STEPS, MS_BATCH = 250_000, 128


def multistage():
    enc, _ = unet_tally(DDPM_CIFAR.spec)
    decs = []
    for d in MS_DECODERS:
        _, dec = unet_tally(UNetSpec("", 128, (1, 2, 2, 2), 2, (16,), 32, decoder_base=d))
        decs.append(dec)
    return enc, decs


def split_gpus(p, loads):
    """GPUs per interval: one each, then each further GPU to the interval with the most work per GPU."""
    n = [1] * len(loads)
    for _ in range(p - len(loads)):
        i = max(range(len(loads)), key=lambda k: loads[k] / n[k])
        n[i] += 1
    return n


def table_multistage(sc: Scenario):
    enc, decs = multistage()
    all_params = enc.params + sum(d.params for d in decs)
    avg_flops = enc.flops + sum(f * d.flops for f, d in zip(MS_FRACTIONS, decs))
    header("GPUs", "layout", "GPUs per interval", "gradient exchanged", "step ms (serial / overlap)",
           "efficiency (overlap)", "training time", right=(0, 4, 5))
    one = dp_step(avg_flops, all_params, MS_BATCH, 1, sc).serial
    for p in (8, 64):
        st = dp_step(avg_flops, all_params, MS_BATCH, p, sc, "hier")
        row(p, "replicated: every GPU holds all 3 decoders", "-",
            f"{4 * all_params / 1e6:.0f} MB over all {p}", f"{ms(st.serial)} / {ms(st.overlapped)}",
            pct(one / (p * st.overlapped)), hours(MS_STEPS * st.overlapped))
        loads = [f * (enc.flops + d.flops) for f, d in zip(MS_FRACTIONS, decs)]
        n = split_gpus(p, loads)
        serial, over = 0.0, 0.0
        for f, d, q in zip(MS_FRACTIONS, decs, n):
            flops, params = enc.flops + d.flops, enc.params + d.params
            b = MS_BATCH * f / q
            compute = 3 * flops * b / sc.flops_rate
            comm_dec = allreduce_s(4 * d.params, q, "hier")
            comm_enc = allreduce_s(4 * enc.params, p, "hier")
            last = allreduce_s(min(4 * enc.params, BUCKET_BYTES), p, "hier", n_buckets=1)
            s = Step(compute, comm_dec + comm_enc, last, OPT_BYTES_PER_PARAM * params / sc.mem_bw)
            serial, over = max(serial, s.serial), max(over, s.overlapped)
        row("", "sharded: interval k's GPUs hold the encoder and decoder k", "/".join(map(str, n)),
            f"encoder {4 * enc.params / 1e6:.0f} MB over all {p}; decoder k "
            f"({'/'.join(f'{4 * d.params / 1e6:.0f}' for d in decs)} MB) within its GPUs",
            f"{ms(serial)} / {ms(over)}", pct(one / (p * over)), hours(MS_STEPS * over))


def main():
    if "--check" in sys.argv:
        sys.exit(0 if checks() else 1)
    print("## Cross-checks\n")
    ok = checks()
    print("\n## Models\n")
    table_models()
    enc, decs = multistage()
    print(f"\nMulti-decoder U-Net (CIFAR-10): encoder {enc.params:,} parameters, {enc.flops / 1e9:.3f} GFLOP; "
          + ", ".join(f"decoder {w}: {d.params:,}, {d.flops / 1e9:.3f} GFLOP" for w, d in zip(MS_DECODERS, decs)))
    for sc in SCENARIOS:
        print(f"\n## Data-parallel step: {sc.name}\n")
        table_steps(sc)
    for sc in SCENARIOS:
        print(f"\n## TDC: stage 2 fan-out, {sc.name}\n")
        table_tdc(sc)
        print()
        table_tdc_efficiency(sc)
    for sc in SCENARIOS:
        print(f"\n## Multi-stage (shared encoder), {sc.name}\n")
        table_multistage(sc)
    if not ok:
        print("\nA cross-check failed.")
        sys.exit(1)


if __name__ == "__main__":
    main()
