"""Data sources: contents, deterministic order, sharding, exact resume, bad data, pre-encoding."""

import argparse
import json
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from data_files import canon, png_bytes, random_image, save_png, take, write_lines, write_tar

from showo import MagvitV2, magvit_preset, preprocess_images
from showo.cli.train import register_pre_encode
from showo.data import SOURCE_TYPES, BadSample, BadSampleWarning, Mixture, StreamingSource, build_source, pre_encode
from showo.data.llava import iter_json_array
from showo.data.text import import_pyarrow

# ---- helpers ---------------------------------------------------------------------------------


# ---- tiny datasets: (spec, {source: expected sample}) ----------------------------------------


def webdataset_data(root: Path):
    expected = {}
    for s in range(3):
        name = f"shard-{s}.tar.gz" if s == 2 else f"shard-{s}.tar"  # one compressed: mode "r|*"
        members = []
        for i in range(3):
            key, image, caption = f"{3 * s + i:06d}", random_image(3 * s + i), f"caption {s} {i}"
            members.append((f"{key}.png", png_bytes(image)))
            if i % 2:
                members.append((f"{key}.json", json.dumps({"caption": caption, "url": "x"}).encode()))
            else:
                members.append((f"{key}.txt", (caption + "\n").encode()))
            expected[f"{root / 'shards' / name}:{key}"] = {"kind": "t2i", "caption": caption, "image": image}
        write_tar(root / "shards" / name, members, "w:gz" if s == 2 else "w")
    return {"type": "webdataset", "path": str(root / "shards" / "*.tar*")}, expected


def image_folder_data(root: Path):
    expected = {}
    for label, (folder, count) in enumerate([("cat", 2), ("golden_retriever", 3), ("zebra_fish", 2)]):
        for i in range(count):
            image = random_image(10 * label + i)
            path = save_png(image, root / "classes" / folder / f"{i}.png")
            expected[str(path)] = {
                "kind": "class",
                "label": label,
                "class_name": folder.replace("_", " "),
                "image": image,
            }
    (root / "classes" / "cat" / "notes.txt").write_text("not an image")
    return {"type": "image_folder", "root": str(root / "classes")}, expected


def text_data(root: Path):
    pa, pq = import_pyarrow()
    expected = {}
    for name in ("a", "b"):
        texts = [f"document {name}{i} with some words" for i in range(4)]
        rows = [{"text": t, "meta": i} for i, t in enumerate(texts)]
        path = write_lines(root / "text" / f"{name}.jsonl", rows[:2] + ["   "] + rows[2:])  # a blank line
        for line, t in zip((1, 2, 4, 5), texts):
            expected[f"{path}:line {line}"] = {"kind": "lm", "text": t}
    contents = [f"parquet row {i}" for i in range(5)]
    table = pa.table({"id": list(range(5)), "content": contents})
    pq.write_table(table, root / "text" / "c.parquet", row_group_size=2)
    for i, t in enumerate(contents):
        expected[f"{root / 'text' / 'c.parquet'}:row {i}"] = {"kind": "lm", "text": t}
    return {"type": "text", "path": str(root / "text" / "*")}, expected


LLAVA_TURNS = [
    [("<image>\nWhat is this?", "A square."), ("And its colour?", "Red.")],
    [("Describe it.\n<image>", "Noise.")],
]


def llava_data(root: Path):
    expected, records = {}, []
    for i in range(6):
        image = random_image(100 + i)
        save_png(image, root / "llava_images" / "sub" / f"{i}.png")
        turns = LLAVA_TURNS[i % 2]
        conversations = [c for q, a in turns for c in ({"from": "human", "value": q}, {"from": "gpt", "value": a})]
        records.append({"id": f"id{i}", "image": f"sub/{i}.png", "conversations": conversations})
        clean = [(q.replace("<image>", "").strip(), a) for q, a in turns]
        expected[f"{root / 'llava.json'}:[{i}]"] = {"kind": "mmu", "image": image, "turns": clean}
    (root / "llava.json").write_text(json.dumps(records, indent=1))
    spec = {"type": "llava", "path": str(root / "llava.json"), "image_root": str(root / "llava_images")}
    return spec, expected


