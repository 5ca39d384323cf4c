from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from llmtui.core.conversation import Conversation, Turn, Version
from llmtui.core.errors import InvalidValue
from llmtui.core.events import Candidate, ReplyStats, TokenEvent
from llmtui.store.conversations import ConversationStore, StoreError
from llmtui.store.exchange import from_openai, to_markdown, to_openai


def _event(i: int) -> TokenEvent:
    return TokenEvent(i, 100 + i, f"t{i}", 0.5, 0.6, 0, 1.2, (Candidate(100 + i, f"Ġt{i}", 0.5),), 0.01 * i)


def _conversation(title: str = "hello") -> Conversation:
    c = Conversation(system="Be brief.", model="default", fingerprint="sha256:x", sampling={"temperature": 0.0})
    c.add_user(title)
    c.turns.append(Turn("assistant", [Version("t0t1", [_event(0), _event(1)], ReplyStats(5, 2, 0.1, 10.0, "eos"))]))
    return c


@pytest.fixture
def store(private_dirs):
    return ConversationStore()


def test_round_trip_keeps_everything(store):
    c = _conversation()
    c.start_reply("default", at=1)  # a second version; the first one stays
    c.turns[1].version.content = "other"
    c.add_user("next")
    c.switch(1, 0)  # "next" is stashed inside version 2
    result = store.save(c)
    loaded = store.load(result.id)
    assert loaded.to_dict() == c.to_dict()
    assert loaded.turns[1].version.events[1] == _event(1)
    assert loaded.turns[1].versions[1].rest[0].content == "next"


def test_files_and_dirs_are_private(store, private_dirs):
    result = store.save(_conversation())
    assert stat.S_IMODE(os.stat(result.path).st_mode) == 0o600
    for d in (store.root, store.root.parent):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    store.list()
    assert stat.S_IMODE(os.stat(store.root.parent / "index.sqlite").st_mode) == 0o600


def test_corrupt_files_are_reported_and_left_in_place(store):
    good = store.save(_conversation("good"))
    (store.root / "broken.json").write_text("{not json")
    (store.root / "alien.json").write_text(json.dumps({"format": 99, "id": "alien"}))
    (store.root / "binary.json").write_bytes(b"\xff\xfe")
    summaries, problems = store.list()
    assert [s.id for s in summaries] == [good.id]
    assert len(problems) == 3
    assert any("broken.json" in p and "not valid JSON" in p for p in problems)
    assert any("format" in p for p in problems)
    assert any("binary.json is not UTF-8 text (byte offset 0)" in p for p in problems)
    assert (store.root / "broken.json").read_text() == "{not json"
    with pytest.raises(StoreError, match="line 1"):
        store.load("broken")


def _writer(root: str, conversation_id: str, n: int, who: str) -> None:
    os.environ["LLMTUI_DATA_DIR"] = os.path.dirname(root)
    store = ConversationStore()
    for i in range(n):
        c = store.load(conversation_id)
        c.add_user(f"{who} {i}")
        store.save(c)


def test_two_concurrent_writers_never_corrupt_a_file_or_lose_a_turn(store):
    """Two processes append turns to the same conversation at once: every save lands somewhere whole."""
    base = store.save(Conversation(title="shared")).id
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(store.root), base, 15, who)) for who in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    summaries, problems = store.list()
    assert not problems
    turns: set[str] = set()
    for s in summaries:
        turns |= {t.content for t in store.load(s.id).turns}
    assert turns == {f"{who} {i}" for who in "ab" for i in range(15)}


def _held_writer(root: str, conversation_id: str, inside, release) -> None:
    """Another instance's save, held inside its critical section: it has found the revision it read still on
    disk and not yet written its own."""
    os.environ["LLMTUI_DATA_DIR"] = os.path.dirname(root)
    store = ConversationStore()
    conversation = store.load(conversation_id)
    conversation.add_user("from the held instance")
    found = ConversationStore._revision_on_disk

    def found_then_held(self, cid):
        revision = found(self, cid)
        inside.set()
        release.wait(30)
        return revision

    ConversationStore._revision_on_disk = found_then_held
    assert store.save(conversation).forked is False


