"""Run by the app suite in a process of its own: the engine alone, decoding as `llmtui run` does.

`python -m bench.engine_alone OPTIONS PARAMS PROMPT` (OPTIONS and PARAMS as JSON) loads the model through
the backend `llmtui run` uses, renders PROMPT as a one-message conversation (the app's, with no system
prompt), and prints `{"ready": true}`. Then, for every line it reads, it decodes one reply and prints
one JSON line: its decode rate, its token ids, and (wall, process CPU, thread CPU) seconds from its first
token to its end. The app suite asks for replies between the app's own, so that the machine's drift in
speed hits both alike, while the app waits.
"""

from __future__ import annotations

import json
import sys

from bench.common import CpuClock
from llmtui.backends.local import LocalBackend
from llmtui.core.choices import ModelOptions
from llmtui.core.sampling import SamplingParams


def main(argv: list[str]) -> int:
    """Decode on request; see the module's docstring."""
    options = ModelOptions(**json.loads(argv[0])).validate()
    params = SamplingParams.from_dict(json.loads(argv[1])).validate()
    backend = LocalBackend.load(options)
    prompt = backend.render([{"role": "user", "content": argv[2]}], reserve=params.max_new_tokens)
    print(json.dumps({"ready": True}), flush=True)
    for _ in sys.stdin:
        generation = backend.generate(prompt, params)
        clock = CpuClock()
        for _event in generation:
            if not clock.samples:
                clock.sample()  # the window opens at the first token, as it does in the app
        clock.sample()
        rate = generation.stats.tokens_per_second if generation.stats else 0.0
        token_ids = [e.token_id for e in generation.events]
        print(json.dumps({"rate": rate, "token_ids": token_ids, "cpu": clock.totals()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
