"""The workstation as a client of a server at a URL (`llmtui chat --url`): a real uvicorn server on a real
socket answering as one that sends no log probabilities does, driven with real keystrokes."""

from __future__ import annotations

import json

import pytest

from llmtui.backends.http import Endpoint
from llmtui.backends.openai import starter
from llmtui.store.conversations import ConversationStore
from llmtui.store.settings import Settings
from llmtui.tui.app import LlmtuiApp
from llmtui.tui.widgets.chips import NO_PROB
from llmtui.tui.widgets.probabilities import step_figures
from llmtui.tui.widgets.token_stream import TokenChips
from tests.server.fake import fake_app, serve_app
from tests.tui.conftest import wait_for, wait_idle, wait_ready
from tests.tui.test_replies import record_notices


@pytest.fixture(scope="module")
def url():
    with serve_app(fake_app()) as served:
        yield served


async def test_a_server_without_probabilities_neutral_chips_one_line_why_and_who_wrote_it(url, private_dirs):
    store = ConversationStore(private_dirs / "data" / "conversations")
    app = LlmtuiApp(settings=Settings(), start_backend=starter(Endpoint(url), "nolog"), store=store)
    notices = record_notices(app)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_ready(pilot)
        assert app.backend.view is None and app.status.state == "ready"
        await pilot.press(*"Hi", "enter")
        await wait_idle(pilot)
        version = app.conversation.turns[-1].version
        assert version.content == "Hello there, friend" and not version.partial
        assert (version.model, version.server) == ("nolog", url)  # who wrote the reply, on which server
        chips = app.query_one(TokenChips)
        assert [c.kind for c in chips.chips] == [NO_PROB] * 4  # neutral: no colour claims a probability
        assert step_figures(version.events[0]) == "no probability: the server sent no log probabilities\n"
        await pilot.press("ctrl+o")  # continue: this server cannot, and the key says why; nothing starts
        await wait_for(pilot, lambda: any("cannot continue or branch" in n for n in notices))
        assert len(app.conversation.turns[-1].versions) == 1 and not app.workstation.replies.busy
        conversation_id = app.conversation.id
    saved = json.loads((store.root / f"{conversation_id}.json").read_text())
    assert saved["format"] == 2  # what format 1 cannot hold: a reply from a server, steps without figures
    reread = store.load(conversation_id).turns[-1].version
    assert reread.server == url and reread.events[0].prob is None and reread.events[0].token_id is None


async def test_the_inspector_shows_the_servers_tokenizer_and_says_whose(tiny_model_dir):
    from llmtui.backends.local import LocalBackend
    from llmtui.backends.openai import OpenAIBackend, list_models
    from llmtui.backends.served_tokenizer import ServerTokenizerView
    from llmtui.core.choices import ModelOptions
    from llmtui.core.wire import EXTENSION
    from tests.server.conftest import ThreadServer

    local = LocalBackend.load(ModelOptions(str(tiny_model_dir), device="cpu"))
    served = ThreadServer(local, api_key=None)
    try:
        endpoint = Endpoint(served.url)
        entry = {k: v for k, v in list_models(endpoint)[0].items() if k != EXTENSION}

        def start(options, progress):  # the server as any other: its model's tokenizer is not on this machine
            backend = OpenAIBackend(endpoint, {**entry, "id": "elsewhere/tiny"})
            backend.model_id = entry["id"]
            return backend

        app = LlmtuiApp(settings=Settings(system_prompt="Be brief. 龍"), start_backend=start)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_ready(pilot)
            inspector = app.workstation.inspector
            assert isinstance(inspector.view, ServerTokenizerView)
            await wait_for(pilot, lambda: inspector.tokenization is not None)
            shown = inspector.tokenization
            expected = local.render([{"role": "system", "content": "Be brief. 龍"}])
            assert shown.text == expected.text  # the prompt, as the server renders it (its /detokenize)
            assert shown.ids == local.view.tokenize(expected.text, add_special_tokens=False).ids
            assert [t.display for t in shown] == [t.display for t in local.view.tokenize(expected.text)][: len(shown)]
            summary = str(inspector.query_one("#inspect-summary").render())
            assert f"the tokenizer of {entry['id']} at 127.0.0.1:" in summary
    finally:
        served.close()


async def test_switching_between_the_local_engine_and_a_named_server(url, tiny_model_dir):
    from llmtui.backends.local import LocalBackend
    from llmtui.backends.openai import OpenAIBackend

    settings = Settings().with_value("servers.fake.url", url).with_value("servers.fake.model", "nolog")
    app = LlmtuiApp(settings=settings, model=str(tiny_model_dir), start_backend=LocalBackend.load)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_ready(pilot)
        assert isinstance(app.backend, LocalBackend)
        app.workstation.engine.connect_server("fake")  # the palette's "Connect to server: fake"
        await wait_for(pilot, lambda: isinstance(app.backend, OpenAIBackend))
        assert app.status.state == "ready" and app.backend.model_id == "nolog"
        app.workstation.engine.switch_model(str(tiny_model_dir))  # back to the engine on this machine
        await wait_for(pilot, lambda: isinstance(app.backend, LocalBackend))
