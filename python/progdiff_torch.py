"""progdiff checkpoints as torch.nn.Modules.

Rebuilds any model progdiff saves (a unified or progressive U-Net with uniform or pruned,
non-uniform widths; a TDC run folder of pruned groups; a shared encoder with one decoder per
timestep interval; separate experts; learned-variance models with 2C outputs) from the
safetensors file alone: the structure, the run-time settings and every layer's width are in
the file's metadata (include/progdiff/model/description.hpp), the weights in its tensors.
Nothing but PyTorch is needed, and nothing is unpickled.

    import progdiff_torch
    model = progdiff_torch.load("run/stage2.safetensors")   # or a TDC folder: "run/tdc"
    eps = model.predict(x, t)   # x [N, C, S, S], t [N] timesteps; each sample routed as progdiff does

`model.boundaries` holds the first timestep of each group, `model.prediction_type` what the
outputs are, `model.learned_variance` whether they are 2C (the prediction, then the variance
interpolation v). A single U-Net (`model.unet(k)` of a progressive model or of separate
experts) is a plain function of (x, t) that torch.onnx.export can trace.
"""

import json
import math
import os
import struct

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["load", "read_safetensors", "CheckpointError", "UNet", "ProgdiffModel"]


class CheckpointError(ValueError):
    """A file that is not a progdiff checkpoint this module can rebuild; names the file and key."""


# --- safetensors, read without the safetensors package -------------------------------------

_DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "I64": torch.int64, "I32": torch.int32}


