from __future__ import annotations

import math
import threading
from dataclasses import replace

import builders
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmtui.core.errors import ContextOverflow, GenerationError, InvalidValue, OutOfMemory
from llmtui.core.sampling import SamplingParams
from llmtui.core.score import windows
from llmtui.engine.generation import Engine, _StopStrings
from llmtui.engine.loader import load


def _chat(text: str, system: str | None = None) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]


def _generate_reference(loaded, prompt, n: int) -> list[int]:
    out = loaded.model.generate(torch.tensor([prompt.ids]), do_sample=False, max_new_tokens=n, min_new_tokens=n)
    return out[0, len(prompt.ids) :].tolist()


def test_greedy_matches_generate_on_tiny_model(tiny_engine, tiny_loaded):
    prompt = tiny_engine.render(_chat("Hello world"))
    events = list(tiny_engine.generate(prompt, SamplingParams(max_new_tokens=24)))
    ids = [e.token_id for e in events]
    ref = _generate_reference(tiny_loaded, prompt, len(ids))
    assert ids == ref[: len(ids)]


@pytest.fixture(scope="module")
def positional_model_dir(tmp_path_factory):
    """A tiny model whose attention is sharp and whose rotary frequencies are all fast, so that where a
    token sits matters to what comes next (with the default tiny model an off-by-one position goes unseen)."""
    return builders.tiny_llama(
        tmp_path_factory.mktemp("positional") / "m", rope_theta=100.0, sharp_attention=4.0, context=512
    )


def test_greedy_matches_generate_over_many_positions(positional_model_dir):
    """The engine's plain pass against transformers' `generate` on an untouched load, free-running over
    96 positions after the prompt: every token the same."""
    engine = Engine(load(str(positional_model_dir), device="cpu"))
    reference = load(str(positional_model_dir), device="cpu", forward="transformers")
    assert engine.forward.name == "plain"
    prompt = engine.render(_chat("Hello world"))
    events = list(engine.generate(prompt, SamplingParams(max_new_tokens=96)))
    assert len(events) == 96  # no EOS: every position is compared
    assert [e.token_id for e in events] == _generate_reference(reference, prompt, 96)


def test_event_fields_are_consistent(tiny_engine):
    prompt = tiny_engine.render(_chat("The capital of France"))
    generation = tiny_engine.generate(prompt, SamplingParams(max_new_tokens=12, top_candidates=5))
    events = list(generation)
    assert [e.index for e in events] == list(range(len(events)))
    for e in events:
        assert len(e.candidates) == 5
        probs = [c.prob for c in e.candidates]
        assert probs == sorted(probs, reverse=True)
        assert e.rank == 0 and e.candidates[0].token_id == e.token_id  # greedy picks the top candidate
        assert math.isclose(e.prob, e.candidates[0].prob)
        assert e.sampled_prob == 1.0
        assert 0 <= e.entropy <= math.log(len(tiny_engine.tokenizer)) + 1e-4
        assert e.candidates[0].piece == tiny_engine.view.pieces[e.token_id]
    assert [e.elapsed for e in events] == sorted(e.elapsed for e in events)
    stats = generation.stats
    assert stats.new_tokens == len(events) and stats.prompt_tokens == len(prompt.ids)
    assert stats.stop_reason in ("eos", "max_tokens")
    assert stats.ttft_s > 0


def test_seeded_sampling_is_reproducible_and_reports_sampled_probability(tiny_engine):
    prompt = tiny_engine.render(_chat("Hello"))
    params = SamplingParams(temperature=1.3, top_k=20, top_p=0.9, max_new_tokens=16, seed=7)
    first = list(tiny_engine.generate(prompt, params))
    second = list(tiny_engine.generate(prompt, params))
    assert [e.token_id for e in first] == [e.token_id for e in second]
    for e in first:
        assert 0 < e.sampled_prob <= 1
    # A different seed takes another path somewhere (the distribution is far from one-hot).
    third = list(tiny_engine.generate(prompt, SamplingParams(**{**params.to_dict(), "seed": 8, "stop": ()})))
    assert [e.token_id for e in third] != [e.token_id for e in first]


