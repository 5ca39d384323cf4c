"""Decoding through `llmtui serve` against the same engine in this process, as `llmtui run` decodes.

`run()` starts `llmtui serve` as a child process on a Unix socket, loads the same model here, and decodes
the same prompt greedily in both, alternating, after the same warm-up: in-process on the main thread
(`llmtui run`), and streamed as SSE from `/v1/chat/completions` read by a plain httpx client. Times are
taken where a user sees them: when each token reaches the reader. Gates: the streamed decode rate at least
0.95 of in-process, and time to first token within 5 %. `python -m bench.serve` prints the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MESSAGES = [{"role": "user", "content": "Tell me a long story about a dragon who learns to code."}]


def _timed(tokens: Callable[[], Any]) -> tuple[list[int], float, float]:
    """(token ids, time to first token, decode rate after it) of one reply, timed as it is read."""
    start = time.perf_counter()
    ids, times = [], []
    for token_id in tokens():
        times.append(time.perf_counter())
        ids.append(token_id)
    rate = (len(ids) - 1) / (times[-1] - times[0]) if len(ids) > 1 else 0.0
    return ids, times[0] - start, rate


def _start_server(model: str, device: str, sock: Path) -> subprocess.Popen:
    # --watch-stdin: the server dies with this process, however it ends.
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmtui", "serve", model, "--device", device, "--uds", str(sock), "--watch-stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc


def _wait_ready(client: Any, proc: subprocess.Popen, timeout: float = 600) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"llmtui serve exited with status {proc.returncode}")
        try:
            if client.get("/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("llmtui serve did not become ready")
        time.sleep(0.1)


def run(
    model: str = "default", device: str = "cpu", tokens: int = 128, repeat: int = 3, warmup: int = 1
) -> list[dict[str, Any]]:
    """Figures (name, value, unit, baseline_name, baseline, ratio, target, extra) of streaming through the
    server against decoding in-process; the best of ``repeat`` runs of each, after ``warmup`` of each."""
    import httpx

    from llmtui.backends.local import LocalBackend
    from llmtui.core.choices import ModelOptions

    with tempfile.TemporaryDirectory(prefix="llmtui-bench-") as tmp:
        sock = Path(tmp) / "engine.sock"
        proc = _start_server(model, device, sock)
        try:
            client = httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://engine", timeout=600)
            backend = LocalBackend.load(ModelOptions(model, device=device))
            _wait_ready(client, proc)

            def in_process() -> Any:
                params = backend.default_params(temperature=0.0, max_new_tokens=tokens)
                prompt = backend.render(MESSAGES, reserve=params.max_new_tokens)
                return (event.token_id for event in backend.generate(prompt, params))

            def streamed() -> Any:
                body = {"messages": MESSAGES, "max_tokens": tokens, "temperature": 0, "stream": True}
                with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    if response.status_code != 200:
                        raise RuntimeError(f"llmtui serve answered {response.status_code}: {response.read()!r}")
                    for line in response.iter_lines():
                        if not line.startswith("data: {"):
                            continue
                        choices = json.loads(line[6:])["choices"]
                        if choices and "llmtui" in choices[0]:
                            yield choices[0]["llmtui"]["token_id"]

            runs: dict[str, list[tuple[list[int], float, float]]] = {"in_process": [], "streamed": []}
            for i in range(warmup + repeat):
                for name, tokens_of in (("in_process", in_process), ("streamed", streamed)):
                    result = _timed(tokens_of)
                    if i >= warmup:
                        runs[name].append(result)
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(30)
    local_ids = runs["in_process"][0][0]
    same = all(ids == local_ids for ids, _, _ in runs["in_process"] + runs["streamed"])
    best = {name: (min(r[1] for r in rs), max(r[2] for r in rs)) for name, rs in runs.items()}
    extra = {"tokens": len(local_ids), "same_greedy_tokens": same, "repeat": repeat, "warmup": warmup}
    extra["all_runs"] = {name: [(round(t, 4), round(r, 2)) for _, t, r in rs] for name, rs in runs.items()}
    return [
        _figure(
            f"decode streamed through llmtui serve (SSE, greedy, {len(local_ids)} tokens)",
            best["streamed"][1],
            "tok/s",
            "the same engine in-process, as llmtui run decodes",
            best["in_process"][1],
            "≥ 0.95",
            extra,
        ),
        _figure(
            "time to first token through llmtui serve",
            best["streamed"][0],
            "s",
            "in-process",
            best["in_process"][0],
            "≤ 1.05",
            extra,
        ),
    ]


def _figure(
    name: str, value: float, unit: str, baseline_name: str, baseline: float, target: str, extra: dict[str, Any]
) -> dict[str, Any]:
    ratio = value / baseline if baseline else float("nan")
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline_name": baseline_name,
        "baseline": baseline,
        "ratio": ratio,
        "target": target,
        "extra": extra,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__)
    parser.add_argument("--model", default="default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    figures = run(args.model, args.device, args.tokens, args.repeat, args.warmup)
    for f in figures:
        print(
            f"{f['name']}: {f['value']:.3f} {f['unit']} · {f['baseline_name']}: {f['baseline']:.3f} {f['unit']} · "
            f"ratio {f['ratio']:.3f} (target {f['target']})"
        )
    print(json.dumps(figures[0]["extra"]))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