def test_the_lock_excludes_a_writer_while_another_is_inside_its_critical_section(store):
    """One process is held between reading the revision on disk and writing its own; a save from this
    process waits for it, then sees the new revision and forks. Without the lock both would find the same
    revision and the later write would overwrite the other's turn."""
    c = _conversation()
    store.save(c)
    c.add_user("from this instance")
    original = c.id
    ctx = multiprocessing.get_context("spawn")
    inside, release = ctx.Event(), ctx.Event()
    held = ctx.Process(target=_held_writer, args=(str(store.root), c.id, inside, release))
    held.start()
    try:
        assert inside.wait(60), "the other writer never reached its critical section"
        result: list = []
        ours = threading.Thread(target=lambda: result.append(store.save(c)))
        ours.start()
        ours.join(0.5)
        assert ours.is_alive() and not result, "a save went ahead while another writer held the lock"
        release.set()
        ours.join(30)
        held.join(30)
        assert held.exitcode == 0
    finally:
        release.set()
        held.join(5)
        if held.is_alive():
            held.kill()
    (saved,) = result
    assert saved.forked and saved.id != original
    assert store.load(original).turns[-1].content == "from the held instance"
    assert store.load(saved.id).turns[-1].content == "from this instance"


def test_a_stale_writer_forks_instead_of_overwriting(store):
    c = _conversation()
    store.save(c)
    other = store.load(c.id)
    other.add_user("from the other instance")
    store.save(other)
    c.add_user("from this instance")
    result = store.save(c)
    assert result.forked and result.id != other.id
    assert store.load(other.id).turns[-1].content == "from the other instance"
    assert store.load(result.id).turns[-1].content == "from this instance"
    fork = json.loads(store.path(result.id).read_text())
    assert fork["sampling"]["forked_from"] == other.id != result.id and fork["revision"] == 1  # a new file's first


def test_a_file_another_program_rewrote_without_a_revision_is_never_overwritten(store):
    """Another program rewrote the file and left out its revision (so it reads as revision 0): a save of
    the copy we hold, at revision 1, forks rather than overwrite what it wrote."""
    c = _conversation("ours")
    original = store.save(c).id
    theirs = c.to_dict() | {"title": "theirs"}
    del theirs["revision"]
    store.path(original).write_text(json.dumps(theirs))
    c.add_user("one more")
    result = store.save(c)
    assert result.forked and result.id != original
    assert store.load(original).title == "theirs"


def test_a_revision_is_found_in_any_layout(store):
    """llmtui's own files say their revision in their first lines; any other JSON is read whole for it."""
    c = _conversation()
    path = store.save(c).path
    assert path.read_text().startswith('{\n "format": 1,\n "id": ')
    data = json.loads(path.read_text())
    data["revision"] += 1
    path.write_text(json.dumps(data))  # one line, as another tool would write it
    c.add_user("mine")
    assert store.save(c).forked


def test_a_revision_read_whole_is_the_files_own(store):
    """Read whole (another tool's layout), the file's own revision counts as it would in llmtui's: the same
    as ours is ours to write over, none means revision 0, and one that is no number (or a file that is no
    conversation) is saved over, as a repair."""
    c = _conversation()
    path = store.save(c).path
    data = json.loads(path.read_text())
    path.write_text(json.dumps(dict(reversed(data.items()))))  # one line, the revision after the turns
    c.add_user("mine")
    assert not store.save(c).forked
    for stranger in ('{"id": "x", "revision": true}', '{"id": "x", "revision": "9"}', "[1, 2]"):
        path.write_text(stranger)
        c.add_user("again")
        assert not store.save(c).forked, stranger
    fresh = Conversation(id=c.id, title="fresh")  # revision 0, never saved
    path.write_text(json.dumps({"id": c.id, "title": "no revision"}))
    assert not store.save(fresh).forked