def test_top_k_one_is_greedy(tiny_engine):
    prompt = tiny_engine.render(_chat("Tokenizers cut text"))
    greedy = [e.token_id for e in tiny_engine.generate(prompt, SamplingParams(max_new_tokens=10))]
    sampled = tiny_engine.generate(prompt, SamplingParams(temperature=0.8, top_k=1, max_new_tokens=10, seed=1))
    events = list(sampled)
    assert [e.token_id for e in events] == greedy
    assert all(math.isclose(e.sampled_prob, 1.0) for e in events)


def test_repetition_penalty_changes_the_path(tiny_engine):
    prompt = tiny_engine.render(_chat("Hello world hello world"))
    plain = [e.token_id for e in tiny_engine.generate(prompt, SamplingParams(max_new_tokens=20))]
    penalised = [
        e.token_id for e in tiny_engine.generate(prompt, SamplingParams(max_new_tokens=20, repetition_penalty=5.0))
    ]
    assert plain != penalised


def test_stop_from_another_thread_ends_within_one_step(tiny_engine):
    prompt = tiny_engine.render(_chat("Hello"))
    generation = tiny_engine.generate(prompt, SamplingParams(max_new_tokens=200))
    seen = threading.Event()
    count_at_stop: list[int] = []

    def consume():
        try:
            for event in generation:
                if event.index == 4:
                    seen.set()
                    # Give the main thread time to call stop() while this step is "in flight".
                    threading.Event().wait(0.2)
        finally:
            seen.set()  # a reply that ended or failed before step 4 fails the test now, not in 30 s

    worker = threading.Thread(target=consume)
    worker.start()
    assert seen.wait(30)
    count_at_stop.append(len(generation.events))
    generation.stop()
    worker.join(30)
    assert generation.stats.stop_reason == "stopped"
    assert len(generation.events) <= count_at_stop[0] + 1
    assert generation.text == "".join(e.text for e in generation.events)


def test_branch_forces_the_chosen_token_and_continues(tiny_engine):
    prompt = tiny_engine.render(_chat("Hello"))
    original = list(tiny_engine.generate(prompt, SamplingParams(max_new_tokens=10)))
    step = 3
    alternative = original[step].candidates[2]
    prefix = [e.token_id for e in original[:step]]
    branch = list(
        tiny_engine.generate(prompt, SamplingParams(max_new_tokens=6), prefix=prefix, force=alternative.token_id)
    )
    assert branch[0].index == step
    assert branch[0].token_id == alternative.token_id
    assert branch[0].rank == 2
    assert math.isclose(branch[0].prob, alternative.prob, rel_tol=1e-4)
    assert branch[0].sampled_prob == 0.0  # greedy would not have picked it
    # The candidates at the forced step are the original step's distribution.
    assert [c.token_id for c in branch[0].candidates] == [c.token_id for c in original[step].candidates]
    # Then it continues as greedy does from there: only the first step is forced.
    after = tiny_engine.generate(prompt, SamplingParams(max_new_tokens=5), prefix=[*prefix, alternative.token_id])
    assert [e.token_id for e in branch[1:]] == [e.token_id for e in after]


def test_a_reply_continued_inside_a_character_shows_the_character_whole(tiny_engine):
    """The reply's text is read after the tokens it continues: a character split between the kept tokens
    and the first new one comes out whole."""
    prompt = tiny_engine.render(_chat("Hi"))
    x, space, first, second = tiny_engine.tokenizer("x é", add_special_tokens=False)["input_ids"]
    (event,) = tiny_engine.generate(prompt, SamplingParams(max_new_tokens=1), prefix=[x, space, first], force=second)
    assert event.token_id == second and event.text == "é"


def test_a_special_token_adds_no_text_to_the_reply(tiny_engine):
    prompt = tiny_engine.render(_chat("Hi"))
    special = tiny_engine.tokenizer.convert_tokens_to_ids("<|im_start|>")
    first, *_ = tiny_engine.generate(prompt, SamplingParams(max_new_tokens=2), force=special)
    assert first.token_id == special and first.text == ""


def test_a_prompt_that_fills_the_context_gets_no_tokens_and_says_so(tiny_engine):
    prompt = tiny_engine.render(_chat("Hi"))
    full = replace(prompt, ids=tuple([5] * tiny_engine.context_length))
    generation = tiny_engine.generate(full, SamplingParams(max_new_tokens=4))
    assert list(generation) == [] and generation.stats.stop_reason == "context_full"


