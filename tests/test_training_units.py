"""Training pieces on their own: configs, training rows, the loss, checkpoint bookkeeping."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY

from showo import ShowoModel
from showo.generation.processor import ShowoProcessor
from showo.model.omni_attention import omni_attention_mask
from showo.training.checkpoints import complete_checkpoints, latest_checkpoint, publish, staging_dir
from showo.training.config import TrainConfig, build_config, parse_overrides
from showo.training.optimization import lr_factor
from showo.training.presets import train_preset
from showo.training.sequences import (
    IGNORE,
    SampleTooLong,
    collate,
    collate_by_length,
    lm_row,
    mixed_row,
    mmu_row,
    sample_generator,
    t2i_row,
)
from showo.training.showo_trainer import LossHead

LAYOUT = TINY.layout


def test_overrides_parse_json_values_and_nest():
    assert parse_overrides(["a.b=3", "c=x", "d=[1, 2]", "e=true"]) == {"a": {"b": 3}, "c": "x", "d": [1, 2], "e": True}
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["learning_rate"])


def test_config_precedence_and_source_replacement(tmp_path):
    file = tmp_path / "c.toml"
    file.write_text('learning_rate = 0.5\n[data.t2i]\ntype = "webdataset"\npath = "x/*.tar"\n')
    cfg = build_config(train_preset("tiny"), file, ["learning_rate=0.25", "data.mixed=null"])
    assert cfg.learning_rate == 0.25  # key=value beats the file, which beats the preset
    assert cfg.data["t2i"] == {"type": "webdataset", "path": "x/*.tar"}  # another type replaces, not merges
    assert cfg.flows == ("t2i", "lm", "mmu")


def test_one_flow_of_a_per_flow_table_can_be_changed_alone():
    cfg = build_config(train_preset("world-quick"), None, ["transformer.loss_weights.mmu=3", "batch_size.lm=1"])
    assert cfg.transformer.loss_weights == {"t2i": 1.0, "lm": 1.0, "mmu": 3, "mixed": 1.0}  # not {"mmu": 3}
    assert cfg.batch_size == {"t2i": 8, "lm": 1, "mmu": 8, "mixed": 1}  # the preset's, one changed
    with pytest.raises(ValueError, match=r"batch_size: no value for the flows \['mmu'\]"):
        TrainConfig(data={"mmu": {"type": "world"}}, batch_size={"t2i": 8})


@pytest.mark.parametrize("override, message", [
    (["max_steps=0"], "max_steps: input should be greater than or equal to 1, got 0"),
    (["max_steps=abc"], "max_steps: input should be a valid integer, got 'abc'"),
    (["keep_last=1.5"], "keep_last: input should be a valid integer, got 1.5"),
    (["grad_clip=-1"], "grad_clip: input should be greater than 0, got -1"),
    (["learning_rate=fast"], "learning_rate: input should be a valid number, got 'fast'"),
    (["batch_size.t2i=-8"], r"batch_size\.t2i: input should be greater than or equal to 1, got -8"),
    (["seed=-1"], "seed: input should be greater than or equal to 0, got -1"),
    (["on_bad_data=ignore"], "on_bad_data: input should be 'skip' or 'stop', got 'ignore'"),
    (["bogus=1"], r"bogus: unknown field \(known: batch_size, .*"),
    (["transformer.bogus=1"], r"transformer\.bogus: unknown field \(known: caption_dropout, "),
    (["model.llm.layers=2"], r"model\.llm\.layers: unknown field"),
    (["vq.bogus=1"], r"vq\.bogus: unknown field"),
    (["tokenizer.vocab_size=x"], r"tokenizer\.vocab_size: input should be a valid integer, got 'x'$"),
    (["mixed_precision=fp8"], "mixed_precision: input should be 'no', 'bf16' or 'fp16', got 'fp8'"),
    (["transformer.mmu_turns=some"], r"transformer\.mmu_turns: input should be 'all' or 'one', got 'some'"),
    (["transformer.generation.steps=0"], r"transformer\.generation: steps must be an integer >= 1, got 0"),
    (["task=tokenizer"], "data: the image tokenizer trains on one source, got 4"),
])
def test_bad_configs_are_refused_with_the_field_named(override, message):
    with pytest.raises(ValueError, match=message):
        build_config(train_preset("tiny"), None, override)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="world-stage1"):
        train_preset("nope")


def test_learning_rate_warms_up_then_follows_a_cosine():
    cfg = TrainConfig(data={"lm": {}}, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1) and lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(60, cfg) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(110, cfg) == pytest.approx(0.1)


def codes(n=64, seed=0):
    return torch.randint(0, TINY.codebook_size, (n,), generator=torch.Generator().manual_seed(seed))


def test_t2i_row_learns_exactly_the_masked_image_positions():
    c = codes()
    row = t2i_row(c, [5, 6, 7], LAYOUT, TINY.max_text_length, sample_generator(0, "t2i", 3), 0.0, 0.0)
    ids, labels = torch.tensor(row.ids), torch.tensor(row.labels)
    start = TINY.max_text_length + 2  # first image position
    assert ids[start - 1] == LAYOUT.soi_id and ids[-1] == LAYOUT.eoi_id and len(ids) == start + 64 + 1
    masked = ids == LAYOUT.mask_id
    assert masked.sum() == max(1, round(64 * row.mask_ratio))
    assert torch.equal(labels[masked], LAYOUT.image_ids(c)[masked[start:-1]])
    assert (labels[~masked] == IGNORE).all()
    # same (seed, flow, position): same row; another position: another mask
    again = t2i_row(c, [5, 6, 7], LAYOUT, TINY.max_text_length, sample_generator(0, "t2i", 3), 0.0, 0.0)
    other = t2i_row(c, [5, 6, 7], LAYOUT, TINY.max_text_length, sample_generator(0, "t2i", 4), 0.0, 0.0)
    assert again == row and other.ids != row.ids


def test_masking_rate_follows_the_cosine_schedule_and_its_floor():
    ratios = [t2i_row(codes(), [], LAYOUT, TINY.max_text_length, sample_generator(1, "t2i", i), 0.0, 0.0).mask_ratio
              for i in range(400)]
    # r = cos(pi/2 t), t ~ U(0, 1): E[r] = 2 / pi
    assert sum(ratios) / len(ratios) == pytest.approx(2 / math.pi, abs=0.04)
    floored = t2i_row(codes(), [], LAYOUT, TINY.max_text_length, sample_generator(1, "t2i", 0), 0.9, 0.0)
    assert floored.mask_ratio >= 0.9


def test_caption_dropout_gives_the_empty_prompt():
    rows = [t2i_row(codes(), [5, 6, 7], LAYOUT, TINY.max_text_length, sample_generator(2, "t2i", i), 0.0, 0.5)
            for i in range(100)]
    dropped = [r for r in rows if 5 not in r.ids[: TINY.max_text_length + 1]]
    assert 30 < len(dropped) < 70
    empty_prompt = [LAYOUT.t2i_id, LAYOUT.sot_id, LAYOUT.eot_id]
    assert dropped[0].ids[TINY.max_text_length - 2 : TINY.max_text_length + 1] == empty_prompt


def test_lm_row_predicts_every_next_token():
    row = lm_row([5, 6, 7], LAYOUT, 16)
    assert row.ids == [LAYOUT.sot_id, 5, 6, 7, LAYOUT.eot_id]
    assert row.labels == [5, 6, 7, LAYOUT.eot_id, IGNORE]


def test_a_plan_sample_is_a_language_modelling_row_and_nothing_else():
    from showo.data.stream import BadSample
    from showo.training.feeder import RowBuilder
    from showo.world import WorldDataset

    class Letters:  # a stand-in text tokenizer: one id per character
        def encode(self, text):
            return [ord(c) % 50 + 10 for c in text]

    sample = {**WorldDataset().plan(0), "source": "world:train:plan:0"}
    cfg = build_config(train_preset("tiny"), None, [])
    builder = RowBuilder(cfg, ShowoProcessor(Letters(), dataclasses.replace(TINY, max_text_length=16)))
    row = builder.row("lm", sample, 0)
    expected = lm_row(Letters().encode(sample["text"]), LAYOUT, cfg.transformer.max_seq_length)
    assert (row.ids, row.labels) == (expected.ids, expected.labels)
    with pytest.raises(BadSample, match=r"world:train:plan:0.*cannot feed the mmu flow"):
        builder.row("mmu", sample, 0)


def test_mmu_row_learns_only_the_answer_and_its_end():
    c = codes()
    row = mmu_row(c, [([5, 6], [7, 8])], LAYOUT, 200)
    prompt_len = 1 + 1 + 64 + 1 + 1 + 2
    assert row.ids[prompt_len:] == [7, 8, LAYOUT.eot_id]
    assert [lab for lab in row.labels if lab != IGNORE] == [7, 8, LAYOUT.eot_id]
    assert row.labels[prompt_len - 1] == 7
    with pytest.raises(SampleTooLong, match="budget 50"):
        mmu_row(c, [([5, 6], [7, 8])], LAYOUT, 50)
    with pytest.raises(ValueError, match="at least one"):
        mmu_row(c, [], LAYOUT, 200)


def test_mmu_row_learns_every_answer_of_a_conversation_that_fits():
    c = codes()
    turns = [([5, 6], [7]), ([9], [10, 11]), ([12, 13], [14])]
    row = mmu_row(c, turns, LAYOUT, 200)
    prompt_len = 1 + 1 + 64 + 1 + 1 + 2
    eot = LAYOUT.eot_id
    assert row.ids[prompt_len:] == [7, eot, 9, 10, 11, eot, 12, 13, 14, eot]
    learned = {i: lab for i, lab in enumerate(row.labels) if lab != IGNORE}
    # each answer token and <eot> is predicted from the position before it; questions are not learned
    assert learned == {prompt_len - 1: 7, prompt_len: eot, prompt_len + 2: 10, prompt_len + 3: 11,
                       prompt_len + 4: eot, prompt_len + 7: 14, prompt_len + 8: eot}
    # a budget that holds two turns drops the third, whole
    cut = mmu_row(c, turns, LAYOUT, prompt_len + 6)
    assert cut.ids == row.ids[: prompt_len + 6] and len(cut.labels) == len(cut.ids)


def test_the_mmu_flow_learns_every_turn_or_one_drawn_turn():
    from conftest import CORPUS

    from showo import TextTokenizer
    from showo.training.feeder import RowBuilder

    tokenizer = TextTokenizer.train_bpe(CORPUS * 5, vocab_size=320)
    sample = {"kind": "mmu", "codes": codes(), "turns": [("what colour?", "red"), ("how many?", "two"),
                                                          ("where is it?", "top left")]}
    for setting, answers in (("all", 3), ("one", 1)):
        cfg = build_config(train_preset("tiny"), None, [f"transformer.mmu_turns={setting}"])
        row = RowBuilder(cfg, ShowoProcessor(tokenizer, TINY)).row("mmu", sample, 0)
        text = tokenizer.decode([i for i in row.ids if 0 < i < LAYOUT.text_vocab_size])
        learned = tokenizer.decode([i for i in row.labels if 0 < i < LAYOUT.text_vocab_size])
        assert text.count("ASSISTANT:") == answers and text.count("?") == answers
        if setting == "all":
            assert sorted(learned.split()) == ["left", "red", "top", "two"]
        else:
            assert learned.strip() in ("red", "two", "top left")


def test_mixed_row_ends_after_the_image_it_learns_to_generate():
    a, b = codes(seed=1), codes(seed=2)
    seen = set()
    for position in range(40):
        row = mixed_row([[5], a, [6], b], LAYOUT, 400, sample_generator(0, "mixed", position), 0.0)
        ids = row.ids
        assert ids[:3] == [LAYOUT.lvg_id, LAYOUT.sot_id, 5] and row.labels[1] == 5 and row.labels[2] == LAYOUT.soi_id
        n_masked = ids.count(LAYOUT.mask_id)
        if ids[-1] == LAYOUT.eot_id:  # no image masked: every text token learned, the end too
            assert n_masked == 0 and row.labels[-2] == LAYOUT.eot_id
            seen.add("none")
        else:
            assert ids[-1] == LAYOUT.eoi_id and n_masked >= 1
            assert LAYOUT.mask_id in ids[-65:-1]  # only the last image is masked
            seen.add(len(ids))
    assert len(seen) == 3  # first image, second image, or none


def test_collate_right_pads_with_ignored_labels():
    ids, labels = collate([lm_row([5], LAYOUT, 8), lm_row([5, 6, 7], LAYOUT, 8)], LAYOUT.pad_id)
    assert ids.shape == (2, 5) and ids[0, 3:].tolist() == [LAYOUT.pad_id] * 2
    assert (labels[0, 3:] == IGNORE).all()


def test_rows_of_very_different_lengths_are_cut_into_two_batches_with_the_same_loss():
    torch.manual_seed(0)
    model = ShowoModel(TINY)
    rows = [lm_row(list(range(5, 5 + n)), LAYOUT, 64) for n in (30, 3, 28, 4, 2, 31)]
    short, long = collate_by_length(rows, LAYOUT.pad_id)
    assert short[0].shape == (3, 6) and long[0].shape == (3, 33)  # 117 padded tokens instead of 198
    whole = LossHead(model)(*collate(rows, LAYOUT.pad_id))
    torch.testing.assert_close(LossHead(model)(*short) + LossHead(model)(*long), whole, rtol=1e-5, atol=1e-4)
    assert [len(b[0]) for b in collate_by_length(rows[:1], LAYOUT.pad_id)] == [1]


def test_loss_head_equals_full_logits_cross_entropy():
    torch.manual_seed(0)
    model = ShowoModel(TINY)
    rows = [t2i_row(codes(seed=i), [5, 6], LAYOUT, TINY.max_text_length, sample_generator(0, "t2i", i), 0.0, 0.0)
            for i in range(3)]
    ids, labels = collate(rows, LAYOUT.pad_id)
    ours = LossHead(model)(ids, labels)
    logits = model(ids, attention_mask=omni_attention_mask(ids, LAYOUT))
    naive = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE, reduction="sum")
    torch.testing.assert_close(ours, naive, rtol=1e-5, atol=1e-4)


def test_half_written_checkpoints_are_never_resumed(tmp_path):
    for step in (2, 4):
        staging = staging_dir(tmp_path, step)
        staging.mkdir(parents=True)
        (staging / "trainer_state.json").write_text("{}")
        publish(staging, keep_last=5)
    staging_dir(tmp_path, 6).mkdir()  # killed while writing
    (tmp_path / "checkpoints" / "step-00000008").mkdir()  # no trainer_state.json
    assert latest_checkpoint(tmp_path).name == "step-00000004"
    staging = staging_dir(tmp_path, 10)
    staging.mkdir()
    (staging / "trainer_state.json").write_text("{}")
    publish(staging, keep_last=2)
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step-00000004", "step-00000010"]


def test_fsdp_asked_for_where_accelerate_cannot_shard_is_said(monkeypatch, capsys):
    """On a CPU accelerate ignores FSDP and runs DDP (or one process); the run says so rather than
    letting a user believe the model is sharded."""
    from showo.training.config import TrainConfig
    from showo.training.trainer import make_accelerator

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    accelerator = make_accelerator(TrainConfig(data={"t2i": {"type": "world", "kind": "t2i"}}))
    assert accelerator.distributed_type.value != "FSDP"
    err = capsys.readouterr().err
    assert "FSDP was asked for (ACCELERATE_USE_FSDP), but accelerate runs this job as" in err
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "false")
    make_accelerator(TrainConfig(data={"t2i": {"type": "world", "kind": "t2i"}}))
    assert "FSDP" not in capsys.readouterr().err
