"""Text generation: the cached path against the naive one, padding, stopping, sampling."""

import pytest
import torch
from conftest import TINY, redraw_weights
from naive_text import naive_generate_text

from showo.generation.generate_text import decode_answers, final_answer, generate_text, left_pad
from showo.generation.prompting import mmu_prompt
from showo.generation.sampling import sample_next_token
from showo.model.omni_attention import omni_attention_mask

SAMPLING = dict(temperature=1.0, top_k=50, top_p=0.9)


@pytest.fixture
def model(tiny_model):
    """The tiny model with every weight redrawn, so that greedy answers are not one repeated token."""
    torch.manual_seed(0)
    return redraw_weights(tiny_model, 0.1)


def understanding_prompts(batch: int, question_length: int, seed: int = 0) -> torch.Tensor:
    """(B, 1 + N + 2 + 1 + T): ``<mmu> <soi> random image <eoi> <sot> random question``."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, TINY.codebook_size, (batch, TINY.num_image_tokens), generator=g)
    question = torch.randint(1, TINY.text_vocab_size, (question_length,), generator=g).tolist()
    return mmu_prompt(TINY.layout.image_ids(codes), question, TINY.layout)


def test_greedy_cached_equals_naive(model):
    ids = understanding_prompts(batch=2, question_length=6)
    got = generate_text(model, ids, max_new_tokens=20, top_k=1)
    expected = naive_generate_text(model, ids, max_new_tokens=20, top_k=1)
    assert got.shape == (2, 20)
    assert len(set(got[0].tolist())) > 3  # a real answer, not one repeated token
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    greedy_by_temperature = generate_text(model, ids, max_new_tokens=20, temperature=0)
    torch.testing.assert_close(greedy_by_temperature, got, rtol=0, atol=0)


def test_seeded_sampling_repeats_and_equals_naive(model):
    ids = understanding_prompts(batch=2, question_length=5, seed=1)
    def seeded(seed):
        return torch.Generator().manual_seed(seed)

    runs = [generate_text(model, ids, 16, generator=seeded(7), **SAMPLING) for _ in range(2)]
    naive = naive_generate_text(model, ids, 16, generator=seeded(7), **SAMPLING)
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    torch.testing.assert_close(runs[0], naive, rtol=0, atol=0)
    other = generate_text(model, ids, 16, generator=seeded(8), **SAMPLING)
    assert not torch.equal(other, runs[0])


def test_left_padded_batch_equals_each_prompt_alone(model):
    prompts = [understanding_prompts(1, n, seed=n)[0] for n in (2, 9, 5)]
    batch = left_pad(prompts, TINY.layout.pad_id)
    assert batch.shape == (3, max(p.numel() for p in prompts))
    assert (batch[0, :7] == TINY.layout.pad_id).all() and (batch[1] != TINY.layout.pad_id).all()
    got = generate_text(model, batch, max_new_tokens=12, top_k=1, eot_id=-1)  # -1: never stop
    for row, prompt in zip(got, prompts):
        alone = naive_generate_text(model, prompt[None], max_new_tokens=12, top_k=1, eot_id=-1)[0]
        torch.testing.assert_close(row, alone, rtol=0, atol=0)


def test_rows_stop_at_eot_and_are_filled(model):
    ids = understanding_prompts(batch=2, question_length=4, seed=3)
    free = generate_text(model, ids, max_new_tokens=12, top_k=1, eot_id=-1)
    first = free[0].tolist()
    step = next(k for k in range(3, 12) if first[k] not in first[:k])  # row 0 emits it first at step k
    eot = first[step]
    assert eot not in free[1].tolist()  # so row 1 runs to the end

    got = generate_text(model, ids, max_new_tokens=12, top_k=1, eot_id=eot)
    assert got.shape == (2, 12)
    assert got[0, :step].tolist() == first[:step] and (got[0, step:] == eot).all()
    torch.testing.assert_close(got[1], free[1], rtol=0, atol=0)
    alone = generate_text(model, ids[:1], max_new_tokens=12, top_k=1, eot_id=eot)
    assert alone.shape == (1, step + 1)  # the loop ends once every row has finished
    naive = naive_generate_text(model, ids[:1], max_new_tokens=12, top_k=1, eot_id=eot)
    torch.testing.assert_close(alone, naive, rtol=0, atol=0)


def test_inputs_embeds_path_equals_ids_path(model):
    ids = understanding_prompts(batch=2, question_length=6, seed=4)
    expected = generate_text(model, ids, max_new_tokens=10, top_k=1)
    got = generate_text(
        model,
        max_new_tokens=10,
        top_k=1,
        inputs_embeds=model.embed(ids),
        prefill_mask=omni_attention_mask(ids, model.layout),
    )
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(temperature=-0.5), "temperature"),
        (dict(top_k=0), "top_k"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(max_new_tokens=0), "max_new_tokens"),
    ],
)
def test_bad_arguments_raise(model, kwargs, message):
    ids = understanding_prompts(batch=1, question_length=3)
    with pytest.raises(ValueError, match=message):
        generate_text(model, ids, **{"max_new_tokens": 4, **kwargs})


def test_bad_inputs_raise(model):
    ids = understanding_prompts(batch=1, question_length=3)
    mask = omni_attention_mask(ids, TINY.layout)
    with pytest.raises(ValueError, match="exactly one"):
        generate_text(model, max_new_tokens=4)
    with pytest.raises(ValueError, match="exactly one"):
        generate_text(model, ids, 4, inputs_embeds=model.embed(ids), prefill_mask=mask)
    with pytest.raises(ValueError, match="prefill_mask"):
        generate_text(model, max_new_tokens=4, inputs_embeds=model.embed(ids))
    right_padded = torch.cat([ids, torch.full((1, 2), TINY.layout.pad_id)], dim=1)
    with pytest.raises(ValueError, match="left-padded"):
        generate_text(model, right_padded, 4)
    with pytest.raises(ValueError, match="vocabulary"):
        generate_text(model, ids + TINY.vocab_size, 4)


def test_sampling_helpers():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0], [5.0, 0.0, 0.0, 0.0]])
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert sample_next_token(logits, top_k=1, generator=g).tolist() == [1, 0]
    assert sample_next_token(logits, temperature=0, generator=g).tolist() == [1, 0]
    assert torch.equal(g.get_state(), state)  # greedy draws no random numbers
    draws = torch.stack([sample_next_token(logits, top_k=2, generator=g) for _ in range(200)])
    assert set(draws[:, 0].tolist()) == {1, 3}
    draws = torch.stack([sample_next_token(logits, top_p=0.5, generator=g) for _ in range(50)])
    assert set(draws.flatten().tolist()) == {1, 0}  # the nucleus is the single most likely token
    draws = torch.stack([sample_next_token(logits, top_p=0.85, generator=g) for _ in range(200)])
    assert set(draws[:, 0].tolist()) == {1, 3}  # probabilities 0.64 + 0.24 reach 0.85, 0.64 alone does not


def test_left_pad_and_decode_answers():
    assert left_pad([[1, 2, 3], [4]], pad_id=9).tolist() == [[1, 2, 3], [9, 9, 4]]
    with pytest.raises(ValueError, match="non-empty"):
        left_pad([[1], []], pad_id=9)

    class Joiner:
        def decode(self, ids):
            return " ".join(map(str, ids))

    answers = decode_answers(Joiner(), torch.tensor([[5, 6, 0, 0], [7, 8, 9, 4]]), eot_id=0)
    assert answers == ["5 6", "7 8 9 4"]


def test_final_answer_is_what_follows_the_last_marker():
    worked = "a red circle top left yes, a blue square top right no; answer: red "
    assert final_answer(worked, "answer:") == "red"
    assert final_answer("answer: no; answer: yes", "answer:") == "yes"
    assert final_answer(" red ", "answer:") == final_answer(" red ", None) == "red"  # no marker: all of it
    assert final_answer(worked, None) == worked.strip()