def test_sampling_without_a_seed_draws_from_the_distribution(tiny_engine):
    prompt = tiny_engine.render(_chat("Hi"))
    events = list(tiny_engine.generate(prompt, SamplingParams(max_new_tokens=8, temperature=1.0)))
    assert len(events) == 8 and all(0 < e.sampled_prob <= 1 for e in events)


def _last_logits(engine, ids):
    """The prompt as a batch of one, and the model's own logits at its last position (shape [1, vocab]):
    what transformers' logits processors take."""
    batch = torch.tensor([list(ids)])
    with torch.inference_mode():
        return batch, engine.model(batch).logits[0, -1:].float()


def test_a_sampled_step_reports_the_model_s_distribution_and_the_one_it_drew_from(tiny_engine):
    """The raw probability and entropy are the model's softmax; the sampled probability is that of the
    distribution after the repetition penalty (over the prompt's tokens too, as transformers'
    RepetitionPenaltyLogitsProcessor applies it) and the temperature."""
    from transformers import RepetitionPenaltyLogitsProcessor

    prompt = tiny_engine.render(_chat("Hello hello world"))
    params = SamplingParams(max_new_tokens=1, temperature=0.7, top_k=0, top_p=1.0, repetition_penalty=2.0, seed=3)
    (event,) = tiny_engine.generate(prompt, params)
    ids, logits = _last_logits(tiny_engine, prompt.ids)
    raw = torch.softmax(logits, dim=-1)[0]
    assert event.prob == pytest.approx(raw[event.token_id].item(), rel=1e-4)
    assert event.entropy == pytest.approx(float(-(raw * raw.log()).sum()), rel=1e-4)
    penalised = RepetitionPenaltyLogitsProcessor(2.0)(ids, logits)
    expected = torch.softmax(penalised / 0.7, dim=-1)[0, event.token_id]
    assert event.sampled_prob == pytest.approx(expected.item(), rel=1e-4)


def test_top_p_draws_from_the_tokens_transformers_keeps_and_a_forced_token_is_taken_while_sampling(tiny_engine):
    from transformers import TopPLogitsWarper

    prompt = tiny_engine.render(_chat("Hello hello world"))
    params = SamplingParams(max_new_tokens=3, temperature=1.0, top_p=0.6, seed=5)
    first, *rest = tiny_engine.generate(prompt, params)
    ids, logits = _last_logits(tiny_engine, prompt.ids)
    kept = torch.softmax(TopPLogitsWarper(0.6)(ids, logits), dim=-1)[0]
    assert first.sampled_prob == pytest.approx(kept[first.token_id].item(), rel=1e-4)
    assert 1 < int((kept > 0).sum()) < len(tiny_engine.view.pieces)  # the cut is somewhere in between
    assert all(0 <= a.elapsed <= b.elapsed < 60 for a, b in zip([first, *rest], rest, strict=False))
    outside = int(torch.argmin(kept))  # a token top-p leaves out
    (forced, *_) = tiny_engine.generate(prompt, params, force=outside)
    assert forced.token_id == outside and forced.sampled_prob == 0.0


def test_logits_past_the_tokenizer_s_vocabulary_are_never_chosen(tiny_engine):
    prompt = tiny_engine.render(_chat("Hi"))
    plain = [e.token_id for e in tiny_engine.generate(prompt, SamplingParams(max_new_tokens=6))]

    # As a model whose logits run past its tokenizer's vocabulary (Qwen2's are padded to a multiple of
    # 128), the padding scored above every real token.
    def padded(logits):
        return torch.cat([logits, torch.full((8,), 1e4, dtype=logits.dtype)])

    tiny_engine.forward = builders.Intercepted(tiny_engine.forward, logits=padded)
    padded = list(tiny_engine.generate(prompt, SamplingParams(max_new_tokens=6)))
    assert [e.token_id for e in padded] == plain