def test_an_unchanged_conversation_is_never_written(store):
    """Saving what was read (or last written) leaves the file untouched, bytes and mtime, and takes no
    revision: a second instance that only looked does not fork the first one's later save."""
    c = _conversation()
    c.start_reply("default", at=1)
    c.add_user("more")
    path = store.save(c).path
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # an mtime no write could leave
    before = path.read_bytes()
    mine, theirs = store.load(c.id), store.load(c.id)
    for conversation in (c, mine, theirs):
        result = store.save(conversation)
        assert result.written is False and (result.id, result.path) == (c.id, path)
    assert path.read_bytes() == before and path.stat().st_mtime_ns == 1_000_000_000
    revision = json.loads(before)["revision"]
    mine.add_user("a change")
    assert store.save(mine).written and not store.save(mine).written
    assert json.loads(path.read_text())["revision"] == revision + 1  # one a write
    assert store.save(theirs).written is False  # theirs changed nothing: still no fork
    assert [s.title for s in store.list()[0]] == ["hello"]
    theirs.turns[1].versions[0].events.pop()  # any change at any depth is written, here as a fork
    assert store.save(theirs).forked


def test_delete_restore_rename_duplicate(store):
    c = store.save(_conversation("keep me")).id
    store.rename(c, "renamed")
    assert store.load(c).title == "renamed"
    copy = store.duplicate(c)
    assert copy.id != c and copy.title == "renamed (copy)"
    store.delete(c)
    assert c not in [s.id for s in store.list()[0]]
    store.restore(c)
    assert c in [s.id for s in store.list()[0]]
    with pytest.raises(StoreError, match=r"^no conversation gone-1$"):
        store.delete("gone-1")
    with pytest.raises(StoreError, match=f"^{c} is not in the trash$"):
        store.restore(c)
    with pytest.raises(InvalidValue, match=r"^a title cannot be empty$"):
        store.rename(c, "  ")
    with pytest.raises(StoreError, match=r"^not a conversation id: '\.\./etc/passwd'$"):
        store.path("../etc/passwd")


def test_a_move_the_file_system_refuses_says_which_and_why(store):
    """A conversation that cannot go to the trash, or back from it (a directory stands where it would
    go): one sentence naming the conversation and the system's reason; the file stays where it was. A copy
    is its own conversation, at its first revision."""
    c = store.save(_conversation("stuck")).id
    (store.root / ".trash" / f"{c}.json").mkdir(parents=True)
    (store.root / ".trash" / f"{c}.json" / "x").touch()
    with pytest.raises(StoreError) as caught:
        store.delete(c)
    assert str(caught.value) == f"cannot move {store.path(c)} to the trash: Is a directory"
    assert store.load(c).title == "stuck"

    gone = store.save(_conversation("gone")).id
    store.delete(gone)
    store.path(gone).mkdir()
    with pytest.raises(StoreError) as caught:
        store.restore(gone)
    assert str(caught.value) == f"cannot restore {gone}: Is a directory"

    copy = store.duplicate(c)
    assert copy.revision == 1 and json.loads(store.path(copy.id).read_text())["revision"] == 1
    with pytest.raises(StoreError) as caught:
        store.load("missing-1")
    assert str(caught.value) == f"no conversation missing-1 ({store.path('missing-1')} does not exist)"


def _from_another_thread(call):
    """What ``call()`` returns when run on a thread of its own, as the workstation's workers run the store."""
    result: list = []
    worker = threading.Thread(target=lambda: result.append(call()))
    worker.start()
    worker.join()
    return result[0]


def test_the_index_is_used_from_any_thread_and_opened_again_after_close(store):
    """The workstation lists and saves from worker threads, not the one that opened the index; a store
    closed (a history screen left) opens its index again on the next listing."""
    store.save(_conversation("threads"))
    assert [s.title for s in store.list()[0]] == ["threads"]
    summaries, problems = _from_another_thread(lambda: store.list("threa"))
    assert [s.title for s in summaries] == ["threads"] and problems == []
    store.close()
    assert [s.title for s in store.list()[0]] == ["threads"] and store.notices == []


