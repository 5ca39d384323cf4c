"""The README's benchmark tables are its kept runs, written by code: no figure typed by hand, no mark
without the comparison behind it, no table that outlives its runs."""

from __future__ import annotations

import json

import pytest

from bench import readme
from bench.common import Figure, ratio_at_least


def test_every_table_in_the_readme_is_generated_from_runs_kept_in_git():
    text = readme.README.read_text()
    tables = list(readme.TABLE.finditer(text))
    assert tables, "the README's figures come from marked tables"
    for match in tables:
        for name in match["runs"].split():
            assert (readme.RESULTS / name).is_file(), f"{name} is quoted by the README: git add -f it"
    assert readme.main(["--check"]) == 0


def _run(path, quick: bool = False, **figures: tuple[float, float]) -> str:
    target = ratio_at_least(0.95)
    dicts = [
        Figure(name, v, "tok/s", "the engine alone", b, target=target).to_dict() for name, (v, b) in figures.items()
    ]
    path.write_text(json.dumps({"quick": quick, "figures": dicts}))
    return path.name


def test_a_figure_of_several_runs_shows_its_median_run_the_ranges_and_how_often_it_met(tmp_path):
    runs = [
        _run(tmp_path / "a.json", decode=(30.0, 33.0), paint=(1.0, 1.0)),
        _run(tmp_path / "b.json", decode=(33.0, 33.0)),
        _run(tmp_path / "c.json", decode=(20.0, 33.0)),
    ]
    _, _, decode, paint = readme.table(runs, tmp_path).splitlines()
    assert decode == (
        "| decode | 30 tok/s (20 to 33 in 3 runs) | the engine alone: 33 tok/s | 0.91 ↑ (0.61 to 1.00) "
        "| ≥ 0.95 ✓ in 1 of 3 runs |"
    )
    assert paint == "| paint | 1 tok/s | the engine alone: 1 tok/s | 1.00 ↑ | ≥ 0.95 ✓ |"


def test_a_table_is_written_again_from_its_runs_and_a_figure_typed_over_is_found(tmp_path):
    name = _run(tmp_path / "r.json", decode=(20.0, 33.0))
    stale = f"before\n<!-- bench: {name} -->\n| decode | 99 tok/s |\n<!-- /bench -->\nafter\n"
    fresh = readme.regenerate(stale, tmp_path)
    assert fresh.startswith("before\n<!-- bench: r.json -->\n| figure |") and fresh.endswith("<!-- /bench -->\nafter\n")
    assert "| 20 tok/s |" in fresh and "99" not in fresh
    assert readme.regenerate(fresh, tmp_path) == fresh


def test_a_quick_run_or_a_missing_one_cannot_be_quoted(tmp_path):
    quick = _run(tmp_path / "q.json", quick=True, decode=(1.0, 1.0))
    with pytest.raises(readme.Unreadable, match="--quick"):
        readme.table([quick], tmp_path)
    with pytest.raises(readme.Unreadable, match=r"gone\.json"):
        readme.table(["gone.json"], tmp_path)
    (tmp_path / "other.json").write_text('{"figures": [{"value": 1}]}')
    with pytest.raises(readme.Unreadable, match="not the JSON of a run"):
        readme.table(["other.json"], tmp_path)