def test_context_overflow_drops_oldest_turns_but_keeps_system(tiny_engine):
    long_turn = "hello world " * 30
    messages = [{"role": "system", "content": "Be brief."}]
    for i in range(8):
        messages += [
            {"role": "user", "content": f"{i} {long_turn}"},
            {"role": "assistant", "content": long_turn},
        ]
    messages.append({"role": "user", "content": "last question"})
    prompt = tiny_engine.render(messages, reserve=32)
    assert prompt.dropped_turns > 0
    assert len(prompt.ids) + 32 <= tiny_engine.context_length
    assert "Be brief." in prompt.text and "last question" in prompt.text
    assert prompt.text.index("<|im_start|>user") < prompt.text.index("<|im_start|>assistant")
    reply = tiny_engine.generate(prompt, SamplingParams(max_new_tokens=2))
    list(reply)
    assert reply.stats.dropped_turns == prompt.dropped_turns  # the reply's stats say what it did not see
    with pytest.raises(ContextOverflow):
        tiny_engine.render(_chat("word " * 400), reserve=32)


def test_generation_stops_at_the_context_limit(tiny_engine):
    prompt = tiny_engine.render(_chat("Hello world " * 20))
    generation = tiny_engine.generate(prompt, SamplingParams(max_new_tokens=500))
    events = list(generation)
    assert len(prompt.ids) + len(events) <= tiny_engine.context_length
    assert generation.stats.stop_reason in ("context_full", "eos")


def test_tokenizer_without_chat_template_falls_back_to_plain_format(tmp_path):
    import builders

    from llmtui.engine.loader import load

    loaded = load(str(builders.tiny_llama(tmp_path / "plain", chat_template=None)), device="cpu")
    engine = Engine(loaded)
    prompt = engine.render(_chat("Hello", system="Be brief."))
    assert not prompt.templated
    assert prompt.text.endswith("Assistant:") and "User: Hello" in prompt.text
    assert "\nUser:" in prompt.stop


@pytest.mark.parametrize("templated", [True, False])
def test_the_prompt_s_ids_are_transformers_own_with_a_tokenizer_that_adds_a_bos(tmp_path, templated):
    """A chat template writes its BOS into the text, so its text is encoded without special tokens (one
    BOS, not two); the plain format is encoded with them (the tokenizer's BOS first), as transformers does."""
    from transformers import AutoTokenizer

    directory = builders.tiny_llama(tmp_path / "m", bos=True, chat_template=builders.CHATML if templated else None)
    engine = Engine(load(str(directory), device="cpu"))
    messages = _chat("Hello", system="Be brief.")
    prompt = engine.render(messages)
    auto = AutoTokenizer.from_pretrained(directory)
    bos = auto.convert_tokens_to_ids("<|im_start|>")
    assert prompt.templated == templated
    if templated:
        expected = auto.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)["input_ids"]
        assert list(prompt.ids) == expected and prompt.ids[1] != bos
        assert engine.template([]) == ("", [], True)  # nothing to render yet: the template is not asked
    else:
        assert list(prompt.ids) == auto(prompt.text)["input_ids"] and prompt.ids[0] == bos


def test_a_template_that_refuses_a_conversation_says_so(tmp_path):
    template = "{{ raise_exception('roles must alternate') }}"
    engine = Engine(load(str(builders.tiny_llama(tmp_path / "m", chat_template=template)), device="cpu"))
    with pytest.raises(GenerationError, match="the model's chat template rejected this conversation: roles must"):
        engine.render(_chat("Hello"))


@pytest.mark.parametrize(
    ("stops", "chunks", "shown", "hit"),
    [
        (["END"], ["Hello ", "E", "N", "D more"], "Hello ", True),
        (["END"], ["Hello ", "E", "Nx"], "Hello ENx", False),
        (["\nUser:"], ["a", "\nUs", "er: b"], "a", True),
        ([], ["a", "b"], "ab", False),
    ],
)
def test_stop_strings_never_show(stops, chunks, shown, hit):
    matcher = _StopStrings(stops)
    out, was_hit = "", False
    for i, chunk in enumerate(chunks):
        text, was_hit = matcher.feed(chunk, final=i == len(chunks) - 1)
        out += text
        if was_hit:
            break
    assert out == shown and was_hit == hit