def test_a_read_only_data_dir_keeps_the_index_in_memory(store, tmp_path, monkeypatch):
    """The data dir made read-only (chmod 500): nothing is written there, not even the index, nor in the
    directory llmtui was started in, and the history still lists and searches, from the files, on any
    thread."""
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    store.save(_conversation("read me"))  # a save makes no index: only a listing does
    data = store.root.parent
    data.chmod(0o500)
    try:
        again = ConversationStore()
        assert [s.title for s in again.list("read")[0]] == ["read me"]
        assert [s.title for s in _from_another_thread(lambda: again.list("me"))[0]] == ["read me"]
        assert not [name for name in os.listdir(data) if name.startswith("index")]
        assert os.listdir(tmp_path / "cwd") == []
    finally:
        data.chmod(0o700)


def test_an_index_that_cannot_be_opened_falls_back_to_memory_saying_why(store):
    """Something else where the index file goes (a directory): listing and search work from the files,
    and the notice names the index and SQLite's reason."""
    store.save(_conversation("still listed"))
    index = store.root.parent / "index.sqlite"
    index.mkdir()
    summaries, problems = store.list("listed")
    assert [s.title for s in summaries] == ["still listed"]
    assert problems == [f"cannot write the search index {index} (unable to open database file); listing from the files"]
    assert index.is_dir() and not list(index.iterdir())


def test_a_two_letter_search_finds_only_what_holds_it(store):
    """Shorter than a trigram, a search scans titles and texts; what the index adds between a
    conversation's messages to join them is never found."""
    with_it, without = _conversation("xx marks it"), _conversation("nothing here")
    store.save(with_it)
    store.save(without)
    assert [s.title for s in store.list("xx")[0]] == ["xx marks it"]
    (summary,) = store.list("nothing")[0]
    assert summary.to_dict() == {
        "id": without.id,
        "title": "nothing here",
        "updated": without.updated,
        "model": "default",
        "turns": 2,
        "preview": "nothing here",
    }


def test_only_conversation_files_are_listed(store):
    """Files that are not conversations (another extension, hidden ones such as the lock files) are
    neither listed nor reported."""
    store.save(_conversation("the only one"))
    (store.root / "notes.txt").write_text("not a conversation")
    (store.root / ".draft.json").write_text("{")
    summaries, problems = store.list()
    assert [s.title for s in summaries] == ["the only one"] and problems == []


def test_search_takes_quotes_and_wildcards_as_text(store):
    """Quotes, %, _ and backslashes are searched for as themselves, in short queries and long; a limit
    lists the newest that many."""
    for title in ('say "hi"', "100% sure", "a_b", "c\\d", "plain"):
        store.save(_conversation(title))
    assert [s.title for s in store.list('say "hi"')[0]] == ['say "hi"']
    assert [s.title for s in store.list('"hi')[0]] == ['say "hi"']
    assert [s.title for s in store.list('"h')[0]] == ['say "hi"']
    assert [s.title for s in store.list("%")[0]] == ["100% sure"]
    assert [s.title for s in store.list("_")[0]] == ["a_b"]
    assert [s.title for s in store.list("\\")[0]] == ["c\\d"]
    assert [s.title for s in store.list(limit=2)[0]] == ["plain", "c\\d"]


def test_search_titles_and_messages_in_any_script(store):
    a = _conversation("capital of France")
    b = _conversation("你是谁")
    b.turns[1].version.content = "我是一个模型"
    store.save(a)
    store.save(b)
    assert [s.title for s in store.list("France")[0]] == ["capital of France"]
    assert [s.title for s in store.list("一个模")[0]] == ["你是谁"]
    assert [s.title for s in store.list("谁")[0]] == ["你是谁"]  # shorter than a trigram
    assert store.list("nowhere to be found")[0] == []


def test_listing_and_searching_many_conversations(store):
    """Files written by someone else are indexed on the next listing; the speed is the benchmark's job."""
    for i in range(1_000):
        c = Conversation(id=f"c{i:05d}", title=f"conversation {i}", updated=float(i))
        c.turns.append(Turn("user", [Version(f"message number {i}")]))
        (store.root / f"{c.id}.json").write_text(json.dumps(c.to_dict()))
    summaries, problems = store.list()
    assert len(summaries) == 1_000 and not problems
    assert summaries[0].id == "c00999"  # newest first
    assert store.list()[0] == summaries
    hits, _ = store.list("number 424")
    assert [h.id for h in hits] == ["c00424"]