def read_safetensors(path, wanted=None):
    """(metadata dict, {name: tensor}) of a safetensors file; only the tensors `wanted(name)`
    accepts are read (all when None)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise CheckpointError(f"{path}: too short for a safetensors file")
    (size,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8 : 8 + size].decode("utf-8"))
    except ValueError as e:
        raise CheckpointError(f"{path}: the safetensors header is not JSON ({e})") from None
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, record in header.items():
        if wanted is not None and not wanted(name):
            continue
        dtype = _DTYPES.get(record["dtype"])
        if dtype is None:
            raise CheckpointError(f"{path}: tensor '{name}' has dtype {record['dtype']}, not one this module reads")
        begin, end = record["data_offsets"]
        raw = bytearray(data[8 + size + begin : 8 + size + end])
        if raw:
            tensors[name] = torch.frombuffer(raw, dtype=dtype).reshape(record["shape"])
        else:  # an empty tensor: frombuffer refuses empty buffers
            tensors[name] = torch.zeros(record["shape"], dtype=dtype)
    return metadata, tensors


# --- the description -----------------------------------------------------------------------


class _Description:
    """The metadata of one checkpoint, every lookup naming the file and key when it fails."""

    def __init__(self, metadata, source):
        self.d = metadata
        self.source = source

    def get(self, key):
        if key not in self.d:
            raise CheckpointError(f"{self.source}: the checkpoint's description has no key '{key}'")
        return self.d[key]

    def has(self, key):
        return key in self.d

    def structure(self):
        text = self.get("model.structure")
        s = dict(part.split("=", 1) for part in text.split())
        try:
            out = {
                "levels": [int(m) for m in s["levels"].split(",")],
                "res_blocks": int(s["res_blocks"]),
                "attention": [] if s["attention"] == "none" else [int(r) for r in s["attention"].split(",")],
                "layout": s["layout"],
                "channels": int(s["channels"]),
                "learned_variance": s.get("variance", "fixed") == "learned",
                "dtype": {"f32": torch.float32, "f64": torch.float64}[s["dtype"]],
            }
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"{self.source}: key 'model.structure' = '{text}' cannot be read ({e})") from None
        if out["layout"] not in ("ddpm", "sparse"):
            raise CheckpointError(
                f"{self.source}: key 'model.structure' has layout={out['layout']}; this module reads ddpm and sparse")
        return out

    def config(self, prefix):
        c = lambda field: self.get(prefix + "config." + field)
        return {
            "image_size": int(c("image_size")),
            "groups": int(c("groups")),
            "heads": int(c("heads")),
            "eps": float(c("eps")),
            "time_shift": float(c("time_shift")),
            "max_period": float(c("max_period")),
            # recorded only when not the default 1 (U-Nets imported from diffusers' DDPM models)
            "downsample_padding": int(self.d.get(prefix + "config.downsample_padding", "1")),
        }

    def widths(self, prefix, layers):
        return {layer: int(self.get(prefix + "width." + layer)) for layer in layers}

    def boundaries(self):
        return [int(s) for s in self.get("model.boundaries").split(",")]


def _encoder_layers(st):
    names = ["temb.sinusoid", "temb.hidden", "temb.out", "conv_in"]
    for l in range(len(st["levels"])):
        names += [f"down.{l}.res.{j}" for j in range(st["res_blocks"])]
        if l + 1 < len(st["levels"]):
            names.append(f"down.{l}.downsample")
    return names + ["mid.res.0", "mid.res.1"]


def _decoder_layers(st):
    names = []
    for l in reversed(range(len(st["levels"]))):
        names += [f"up.{l}.res.{j}" for j in range(st["res_blocks"] + 1)]
        if l > 0:
            names.append(f"up.{l}.upsample")
    return names


# --- layers (parameter names as progdiff's) ------------------------------------------------


class GroupNorm(nn.Module):
    def __init__(self, groups, channels, eps):
        super().__init__()
        self.groups, self.eps = groups, eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return F.group_norm(x, self.groups, self.gamma, self.beta, self.eps)


class TimestepEmbedding(nn.Module):
    """[sin | cos] of t at dim / 2 frequencies exp(-ln(max_period) i / (half - shift)) (an odd
    dim's last column zero), then Linear, SiLU, Linear."""

    def __init__(self, dim, hidden, out, max_period, shift):
        super().__init__()
        self.dim, self.max_period, self.shift = dim, max_period, shift
        self.linear_1 = nn.Linear(dim, hidden)
        self.linear_2 = nn.Linear(hidden, out)

    def sinusoid(self, t):
        half = self.dim // 2
        i = torch.arange(half, dtype=torch.float64, device=t.device)
        freq = torch.exp(-math.log(self.max_period) * i / (half - self.shift))
        # progdiff hands the net timesteps in its element type, then computes in double
        args = t.to(self.linear_1.weight.dtype).to(torch.float64)[:, None] * freq[None, :]
        e = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
        if self.dim % 2:
            e = F.pad(e, (0, 1))
        return e.to(self.linear_1.weight.dtype)

    def forward(self, t):
        return self.linear_2(F.silu(self.linear_1(self.sinusoid(t))))


class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps):
        super().__init__()
        self.norm1 = GroupNorm(groups, cin, eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb_proj = nn.Linear(temb, cout)
        self.norm2 = GroupNorm(groups, cout, eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))  # dropout: evaluation mode
        return (self.skip(x) if self.skip is not None else x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over pixels with a residual: qkv rows are q, k, v, and head h
    owns channels h*d .. (h+1)*d - 1 of each."""

    def __init__(self, channels, heads, groups, eps):
        super().__init__()
        if channels % heads:
            raise CheckpointError(f"an attention block of {channels} channels cannot have {heads} heads")
        self.heads = heads
        self.norm = GroupNorm(groups, channels, eps)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        n, c, hh, ww = x.shape
        d = c // self.heads
        qkv = self.qkv(self.norm(x)).reshape(n, 3, self.heads, d, hh * ww)
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
        a = torch.softmax(torch.einsum("nhdi,nhdj->nhij", q, k) / math.sqrt(d), dim=-1)
        o = torch.einsum("nhdj,nhij->nhdi", v, a).reshape(n, c, hh, ww)
        return x + self.proj(o)


class Downsample(nn.Module):
    def __init__(self, cin, cout, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(cin, cout, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:  # DDPM's original: one zero row and column at the end
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _attends(st, side):
    return side in st["attention"]


class _Level(nn.Module):
    def __init__(self):
        super().__init__()
        self.res = nn.ModuleList()
        self.attn = nn.ModuleDict()  # keyed by the ResBlock index it follows


class _Mid(nn.Module):
    def __init__(self, res0, attn, res1):
        super().__init__()
        self.res = nn.ModuleList([res0, res1])
        self.attn = attn


class _EncoderParts:
    """temb, conv_in, down.<l>, mid: the encoder of a U-Net, as progdiff's unet/encoder.hpp."""

    def _build_encoder(self, st, cfg, w):
        self.st, self.cfg = st, cfg
        self.temb = TimestepEmbedding(w["temb.sinusoid"], w["temb.hidden"], w["temb.out"], cfg["max_period"],
                                      cfg["time_shift"])
        e, g, eps, side = w["temb.out"], cfg["groups"], cfg["eps"], cfg["image_size"]
        cur = w["conv_in"]
        self.conv_in = nn.Conv2d(st["channels"], cur, 3, padding=1)
        self.skip_widths = [cur]
        every = st["layout"] == "ddpm"
        placed = False
        self.down = nn.ModuleList()
        for l in range(len(st["levels"])):
            level = _Level()
            attend_level = _attends(st, side >> l)
            for j in range(st["res_blocks"]):
                out = w[f"down.{l}.res.{j}"]
                level.res.append(ResBlock(cur, out, e, g, eps))
                attend = attend_level if every else (attend_level and not placed and j + 1 == st["res_blocks"])
                placed = placed or (attend and not every)
                if attend:
                    level.attn[str(j)] = AttentionBlock(out, cfg["heads"], g, eps)
                cur = out
                self.skip_widths.append(cur)
            if l + 1 < len(st["levels"]):
                out = w[f"down.{l}.downsample"]
                level.downsample = Downsample(cur, out, cfg["downsample_padding"])
                cur = out
                self.skip_widths.append(cur)
            self.down.append(level)
        m0, m1 = w["mid.res.0"], w["mid.res.1"]
        self.mid = _Mid(ResBlock(cur, m0, e, g, eps), AttentionBlock(m0, cfg["heads"], g, eps) if every else None,
                        ResBlock(m0, m1, e, g, eps))
        self.output_width, self.temb_width = m1, e

    def encode(self, x, t):
        temb = self.temb(t)
        h = self.conv_in(x)
        skips = [h]
        for level in self.down:
            for j, res in enumerate(level.res):
                h = res(h, temb)
                if str(j) in level.attn:
                    h = level.attn[str(j)](h)
                skips.append(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
                skips.append(h)
        h = self.mid.res[0](h, temb)
        if self.mid.attn is not None:
            h = self.mid.attn(h)
        return self.mid.res[1](h, temb), skips, temb


class _DecoderParts:
    """up.<l>, norm_out, conv_out: a decoder, as progdiff's unet/decoder.hpp; its GroupNorm groups
    are its own (a multi-decoder model's narrow decoders have fewer)."""

    def _build_decoder(self, st, cfg, w, skip_widths, in_width, temb_width, groups):
        side, eps = cfg["image_size"], cfg["eps"]
        every = st["layout"] == "ddpm"
        skips = list(skip_widths)
        cur = in_width
        levels = len(st["levels"])
        self.up = nn.ModuleList([_Level() for _ in range(levels)])  # indexed by level, run coarsest first
        for l in reversed(range(levels)):
            level = self.up[l]
            for j in range(st["res_blocks"] + 1):
                out = w[f"up.{l}.res.{j}"]
                level.res.append(ResBlock(cur + skips.pop(), out, temb_width, groups, eps))
                if every and _attends(st, side >> l):
                    level.attn[str(j)] = AttentionBlock(out, cfg["heads"], groups, eps)
                cur = out
            if l > 0:
                out = w[f"up.{l}.upsample"]
                level.upsample = Upsample(cur, out)
                cur = out
        self.norm_out = GroupNorm(groups, cur, eps)
        out_channels = st["channels"] * (2 if st["learned_variance"] else 1)
        self.conv_out = nn.Conv2d(cur, out_channels, 3, padding=1)

    def decode(self, h, skips, temb):
        skips = list(skips)
        for level in reversed(self.up):
            for j, res in enumerate(level.res):
                h = res(torch.cat([h, skips.pop()], dim=1), temb)
                if str(j) in level.attn:
                    h = level.attn[str(j)](h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class UNet(nn.Module, _EncoderParts, _DecoderParts):
    """One progdiff U-Net (unet::UNet): forward(x [N, C, S, S], t [N]) -> [N, C or 2C, S, S]."""

    def __init__(self, st, cfg, widths):
        super().__init__()
        self._build_encoder(st, cfg, widths)
        self._build_decoder(st, cfg, widths, self.skip_widths, self.output_width, self.temb_width, cfg["groups"])

    def forward(self, x, t):
        return self.decode(*self.encode(x, t))


class Encoder(nn.Module, _EncoderParts):
    def __init__(self, st, cfg, widths):
        super().__init__()
        self._build_encoder(st, cfg, widths)

    def forward(self, x, t):
        return self.encode(x, t)


class Decoder(nn.Module, _DecoderParts):
    def __init__(self, st, cfg, widths, encoder, groups):
        super().__init__()
        self._build_decoder(st, cfg, widths, encoder.skip_widths, encoder.output_width, encoder.temb_width, groups)

    def forward(self, h, skips, temb):
        return self.decode(h, skips, temb)


# --- models with routing -------------------------------------------------------------------


class ProgdiffModel(nn.Module):
    """A grouped model: timestep t is served by group k when boundaries[k] <= t < boundaries[k+1]
    (fractional timesteps by the nearest grid index)."""

    kind = "?"

    def __init__(self, boundaries, prediction_type, learned_variance, image_channels):
        super().__init__()
        self.boundaries = list(boundaries)
        self.prediction_type = prediction_type
        self.learned_variance = learned_variance
        self.image_channels = image_channels

    @property
    def num_train_timesteps(self):
        return self.boundaries[-1]

    @property
    def group_count(self):
        return len(self.boundaries) - 1

    def group_of(self, t):
        """The group of each timestep of t [N]."""
        t = torch.as_tensor(t)
        index = torch.floor(t.to(torch.float64) + 0.5).long() if t.is_floating_point() else t.long()
        index = index.clamp(0, self.num_train_timesteps - 1)
        starts = torch.tensor(self.boundaries[1:-1], dtype=torch.long, device=index.device)
        return torch.bucketize(index, starts, right=True)

    def forward(self, x, t):
        t = torch.as_tensor(t, device=x.device)
        if t.dim() != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(
                f"expected one timestep per sample, got t of shape {tuple(t.shape)} for x {tuple(x.shape)}")
        groups = self.group_of(t)
        channels = self.image_channels * (2 if self.learned_variance else 1)
        y = x.new_empty((x.shape[0], channels) + tuple(x.shape[2:]))
        self._route(x, t, groups, y)
        return y

    @torch.no_grad()
    def predict(self, x, t):
        """The prediction in evaluation mode, each sample routed to its group's denoiser."""
        was = self.training
        self.eval()
        try:
            return self.forward(x, t)
        finally:
            self.train(was)


class Progressive(ProgdiffModel):
    """model::Progressive: one U-Net per group (copies of a base, or each pruned to its own
    widths), parameters group<k>.*."""

    kind = "progressive"

    def __init__(self, nets, boundaries, prediction_type, st):
        super().__init__(boundaries, prediction_type, st["learned_variance"], st["channels"])
        for k, net in enumerate(nets):
            self.add_module(f"group{k}", net)

    def unet(self, k):
        return getattr(self, f"group{k}")

    def _route(self, x, t, groups, y):
        for k in range(self.group_count):
            rows = (groups == k).nonzero().flatten()
            if rows.numel():
                y[rows] = self.unet(k)(x[rows], t[rows])


class SeparateExperts(ProgdiffModel):
    """IntervalRouted<SeparateExperts>: one whole U-Net per interval, parameters expert.<k>.*."""

    kind = "separate_experts"

    def __init__(self, nets, boundaries, prediction_type, st):
        super().__init__(boundaries, prediction_type, st["learned_variance"], st["channels"])
        self.expert = nn.ModuleList(nets)

    def unet(self, k):
        return self.expert[k]

    def _route(self, x, t, groups, y):
        for k in range(self.group_count):
            rows = (groups == k).nonzero().flatten()
            if rows.numel():
                y[rows] = self.expert[k](x[rows], t[rows])


class MultiDecoder(ProgdiffModel):
    """IntervalRouted<MultiDecoderUNet>: the encoder runs once on the whole batch, decoder k on
    its interval's samples; parameters encoder.*, decoder.<k>.*."""

    kind = "multi_decoder"

    def __init__(self, encoder, decoders, boundaries, prediction_type, st):
        super().__init__(boundaries, prediction_type, st["learned_variance"], st["channels"])
        self.encoder = encoder
        self.decoder = nn.ModuleList(decoders)

    def _route(self, x, t, groups, y):
        h, skips, temb = self.encoder(x, t)
        for k in range(self.group_count):
            rows = (groups == k).nonzero().flatten()
            if rows.numel():
                y[rows] = self.decoder[k](h[rows], [s[rows] for s in skips], temb[rows])


# --- loading -------------------------------------------------------------------------------


def _weights_prefix(tensors, weights, source):
    has_ema = any(name.startswith("ema.") for name in tensors)
    if weights == "auto":
        return "ema." if has_ema else "model."
    if weights == "ema" and not has_ema:
        raise CheckpointError(f"{source}: weights='ema', but the checkpoint holds no EMA (no 'ema.*' tensors)")
    if weights not in ("model", "ema"):
        raise ValueError(f"weights must be 'auto', 'model' or 'ema', not {weights!r}")
    return weights + "."


def _load_parameters(module, tensors, prefix, source):
    """Fills every parameter of `module` from tensors[prefix + name]; a missing, extra or
    mis-shaped tensor is a CheckpointError naming the file and the key."""
    own = dict(module.named_parameters())
    for name, p in own.items():
        key = prefix + name
        if key not in tensors:
            raise CheckpointError(f"{source}: tensor '{key}' is missing (the description implies it)")
        v = tensors[key]
        if tuple(v.shape) != tuple(p.shape):
            raise CheckpointError(f"{source}: tensor '{key}' has shape {list(v.shape)}, the description implies "
                                  f"{list(p.shape)}")
        with torch.no_grad():
            p.copy_(v.to(p.dtype))
    extra = sorted(k for k in tensors if k.startswith(prefix) and k[len(prefix):] not in own)
    if extra:
        raise CheckpointError(f"{source}: tensor '{extra[0]}' matches no parameter of the model the description "
                              f"gives ({len(extra)} such tensors)")


def _unet(desc, st, prefix):
    return UNet(st, desc.config(prefix), desc.widths(prefix, _encoder_layers(st) + _decoder_layers(st)))


def _load_file(path, weights):
    # model.<name> and ema.<name> are the weights; ema.updates is the EMA's counter
    metadata, tensors = read_safetensors(
        path, lambda n: n.startswith("model.") or (n.startswith("ema.") and n != "ema.updates"))
    desc = _Description(metadata, str(path))
    kind = desc.get("model.kind")
    st = desc.structure()
    boundaries = desc.boundaries()
    prediction = desc.get("model.prediction")
    groups = len(boundaries) - 1
    if kind == "progressive":
        model = Progressive([_unet(desc, st, f"group{k}.") for k in range(groups)], boundaries, prediction, st)
    elif kind == "separate_experts":
        model = SeparateExperts([_unet(desc, st, f"expert{k}.") for k in range(groups)], boundaries, prediction, st)
    elif kind == "multi_decoder":
        cfg = desc.config("")
        encoder = Encoder(st, cfg, desc.widths("encoder.", _encoder_layers(st)))
        decoders = [
            Decoder(st, cfg, desc.widths(f"decoder{k}.", _decoder_layers(st)), encoder,
                    int(desc.get(f"decoder{k}.groupnorm_groups"))) for k in range(groups)
        ]
        model = MultiDecoder(encoder, decoders, boundaries, prediction, st)
    else:
        raise CheckpointError(f"{path}: key 'model.kind' = '{kind}'; this module reads progressive, "
                              "multi_decoder and separate_experts")
    model.to(st["dtype"])
    _load_parameters(model, tensors, _weights_prefix(tensors, weights, path), str(path))
    return model.eval()


def _load_tdc(folder, weights):
    """A TDC run folder (tdc/pipeline.hpp): tdc.json's group starts, and per group the
    fine-tuned denoiser (group<g>/checkpoint.safetensors, or pruned.safetensors when it was not
    fine-tuned), each a one-group progressive checkpoint."""
    manifest_path = os.path.join(folder, "tdc.json")
    with open(manifest_path) as f:
        manifest = json.load(f)
    if "starts" not in manifest:
        raise CheckpointError(f"{manifest_path}: no key 'starts'")
    starts = [int(s) for s in manifest["starts"]]
    nets, prediction, st = [], None, None
    for g in range(len(starts) - 1):
        group_dir = os.path.join(folder, f"group{g}")
        if not os.path.exists(os.path.join(group_dir, "done.json")):
            raise CheckpointError(f"{group_dir}/done.json: missing; TDC group {g} has not finished")
        path = os.path.join(group_dir, "checkpoint.safetensors")
        if not os.path.exists(path):
            path = os.path.join(group_dir, "pruned.safetensors")
        one = _load_file(path, weights)
        if one.group_count != 1 or one.num_train_timesteps != starts[-1]:
            raise CheckpointError(f"{path}: key 'model.boundaries' = {one.boundaries}; a TDC group checkpoint has "
                                  f"one group over the {starts[-1]} timesteps of {manifest_path}")
        nets.append(one.unet(0))
        prediction = one.prediction_type
        st = {"learned_variance": one.learned_variance, "channels": one.image_channels}
    return Progressive(nets, starts, prediction, st).eval()


def load(path, weights="auto"):
    """The model of a progdiff checkpoint (.safetensors) or TDC run folder, in evaluation mode.

    weights: "auto" (the EMA weights when the file holds them, as progdiff's programs sample
    with; else the model's), "model" or "ema"."""
    path = os.fspath(path)
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "tdc.json")):
            return _load_tdc(path, weights)
        raise CheckpointError(f"{path}: a folder without tdc.json (give a checkpoint file, or a TDC run folder)")
    return _load_file(path, weights)
