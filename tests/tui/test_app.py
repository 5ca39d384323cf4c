"""The workstation driven with real keystrokes (Textual's Pilot) against a tiny real model."""

from __future__ import annotations

import pytest

from llmtui.core.conversation import Conversation, Turn, Version
from llmtui.core.text import escape_controls
from llmtui.tui.screens.edit import EditScreen
from llmtui.tui.widgets.chips import prob_bucket
from llmtui.tui.widgets.conversation import SYSTEM, Composer, ConversationView
from llmtui.tui.widgets.inspector import Inspector
from llmtui.tui.widgets.probabilities import ProbabilitySidebar
from llmtui.tui.widgets.token_stream import TokenChips
from tests.conftest import LONG_REPLY
from tests.tui.conftest import wait_for, wait_idle, wait_ready


def shown_notes(app) -> list[str]:
    """The notices the conversation pane draws, as text."""
    pane = app.query_one(ConversationView)
    return [pane.text_of(note) for note in pane.notes]


async def send(pilot, text: str) -> None:
    await pilot.press(*text)
    await pilot.press("enter")


async def test_send_a_message_and_watch_tokens_arrive(make_app):
    app = make_app(max_new_tokens=30)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_ready(pilot)
        assert app.status.state == "ready"
        await send(pilot, "Hello world")
        await wait_for(pilot, lambda: len(app.query_one(TokenChips).chips) > 0)
        await wait_idle(pilot)
        reply = app.conversation.turns[-1]
        assert [t.role for t in app.conversation.turns] == ["user", "assistant"]
        assert app.conversation.turns[0].content == "Hello world"
        assert len(reply.version.events) == reply.version.stats.new_tokens
        chips = app.query_one(TokenChips)
        assert len(chips.chips) == len(reply.version.events)
        assert app.query_one(ProbabilitySidebar).event is reply.version.events[-1]
        assert app.status.state in ("ready", "stopped") and app.status.tokens_per_second > 0
        # Autosaved after the turn.
        saved = app.store.load(app.conversation.id)
        assert saved.turns[-1].content == reply.content


async def test_typing_newlines_and_token_count(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ready(pilot)
        await pilot.press("a", "ctrl+j", "b")
        composer = app.query_one(Composer)
        assert composer.text == "a\nb"
        assert "tokens" in composer.border_subtitle
        assert app.conversation.turns == []


async def test_stop_keeps_the_partial_reply(make_app, tiny_long_model_dir):
    app = make_app(str(tiny_long_model_dir), max_new_tokens=LONG_REPLY)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_ready(pilot)
        await send(pilot, "Hello")
        await wait_for(pilot, lambda: app.generation is not None and len(app.generation.events) > 2)
        # The reply is drawn while it is written, not only when it ends.
        pane = app.query_one(ConversationView)
        words = lambda: escape_controls(app.conversation.turns[1].content).split()  # noqa: E731
        await wait_for(pilot, lambda: words() and words()[0] in pane.text_of(1).split("\n", 1)[1])
        assert "stopped" not in pane.text_of(1)
        assert app.generation is not None
        await pilot.press("escape")
        await wait_idle(pilot)
        version = app.conversation.turns[-1].version
        assert version.stats.stop_reason == "stopped"
        assert version.partial and 0 < len(version.events) < LONG_REPLY
        assert version.content == "".join(e.text for e in version.events)
        assert app.status.state == "stopped"
        # Written now: drawn as every other written message is, from its text, the reason in its footer.
        assert pane.text_of(1).splitlines()[-1].strip().startswith("▌ ■ stopped")


async def test_regenerate_keeps_every_version(make_app):
    app = make_app(max_new_tokens=8, sampling__temperature=1.5)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_ready(pilot)
        await send(pilot, "Hello")
        await wait_idle(pilot)
        first = app.conversation.turns[-1].content
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(app.conversation.turns[-1].versions) == 2)
        await wait_idle(pilot)
        turn = app.conversation.turns[-1]
        assert turn.current == 1 and turn.versions[0].content == first
        # The version switcher: select the reply and go back to version 1.
        await pilot.press("shift+tab")
        assert app.query_one(ConversationView).cursor == 1
        await pilot.press("left")
        await pilot.pause(0.2)
        assert app.conversation.turns[-1].current == 0
        assert app.conversation.turns[-1].content == first