@settings(max_examples=300, deadline=None)
@given(
    stops=st.lists(st.text("ab", min_size=1, max_size=3), max_size=3),
    chunks=st.lists(st.text("abc", max_size=4), min_size=1, max_size=6),
)
def test_stop_strings_show_everything_before_the_first_stop_and_hold_back_no_more_than_a_stop_s_start(stops, chunks):
    """Against the plain definition: what is shown is the text up to where the first stop string begins
    (all of it at the end when there is none); between chunks, what is held back is the longest end of
    the text that could begin a stop string, nothing more."""
    matcher = _StopStrings(stops)
    fed = shown = ""
    for i, chunk in enumerate(chunks):
        final = i == len(chunks) - 1
        fed += chunk
        text, hit = matcher.feed(chunk, final=final)
        shown += text
        found = [fed.find(s) for s in stops if s in fed]
        if found:
            assert hit and shown == fed[: min(found)]
            return
        assert not hit
        if final:
            assert shown == fed and matcher.held == ""
        else:
            starts = [n for s in stops for n in range(1, len(s)) if fed.endswith(s[:n])]
            assert matcher.held == fed[len(fed) - max(starts, default=0) :]
            assert shown + matcher.held == fed


def test_a_reply_that_ends_holding_the_start_of_a_stop_string_shows_it(tiny_engine):
    prompt = tiny_engine.render(_chat("Hello"))
    free = tiny_engine.generate(prompt, SamplingParams(max_new_tokens=12))
    text = "".join(e.text for e in free)
    assert text.strip(), text
    # A stop string that begins with the reply's last character and never comes: the reply's last step
    # held that character back, and the reply's end must let it go.
    stop = text[-1] + "\u2603\u2603"
    generation = tiny_engine.generate(prompt, SamplingParams(max_new_tokens=12, stop=(stop,)))
    assert "".join(e.text for e in generation) == text
    assert generation.stats.stop_reason == free.stats.stop_reason != "stop_string"


def test_stop_string_ends_generation(tiny_engine):
    prompt = tiny_engine.render(_chat("Hello"))
    free = tiny_engine.generate(prompt, SamplingParams(max_new_tokens=30))
    text = "".join(e.text for e in free)
    stop = text[5:8]
    assert stop.strip(), text
    generation = tiny_engine.generate(prompt, SamplingParams(max_new_tokens=30, stop=(stop,)))
    shown = "".join(e.text for e in generation)
    assert generation.stats.stop_reason == "stop_string"
    assert stop not in shown and text.startswith(shown)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", -1.0),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("top_k", -2),
        ("max_new_tokens", 0),
        ("repetition_penalty", 0.0),
        ("top_candidates", 0),
        ("temperature", float("nan")),
    ],
)
def test_invalid_sampling_values_are_refused(field, value):
    with pytest.raises(InvalidValue, match=field):
        SamplingParams(**{field: value}).validate()


def test_with_value_parses_text():
    params = SamplingParams().with_value("temperature", "0.2").with_value("stop", "a|b").with_value("seed", "none")
    assert params.temperature == 0.2 and params.stop == ("a", "b") and params.seed is None
    with pytest.raises(InvalidValue):
        params.with_value("temperature", "hot")
    with pytest.raises(InvalidValue):
        params.with_value("warmth", "1")


# -- on the real default model -----------------------------------------------------------------------


@pytest.mark.model
@pytest.mark.parametrize(
    "question", ["What is the capital of France?", "你是谁?", "Write a Python function that reverses a list."]
)
def test_greedy_is_identical_to_generate_on_the_default_model(default_engine, default_reference, question):
    """The engine (plain forward pass, re-laid weights) against transformers on weights as loaded."""
    assert default_engine.forward.name == "plain"
    prompt = default_engine.render(_chat(question))
    generation = default_engine.generate(prompt, SamplingParams(max_new_tokens=40))
    events = list(generation)
    ids = [e.token_id for e in events]
    ref = default_reference.model.generate(torch.tensor([prompt.ids]), do_sample=False, max_new_tokens=40)
    assert ids == ref[0, len(prompt.ids) :].tolist()
    default_loaded = default_reference
    text = "".join(e.text for e in events)
    assert "\ufffd" not in text
    assert text == default_loaded.tokenizer.decode(ids, skip_special_tokens=True)


@pytest.mark.model
def test_default_model_answers_about_france(default_engine):
    prompt = default_engine.render(_chat("What is the capital of France?"))
    generation = default_engine.generate(prompt, SamplingParams(max_new_tokens=30))
    assert "Paris" in "".join(e.text for e in generation)
    assert generation.stats.stop_reason == "eos"
    assert generation.events[-1].token_id in default_engine.eos_ids


