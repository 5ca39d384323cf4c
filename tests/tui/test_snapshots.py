"""Snapshots of the main screens with real content, at 80x24 and 160x48.

Update after an intended change with: pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import copy

import pytest

from tests.tui.conftest import fixed_status, wait_for, wait_ready


@pytest.fixture
def app_with_reply(make_app, recorded_conversation):
    return make_app(conversation=copy.deepcopy(recorded_conversation))


async def _on_step_three(pilot) -> None:
    await wait_ready(pilot)
    app = pilot.app
    await wait_for(pilot, lambda: app.workstation.stream_turn is not None)
    fixed_status(app)
    await pilot.press("f3", "home", "right", "right", "right")
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_finished_reply_with_sidebar_on_a_step(snap_compare, app_with_reply, size):
    assert snap_compare(app_with_reply, terminal_size=size, run_before=_on_step_three)


def test_inspector_on_mixed_scripts(snap_compare, make_app):
    async def inspect(pilot) -> None:
        await wait_ready(pilot)
        fixed_status(pilot.app)
        await pilot.press("f5", *"Hi 龍 你好 end")
        await pilot.press("enter")
        inspector = pilot.app.query_one("#inspector")
        await wait_for(pilot, lambda: inspector.tokenization is not None and inspector.source_title == "text")
        inspector.chips.focus()
        await pilot.press("home", "right", "right", "right")  # the middle byte of 龍
        await pilot.pause(0.2)

    assert snap_compare(make_app(), terminal_size=(160, 48), run_before=inspect)
