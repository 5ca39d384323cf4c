"""Files and directories: llmtui touches only what it owns, and no file can crash it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import builders
import pytest

from llmtui.core.conversation import Conversation
from llmtui.core.errors import InvalidValue
from llmtui.core.sampling import SamplingParams
from llmtui.store.conversations import ConversationStore, StoreError
from llmtui.store.files import atomic_write, cache_dir, config_dir, data_dir, private_dir, read_regular, writable
from llmtui.store.settings import load_settings, save_settings, settings_path


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _saved(store: ConversationStore, text: str = "hello") -> str:
    conversation = Conversation()
    conversation.add_user(text)
    return store.save(conversation).id


@pytest.fixture
def umask_022():
    """The umask most systems have, whatever the test runner's is."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_modes_are_set_only_on_directories_llmtui_creates(tmp_path, umask_022):
    # What llmtui creates inside its own dir is private; above it, a directory is an ordinary one.
    private_dir(tmp_path / "home" / "share" / "llmtui" / "conversations", tmp_path / "home" / "share" / "llmtui")
    assert mode(tmp_path / "home") == mode(tmp_path / "home" / "share") == 0o755
    assert mode(tmp_path / "home" / "share" / "llmtui") == mode(
        tmp_path / "home" / "share" / "llmtui" / "conversations"
    )
    assert mode(tmp_path / "home" / "share" / "llmtui") == 0o700
    # A directory that exists keeps the mode it has, whatever llmtui does in it.
    data = tmp_path / "data"
    (data / "conversations").mkdir(parents=True)
    for d in (data, data / "conversations"):
        d.chmod(0o755)
    store = ConversationStore()
    conversation_id = _saved(store)
    store.list()
    store.delete(conversation_id)
    assert mode(data) == mode(data / "conversations") == 0o755
    assert mode(data / "conversations" / ".trash") == 0o700  # created by llmtui inside its own dir


WRITE_PAST_A_SIZE_LIMIT = """
import resource, signal, sys
from pathlib import Path
from llmtui.store.files import StoreError, atomic_write

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
try:
    atomic_write(Path(sys.argv[1]), b"new " * 100_000)
except StoreError as exc:
    print(exc)
    sys.exit(3)
"""


def test_a_write_that_dies_midway_leaves_the_old_file_whole(tmp_path):
    """The disk refuses the write part-way (a file size limit, as a full disk would): the target still holds
    its old content, whole, and no temporary file is left beside it."""
    import subprocess
    import sys

    target = tmp_path / "conversation.json"
    atomic_write(target, b"old " * 1000)
    proc = subprocess.run(
        [sys.executable, "-c", WRITE_PAST_A_SIZE_LIMIT, str(target), str(64 * 1024)], capture_output=True, text=True
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == f"cannot write {target}: File too large\n"  # one line, the reason without decoration
    assert target.read_bytes() == b"old " * 1000
    assert [p.name for p in tmp_path.iterdir()] == ["conversation.json"]


def test_a_reader_never_sees_a_partial_file(tmp_path, monkeypatch):
    """A reader that opened the file before a write keeps reading the old content whole (the new content is
    a new file renamed over the name, never written into the old one), and the name holds the new content
    whole after it; the data and then the rename are flushed to the disk, in that order."""
    target = tmp_path / "conversation.json"
    atomic_write(target, b"old " * 1000)
    before = os.stat(target).st_ino
    synced: list[str] = []
    names: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:  # the real fsync, recorded: what reached the disk, in order
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else f"file:{os.fstat(fd).st_ino}")
        names.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def replace(src, dst) -> None:
        synced.append(f"rename:{os.stat(src).st_ino}")
        real_replace(src, dst)

    with open(target, "rb") as reader:
        with monkeypatch.context() as patch:
            patch.setattr(os, "fsync", fsync)
            patch.setattr(os, "replace", replace)
            atomic_write(target, b"new " * 2000)
        assert reader.read() == b"old " * 1000
    assert target.read_bytes() == b"new " * 2000
    after = os.stat(target).st_ino
    assert after != before
    assert synced == [f"file:{after}", f"rename:{after}", "dir"]
    # The temporary file is hidden beside its target (a rename never crosses file systems), named after it.
    temporary, directory = Path(names[0]), Path(names[1])
    assert temporary.parent == directory == tmp_path
    assert temporary.name.startswith(".conversation.json.") and temporary.name.endswith(".tmp")
    assert mode(target) == 0o600


@pytest.mark.parametrize(
    ("variable", "where", "platforms"),
    [
        ("LLMTUI_CONFIG_DIR", config_dir, "user_config_dir"),
        ("LLMTUI_DATA_DIR", data_dir, "user_data_dir"),
        ("LLMTUI_CACHE_DIR", cache_dir, "user_cache_dir"),
    ],
)
def test_each_directory_is_its_override_else_the_platforms(tmp_path, monkeypatch, variable, where, platforms):
    import platformdirs

    monkeypatch.setenv(variable, str(tmp_path / "mine"))
    assert where() == tmp_path / "mine"
    monkeypatch.delenv(variable)
    assert where() == Path(getattr(platformdirs, platforms)("llmtui"))