# -- scoring a text: one forward pass ------------------------------------------------------------------------


def _reference_distributions(engine, ids):
    """A plain softmax of the model's own logits: row i predicts ids[i + 1]."""
    with torch.inference_mode():
        logits = engine.model(torch.tensor([ids])).logits[0, :-1].float()[:, : len(engine.view.pieces)]
    return torch.softmax(logits, dim=-1)


@pytest.mark.parametrize("rows", [256, 3])  # 3: the rows are processed in several blocks
def test_score_is_the_softmax_of_the_model_logits(tiny_engine, monkeypatch, rows):
    from llmtui.engine import generation

    monkeypatch.setattr(generation, "_SCORE_BYTES", rows * 4 * len(tiny_engine.view.pieces))
    ids = [*tiny_engine.render(_chat("The capital of France is Paris.")).ids, 5, 17, 42]
    events = tiny_engine.score(ids, top=4)
    probs = _reference_distributions(tiny_engine, ids)
    assert [e.index for e in events] == list(range(1, len(ids)))
    assert [e.token_id for e in events] == ids[1:]
    for row, event in zip(probs, events, strict=True):
        p = row[event.token_id].item()
        assert math.isclose(event.prob, p, rel_tol=1e-5) and event.sampled_prob == event.prob
        assert event.rank == int((row > row[event.token_id]).sum())
        assert math.isclose(event.entropy, float(-(row * row.log()).nansum()), rel_tol=1e-4)
        top = torch.topk(row, 4)
        assert [c.token_id for c in event.candidates] == top.indices.tolist()
        assert [c.piece for c in event.candidates] == [tiny_engine.view.pieces[i] for i in top.indices.tolist()]
        assert [c.prob for c in event.candidates] == pytest.approx(top.values.tolist(), rel=1e-5)
        assert event.elapsed == 0.0
    # Ranks read from the top of the distribution and counted over all of it: both kinds are here.
    assert min(e.rank for e in events) < generation._RANKED <= max(e.rank for e in events)
    # The texts add up to the text after the first token, special tokens included.
    full = tiny_engine.tokenizer.decode(ids, skip_special_tokens=False)
    first = tiny_engine.tokenizer.decode(ids[:1], skip_special_tokens=False)
    assert first + "".join(e.text for e in events) == full


def test_score_s_entropy_holds_where_the_model_rules_tokens_out(tiny_engine):
    # Logits of -inf (tokens a model rules out) make 0 * -inf in the entropy's sum: those rows are summed
    # over the tokens that can occur.
    head = tiny_engine.model.get_output_embeddings()
    handle = head.register_forward_hook(lambda module, args, out: out.index_fill_(-1, torch.arange(0, 40), -math.inf))
    try:
        ids = [*tiny_engine.render(_chat("The capital of France is Paris.")).ids, 45, 46]
        events = tiny_engine.score(ids, top=3)
        probs = _reference_distributions(tiny_engine, ids)
    finally:
        handle.remove()
    for row, event in zip(probs, events, strict=True):
        assert math.isclose(event.entropy, float(-(row * row.log()).nansum()), rel_tol=1e-4)
        assert event.prob == pytest.approx(row[event.token_id].item(), rel=1e-5)


def test_score_refuses_what_it_cannot_score(tiny_engine):
    assert tiny_engine.score([5]) == []
    with pytest.raises(InvalidValue, match="out of range"):
        tiny_engine.score([5, len(tiny_engine.view.pieces)])


