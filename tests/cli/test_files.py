"""Files, directories and file systems, as a user meets them on the command line: one line, never a
traceback, and nothing llmtui does not own is touched."""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import sys

import pytest

from tests.cli.test_cli import assert_one_line_error, llmtui
from tests.store.test_files import HOSTILE


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def imported(text: str = "hello") -> str:
    proc = llmtui("history", "import", "-", input=json.dumps([{"role": "user", "content": text}]).encode())
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode().strip()


def test_hostile_conversation_files_never_crash_history(private_dirs):
    good = imported()
    root = private_dirs / "data" / "conversations"
    for name, (content, _) in HOSTILE.items():
        (root / f"{name}.json").write_text(content if isinstance(content, str) else json.dumps(content))
    os.symlink("/dev/zero", root / "zero.json")
    os.mkfifo(root / "fifo.json")
    listed = llmtui("history", "list", timeout=30)  # a read of /dev/zero or the FIFO would never end
    assert listed.returncode == 0 and good in listed.stdout.decode()
    warnings = listed.stderr.decode().splitlines()
    assert len(warnings) == len(HOSTILE) + 2 and all(w.startswith("llmtui: warning: ") for w in warnings)
    for name in ("far-future", "deep", "zero", "fifo"):
        assert_one_line_error(llmtui("history", "show", name, timeout=30), f"{name}.json")
    for name in ("nan", "number-content"):
        assert_one_line_error(llmtui("history", "export", name, timeout=30), f"{name}.json")
    deep = root / "deep.json"
    parts = [{"role": "user", "content": [{"type": "text", "text": 5}]}]
    assert_one_line_error(llmtui("history", "import", "/dev/zero", timeout=30), "/dev/zero is not a regular file")
    assert_one_line_error(llmtui("history", "import", str(deep)), "nested too deeply")
    assert_one_line_error(llmtui("history", "import", "-", input=json.dumps(parts).encode()), "not a string")


def test_file_system_errors_are_one_line(private_dirs, tmp_path):
    conversation = imported()
    afile = tmp_path / "a-file"
    afile.write_text("")
    runs = {
        "data dir is a file": (["history", "list"], {"LLMTUI_DATA_DIR": str(afile)}, "a-file is not a directory"),
        "config dir is a file": (["config", "set", "theme", "x"], {"LLMTUI_CONFIG_DIR": str(afile)}, "not a directory"),
        "-o a directory": (["history", "export", conversation, "-o", str(tmp_path)], {}, "is a directory"),
        "-o under a file": (["history", "export", conversation, "-o", f"{afile}/x.md"], {}, "Not a directory"),
    }
    for why, (args, env, words) in runs.items():
        proc = subprocess.run(
            [sys.executable, "-m", "llmtui", *args], capture_output=True, timeout=60, env={**os.environ, **env}
        )
        try:
            assert_one_line_error(proc, words)
        except AssertionError as exc:
            raise AssertionError(f"{why}: {exc}") from None
    assert afile.read_text() == ""


def test_a_read_only_data_dir(private_dirs):
    data = private_dirs / "data"
    data.mkdir(mode=0o700)
    data.chmod(0o500)
    try:
        message = json.dumps([{"role": "user", "content": "x"}]).encode()
        for args in (["history", "list"], ["history", "import", "-"]):
            assert_one_line_error(llmtui(*args, input=message), f"cannot create {data}/conversations", "read-only")
        assert os.listdir(data) == [] and mode(data) == 0o500
    finally:
        data.chmod(0o700)


def test_a_read_only_conversations_dir_is_reported_and_stays_read_only(private_dirs):
    conversation = imported()
    root = private_dirs / "data" / "conversations"
    root.chmod(0o500)
    try:
        listed = llmtui("history", "list")
        assert listed.returncode == 0 and conversation in listed.stdout.decode()
        assert listed.stderr.decode() == f"llmtui: warning: {root} is read-only, so the history is open read-only" + (
            " and nothing is saved\n"
        )
        assert_one_line_error(llmtui("history", "rm", conversation), "read-only")
        assert_one_line_error(llmtui("history", "import", "-", input=b'[{"role": "user"}]'), "read-only")
        assert mode(root) == 0o500 and (root / f"{conversation}.json").exists()
    finally:
        root.chmod(0o700)
    # Writable again (by the user's hand): `rm` takes the conversation's lock file with it.
    assert llmtui("history", "rm", conversation).returncode == 0
    assert [p.name for p in root.iterdir() if p.name != ".trash"] == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a directory to another user")
def test_a_directory_owned_by_someone_else_is_not_changed(private_dirs):
    data = private_dirs / "data"
    (data / "conversations").mkdir(parents=True)
    for d in (data, data / "conversations"):
        d.chmod(0o755)
        os.chown(d, 65534, 65534)
    assert imported() and llmtui("history", "list").returncode == 0
    for d in (data, data / "conversations"):
        assert (mode(d), os.stat(d).st_uid) == (0o755, 65534)


def test_a_full_disk_leaves_no_search_index_behind(private_dirs):
    conversation = imported()
    index = private_dirs / "data" / "index.sqlite"
    index.unlink(missing_ok=True)

    def small_files() -> None:  # writing past 2 KiB fails as on a full disk (Python ignores SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    proc = subprocess.run(
        [sys.executable, "-m", "llmtui", "history", "list", "--search", "hello"],
        capture_output=True,
        timeout=60,
        preexec_fn=small_files,
    )
    assert proc.returncode == 0 and conversation in proc.stdout.decode(), proc.stderr
    assert proc.stderr.decode().startswith(f"llmtui: warning: cannot write the search index {index}")
    assert len(proc.stderr.splitlines()) == 1
    assert sorted(os.listdir(index.parent)) == ["conversations"]


SETTINGS = """\
# my settings: comments, my order, and keys llmtui does not know or finds invalid stay as I wrote them
theme   =   "llmtui-light"   # aligned by hand

[sampling]
top_k = "many"    # invalid: reported, kept
temperature = 0.2 # changed below
future_knob = 3

[plugins.x]
y = [1,2]
"""


def test_config_set_changes_that_one_value_and_no_other_byte(private_dirs, tmp_path):
    for config, path in ((None, private_dirs / "config" / "settings.toml"), (tmp_path / "mine.toml", None)):
        path = path or config
        path.parent.mkdir(exist_ok=True)
        path.write_text(SETTINGS)
        flag = ["--config", str(config)] if config else []
        proc = llmtui(*flag, "config", "set", "sampling.temperature", "0.7")
        assert proc.returncode == 0, proc.stderr
        assert "top_k" in proc.stderr.decode()  # the invalid key is still reported, not rewritten
        assert path.read_text() == SETTINGS.replace("temperature = 0.2 #", "temperature = 0.7 #")
        assert llmtui(*flag, "config", "set", "layout.sidebar", "false").returncode == 0
        assert path.read_text() == SETTINGS.replace("temperature = 0.2 #", "temperature = 0.7 #") + (
            "\n[layout]\nsidebar = false\n"
        )
        assert mode(path) == 0o600