def interleaved_data(root: Path):
    expected, rows = {}, []
    for i in range(6):
        a, b = random_image(200 + 2 * i), random_image(201 + 2 * i)
        save_png(a, root / "inter_images" / f"{i}a.png")
        save_png(b, root / "inter_images" / f"{i}b.png")
        rows.append(
            {"segments": [{"text": f"first {i}"}, {"image": f"{i}a.png"}, {"text": "then"}, {"image": f"{i}b.png"}]}
        )
        expected[f"{root / 'inter.jsonl'}:line {i + 1}"] = {
            "kind": "interleaved",
            "segments": [f"first {i}", a, "then", b],
        }
    write_lines(root / "inter.jsonl", rows)
    return {
        "type": "interleaved",
        "path": str(root / "inter.jsonl"),
        "image_root": str(root / "inter_images"),
    }, expected


SIZE = 32  # tiny MAGVIT-v2 downsamples by 8: 16 codes per image, cheap on a CPU


def tiny_vq() -> MagvitV2:
    torch.manual_seed(0)
    return MagvitV2(magvit_preset("tiny")).eval()


def token_shards_data(root: Path):
    """The webdataset, pre-encoded in batches of 4 (file order); expected codes encoded alike."""
    spec, images_expected = webdataset_data(root)
    vq = tiny_vq()
    pre_encode(
        build_source({**spec, "shuffle": False}), vq, root / "tokens", image_size=SIZE, batch_size=4, shard_size=4
    )
    ordered = list(build_source({**spec, "shuffle": False}).epoch_records(0))
    images = [images_expected[r.where]["image"] for r in ordered]
    codes = torch.cat([vq.encode(preprocess_images(images[i : i + 4], SIZE)) for i in range(0, len(images), 4)])
    expected = {}
    for record, row in zip(ordered, codes):
        sample = images_expected[record.where]
        expected[record.where] = {"kind": "t2i", "caption": sample["caption"], "codes": row.long()}
    return {"type": "token_shards", "path": str(root / "tokens")}, expected


DATASETS = {
    "webdataset": webdataset_data,
    "image_folder": image_folder_data,
    "text": text_data,
    "llava": llava_data,
    "interleaved": interleaved_data,
}


@pytest.fixture(scope="session")
def encoded(tmp_path_factory):
    """Token shards are read-only in the tests, so they are encoded once."""
    return token_shards_data(tmp_path_factory.mktemp("encoded"))


@pytest.fixture(params=sorted(DATASETS) + ["token_shards"])
def dataset(request, tmp_path):
    if request.param == "token_shards":
        return request.getfixturevalue("encoded")
    return DATASETS[request.param](tmp_path)


# ---- the contract, for every source -----------------------------------------------------------


def test_one_epoch_yields_every_record_once_as_written(dataset):
    spec, expected = dataset
    source = build_source(spec)
    samples = list(source.iter_epoch())
    assert len(samples) == len(expected)
    got = {s["source"]: canon({k: v for k, v in s.items() if k != "source"}) for s in samples}
    assert got == {k: canon(v) for k, v in expected.items()}
    assert source.skipped == 0 and source.state_dict()["epoch"] == 1


