"""Checks python/progdiff_torch.py against progdiff: every checkpoint that
tests/interop_torch_test.cpp wrote into DIR (listed in DIR/cases.json, with progdiff's
predictions on fixed mixed-timestep batches) is rebuilt as a torch.nn.Module from the file
alone, and its predictions must equal progdiff's within 1e-4 of their scale; checkpoints whose
description and tensors disagree must be refused naming the file and the key.

    python3 python/check_progdiff_torch.py DIR
    python3 python/check_progdiff_torch.py --write-with build/release/tests/progdiff_tests

The second form runs the C++ writer (the doctest binary holding interop_torch_test.cpp) into a
temporary folder first; it is the progdiff_torch_module ctest. Exit status 0 when every check passes, 1 otherwise, 77 (a skip) without PyTorch.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:
    print("skipped: PyTorch is not importable (Debian: apt-get install python3-torch)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import progdiff_torch  # noqa: E402

LIMIT = 1e-4


def rewrite_metadata(source, target, change):
    """A copy of safetensors file `source` whose metadata dict `change` edits."""
    with open(source, "rb") as f:
        data = f.read()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    change(header["__metadata__"])
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(target, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data[8 + size :])


def expect_error(path, *parts):
    try:
        progdiff_torch.load(path)
    except progdiff_torch.CheckpointError as e:
        message = str(e)
        missing = [p for p in parts if p not in message]
        if missing:
            return f"the error '{message}' does not name {missing}"
        print(f"  refused as expected: {message}")
        return None
    return "no error"


def main(folder):
    torch.set_num_threads(1)  # tiny convolutions: threads only wait for each other
    with open(os.path.join(folder, "cases.json")) as f:
        cases = json.load(f)
    failures = []
    for case in cases:
        model = progdiff_torch.load(os.path.join(folder, case["checkpoint"]), weights=case["weights"])
        _, io = progdiff_torch.read_safetensors(os.path.join(folder, case["io"]))
        y = model.predict(io["x"], io["t"])
        expected = io["y"]
        error = ((y.double() - expected.double()).abs().max() / expected.double().abs().max()).item()
        ok = tuple(y.shape) == tuple(expected.shape) and error <= LIMIT
        print(f"{case['name']:18s} {model.kind:17s} groups {model.group_count}  "
              f"parameters {sum(p.numel() for p in model.parameters()):7d}  error {error:.2e}  {'ok' if ok else 'FAILED'}")
        if not ok:
            failures.append(case["name"])

    # The description and the tensors must agree; a disagreement names the file and the key.
    pruned = os.path.join(folder, "pruned.safetensors")
    wrong_width = os.path.join(folder, "wrong_width.safetensors")
    rewrite_metadata(pruned, wrong_width, lambda m: m.update({"group1.width.down.0.res.0": "12"}))
    no_kind = os.path.join(folder, "no_kind.safetensors")
    rewrite_metadata(pruned, no_kind, lambda m: m.pop("model.kind"))
    for name, path, parts in [
        ("a width that the tensors contradict", wrong_width, [wrong_width, "group1.down.0.res.0.conv1.weight"]),
        ("a description without its kind", no_kind, [no_kind, "'model.kind'"]),
    ]:
        problem = expect_error(path, *parts)
        if problem:
            failures.append(f"{name}: {problem}")
    if failures:
        print("FAILED: " + "; ".join(failures))
        return 1
    print(f"all {len(cases)} models match progdiff within {LIMIT:g}")
    return 0


def write_and_check(binary):
    folder = tempfile.mkdtemp(prefix="progdiff_torch_")
    try:
        env = dict(os.environ, PROGDIFF_TORCH_CHECK_DIR=folder)
        writer = subprocess.run([binary, "--source-file=*/interop_torch_test.cpp"], env=env)
        if writer.returncode != 0:
            print(f"FAILED: {binary} (the checkpoint writer) exited with {writer.returncode}")
            return 1
        return main(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write-with":
        sys.exit(write_and_check(sys.argv[2]))
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