def test_files_changed_or_removed_by_others_leave_the_index(store):
    """The index follows the files: one another process removed is no longer listed or found, one it
    rewrote is listed as it is now, and a conversation with no turns has an empty preview."""
    kept, gone, empty = _conversation("kept here"), _conversation("removed elsewhere"), Conversation(title="empty")
    for c in (kept, gone, empty):
        store.save(c)
    assert {s.title for s in store.list()[0]} == {"kept here", "removed elsewhere", "empty"}
    assert next(s for s in store.list()[0] if s.title == "empty").preview == ""
    store.path(gone.id).unlink()
    rewritten = json.loads(store.path(kept.id).read_text())
    rewritten["title"] = "renamed elsewhere"
    store.path(kept.id).write_text(json.dumps(rewritten) + "\n")
    assert sorted(s.title for s in store.list()[0]) == ["empty", "renamed elsewhere"]
    assert store.list("removed")[0] == []
    assert [s.title for s in store.list("renamed")[0]] == ["renamed elsewhere"]
    assert store.notices == []  # all of it through the index on disk, not a fallback in memory


def test_a_file_is_laid_out_as_json_dumps_indent_1_with_a_step_a_line(store):
    """The one layout of a conversation file: json.dumps(indent=1), but every step of a reply on one line
    of its own (a reply of thousands of steps stays readable, and diffs a line a step)."""
    plain = Conversation(title="plain", system="s")
    plain.add_user("hi")  # a user turn: no steps ("events": [])
    plain.turns.append(Turn("assistant", [Version("hello", rest=[Turn("user", [Version("later")])])]))
    store.save(plain)
    text = store.path(plain.id).read_text()
    assert text == json.dumps(json.loads(text), indent=1, ensure_ascii=False)
    c = _conversation("steps 你好")
    store.save(c)
    lines = store.path(c.id).read_text().splitlines()
    events = json.loads("\n".join(lines))["turns"][1]["versions"][0]["events"]
    at = next(i for i, line in enumerate(lines) if line.strip() == '"events": [')
    indent = " " * (len(lines[at]) - len(lines[at].lstrip()) + 1)
    steps = [indent + json.dumps(e, ensure_ascii=False) for e in events]
    assert lines[at + 1 : at + 1 + len(events)] == [step + "," for step in steps[:-1]] + steps[-1:]
    assert lines[at + 1 + len(events)].rstrip(",") == indent[:-1] + "]"


def test_search_finds_the_text_of_every_version_and_of_the_turns_after_one(store):
    c = _conversation("versions")
    # Another version than the one shown, with the turns that followed it when it was.
    c.turns[1].versions.append(Version("another reply about owls", rest=[Turn("user", [Version("and parrots")])]))
    assert c.turns[1].current == 0
    store.save(c)
    for word in ("owls", "parrots"):
        assert [s.title for s in store.list(word)[0]] == ["versions"], word