def test_order_is_a_function_of_seed_and_epoch(dataset):
    spec, expected = dataset
    n = len(expected)
    first = take(build_source(spec, seed=3), 2 * n)
    assert take(build_source(spec, seed=3), 2 * n) == first
    assert take(build_source(spec, seed=4), n) != first[:n]
    assert first[:n] != first[n:]  # each epoch reshuffles
    assert sorted(map(repr, first[:n])) == sorted(map(repr, first[n:]))


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_interleave_to_the_single_process_stream(dataset, world_size):
    spec, expected = dataset
    k = len(expected) + 1  # long enough to cross epoch boundaries on every rank
    single = take(build_source(spec, seed=1), k * world_size)
    ranks = [take(build_source(spec, seed=1, rank=r, world_size=world_size), k) for r in range(world_size)]
    assert [ranks[i % world_size][i // world_size] for i in range(k * world_size)] == single


@pytest.mark.parametrize("rank, world_size", [(0, 1), (1, 2)])
def test_resume_continues_exactly(dataset, rank, world_size):
    spec, _ = dataset
    uninterrupted = take(build_source(spec, seed=2, rank=rank, world_size=world_size), 12)
    source = build_source(spec, seed=2, rank=rank, world_size=world_size)
    stream = iter(source)
    assert [canon(next(stream)) for _ in range(7)] == uninterrupted[:7]
    state = json.loads(json.dumps(source.state_dict()))  # must survive JSON
    resumed = build_source(spec, seed=2, rank=rank, world_size=world_size)
    resumed.load_state_dict(state)
    assert take(resumed, 5) == uninterrupted[7:12]


def test_state_of_another_source_or_sharding_is_refused(tmp_path):
    spec, _ = text_data(tmp_path)
    state = build_source(spec, rank=0, world_size=2).state_dict()
    with pytest.raises(ValueError, match="rank"):
        build_source(spec, rank=1, world_size=2).load_state_dict(state)
    with pytest.raises(ValueError, match="image_folder"):
        build_source(image_folder_data(tmp_path)[0]).load_state_dict(state)


def test_small_shuffle_buffer_still_permutes_and_resumes(tmp_path):
    spec, expected = webdataset_data(tmp_path)
    spec = {**spec, "shuffle_buffer": 2}
    epoch = [s["source"] for s in build_source(spec).iter_epoch()]
    assert sorted(epoch) == sorted(expected) and epoch != sorted(expected)
    full = take(build_source(spec), 12)
    source = build_source(spec)
    take(source, 7)
    resumed = build_source(spec)
    resumed.load_state_dict(source.state_dict())
    assert take(resumed, 5) == full[7:]


def test_unshuffled_order_is_file_order(tmp_path):
    spec, expected = image_folder_data(tmp_path)
    assert [s["source"] for s in build_source({**spec, "shuffle": False}).iter_epoch()] == list(expected)


def test_parquet_column_and_missing_pyarrow(tmp_path, monkeypatch):
    pa, pq = import_pyarrow()
    pq.write_table(pa.table({"text": ["x", "y"], "body": ["first body", "second body"]}), tmp_path / "t.parquet")
    by_default = [
        s["text"]
        for s in build_source({"type": "parquet", "path": str(tmp_path / "t.parquet"), "shuffle": False}).iter_epoch()
    ]
    chosen = build_source({"type": "parquet", "path": str(tmp_path / "t.parquet"), "field": "body", "shuffle": False})
    assert by_default == ["x", "y"]
    assert [s["text"] for s in chosen.iter_epoch()] == ["first body", "second body"]
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match="pip install"):
        list(build_source({"type": "parquet", "path": str(tmp_path / "t.parquet")}).iter_epoch())


def test_json_list_is_parsed_one_element_at_a_time(tmp_path):
    elements = [{"a": 'x,]}[{"', "n": [1, 2.5, None]}, 12345, "s", [], {"deep": {"er": [True]}}]
    path = tmp_path / "list.json"
    path.write_text(" [\n" + " ,\n ".join(json.dumps(e) for e in elements) + "\n] \n")
    for chunk in (1, 3, 7, 1 << 20):
        assert [json.loads(e) for _, e, _ in iter_json_array(path, chunk_bytes=chunk)] == elements
    path.write_text('[{"a": 1}, {"b": ')
    with pytest.raises(ValueError, match="element 1"):
        list(iter_json_array(path, chunk_bytes=4))


# ---- bad data: (spec, records in file order, index of the bad one, words its message must hold)


def bad_webdataset(kind):
    def build(root: Path):
        members = []
        for i in range(4):
            key = f"{i:06d}"
            image, caption = png_bytes(random_image(i)), f"caption {i}\n".encode()
            if i == 2 and kind == "corrupt image":
                image = b"not a png at all"
            if i == 2 and kind == "empty caption":
                caption = b"  \n"
            members.append((f"{key}.png", image))
            if i == 2 and kind == "invalid JSON":
                members.append((f"{key}.json", b"{oops"))
            elif not (i == 2 and kind == "no caption member"):
                members.append((f"{key}.txt", caption))
        write_tar(root / "bad.tar", members)
        member = {"corrupt image": "000002.png", "empty caption": "000002.txt", "invalid JSON": "000002.json"}
        words = [str(root / "bad.tar"), member.get(kind, "000002"), kind]
        return {"type": "webdataset", "path": str(root / "bad.tar")}, 4, 2, words

    return build


def bad_image_folder(kind):
    def build(root: Path):
        for i in range(5):
            save_png(random_image(i), root / "c" / ("a" if i < 2 else "b") / f"{i}.png")
        bad = root / "c" / "b" / "3.png"
        bad.unlink()
        if kind == "corrupt image":
            bad.write_bytes(b"\x89PNG broken")
        else:
            bad.symlink_to(root / "gone.png")  # listed as an image, but the file is missing
        return {"type": "image_folder", "root": str(root / "c")}, 5, 3, [str(bad), kind]

    return build


def bad_text(kind):
    def build(root: Path):
        rows = [{"text": f"t{i}"} for i in range(5)]
        rows[2] = {"empty text": {"text": " "}, "invalid JSON": '{"text": "unclosed', "no 'text' field": {"body": "x"}}[
            kind
        ]
        path = write_lines(root / "t.jsonl", rows)
        return {"type": "jsonl", "path": str(path)}, 5, 2, [f"{path}:line 3", kind]

    return build


def bad_parquet(root: Path):
    pa, pq = import_pyarrow()
    pq.write_table(pa.table({"content": ["a", "b", "", "d"]}), root / "p.parquet", row_group_size=3)
    return {"type": "parquet", "path": str(root / "p.parquet")}, 4, 2, [f"{root / 'p.parquet'}:row 2", "empty text"]


def bad_llava(kind):
    def build(root: Path):
        records = []
        for i in range(5):
            save_png(random_image(i), root / "img" / f"{i}.png")
            conversations = [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": f"a{i}"}]
            records.append({"id": f"r{i}", "image": f"{i}.png", "conversations": conversations})
        if kind == "missing image file":
            records[2]["image"] = "nowhere.png"
        elif kind == "empty answer":
            records[2]["conversations"][1]["value"] = "   "
        elif kind == "corrupt image":
            (root / "img" / "2.png").write_bytes(b"garbage")
        else:
            records[2]["conversations"] = records[2]["conversations"][:1]
        (root / "l.json").write_text(json.dumps(records))
        spec = {"type": "llava", "path": str(root / "l.json"), "image_root": str(root / "img")}
        return spec, 5, 2, [f"{root / 'l.json'}:[2]", "'r2'", kind]

    return build


def bad_interleaved(kind):
    def build(root: Path):
        rows = []
        for i in range(4):
            save_png(random_image(i), root / "img" / f"{i}.png")
            rows.append({"segments": [{"text": f"t{i}"}, {"image": f"{i}.png"}]})
        rows[1]["segments"][1] = {
            "missing image file": {"image": "gone.png"},
            "empty text segment": {"text": ""},
            "malformed": {"video": "v.mp4"},
        }[kind]
        path = write_lines(root / "i.jsonl", rows)
        spec = {"type": "interleaved", "path": str(path), "image_root": str(root / "img")}
        return spec, 4, 1, [f"{path}:line 2 segment 1", kind]

    return build


def bad_token_shards(root: Path):
    spec, _ = webdataset_data(root)
    source = build_source({**spec, "shuffle": False})
    pre_encode(source, tiny_vq(), root / "tok", image_size=SIZE, batch_size=5, shard_size=5, max_samples=5)
    lines = (root / "tok" / "shard-00000.jsonl").read_text().splitlines()
    lines[3] = lines[3].replace('"codes_row": 3', '"codes_row": 99')
    (root / "tok" / "shard-00000.jsonl").write_text("\n".join(lines) + "\n")
    return (
        {"type": "token_shards", "path": str(root / "tok")},
        5,
        3,
        [f"{root / 'tok' / 'shard-00000.jsonl'}:line 4", "codes_row 99"],
    )


BAD_CASES = {
    **{
        f"webdataset {k}": bad_webdataset(k)
        for k in ("corrupt image", "empty caption", "invalid JSON", "no caption member")
    },
    **{f"image_folder {k}": bad_image_folder(k) for k in ("corrupt image", "missing image file")},
    **{f"text {k}": bad_text(k) for k in ("empty text", "invalid JSON", "no 'text' field")},
    "parquet empty text": bad_parquet,
    **{f"llava {k}": bad_llava(k) for k in ("missing image file", "empty answer", "corrupt image", "malformed")},
    **{f"interleaved {k}": bad_interleaved(k) for k in ("missing image file", "empty text segment", "malformed")},
    "token_shards bad row": bad_token_shards,
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_record_is_skipped_with_a_warning_and_counted(case, tmp_path):
    spec, n, bad, words = BAD_CASES[case](tmp_path)
    spec = {**spec, "shuffle": False}
    with pytest.warns(BadSampleWarning) as caught:
        samples = list(build_source(spec).iter_epoch())
    messages = [str(w.message) for w in caught if issubclass(w.category, BadSampleWarning)]
    assert len(messages) == 1 and all(word in messages[0] for word in words), (messages, words)
    assert len(samples) == n - 1
    with pytest.warns(BadSampleWarning):
        uninterrupted = take(build_source(spec), bad + 3)
    source = build_source(spec)
    with pytest.warns(BadSampleWarning):
        interrupted = take(source, bad + 1)
    assert interrupted == uninterrupted[: bad + 1]
    # The bad record still takes its place: bad + 1 samples have used bad + 2 records.
    assert source.state_dict()["position"] == bad + 2 and source.skipped == 1
    resumed = build_source(spec)
    resumed.load_state_dict(source.state_dict())
    assert resumed.skipped == 1
    assert take(resumed, 2) == uninterrupted[bad + 1 :]


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_record_stops_with_file_and_record_named(case, tmp_path):
    spec, _, bad, words = BAD_CASES[case](tmp_path)
    stream = iter(build_source({**spec, "shuffle": False}, on_bad_data="stop"))
    assert len([next(stream) for _ in range(bad)]) == bad  # the good records before it come through
    with pytest.raises(BadSample) as error:
        next(stream)
    assert all(word in str(error.value) for word in words), (str(error.value), words)


def test_truncated_shard_keeps_the_records_before_the_break(tmp_path):
    spec, expected = webdataset_data(tmp_path)
    shard = tmp_path / "shards" / "shard-0.tar"
    with tarfile.open(shard) as tar:
        cut = tar.getmember("000001.png").offset_data + 10
    shard.write_bytes(shard.read_bytes()[:cut])  # cuts into the second record's image
    spec = {**spec, "shuffle": False}
    with pytest.warns(BadSampleWarning, match="unreadable tar shard"):
        sources = [s["source"] for s in build_source(spec).iter_epoch()]
    assert sources == [k for k in expected if "shard-0" not in k or k.endswith("000000")]
    with pytest.raises(BadSample, match=f"{shard}:000001"):
        list(build_source(spec, on_bad_data="stop").iter_epoch())


def test_all_bad_records_raise_instead_of_looping_forever(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [{"text": ""}, {"text": " "}])
    with pytest.warns(BadSampleWarning), pytest.raises(ValueError, match="no usable record"):
        next(iter(build_source({"type": "jsonl", "path": str(path)})))


# ---- build_source and mixtures ------------------------------------------------------------------


def test_build_source_reports_unknown_types_and_fields(tmp_path):
    spec, _ = text_data(tmp_path)
    with pytest.raises(ValueError, match=r"unknown source type 'nope'.*webdataset"):
        build_source({"type": "nope"})
    with pytest.raises(ValueError, match="unknown fields \\['colour'\\]"):
        build_source({**spec, "colour": "red"})
    with pytest.raises(ValueError, match="build_source arguments"):
        build_source({**spec, "rank": 1})
    with pytest.raises(FileNotFoundError, match="nothing matches"):
        build_source({"type": "webdataset", "path": str(tmp_path / "none-*.tar")})


def test_registry_takes_new_types(monkeypatch):
    class Counting(StreamingSource):
        type_name = "world"

        def __init__(self, n: int, **options):
            super().__init__(**options)
            self.n = n

        def files(self):
            return list(range(self.n))

        def read(self, i):
            from showo.data.stream import Record

            yield Record(f"world:{i}", i)

        def decode(self, record):
            return {"kind": "lm", "text": f"scene {record.data}", "source": record.where}

    monkeypatch.setitem(SOURCE_TYPES, "world", Counting)
    ranks = [take(build_source({"type": "world", "n": 4}, rank=r, world_size=2), 2) for r in range(2)]
    assert sorted(s["text"] for s in ranks[0] + ranks[1]) == ["scene 0", "scene 1", "scene 2", "scene 3"]


def test_mixture_draws_by_weight_and_resumes_exactly(tmp_path):
    text_spec, _ = text_data(tmp_path)
    folder_spec, _ = image_folder_data(tmp_path)
    spec = {"type": "mixture", "sources": [{**text_spec, "weight": 3}, {**folder_spec, "weight": 1}]}
    full = take(build_source(spec, seed=5), 200)
    kinds = [s["kind"] for s in full]
    assert 120 < kinds.count("lm") < 180 and kinds.count("class") == 200 - kinds.count("lm")
    assert take(build_source(spec, seed=5), 200) == full
    source = build_source(spec, seed=5)
    assert isinstance(source, Mixture)
    take(source, 37)
    resumed = build_source(spec, seed=5)
    resumed.load_state_dict(json.loads(json.dumps(source.state_dict())))
    assert take(resumed, 20) == full[37:57]


# ---- pre-encoding ------------------------------------------------------------------------------


def test_pre_encode_round_trip(encoded):
    spec, expected = encoded  # the webdataset, pre-encoded in shards of 4
    folder = Path(spec["path"])
    index = json.loads((folder / "index.json").read_text())
    assert index["count"] == index["images"] == 9 and index["shape"] == [9, 16]
    assert (index["image_size"], index["codebook_size"], index["tokens_per_image"]) == (SIZE, 2**10, 16)
    assert [s["count"] for s in index["shards"]] == [4, 4, 1]
    written = sorted(p.name for p in folder.iterdir())
    assert written == ["index.json"] + [f"shard-0000{i}.{e}" for i in range(3) for e in ("jsonl", "safetensors")]
    samples = list(build_source(spec).iter_epoch())
    assert {s["source"]: canon({k: v for k, v in s.items() if k != "source"}) for s in samples} == canon(expected)
    assert all(s["codes"].dtype == torch.long and s["codes"].shape == (16,) for s in samples)


@pytest.mark.parametrize("name", ["llava", "interleaved"])
def test_pre_encode_keeps_turns_and_segment_order(name, tmp_path):
    spec, expected = DATASETS[name](tmp_path)
    vq = tiny_vq()
    index = pre_encode(
        build_source(spec), vq, tmp_path / "tok", image_size=SIZE, batch_size=1, shard_size=2, max_samples=3
    )
    assert index["count"] == 3 and index["images"] == (3 if name == "llava" else 6)
    encode = lambda image: vq.encode(preprocess_images([image], SIZE))[0].long()
    samples = list(build_source({"type": "token_shards", "path": str(tmp_path / "tok")}).iter_epoch())
    assert len(samples) == 3
    for sample in samples:
        want = dict(expected[sample["source"]])
        if "image" in want:
            want["codes"] = encode(want.pop("image"))
        if "segments" in want:
            want["segments"] = [s if isinstance(s, str) else encode(s) for s in want["segments"]]
        assert canon({k: v for k, v in sample.items() if k != "source"}) == canon(want)


def test_pre_encode_command_line(tmp_path):
    spec, _ = image_folder_data(tmp_path)
    tiny_vq().save_pretrained(tmp_path / "vq")
    parser = argparse.ArgumentParser()
    register_pre_encode(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "pre-encode",
            "--source-type",
            "image_folder",
            "--path",
            spec["root"],
            "--vq",
            str(tmp_path / "vq"),
            "--output",
            str(tmp_path / "out"),
            "--image-size",
            str(SIZE),
            "--max-samples",
            "5",
            "--shard-size",
            "2",
        ]
    )
    args.run(args)
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["count"] == 5 and [s["count"] for s in index["shards"]] == [2, 2, 1]
    labels = [
        s["label"]
        for s in build_source({"type": "token_shards", "path": str(tmp_path / "out"), "shuffle": False}).iter_epoch()
    ]
    assert labels == [0, 0, 1, 1, 1]  # --path order is file order: the CLI does not shuffle