def test_a_file_the_user_names_is_0600_and_its_directory_is_left_alone(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: losing the sticky bit would open it to every user
    mine = tmp_path / "mine"
    mine.mkdir()
    mine.chmod(0o755)
    atomic_write(shared / "out.md", b"exported")
    save_settings(load_settings()[0].with_value("theme", "llmtui-light"), mine / "settings.toml")
    assert mode(shared / "out.md") == mode(mine / "settings.toml") == 0o600
    assert mode(shared) == 0o1777 and mode(mine) == 0o755
    with pytest.raises(StoreError, match="is a directory"):
        atomic_write(mine, b"x")
    with pytest.raises(StoreError, match="Not a directory"):
        atomic_write(shared / "out.md" / "below.md", b"x")
    with pytest.raises(StoreError, match="No such file"):  # the user's directory is never created
        atomic_write(tmp_path / "missing" / "out.md", b"x")


def test_a_read_only_conversations_directory_stays_read_only(private_dirs):
    store = ConversationStore()
    conversation_id = _saved(store)
    store.close()
    store.root.chmod(0o500)
    try:
        store = ConversationStore()
        summaries, problems = store.list()
        assert [s.id for s in summaries] == [conversation_id]
        assert problems == [f"{store.root} is read-only, so the history is open read-only and nothing is saved"]
        assert store.load(conversation_id).turns[0].content == "hello"
        for write in (lambda: _saved(store), lambda: store.delete(conversation_id)):
            with pytest.raises(StoreError, match="read-only"):
                write()
        assert mode(store.root) == 0o500
        assert sorted(os.listdir(store.root)) == sorted([f"{conversation_id}.json", f".{conversation_id}.lock"])
    finally:
        store.root.chmod(0o700)


def test_a_store_that_cannot_be_had_says_why_on_use(tmp_path):
    (tmp_path / "a-file").write_text("")
    store = ConversationStore(tmp_path / "a-file" / "conversations")  # constructing never fails
    with pytest.raises(StoreError, match="a-file is not a directory"):
        store.list()
    with pytest.raises(StoreError, match="a-file is not a directory"):
        _saved(store)
    afile = tmp_path / "a-file"
    for path, message in [
        (afile, f"{afile} is not a directory"),
        (afile / "x", f"{afile} is not a directory, so llmtui cannot keep {afile / 'x'} there"),
    ]:
        with pytest.raises(StoreError) as caught:
            private_dir(path)
        assert str(caught.value) == message
    (tmp_path / "read-only").mkdir(mode=0o500)
    with pytest.raises(StoreError) as caught:
        private_dir(tmp_path / "read-only" / "a" / "b" / "c")
    assert str(caught.value) == f"cannot create {tmp_path / 'read-only' / 'a'}: {tmp_path / 'read-only'} is read-only"
    (tmp_path / "a-file").unlink()  # the user fixes it while llmtui runs: the same store works again
    conversation_id = _saved(store)
    assert [s.id for s in store.list()[0]] == [conversation_id]


def test_lock_files_go_with_their_conversation(private_dirs):
    store = ConversationStore()
    kept, removed = _saved(store, "kept"), _saved(store, "removed")
    assert (store.root / f".{removed}.lock").exists()
    store.delete(removed)
    assert sorted(p.name for p in store.root.glob(".*.lock")) == [f".{kept}.lock"]
    store.restore(removed)
    conversation = store.load(removed)
    conversation.add_user("again")
    store.save(conversation)  # the lock is made anew
    assert store.load(removed).turns[-1].content == "again"


def _conversation_dict(**fields) -> dict:
    turn = {"role": "user", "versions": [{"content": "hi", "created": 1.0}]}
    return {"format": 1, "id": "x", "title": "t", "created": 1.0, "updated": 1.0, "turns": [turn], **fields}


def _reply(**fields) -> dict:
    event = {"index": 0, "token_id": 5, "text": "a", "prob": 0.5, "sampled_prob": 1.0, "rank": 0, "entropy": 1.0}
    version = {"content": "a", "events": [{**event, **fields}]}
    return _conversation_dict(turns=[{"role": "assistant", "versions": [version]}])


HOSTILE = {
    "far-future": (_conversation_dict(updated=1e300), "updated must be a time"),
    "nan": ('{"format": 1, "id": "nan", "created": NaN}', "NaN is not a JSON number"),
    "infinite": ('{"format": 1, "id": "infinite", "created": 1e400}', "created must be a finite number"),
    "deep": ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
    "number-content": (
        _conversation_dict(turns=[{"role": "user", "versions": [{"content": 5}]}]),
        "content must be text",
    ),
    "bad-id": (_conversation_dict(id="../escape"), "not a conversation id"),
    "string-turns": (_conversation_dict(turns="abc"), "turns must be an array"),
}
# Files whose replies' token events are wrong: the listing reads no events (they are most of a long
# conversation's file, and it lists only the text), so these are listed and refused when opened.
HOSTILE_STEPS = {
    "number-text": (_reply(text=["a"]), "text must be text, not an array"),
    "bool-index": (_reply(index=True), "index must be a whole number"),
    "huge-rank": (_reply(rank=10**30), "rank must be from 0 to"),
}


def test_hostile_conversation_files_are_reported_and_skipped(private_dirs):
    store = ConversationStore()
    good = _saved(store, "good")
    for name, (content, _) in {**HOSTILE, **HOSTILE_STEPS}.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (store.root / f"{name}.json").write_text(text)
    os.symlink("/dev/zero", store.root / "zero.json")
    os.mkfifo(store.root / "fifo.json")
    os.symlink(store.root / "nowhere", store.root / "dangling.json")
    summaries, problems = store.list()
    assert sorted(s.id for s in summaries) == sorted([good, *HOSTILE_STEPS])
    assert len(problems) == len(HOSTILE) + 3 and all("\n" not in p for p in problems)
    # What is skipped is named by its path, not only by its id.
    for name in ("zero", "fifo"):
        assert f"{store.root / name}.json is not a regular file; skipped" in problems
    assert f"cannot read {store.root / 'dangling.json'}: No such file or directory; skipped" in problems
    for name, (_, why) in {**HOSTILE, **HOSTILE_STEPS}.items():
        with pytest.raises(StoreError, match=why) as caught:
            store.load(name)
        assert f"{name}.json" in str(caught.value)
        assert name in HOSTILE_STEPS or any(f"{name}.json" in p and why in p for p in problems)
    for name in ("zero", "fifo"):
        with pytest.raises(StoreError, match=r"is not a regular file"):
            store.load(name)
    os.symlink("loop.json", store.root / "loop.json")  # a file that cannot even be looked at
    with pytest.raises(StoreError) as caught:
        store.load("loop")
    assert str(caught.value) == f"cannot read {store.root / 'loop.json'}: Too many levels of symbolic links"


def test_the_seed_has_a_range_like_every_value(private_dirs):
    for seed in (2**64, -(2**63) - 1):
        with pytest.raises(InvalidValue, match="seed must be from"):
            SamplingParams(seed=seed).validate()
    assert SamplingParams(seed=2**64 - 1).validate().seed == 2**64 - 1
    path = settings_path()
    path.parent.mkdir(mode=0o700)
    path.write_text("[sampling]\nseed = 18446744073709551616\ntop_k = 5\n")
    settings, problems = load_settings()
    assert settings.sampling.seed is None and settings.sampling.top_k == 5
    assert [(p.key, p.line) for p in problems] == [("sampling.seed", 2)]


def test_the_converted_model_cache_is_private(tmp_path, monkeypatch, umask_022):
    from llmtui.engine import specs

    monkeypatch.setenv("LLMTUI_CACHE_DIR", str(tmp_path / "cache"))
    checkpoint = specs.checkpoint_dir(specs.resolve(str(builders.tiny_gguf(tmp_path / "tiny.gguf"))))
    assert mode(tmp_path / "cache") == mode(tmp_path / "cache" / "models") == mode(checkpoint) == 0o700
    files = sorted(checkpoint.iterdir())
    assert {"config.json", "tokenizer.json", "model.safetensors"} <= {f.name for f in files}
    assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}