async def test_branch_from_an_alternative_token(make_app):
    app = make_app(max_new_tokens=10)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_ready(pilot)
        await send(pilot, "Hello")
        await wait_idle(pilot)
        original = list(app.conversation.turns[-1].version.events)
        await pilot.press("f3")  # the token stream
        await pilot.press("home", "right", "right")  # step 2
        sidebar = app.query_one(ProbabilitySidebar)
        assert sidebar.event is original[2]
        await pilot.press("f4")  # the candidates
        await pilot.press("down", "enter")  # the second most likely token
        await wait_for(pilot, lambda: len(app.conversation.turns[-1].versions) == 2)
        await wait_idle(pilot)
        turn = app.conversation.turns[-1]
        branch = turn.version
        assert branch.branched_from == (0, 2)
        assert [e.token_id for e in branch.events[:2]] == [e.token_id for e in original[:2]]
        assert branch.events[2].token_id == original[2].candidates[1].token_id
        assert branch.events[2].index == 2
        assert turn.versions[0].events == original  # the old reply is still there


async def test_edit_an_earlier_message_and_continue(make_app):
    app = make_app(max_new_tokens=6)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_ready(pilot)
        await send(pilot, "Hello")
        await wait_idle(pilot)
        await send(pilot, "More")
        await wait_idle(pilot)
        assert len(app.conversation.turns) == 4
        app.query_one(ConversationView).select(0)
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditScreen))
        await pilot.press("end", *" again")
        await pilot.press("ctrl+s")
        await wait_for(
            pilot, lambda: len(app.conversation.turns) == 2 and app.conversation.turns[-1].role == "assistant"
        )
        await wait_idle(pilot)
        user = app.conversation.turns[0]
        assert user.content == "Hello again" and len(user.versions) == 2
        # The old path (with its second exchange) is kept inside the first version.
        assert [t.content for t in user.versions[0].rest][1] == "More"
        app.conversation.switch(0, 0)
        assert len(app.conversation.turns) == 4


async def test_continue_a_reply_that_hit_the_token_limit(make_app):
    app = make_app(max_new_tokens=5)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_ready(pilot)
        await send(pilot, "Hello")
        await wait_idle(pilot)
        version = app.conversation.turns[-1].version
        if version.stats.stop_reason != "max_tokens":
            pytest.skip("the tiny model ended early")
        await pilot.press("ctrl+o")
        await wait_idle(pilot)
        version = app.conversation.turns[-1].version
        assert len(version.events) > 5
        assert [e.index for e in version.events] == list(range(len(version.events)))
        assert version.stats.new_tokens == len(version.events)


async def test_slash_commands(make_app):
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_ready(pilot)
        await send(pilot, "/set temperature 0.7")
        assert app.params.temperature == 0.7
        await send(pilot, "/set top_p 7")
        assert app.params.top_p == 1.0  # refused, unchanged
        await send(pilot, "/set system You are terse.")
        assert app.conversation.system == "You are terse."
        await send(pilot, "/show")
        await pilot.pause(0.1)
        notes = shown_notes(app)
        assert any("temperature 0.7" in n for n in notes)
        await send(pilot, "/clear")
        await pilot.pause(0.1)
        assert app.conversation.turns == []
        await send(pilot, "/bye")
        await pilot.pause(0.1)
    assert app.return_code == 0


async def test_messages_sent_while_loading_go_out_when_ready(make_app):
    app = make_app(max_new_tokens=4)
    async with app.run_test(size=(160, 48)) as pilot:
        await send(pilot, "early bird")  # the model is most likely still loading
        await wait_for(
            pilot,
            lambda: (
                app.conversation.replies()
                and app.generation is None
                and app.conversation.turns[-1].version.stats is not None
            ),
        )
        assert app.conversation.turns[0].content == "early bird"
        assert len([t for t in app.conversation.turns if t.role == "user"]) == 1


async def test_a_model_that_fails_to_load_leaves_the_app_running(make_app, tmp_path):
    app = make_app(str(tmp_path / "nothing-here"))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ready(pilot)
        assert app.status.state == "error"
        assert "does not exist" in app.status.detail
        notes = shown_notes(app)
        assert any("failed to load" in n for n in notes)
        await pilot.press(*"still typing")
        assert app.query_one(Composer).text == "still typing"


