#!/usr/bin/env python3
"""A minimal external pruning proxy for progdiff::prune::ExternalProxy::command.

The prompt arrives as JSON on standard input (and as files named by the environment
variables PROGDIFF_PROMPT_JSON and PROGDIFF_PROMPT_TEXT); the answer goes to standard
output as {"schemes": [...]}. This example answers without a language model: it keeps every
layer at the same ratio, the group's FLOPs fraction and smaller ones, shrunk further after
any rejection. To connect a language model, send the text of $PROGDIFF_PROMPT_TEXT to it
and print its reply: progdiff extracts the JSON (also from a Markdown code fence) and
rejects answers that name unknown layers or exceed the FLOPs limit.

Usage from C++:
    auto proxy = progdiff::prune::ExternalProxy::command("python3 tools/proxy/echo_proxy.py");
"""
import json
import sys


def main() -> int:
    prompt = json.load(sys.stdin)
    names = [layer["name"] for layer in prompt["layers"]]
    fraction = min(1.0, prompt["flops_limit"] / prompt["flops_full"])
    if "previous_answer_rejected" in prompt:
        print("echo_proxy: previous answer rejected: " + prompt["previous_answer_rejected"], file=sys.stderr)
        fraction *= 0.8
    schemes = []
    for k in range(prompt["candidates"]):
        ratio = max(fraction * 0.9**k, 1e-3)
        schemes.append({"keep_ratios": {name: round(ratio, 4) for name in names}})
    json.dump({"schemes": schemes}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
