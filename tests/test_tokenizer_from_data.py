"""``tokenizer = {"train_on": "data"}``: the text BPE trained on the run's own texts before training,
stored with the run and reused, never retrained, on resume; the config checks of the tokenizer spec."""

import json

import pytest
from data_files import png_bytes, random_image, save_png, write_lines, write_tar

from showo.cli.main import main
from showo.data.world_source import world_texts
from showo.generation.prompting import CAPTION_QUESTION, understanding_text
from showo.model.text_tokenizer import TextTokenizer
from showo.training.components import TOKENIZER_CORPORA, data_texts, make_text_tokenizer
from showo.training.config import TextTokenizerTraining, TrainConfig, build_config
from showo.training.metrics import read_metrics
from showo.training.presets import train_preset

# Words the built-in world never uses: its tokenizer spells them out letter by letter.
WORDS = ("handwritten", "digit", "seven", "zebra", "quokka")
CAPTIONS = ["a handwritten digit seven", "a zebra", "a quokka", "a zebra and a quokka",
            "a handwritten digit seven and a zebra", "a quokka and a handwritten digit seven"]
TEXTS = ["the zebra and the quokka", "a handwritten digit seven", "the quokka and a handwritten digit seven",
         "a zebra and a zebra", "the handwritten digit seven and the quokka"]


def pictures(root, captions=CAPTIONS):
    """A webdataset shard of small pictures with ``captions``: ``{"type": "webdataset", ...}``."""
    members = []
    for i, caption in enumerate(captions):
        members += [(f"{i:06d}.png", png_bytes(random_image(i, (16, 16)))), (f"{i:06d}.txt", caption.encode())]
    return {"type": "webdataset", "path": str(write_tar(root / "pictures.tar", members))}


def texts(root, rows=TEXTS):
    return {"type": "jsonl", "path": str(write_lines(root / "texts.jsonl", [{"text": t} for t in rows]))}


def train_args(output, data, steps, *extra):
    return ["train", "--preset", "tiny", "--output", str(output), "--max-steps", str(steps), "--checkpoint-every", "1",
            f"data={json.dumps(data)}", "data.mmu=null", "data.mixed=null", "model.llm.num_layers=1",
            'batch_size={"t2i": 2, "lm": 2}', "warmup_steps=1", "transformer.sample_every=0",
            'tokenizer={"train_on": "data", "vocab_size": 300}', *extra]


def test_a_run_trains_its_tokenizer_on_its_data_and_a_resumed_run_reuses_it(tmp_path, monkeypatch):
    data = {"t2i": pictures(tmp_path), "lm": texts(tmp_path)}
    output = tmp_path / "run"
    assert main(train_args(output, data, 2)) == 0
    stored = output / "tokenizer" / "tokenizer.json"
    tokenizer = TextTokenizer.from_folder(output / "tokenizer")
    assert 257 < tokenizer.text_vocab_size <= 300  # at most vocab_size: a small corpus runs out of merges
    world = make_text_tokenizer(TextTokenizerTraining("world", vocab_size=300, samples=300), None)
    for word in WORDS:  # after a space, as inside a caption (the captions below start with "a")
        assert len(tokenizer.encode(" " + word)) <= 2, (word, tokenizer.encode(" " + word))
        assert len(world.encode(" " + word)) >= 5
    for caption in CAPTIONS:
        assert len(tokenizer.encode(caption)) <= 2 * len(caption.split())
        assert 2 * len(tokenizer.encode(caption)) <= len(world.encode(caption))
    seven = "a handwritten digit seven"  # 21 tokens in the world presets' tokenizer
    assert len(tokenizer.encode(seven)) <= 5 < 15 <= len(world.encode(seven))
    assert json.loads((output / "final" / "config.json").read_text())["text_vocab_size"] == tokenizer.text_vocab_size

    # The same command with more steps resumes: the stored tokenizer, byte for byte, never retrained.
    before = stored.read_bytes()

    def retrained(*args, **kwargs):
        raise AssertionError("a resumed run trained its text tokenizer again")

    monkeypatch.setattr(TextTokenizer, "train_bpe", retrained)
    assert main(train_args(output, data, 4, "--allow-config-change")) == 0
    assert stored.read_bytes() == before
    assert [r["step"] for r in read_metrics(output)] == [1, 2, 3, 4]


