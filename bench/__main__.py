"""llmtui's benchmark suite: `python -m bench` (or `make bench`).

Every figure is a ratio against a baseline measured in the same run, because these machines are noisy:
a ratio holds where an absolute time does not. Prints a table and writes JSON to bench/results/.
`--quick` only checks that every benchmark still runs (CI does this); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import app, conversation, decode, history, identity, inspector, large, score, serve, synthetic, ttft
from bench.common import RESULTS, Figure, cells

# One module per suite, in the table's order.
SUITES: dict[str, Callable[[argparse.Namespace], list[Figure]]] = {
    "decode": decode.run,
    "identity": identity.run,
    "ttft": ttft.run,
    "score": score.run,
    "serve": serve.run,
    "app": app.run,
    "inspector": inspector.run,
    "history": history.run,
    "conversation": conversation.run,
    "large": large.run,
    "synthetic": synthetic.run,
}
# Suites a full run leaves out unless asked for (`--only`, or their own flag); `--quick` runs them too.
OPT_IN = ("synthetic",)
ALIASES = {"engine": ("decode", "identity", "ttft")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--model", default="default", help="model spec (default: the bundled SmolLM2-135M)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--quick", action="store_true", help="only check that every benchmark runs")
    parser.add_argument("--only", choices=sorted([*SUITES, *ALIASES]), action="append", help="run only these suites")
    parser.add_argument(
        "--start-backend",
        default=app.STARTER,
        metavar="MODULE:FUNCTION",
        help=f"how the app suite's app starts its backend (default: {app.STARTER})",
    )
    parser.add_argument(
        "--synthetic",
        choices=sorted(synthetic.SHAPES),
        metavar="NAME",
        help=f"decode on random weights of this model's shape ({', '.join(synthetic.SHAPES)}); runs only "
        "that suite unless --only names others",
    )
    parser.add_argument("--tokens", type=int, help="new tokens per synthetic reply (default: 256 on a GPU, 64 here)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also compare with transformers' generate on a static cache with torch.compile (minutes to compile "
        "on a CPU)",
    )
    parser.add_argument("--json", help="write results here (default: bench/results/<time>.json)")
    args = parser.parse_args(argv)
    # Settings and conversations of the run's own, gone with it: the user's are never read or written.
    scratch = tempfile.TemporaryDirectory(prefix="llmtui-bench-")
    os.environ.setdefault("LLMTUI_DATA_DIR", f"{scratch.name}/data")
    os.environ.setdefault("LLMTUI_CONFIG_DIR", f"{scratch.name}/config")
    if args.only:
        chosen = [s for name in args.only for s in ALIASES.get(name, (name,))]
    elif args.synthetic:
        chosen = ["synthetic"]
    else:
        chosen = [s for s in SUITES if args.quick or s not in OPT_IN]
    if args.tokens is not None and args.tokens < 2:
        parser.error("--tokens must be 2 or more (the decode rate is measured after the first token)")
    figures: list[Figure] = []
    for name in [s for s in SUITES if s in chosen]:
        started = time.perf_counter()
        figures += SUITES[name](args)
        print(f"[{name}: {time.perf_counter() - started:.0f} s]", file=sys.stderr)
    machine = _machine(args)
    model = f"synthetic {args.synthetic}" if chosen == ["synthetic"] and args.synthetic else args.model
    print(f"\nllmtui benchmarks · {machine['device']} · model {model}{' · QUICK' if args.quick else ''}")
    rows = [("figure", "value", "baseline", "ratio", "target"), *(cells([f.to_dict()]) for f in figures)]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    out = Path(args.json) if args.json else RESULTS / time.strftime("%Y%m%d-%H%M%S.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": machine,
                "quick": args.quick,
                "model": model,
                "figures": [f.to_dict() for f in figures],
            },
            indent=1,
            ensure_ascii=False,
        )
    )
    print(f"\nwritten to {out}")
    scratch.cleanup()
    return 0


def _machine(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    device = f"CPU {platform.processor() or platform.machine()} × {os.cpu_count()} cores"
    if torch.cuda.is_available() and args.device != "cpu":
        device = torch.cuda.get_device_name(0)
    return {
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


if __name__ == "__main__":
    raise SystemExit(main())