async def test_model_output_is_data_not_markup(make_app):
    hostile = "Look: [bold]x[/bold] and \x1b]0;pwned\x07 and [link=http://x]y[/link]"
    conversation = Conversation(title="hostile")
    conversation.add_user("show me")
    conversation.turns.append(Turn("assistant", [Version(hostile)]))
    app = make_app(conversation=conversation)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_ready(pilot)
        await wait_for(pilot, lambda: app.query_one(ConversationView).shown_turns() == [0, 1])
        await pilot.pause(0.2)
        screen = app.export_screenshot()
        assert "[bold]x[/bold]" in screen.replace("&#160;", " ")
        assert "\x1b" not in screen and "\x07" not in screen
        assert "\\x1b]0;pwned\\x07" in screen.replace("&#160;", " ")


async def test_resize_to_80x24_turns_side_panes_into_tabs(make_app):
    app = make_app()
    async with app.run_test(size=(200, 50)) as pilot:
        await wait_ready(pilot)
        assert not app.screen.has_class("-narrow")
        assert app.query_one("#inspector").region.height > 0 and app.query_one("#tokens").region.height > 0
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.2)
        assert app.screen.has_class("-narrow")
        assert app.query_one("#tokens").region.height > 0
        assert app.query_one("#inspector").region.height == 0
        await pilot.press("f5")
        await pilot.pause(0.1)
        assert app.query_one("#inspector").region.height > 0
        assert app.query_one("#tokens").region.height == 0


async def test_inspector_shows_the_prompt_and_typed_text(make_app):
    app = make_app(system_prompt="Be brief.")
    async with app.run_test(size=(200, 50)) as pilot:
        await wait_ready(pilot)
        inspector = app.query_one(Inspector)
        await wait_for(pilot, lambda: inspector.tokenization is not None)
        assert inspector.source_title == "prompt"
        assert inspector.tokenization.text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>assistant\n"
        assert any(t.special for t in inspector.tokenization)
        await pilot.press("f5")
        await pilot.press(*"Hello 龍")
        await pilot.press("enter")
        await wait_for(pilot, lambda: inspector.tokenization.text == "Hello 龍")
        ids = inspector.tokenization.ids
        assert ids == app.backend.engine.tokenizer("Hello 龍")["input_ids"]
        inspector.chips.focus()
        await pilot.press("end")
        last = inspector.tokenization[-1]
        source = app.query_one("#inspect-source")
        assert source.span_text == "Hello 龍"[last.start : last.end]


async def test_pane_toggles_persist(make_app, private_dirs):
    app = make_app()
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.press("f8")
        await pilot.pause(0.1)
        assert app.query_one("#inspector").region.height == 0
    from llmtui.store.settings import load_settings

    settings, problems = load_settings()
    assert settings.layout.inspector is False and not problems


def test_app_module_does_not_import_torch():
    """First paint must not wait for torch: the app imports it only on the loading thread."""
    import subprocess
    import sys

    code = "import sys, llmtui.tui.app; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


async def test_inspector_ids_on_demand_and_compare_with_a_second_tokenizer(make_app, tiny_long_model_dir):
    app = make_app()
    async with app.run_test(size=(200, 50)) as pilot:
        await wait_ready(pilot)
        inspector = app.query_one(Inspector)
        await pilot.press("f5", *"Hello world", "enter")
        await wait_for(
            pilot, lambda: inspector.tokenization is not None and inspector.tokenization.text == "Hello world"
        )
        inspector.chips.focus()
        await pilot.press("i")
        await pilot.pause(0.1)
        first = inspector.tokenization[0]
        assert inspector.chips.chips[0].label.endswith(f"│{first.token_id}")
        app.query_one("#inspect-input").focus()
        app.query_one("#inspect-input").value = f"compare: {tiny_long_model_dir}"
        await pilot.press("enter")
        await wait_for(pilot, lambda: inspector.compared is not None)
        assert inspector.compared.text == "Hello world"
        assert app.query_one("#compare-chips").display
        assert len(app.query_one("#compare-chips").chips) == inspector.compared.count
        assert "vs " in str(app.query_one("#inspect-summary").render())


