"""The command line's choices and sampling flags come from their one definition (core.choices, core.sampling).

In-process and fast: the parser is built and parsed as `main` does, without a subprocess per flag.
"""

from __future__ import annotations

from dataclasses import fields

import pytest

from llmtui.cli import build_parser, with_verb
from llmtui.cli.chat import cmd_chat
from llmtui.cli.options import model_options
from llmtui.cli.run import _sampling_overrides
from llmtui.core.choices import MODEL_CHOICES
from llmtui.core.errors import InvalidValue
from llmtui.core.sampling import SamplingParams
from llmtui.store.settings import SamplingSettings, Settings

# A valid value per field, as typed on a command line and as it is stored.
_SAMPLES = {int: ("7", 7), float: ("0.5", 0.5), str: ("END", ("END",))}


def test_every_sampling_field_is_a_run_flag_a_setting_and_a_settings_field():
    assert [f.name for f in fields(SamplingSettings)] == [f.name for f in fields(SamplingParams)]
    for f in fields(SamplingParams):
        kind = {"float": float, "int": int, "int | None": int, "tuple[str, ...]": str}[str(f.type)]
        text, value = _SAMPLES[kind]
        args = build_parser().parse_args(["run", "m", "p", "--" + f.name.replace("_", "-"), text])
        assert _sampling_overrides(args) == {f.name: value}, f.name
        stored = Settings().with_value(f"sampling.{f.name}", list(value) if isinstance(value, tuple) else value)
        assert getattr(stored.sampling, f.name) == value
        assert SamplingParams(**stored.sampling.to_overrides()) == SamplingParams(**{f.name: value})


@pytest.mark.parametrize("choice", MODEL_CHOICES.values(), ids=lambda c: c.name)
def test_every_model_choice_is_a_flag_and_a_setting(choice, capsys):
    for value in choice.values:
        args = build_parser().parse_args(["chat", f"--{choice.name}", value])
        assert getattr(model_options(args, Settings(), None), choice.name) == value
        assert getattr(Settings().with_value(choice.name, value), choice.name) == value
    # A value off the list: argparse refuses a closed list (exit 2); an open one fails at validation (1).
    if choice.open:
        args = build_parser().parse_args(["chat", f"--{choice.name}", "nonsense"])
        with pytest.raises(InvalidValue, match=choice.words):
            model_options(args, Settings(), None)
    else:
        with pytest.raises(SystemExit):
            build_parser().parse_args(["chat", f"--{choice.name}", "nonsense"])
        assert choice.values[-1] in capsys.readouterr().err
    with pytest.raises(InvalidValue, match=choice.words):
        Settings().with_value(choice.name, "nonsense")


@pytest.mark.parametrize(
    ("argv", "model"),
    [
        (["default"], "default"),
        (["--config", "settings.toml", "./my-model", "--dtype", "float32"], "./my-model"),
        (["chat", "default"], "default"),
        ([], None),
    ],
)
def test_a_model_as_the_first_word_starts_the_workstation_on_it(argv, model):
    # `llmtui MODEL`, as ollama users type `ollama run MODEL`.
    parser = build_parser()
    args = parser.parse_args(with_verb(argv, parser.verbs))
    assert args.func is cmd_chat and args.model == model


def test_a_verb_stays_a_verb():
    parser = build_parser()
    args = parser.parse_args(with_verb(["list"], parser.verbs))
    assert args.func is not cmd_chat