def test_the_corpus_is_every_flows_texts_as_their_rows_hold_them(tmp_path):
    """Captions, class names, conversations in the chat template, text rows and interleaved text,
    from every flow (mixtures included); a finite source is read at most once through."""
    for name in ("red_circle", "blue_square"):
        save_png(random_image(0, (8, 8)), tmp_path / "classes" / name / "0.png")
    save_png(random_image(1, (8, 8)), tmp_path / "img" / "q.png")
    (tmp_path / "llava.json").write_text(json.dumps([{"image": "q.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat animal is it?"}, {"from": "gpt", "value": "A quokka."},
        {"from": "human", "value": "Is it a zebra?"}, {"from": "gpt", "value": "No."}]}]))
    write_lines(tmp_path / "doc.jsonl", [{"segments": [{"text": "a zebra"}, {"image": "q.png"},
                                                        {"text": "then a quokka"}]}])
    data = {
        "t2i": {"type": "mixture", "sources": [pictures(tmp_path, ["a zebra", "a quokka"]),
                                               {"type": "image_folder", "root": str(tmp_path / "classes")}]},
        "lm": texts(tmp_path, ["the zebra and the quokka"]),
        "mmu": {"type": "mixture", "sources": [
            {"type": "llava", "path": str(tmp_path / "llava.json"), "image_root": str(tmp_path / "img")},
            pictures(tmp_path, ["a zebra", "a quokka"])]},
        "mixed": {"type": "interleaved", "path": str(tmp_path / "doc.jsonl"), "image_root": str(tmp_path / "img")},
    }
    config = TrainConfig.from_dict({**train_preset("tiny"), "data": data})
    corpus = list(data_texts(1000, config))
    assert {"a zebra", "a quokka", "red circle", "blue square", "the zebra and the quokka",
            understanding_text("What animal is it?") + " A quokka.", understanding_text("Is it a zebra?") + " No.",
            understanding_text(CAPTION_QUESTION) + " a zebra", understanding_text(CAPTION_QUESTION) + " a quokka",
            "then a quokka"} == set(corpus)
    assert corpus.count("the zebra and the quokka") == 1  # one pass through a finite source
    assert corpus.count("then a quokka") == 1
    assert not any(isinstance(text, bytes) or "png" in text for text in corpus)
    # ``samples`` is spread over the flows, the first ones taking what does not divide evenly (3 + 2),
    # and a flow gives no more than one pass through its data (the text file's one line)
    two = TrainConfig.from_dict({**train_preset("tiny"), "data": {"t2i": pictures(tmp_path, CAPTIONS),
                                                                   "lm": texts(tmp_path, ["a zebra and a zebra"])}})
    assert [t in CAPTIONS for t in data_texts(5, two)] == [True, True, True, False]
    assert len(list(data_texts(1, two))) == 1


def test_the_world_corpus_gives_the_tokenizer_it_always_gave():
    spec = TextTokenizerTraining("world", vocab_size=400, samples=300)
    made = make_text_tokenizer(spec, None, build_config(train_preset("tiny"), None, ["seed=7"]))
    assert made.tokenizer.to_str() == TextTokenizer.train_bpe(world_texts(300), vocab_size=400).tokenizer.to_str()


@pytest.mark.parametrize("override, message", [
    ("tokenizer.train_on=books", r"tokenizer\.train_on: unknown corpus 'books'; known: \['data', 'world'\]"),
    ("tokenizer.vocab_size=256", r"tokenizer\.vocab_size: must be at least 257 \(the 256 byte-level symbols and "
                                 r"<\|endoftext\|>, before any merge\), got 256"),
])
def test_the_tokenizer_spec_is_checked_with_its_field_named(override, message):
    with pytest.raises(ValueError, match=message):
        build_config(train_preset("tiny"), None, [override])


def test_a_tokenizer_spec_made_in_python_is_checked_too():
    with pytest.raises(ValueError, match=r"train_on: unknown corpus 'books'; known: \['data', 'world'\]"):
        TextTokenizerTraining(train_on="books")
    with pytest.raises(ValueError, match=r"vocab_size: must be at least 257 .*, got 100"):
        TextTokenizerTraining(train_on="data", vocab_size=100)
    with pytest.raises(ValueError, match=r"tokenizer\.train_on: field required"):
        TrainConfig.from_dict({**train_preset("tiny"), "tokenizer": {"vocab_size": 300}})


def test_every_known_corpus_is_a_valid_spec():
    assert set(TOKENIZER_CORPORA) == set(TextTokenizerTraining.corpora) == {"data", "world"}
    for corpus in TextTokenizerTraining.corpora:
        config = build_config(train_preset("tiny"), None, [f"tokenizer.train_on={corpus}", "tokenizer.vocab_size=257"])
        assert config.tokenizer == TextTokenizerTraining(corpus, vocab_size=257, samples=2000)
    with pytest.raises(ValueError, match="needs the training config"):
        make_text_tokenizer(TextTokenizerTraining("data"), None)
