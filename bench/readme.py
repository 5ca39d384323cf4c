"""The README's benchmark tables, generated from the runs kept in bench/results/.

Each table in the README sits between two markers that name the runs it shows:

    <!-- bench: 20261202-061500.json 20261202-063000.json -->
    | figure | llmtui | baseline (same run) | ratio | target |
    ...
    <!-- /bench -->

`python -m bench.readme` writes every such table again from its runs; `--check` only says whether one
differs (a test runs it, so that no figure in a table can be typed by hand or outlive its run). A figure
measured in several of a table's runs is shown from the run with its median value, with the ranges of its
values and ratios, and its mark says in how many runs it met its target.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import RESULTS, cells

README = Path(__file__).parent.parent / "README.md"
TABLE = re.compile(r"(?P<open><!-- bench: (?P<runs>[^>]*?) -->\n)(?P<table>.*?)(?P<close><!-- /bench -->)", re.S)
HEADER = "| figure | llmtui | baseline (same run) | ratio | target |\n|---|---|---|---|---|\n"


class Unreadable(Exception):
    """A table names a run that is not kept, not a run's JSON, or a --quick run."""


def table(runs: Sequence[str], results: Path = RESULTS) -> str:
    """The Markdown table of the figures in ``runs`` (file names in ``results``), in the order first seen."""
    figures: dict[str, list[dict[str, Any]]] = {}
    for name in runs:
        path = results / name
        try:
            run = json.loads(path.read_text())
            if run.get("quick"):
                raise Unreadable(f"{path} is a --quick run: its numbers mean nothing")
            for figure in run["figures"]:
                figures.setdefault(figure["name"], []).append(figure)
        except (OSError, ValueError) as exc:
            raise Unreadable(f"{path}: {exc}") from None
        except (AttributeError, KeyError, TypeError):
            raise Unreadable(f"{path} is not the JSON of a run of python -m bench") from None
    rows = []
    for measured in figures.values():
        row = cells(measured)
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |\n")
    return HEADER + "".join(rows)


def regenerate(text: str, results: Path = RESULTS) -> str:
    """``text`` (the README) with every marked table written again from its runs."""

    def one(match: re.Match[str]) -> str:
        return match["open"] + table(match["runs"].split(), results) + match["close"]

    return TABLE.sub(one, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.readme", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a table differs from its runs")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    try:
        new = regenerate(text)
    except Unreadable as exc:
        print(f"bench.readme: {exc}", file=sys.stderr)
        return 1
    if args.check:
        if new != text:
            print(
                f"bench.readme: a table in {args.readme} differs from its runs (python -m bench.readme)",
                file=sys.stderr,
            )
            return 1
        return 0
    if new != text:
        args.readme.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