async def test_surprise_mode_colours_the_inspected_text_by_the_model_s_scores(make_app):
    app = make_app()
    async with app.run_test(size=(200, 50)) as pilot:
        await wait_ready(pilot)
        await send(pilot, "Hi")  # a reply in the token stream, which the sidebar's candidates could branch
        await wait_idle(pilot)
        inspector = app.query_one(Inspector)
        text = "The capital of France is Paris, and the capital of Italy is Rome. " * 12
        await pilot.press("f5")
        app.query_one("#inspect-input").value = text
        await pilot.press("enter")
        await wait_for(pilot, lambda: inspector.tokenization is not None and inspector.tokenization.text == text)
        ids = inspector.tokenization.ids
        assert len(ids) > app.backend.info.context_length  # scored in windows, as they arrive
        inspector.chips.focus()
        await pilot.press("p")
        await wait_for(pilot, lambda: len(inspector.scores) == len(ids) - 1)
        expected = app.backend.score(ids, 10)  # the engine's own windows: the same probabilities
        assert [inspector.scores[e.index].prob for e in expected] == pytest.approx([e.prob for e in expected])
        kinds = [chip.kind for chip in inspector.chips.chips[1:]]
        assert kinds == [f"prob-{prob_bucket(e.prob)}" for e in expected]
        # The cursor's step goes to the sidebar; its candidates are not a reply's to branch from.
        await pilot.press("home", "right", "right")
        assert app.query_one(ProbabilitySidebar).event is inspector.scores[2]
        versions = len(app.conversation.turns[-1].versions)
        app.query_one("#candidates").focus()
        await pilot.press("down", "enter")
        await pilot.pause(0.2)
        assert len(app.conversation.turns[-1].versions) == versions and not app.workstation.replies.busy


async def test_p_on_a_message_or_the_system_prompt_scores_it_in_one_key(make_app):
    app = make_app()
    async with app.run_test(size=(200, 50)) as pilot:
        await wait_ready(pilot)
        await send(pilot, "Where is the capital of France?")
        await wait_idle(pilot)
        inspector = app.query_one(Inspector)
        question = app.conversation.turns[0].content
        pane = app.query_one(ConversationView)
        pane.select(0)
        await pilot.press("p")
        await wait_for(pilot, lambda: inspector.tokenization is not None and inspector.tokenization.text == question)
        await wait_for(pilot, lambda: len(inspector.scores) == inspector.tokenization.count - 1)
        assert inspector.chips.surprise and inspector.source_title == "message 1"
        expected = app.backend.score(inspector.tokenization.ids, 10)
        assert [inspector.scores[e.index].prob for e in expected] == pytest.approx([e.prob for e in expected])
        app.workstation.set_system("You answer in one word.")
        await pilot.press("home")  # the system prompt, above the first message
        assert pane.cursor is SYSTEM
        await pilot.press("p")
        await wait_for(pilot, lambda: inspector.tokenization.text == "You answer in one word.")
        await wait_for(pilot, lambda: len(inspector.scores) == inspector.tokenization.count - 1)
        assert inspector.source_title == "system prompt"


async def test_the_logit_lens_shows_each_layer_at_the_step_in_the_sidebar(make_app):
    app = make_app()
    async with app.run_test(size=(200, 50)) as pilot:
        await wait_ready(pilot)
        await send(pilot, "Hi")
        await wait_idle(pilot)
        sidebar = app.query_one(ProbabilitySidebar)
        event = sidebar.event
        await pilot.press("f4", "l")
        await wait_for(pilot, lambda: app.query_one("#lens").display)
        rows = str(app.query_one("#lens-rows").render()).splitlines()
        assert len(rows) == 1 + 3  # a title, then the embeddings and the tiny model's 2 blocks
        # The last layer is the model's own answer at that step: the reply's context was rebuilt exactly.
        last = rows[-1]
        for candidate in event.candidates[:3]:
            assert f"{candidate.prob * 100:.0f}%" in last


async def test_enter_on_a_vocabulary_token_lists_its_neighbours(make_app):
    from textual.widgets import OptionList

    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_ready(pilot)
        app.workstation.action_vocabulary()
        await pilot.pause(0.2)
        await pilot.press(*"the")
        options = app.screen.query_one(OptionList)
        await wait_for(pilot, lambda: options.option_count > 0)
        token_id = int(options.get_option_at_index(0).id)
        options.focus()
        await pilot.press("home", "enter")
        expected = app.backend.neighbours(token_id, 20)
        await wait_for(pilot, lambda: options.option_count == 1 + 20 + 20)
        ids = [int(options.get_option_at_index(i).id) for i in range(1, 41)]
        assert ids == [n.token_id for n in expected["input"] + expected["output"]]