def test_the_index_reads_only_the_files_that_changed(store, monkeypatch):
    """Listing again reads no file whose size and mtime the index already has, only the one rewritten; the
    index is a WAL database (readers in other instances are not blocked by a writer)."""
    conversations = [_conversation(f"number {i}") for i in range(5)]
    for c in conversations:
        store.save(c)
    store.list()
    read: list[str] = []
    real = ConversationStore.read_file

    def counted(path, **kwargs):
        read.append(path.stem)
        return real(path, **kwargs)

    monkeypatch.setattr(ConversationStore, "read_file", staticmethod(counted))
    assert len(store.list()[0]) == 5 and read == []
    conversations[2].add_user("one more")
    store.save(conversations[2])
    assert len(store.list()[0]) == 5 and read == [conversations[2].id]
    index = store.root.parent / "index.sqlite"
    with contextlib.closing(sqlite3.connect(index)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _index_work(root: Path, count: int) -> tuple[int, int]:
    """SQLite's work (thousands of its VM steps, from its progress handler: counted, not timed) to index
    ``count`` new conversations, then to index them again once every one of them has changed."""
    root.mkdir(parents=True)
    for i in range(count):
        c = Conversation(id=f"c{i:05d}", title=f"conversation {i}", updated=float(i))
        c.add_user(f"message number {i} about dragons and code")
        (root / f"{c.id}.json").write_text(json.dumps(c.to_dict()))
    store = ConversationStore(root)
    steps = [0]

    def count_steps() -> int:
        steps[0] += 1
        return 0  # go on

    store._connect().set_progress_handler(count_steps, 1000)
    assert len(store.list()[0]) == count
    first = steps[0]
    for path in root.glob("*.json"):
        path.write_text(path.read_text().replace("dragons", "owls"))
    assert len(store.list("owls")[0]) == count
    return first, steps[0] - first


def test_the_index_s_work_grows_with_the_conversations_not_with_their_square(tmp_path):
    """Indexing four times as many conversations, new or changed, is about four times the work: a
    conversation's old text is found by its row, not by a search through every conversation's."""
    small, large = _index_work(tmp_path / "small", 250), _index_work(tmp_path / "large", 1000)
    for few, many in zip(small, large, strict=True):
        assert many / few < 6, (small, large)


def test_a_preview_is_the_first_message_on_one_line_cut_at_120_characters(store):
    c = Conversation(title="long")
    c.add_user("word\n\t  " * 40)
    store.save(c)
    (summary,) = store.list()[0]
    assert summary.preview == ("word " * 24)[:120]


def test_a_damaged_index_is_rebuilt_from_the_files(store):
    """The index is only a cache: one that is not a database is thrown away and built again."""
    for title in ("first", "second"):
        store.save(_conversation(title))
    store.list()
    store.close()
    index = store.root.parent / "index.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    index.write_bytes(b"not a database " * 100)
    again = ConversationStore()
    assert sorted(s.title for s in again.list()[0]) == ["first", "second"] and again.notices == []
    assert [s.title for s in again.list("seco")[0]] == ["second"]
    with contextlib.closing(sqlite3.connect(index)) as db:
        assert db.execute("SELECT count(*) FROM summaries").fetchone()[0] == 2
    assert stat.S_IMODE(os.stat(index).st_mode) == 0o600


LIST_ON_A_FULL_DISK = """
import json, resource, signal, sys
from llmtui.store.conversations import ConversationStore

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
store = ConversationStore()
summaries, problems = store.list()
found, _ = store.list("needle")
print(json.dumps({"listed": len(summaries), "found": len(found), "problems": problems}))
"""


@pytest.mark.parametrize("limit", [8 * 1024, 256 * 1024], ids=["while creating it", "while filling it"])
def test_a_full_disk_leaves_no_index_behind_and_lists_from_the_files(store, limit):
    """The disk refuses the index part-way (a file size limit stands in for a full disk: while its tables
    are made, or while 200 conversations go in): the list and search still work, from the files, the
    notice says why, and no index file, empty or half-made, is left behind."""
    for i in range(200):
        c = _conversation(f"conversation {i}")
        c.add_user(f"{'needle ' if i % 50 == 0 else ''}{i} " + "some words to index " * 100)
        store.save(c)
    proc = subprocess.run(
        [sys.executable, "-c", LIST_ON_A_FULL_DISK, str(limit)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["listed"] == 200 and result["found"] == 4
    (notice,) = result["problems"]
    index = store.root.parent / "index.sqlite"
    assert notice.startswith(f"cannot write the search index {index} (") and notice.endswith("; listing from the files")
    assert "None" not in notice
    assert sorted(p.name for p in index.parent.iterdir() if p.name.startswith("index")) == []


def test_openai_import_and_export():
    c = from_openai(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                {"role": "assistant", "content": "Hello!"},
            ]
        }
    )
    assert c.system == "Be brief." and [t.content for t in c.turns] == ["Hi", "Hello!"] and c.title == "Hi"
    assert to_openai(c)["messages"][0] == {"role": "system", "content": "Be brief."}
    assert from_openai(to_openai(c)["messages"]).messages() == c.messages()
    md = to_markdown(c)
    assert "## User\n\nHi" in md and "## Assistant\n\nHello!" in md
    for bad in (
        {},
        [],
        [{"content": "x"}],
        [{"role": "robot", "content": "x"}],
        [{"role": "user", "content": 3}],
    ):
        with pytest.raises(InvalidValue):
            from_openai(bad)