def test_reads_are_whole_and_bounded(tmp_path):
    """A file read in several chunks comes back byte for byte; one of exactly the limit is read, one byte more
    is refused before reading; a file whose size says nothing of what it holds (as /proc's) is stopped at
    the limit while it is read."""
    data = os.urandom(3 << 20) + b"end"
    path = tmp_path / "big.json"
    path.write_bytes(data)
    assert read_regular(path) == data
    assert read_regular(path, limit=len(data)) == data
    assert read_regular(path, head=10) == data[:10]
    with pytest.raises(StoreError) as caught:
        read_regular(path, limit=len(data) - 1)
    assert str(caught.value) == f"{path} is {len(data):,} bytes; llmtui reads files of at most {len(data) - 1:,}"
    maps = Path("/proc/self/maps")  # read a page (4 KiB) at a time: the limit is crossed over several reads
    assert os.stat(maps).st_size == 0 and len(maps.read_bytes()) > 3 * 5000
    with pytest.raises(StoreError) as caught:
        read_regular(maps, limit=5000)
    assert str(caught.value) == f"{maps} grew past 5,000 bytes while llmtui read it"


def test_a_directory_that_cannot_be_looked_at_says_why(tmp_path):
    os.symlink("loop", tmp_path / "loop")
    with pytest.raises(StoreError) as caught:
        private_dir(tmp_path / "loop" / "conversations")
    reason = "Too many levels of symbolic links"
    assert str(caught.value) == f"cannot use the directory {tmp_path / 'loop' / 'conversations'}: {reason}"
    assert not writable(tmp_path / "loop") and not writable(tmp_path / "missing")
    assert writable(tmp_path)