def test_the_engine_reads_its_ends_of_sequence_and_its_context_from_the_model(tiny_loaded, monkeypatch):
    """The generation config's end of sequence (one id or several), else the model config's, else the
    tokenizer's; the context from the model's info, else the tokenizer's limit, else 2,048."""
    generation_config, config = tiny_loaded.model.generation_config, tiny_loaded.model.config
    monkeypatch.setattr(generation_config, "eos_token_id", [2, 7])
    assert Engine(tiny_loaded).eos_ids == {2, 7}
    monkeypatch.setattr(generation_config, "eos_token_id", 7)
    assert Engine(tiny_loaded).eos_ids == {7}
    monkeypatch.setattr(generation_config, "eos_token_id", None)
    monkeypatch.setattr(config, "eos_token_id", 9)
    assert Engine(tiny_loaded).eos_ids == {9}
    monkeypatch.setattr(config, "eos_token_id", None)
    monkeypatch.setattr(tiny_loaded.tokenizer, "eos_token", "<|im_start|>")
    assert Engine(tiny_loaded).eos_ids == {tiny_loaded.tokenizer.convert_tokens_to_ids("<|im_start|>")}

    assert Engine(tiny_loaded).context_length == tiny_loaded.info.context_length == 256
    assert Engine(tiny_loaded).view.name == tiny_loaded.info.name
    monkeypatch.setattr(tiny_loaded, "info", replace(tiny_loaded.info, context_length=None))
    monkeypatch.setattr(tiny_loaded.tokenizer, "model_max_length", 300)
    assert Engine(tiny_loaded).context_length == 300
    monkeypatch.delattr(type(tiny_loaded.tokenizer), "model_max_length", raising=False)
    monkeypatch.delattr(tiny_loaded.tokenizer, "model_max_length")
    assert Engine(tiny_loaded).context_length == 2048


def test_the_engine_lags_on_cuda_only_unless_told(tiny_loaded):
    assert Engine(tiny_loaded).lag is False  # the CPU
    assert Engine(tiny_loaded, lag=True).lag is True
    cuda = replace(tiny_loaded, device=torch.device("cuda"))
    assert Engine(cuda).lag is True and Engine(cuda, lag=False).lag is False


def test_a_reply_is_decoded_once(tiny_engine):
    generation = tiny_engine.generate(tiny_engine.render(_chat("Hi")), SamplingParams(max_new_tokens=2))
    assert len(list(generation)) == 2
    for _ in range(2):
        with pytest.raises(RuntimeError) as raised:
            next(iter(generation))
        assert str(raised.value) == "a Generation can be iterated once"


def test_score_reads_every_id_and_says_which_are_out_of_range(tiny_engine):
    vocab = len(tiny_engine.view.pieces)
    assert [e.token_id for e in tiny_engine.score([0, vocab - 1, 0])] == [vocab - 1, 0]
    for bad in (-1, vocab):
        with pytest.raises(InvalidValue) as raised:
            tiny_engine.score([5, bad])
        assert str(raised.value) == f"id {bad} is out of range: the vocabulary has ids 0 to {vocab - 1}"
    assert {e.candidates for e in tiny_engine.score([5, 6, 7], top=0)} == {()}


def test_score_s_texts_add_up_where_a_word_s_space_is_its_own_token_s(tmp_path):
    """SentencePiece's first piece drops its word's space at the start of a text, and only there: each
    scored token's text is read after the one before it."""
    engine = Engine(load(str(builders.tiny_llama(tmp_path / "m", sentencepiece=True)), device="cpu"))
    ids = engine.tokenizer("this this world", add_special_tokens=False)["input_ids"]
    assert engine.view.pieces[ids[1]].startswith("▁")
    events = engine.score(ids)
    assert events[0].text == " this"
    assert engine.tokenizer.decode(ids[:1]) + "".join(e.text for e in events) == engine.tokenizer.decode(ids)


def test_a_token_that_ends_inside_a_character_adds_no_text_and_the_next_adds_it_whole(tiny_engine):
    ids = tiny_engine.tokenizer("x é", add_special_tokens=False)["input_ids"]
    assert [tiny_engine.view.pieces[i] for i in ids] == ["x", "Ġ", "Ã", "©"]  # é is two byte tokens here
    assert [e.text for e in tiny_engine.score(ids)] == [" ", "", "é"]


def test_score_gives_the_top_10_unless_asked(tiny_engine):
    ids = tiny_engine.render(_chat("The capital of France is Paris.")).ids
    assert {len(e.candidates) for e in tiny_engine.score(ids)} == {10}


LONG_FAULT = "x" * 400
# What the model raised, and the one sentence each becomes: the first line of the fault (at most 300
# characters), or its type when it says nothing.
FAULTS = [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), OutOfMemory, None),
    (
        RuntimeError("CUDA error: device-side assert triggered\nCompile with TORCH_USE_CUDA_DSA"),
        GenerationError,
        "CUDA error: device-side assert triggered",
    ),
    (
        IndexError("index 70000 is out of bounds for dimension 0"),
        GenerationError,
        "index 70000 is out of bounds for dimension 0",
    ),
    (RuntimeError("  "), GenerationError, "RuntimeError"),
    (RuntimeError(LONG_FAULT), GenerationError, "x" * 300),
]


