"""Names from the disk and the command line reach stderr escaped, through the CLI's one printer."""

from __future__ import annotations

import subprocess

from llmtui.core.conversation import Conversation
from llmtui.store.conversations import ConversationStore
from llmtui.store.settings import settings_path
from tests.cli.test_cli import llmtui

PWNED = "\x1b]0;pwned\x07"


def assert_nothing_raw(proc: subprocess.CompletedProcess) -> tuple[str, str]:
    out, err = proc.stdout.decode(), proc.stderr.decode()
    for stream in (out, err):
        assert "\x1b" not in stream and "\x07" not in stream, stream
    assert "Traceback" not in err
    return out, err


def test_file_names_ids_and_arguments_with_escapes_are_printed_escaped(private_dirs):
    store = ConversationStore()
    conversation = Conversation(id=f"good{PWNED}", title=f"title {PWNED}")
    conversation.add_user("hi")
    store.save(conversation)
    (store.root / f"bad{PWNED}.json").write_text("{}")
    settings_path().parent.mkdir(parents=True)
    settings_path().write_text('[keymap]\nstop = "\\u001b]0;pwned\\u0007"\n')

    out, err = assert_nothing_raw(llmtui("history", "list"))
    assert "good\\x1b]0;pwned\\x07" in out and "title \\x1b]0;pwned\\x07" in out  # the table
    assert "bad\\x1b]0;pwned\\x07.json" in err  # the warning for the file that does not parse

    _, err = assert_nothing_raw(llmtui("list"))  # settings are read: the bad binding is one warning line
    assert "keymap.stop" in err and "line 2" in err

    proc = llmtui("history", "show", f"none{PWNED}")
    _, err = assert_nothing_raw(proc)
    assert proc.returncode == 1 and "none\\x1b]0;pwned\\x07" in err

    proc = llmtui("history", f"bogus{PWNED}")  # argparse quotes the bad choice
    _, err = assert_nothing_raw(proc)
    assert proc.returncode == 2 and "bogus\\x1b]0;pwned\\x07" in err