@pytest.mark.parametrize(("fault", "kind", "said"), FAULTS)
def test_a_fault_in_the_model_mid_reply_is_one_sentence_and_keeps_the_reply_so_far(tiny_engine, fault, kind, said):
    tiny_engine.forward = builders.Intercepted.failing(tiny_engine.forward, fault, at=3)
    generation = tiny_engine.generate(tiny_engine.render(_chat("Hi")), SamplingParams(max_new_tokens=20))
    shown = []
    with pytest.raises(kind) as raised:
        shown.extend(generation)
    expected = "the device ran out of memory during the reply; the partial reply is kept"
    assert str(raised.value) == (expected if said is None else f"generation failed: {said}")
    assert len(shown) == len(generation.events) == 3  # the steps before the fault, kept
    assert generation.stats is not None and generation.stats.stop_reason == "error"


@pytest.mark.parametrize(("fault", "kind", "said"), FAULTS)
def test_a_fault_in_the_model_while_scoring_is_one_sentence(tiny_engine, fault, kind, said):
    def model(*args, **kwargs):
        raise fault

    tiny_engine.model = model
    with pytest.raises(kind) as raised:
        tiny_engine.score([5, 6, 7])
    expected = "the device ran out of memory while scoring the text"
    assert str(raised.value) == (expected if said is None else f"scoring failed: {said}")


def test_default_params_are_the_model_s_generation_config_under_the_user_s(tiny_engine, monkeypatch):
    config = tiny_engine.model.generation_config
    for name, value in {
        "do_sample": True,
        "temperature": 0.6,
        "top_k": 20,
        "top_p": 0.9,
        "repetition_penalty": 1.1,
    }.items():
        monkeypatch.setattr(config, name, value)
    params = tiny_engine.default_params(temperature=0.3, max_new_tokens=7, seed=None)
    assert (params.temperature, params.top_k, params.top_p, params.repetition_penalty) == (0.3, 20, 0.9, 1.1)
    assert params.max_new_tokens == 7 and params.seed is None


@pytest.mark.parametrize("stride", [None, 3])
def test_a_text_longer_than_the_context_is_scored_in_windows(tiny_engine, stride):
    """Every token after the first is scored once, from the window core.score.windows puts it in."""
    ids = [(7 * i + 3) % 200 + 5 for i in range(2 * tiny_engine.context_length + 5)]
    events = tiny_engine.score(ids, top=2, stride=stride)
    assert [e.index for e in events] == list(range(1, len(ids)))
    passes = windows(len(ids), tiny_engine.context_length, stride)
    assert len(passes) > 2
    for window in passes:
        probs = _reference_distributions(tiny_engine, ids[window.start : window.end])
        for position in range(window.first, window.end):
            expected = probs[position - window.start - 1, ids[position]].item()
            assert math.isclose(events[position - 1].prob, expected, rel_tol=1e-5), position


@pytest.mark.model
def test_score_agrees_with_the_decode_loop_on_the_default_model(default_engine):
    """Teacher-forced on a greedy reply, scoring gives the probabilities the decode loop reported."""
    prompt = default_engine.render(_chat("What is the capital of France?"))
    events = list(default_engine.generate(prompt, SamplingParams(max_new_tokens=12, top_candidates=3)))
    ids = [*prompt.ids, *(e.token_id for e in events)]
    scored = default_engine.score(ids, top=3)[len(prompt.ids) - 1 :]
    assert [s.token_id for s in scored] == [e.token_id for e in events]
    for s, e in zip(scored, events, strict=True):
        assert s.prob == pytest.approx(e.prob, abs=1e-4)
        assert s.rank == 0 and s.entropy == pytest.approx(e.entropy, abs=1e-3)
        assert [c.token_id for c in s.candidates][:1] == [e.token_id]
    reference = _reference_distributions(default_engine, ids)
    assert [s.prob for s in scored] == pytest.approx(
        [reference[len(prompt.ids) - 1 + i, e.token_id].item() for i, e in enumerate(events)], rel=1e-5
    )
