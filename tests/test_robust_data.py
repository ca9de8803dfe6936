"""Hostile and broken data: records too deep or too large, bad token-shard indexes, paths that
lead outside the data folder. Each is a bad record (named, skipped or stopping the run) or a
refusal at load; the good records around it come through in order and resume stays exact."""

import json
import os
import re
import tracemalloc
import warnings
from pathlib import Path

import pytest
import torch
from data_files import canon, png_bytes, random_image, save_png, take, write_lines, write_tar
from PIL import Image
from safetensors.torch import save_file

from showo.data import BadSample, BadSampleWarning, build_source
from showo.data.interleaved import MAX_SEGMENTS
from showo.data.llava import iter_json_array
from showo.data.stream import MAX_IMAGE_BYTES, MAX_JSON_DEPTH, MAX_RECORD_BYTES, parse_json_object
from showo.data.text import import_pyarrow

DEEP = 100_000  # the nesting the stress pass used
BIG_LINE = 5 * MAX_RECORD_BYTES // 2  # a record 2.5 times over the limit: held whole, memory would show it

# ---- helpers ---------------------------------------------------------------------------------


def deep_json(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


def check_bad_record(spec: dict, good: list[str], bad: int, words: list[str], peak_below: int | None = None) -> list:
    """``spec``'s records in file order are ``good`` with one bad record at index ``bad``.

    Under "skip": one warning, holding every word of ``words``, and the good records in order
    (reading the epoch allocates less than ``peak_below`` bytes at its peak, when given);
    resuming from the state saved right after the bad record continues exactly; under "stop":
    the good records before it, then ``BadSample`` with the same words. Returns the samples.
    """
    spec = {**spec, "shuffle": False}
    if peak_below is not None:
        tracemalloc.start()
    try:
        with pytest.warns(BadSampleWarning) as caught:
            samples = list(build_source(spec).iter_epoch())
        if peak_below is not None:
            peak = tracemalloc.get_traced_memory()[1]
            assert peak < peak_below, f"reading the epoch allocated {peak} bytes at its peak"
    finally:
        if peak_below is not None:
            tracemalloc.stop()
    messages = [str(w.message) for w in caught if issubclass(w.category, BadSampleWarning)]
    assert len(messages) == 1 and all(word in messages[0] for word in words), (messages, words)
    assert [s["source"] for s in samples] == good

    with pytest.warns(BadSampleWarning):
        uninterrupted = take(build_source(spec), bad + 4)
    source = build_source(spec)
    with pytest.warns(BadSampleWarning):
        assert take(source, bad + 1) == uninterrupted[: bad + 1]
    state = json.loads(json.dumps(source.state_dict()))
    assert state["position"] == bad + 2 and state["skipped"] == 1  # the bad record kept its place
    resumed = build_source(spec)
    resumed.load_state_dict(state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadSampleWarning)  # the next epoch may meet the bad record again
        assert take(resumed, 3) == uninterrupted[bad + 1 :]

    stream = iter(build_source(spec, on_bad_data="stop"))
    assert [next(stream)["source"] for _ in range(bad)] == good[:bad]
    with pytest.raises(BadSample) as error:
        next(stream)
    assert all(word in str(error.value) for word in words), (str(error.value), words)
    return samples


# ---- record builders: (spec, good sources in file order, index of the bad one, words) ----------


def text_records(root: Path, bad_line: str):
    rows = [{"text": f"document {i}"} for i in range(5)]
    rows[2] = bad_line
    path = write_lines(root / "data" / "t.jsonl", rows)
    good = [f"{path}:line {n}" for n in (1, 2, 4, 5)]
    return {"type": "jsonl", "path": str(path)}, good, 2, [f"{path}:line 3"]


def llava_records(root: Path, bad_element: str, *, jsonl: bool = False):
    texts = []
    for i in range(5):
        save_png(random_image(i), root / "data" / "img" / f"{i}.png")
        conversations = [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": f"a{i}"}]
        texts.append(json.dumps({"id": f"r{i}", "image": f"{i}.png", "conversations": conversations}))
    texts[2] = bad_element
    path = root / "data" / ("l.jsonl" if jsonl else "l.json")
    if jsonl:
        write_lines(path, texts)
    else:
        path.write_text("[\n" + ",\n".join(texts) + "\n]\n")
    names = [f"{path}:line {i + 1}" if jsonl else f"{path}:[{i}]" for i in range(5)]
    spec = {"type": "llava", "path": str(path), "image_root": str(root / "data" / "img")}
    return spec, names[:2] + names[3:], 2, [names[2]]


def interleaved_records(root: Path, bad_line: str):
    rows = []
    for i in range(4):
        save_png(random_image(i), root / "data" / "img" / f"{i}.png")
        rows.append({"segments": [{"text": f"t{i}"}, {"image": f"{i}.png"}]})
    rows[1] = bad_line
    path = write_lines(root / "data" / "i.jsonl", rows)
    spec = {"type": "interleaved", "path": str(path), "image_root": str(root / "data" / "img")}
    return spec, [f"{path}:line {n}" for n in (1, 3, 4)], 1, [f"{path}:line 2"]


def webdataset_records(root: Path, bad_members: list[tuple[str, bytes | int]]):
    """Records 000000..000003, record 000002 made of ``bad_members``."""
    members = []
    for i in range(4):
        key = f"{i:06d}"
        if i == 2:
            members += [(f"{key}.{ext}", data) for ext, data in bad_members]
        else:
            members += [(f"{key}.png", png_bytes(random_image(i))), (f"{key}.txt", f"caption {i}".encode())]
    path = write_tar(root / "data" / "shard.tar", members)
    good = [f"{path}:{i:06d}" for i in (0, 1, 3)]
    return {"type": "webdataset", "path": str(path)}, good, 2, [str(path)]


TOKENS, CODEBOOK = 16, 1024


def index_for(entries: list[dict]) -> dict:
    images = sum(e["images"] for e in entries)
    return {
        "format": "showo-token-shards",
        "version": 1,
        "count": sum(e["count"] for e in entries),
        "images": images,
        "shape": [images, TOKENS],
        "tokens_per_image": TOKENS,
        "image_size": 32,
        "codebook_size": CODEBOOK,
        "skipped": 0,
        "source": "test",
        "shards": entries,
    }


def write_token_shards(folder: Path, shards: list[list], names: list[str] | None = None) -> Path:
    """A token-shard folder as pre_encode writes it: t2i rows get the next code row; a str row
    is written as the line itself."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for s, rows in enumerate(shards):
        name = names[s] if names else f"shard-{s:05d}"
        lines, images = [], 0
        for row in rows:
            if isinstance(row, dict) and row.get("kind") == "t2i":
                row, images = {**row, "codes_row": images}, images + 1
            lines.append(row if isinstance(row, str) else json.dumps(row))
        codes = (torch.arange(images * TOKENS, dtype=torch.int32).reshape(images, TOKENS) * 7 + s) % CODEBOOK
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        save_file({"codes": codes}, str(folder / f"{name}.safetensors"))
        (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
        entries.append({"name": name, "count": len(rows), "images": images})
    (folder / "index.json").write_text(json.dumps(index_for(entries)))
    return folder


def token_shard_records(root: Path, bad_line: str):
    rows = [{"kind": "t2i", "caption": f"c{i}"} for i in range(5)]
    rows[3] = bad_line
    folder = write_token_shards(root / "data" / "tok", [rows[:2], rows[2:]])
    first, second = folder / "shard-00000.jsonl", folder / "shard-00001.jsonl"
    good = [f"{first}:line 1", f"{first}:line 2", f"{second}:line 1", f"{second}:line 3"]
    return {"type": "token_shards", "path": str(folder)}, good, 3, [f"{second}:line 2"]


# ---- 1. records nested too deep ----------------------------------------------------------------


DEEP_CASES = {
    "text jsonl": lambda root: text_records(root, '{"text": ' + deep_json() + "}"),
    "llava json list": lambda root: llava_records(root, '{"id": "r2", "conversations": ' + deep_json() + "}"),
    "llava jsonl": lambda root: llava_records(root, '{"id": "r2", "image": ' + deep_json() + "}", jsonl=True),
    "interleaved": lambda root: interleaved_records(root, '{"segments": ' + deep_json() + "}"),
    "token_shards line": lambda root: token_shard_records(root, '{"kind": "t2i", "caption": ' + deep_json() + "}"),
    "webdataset json member": lambda root: webdataset_records(
        root, [("png", png_bytes(random_image(2))), ("json", ('{"caption": ' + deep_json() + "}").encode())]
    ),
}


@pytest.mark.parametrize("case", sorted(DEEP_CASES))
def test_record_nested_too_deep_is_a_bad_record(case, tmp_path):
    spec, good, bad, words = DEEP_CASES[case](tmp_path)
    if case == "webdataset json member":
        words = [f"{spec['path']}:000002.json"]
    check_bad_record(spec, good, bad, [*words, "too deep", str(MAX_JSON_DEPTH)])


def test_depth_limit_is_counted_exactly_and_ignores_brackets_in_strings():
    nested = lambda depth: ('{"a": ' + "[" * (depth - 1) + "1" + "]" * (depth - 1) + "}").encode()
    assert parse_json_object(nested(MAX_JSON_DEPTH), "f:1")["a"]
    with pytest.raises(BadSample, match=f"f:2: record too deep: JSON nested {MAX_JSON_DEPTH + 1} levels"):
        parse_json_object(nested(MAX_JSON_DEPTH + 1), "f:2")
    text = '[[[{{ "quoted \\" [[[ " ' * 1000
    assert parse_json_object(json.dumps({"text": text, "list": [[1], [2]] * 500}).encode(), "f:3")["text"] == text
    for broken in ("[" * DEEP, "{" * DEEP, '{"a": ' + "[{" * DEEP):  # unbalanced as well as deep
        with pytest.raises(BadSample, match="f:4: record too deep"):
            parse_json_object(broken.encode(), "f:4")
    # A string left open, full of escaped quotes: cutting strings out must stay linear (this took hours).
    with pytest.raises(BadSample, match="f:5: record too deep"):
        parse_json_object(b"[" * (MAX_JSON_DEPTH + 1) + b'"' + b'\\"' * (1 << 20), "f:5")


# ---- 1. records too large ----------------------------------------------------------------------


def big_text(root: Path):
    spec, good, bad, words = text_records(root, '{"text": "' + "x" * BIG_LINE + '"}')
    return spec, good, bad, [*words, "line too large", str(MAX_RECORD_BYTES)]


def big_llava(root: Path, jsonl: bool = False):
    conversations = [{"from": "human", "value": "x" * BIG_LINE}, {"from": "gpt", "value": "a"}]
    bad = json.dumps({"id": "r2", "image": "2.png", "conversations": conversations})
    spec, good, index, words = llava_records(root, bad, jsonl=jsonl)
    return spec, good, index, [*words, "too large", str(MAX_RECORD_BYTES)]


def big_interleaved(root: Path):
    spec, good, bad, words = interleaved_records(root, json.dumps({"segments": [{"text": "x" * BIG_LINE}]}))
    return spec, good, bad, [*words, "line too large"]


def big_webdataset_image(root: Path):
    spec, good, bad, _ = webdataset_records(root, [("png", MAX_IMAGE_BYTES + 1), ("txt", b"caption 2")])
    return spec, good, bad, [f"{spec['path']}:000002.png", "member too large", str(MAX_IMAGE_BYTES)]


def big_webdataset_caption(root: Path):
    members = [("png", png_bytes(random_image(2))), ("txt", MAX_RECORD_BYTES + 1)]
    spec, good, bad, _ = webdataset_records(root, members)
    return spec, good, bad, [f"{spec['path']}:000002.txt", "member too large", str(MAX_RECORD_BYTES)]


# (builder, the most bytes reading the epoch may allocate at its peak)
BIG_CASES = {
    "text jsonl line": (big_text, 2 * MAX_RECORD_BYTES),
    "llava json list element": (big_llava, 2 * MAX_RECORD_BYTES),
    "llava jsonl line": (lambda root: big_llava(root, jsonl=True), 2 * MAX_RECORD_BYTES),
    "interleaved line": (big_interleaved, 2 * MAX_RECORD_BYTES),
    "webdataset image member": (big_webdataset_image, MAX_IMAGE_BYTES // 8),
    "webdataset caption member": (big_webdataset_caption, MAX_RECORD_BYTES // 4),
}


@pytest.mark.parametrize("case", sorted(BIG_CASES))
def test_record_too_large_is_a_bad_record_and_never_held_whole(case, tmp_path):
    build, peak_below = BIG_CASES[case]
    spec, good, bad, words = build(tmp_path)
    check_bad_record(spec, good, bad, words, peak_below=peak_below)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1 << 20])
def test_json_list_scan_splits_elements_at_any_chunk_size(chunk, tmp_path):
    from_list = [{"a": 'x,]}[{"\\', "n": [1, 2.5, None]}, "\\", '\\"', 12345, [], {"d": {"e": [True]}}, "[{"]
    path = tmp_path / "l.json"
    path.write_bytes(b"\xef\xbb\xbf [\n" + b" ,\n ".join(json.dumps(e).encode() for e in from_list) + b"\n] \n")
    assert [json.loads(text) for _, text, _ in iter_json_array(path, chunk_bytes=chunk)] == from_list
    path.write_text('[1, "' + "x" * 100 + '", {"a": ["' + "y" * 100 + '"]}, 4]')
    assert [(i, text, size) for i, text, size in iter_json_array(path, chunk_bytes=chunk, max_bytes=50)] == [
        (0, b"1", 1), (1, None, 103), (2, None, 112), (3, b" 4", 2)]


def test_jsonl_lines_around_a_too_large_one_keep_their_numbers(tmp_path):
    """Empty and blank lines are not records but keep the count; a last line may lack its newline."""
    path = tmp_path / "t.jsonl"
    with open(path, "w") as f:
        f.write('\n{"text": "a"}\n\n  \n{"text": "' + "x" * BIG_LINE + '"}\n\n{"text": "b"}\n\n{"text": "c"}')
    spec = {"type": "jsonl", "path": str(path)}
    good = [f"{path}:line {n}" for n in (2, 7, 9)]
    samples = check_bad_record(spec, good, 1, [f"{path}:line 5", "line too large"], peak_below=2 * MAX_RECORD_BYTES)
    assert [s["text"] for s in samples] == ["a", "b", "c"]


def test_parquet_text_too_large_is_a_bad_record(tmp_path):
    pa, pq = import_pyarrow()
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"content": ["a", "b", "x" * (MAX_RECORD_BYTES + 1), "d"]}), path, row_group_size=3)
    good = [f"{path}:row {i}" for i in (0, 1, 3)]
    check_bad_record({"type": "parquet", "path": str(path)}, good, 2, [f"{path}:row 2", "text too large"])


IMAGE_FILE_CASES = {
    "file too large": "image too large: 67108865 bytes",
    "pixels over MAX_IMAGE_PIXELS": "image too large: 30x30 pixels",  # PIL would only warn, and decode it
    "pixels over twice MAX_IMAGE_PIXELS": "image too large (Image size (900 pixels) exceeds limit",
    "not a regular file": "not a regular file",
}


@pytest.mark.parametrize("kind", sorted(IMAGE_FILE_CASES))
def test_image_file_too_large_or_not_a_file_is_a_bad_record(kind, tmp_path, monkeypatch):
    for i in range(4):
        save_png(random_image(i), tmp_path / "c" / ("a" if i < 2 else "b") / f"{i}.png")
    bad = tmp_path / "c" / "b" / "2.png"
    bad.unlink()
    if kind == "file too large":
        with open(bad, "wb") as f:
            f.truncate(MAX_IMAGE_BYTES + 1)  # sparse: the size without the bytes
    elif kind == "not a regular file":
        os.mkfifo(bad)  # opening it to read would wait forever
    else:  # 900 pixels against a limit of 600 (PIL warns) or 400 (PIL raises); the others have 120
        save_png(random_image(2, (30, 30)), bad)
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 600 if kind == "pixels over MAX_IMAGE_PIXELS" else 400)
    good = [str(tmp_path / "c" / d / f"{i}.png") for d, i in (("a", 0), ("a", 1), ("b", 3))]
    spec = {"type": "image_folder", "root": str(tmp_path / "c")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        check_bad_record(spec, good, 2, [str(bad), IMAGE_FILE_CASES[kind]])


# ---- other records that used to raise past on_bad_data, or to take unbounded memory -------------


QA = [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]
RAW_ERROR_CASES = {
    # json.loads raises ValueError (not JSONDecodeError) for an integer of more than 4300 digits
    "huge integer": lambda root: text_records(root, '{"text": "x", "n": ' + "9" * 5000 + "}"),
    # os.stat raises OSError (File name too long) for a path over the system's limit
    "image path too long": lambda root: llava_records(
        root, json.dumps({"id": "r2", "image": "a" * 5000 + ".png", "conversations": QA}), jsonl=True
    ),
    # a token-shard row whose fields have the wrong types raised TypeError
    "token row turns not pairs": lambda root: token_shard_records(root, json.dumps({"kind": "mmu", "turns": 5})),
    "token row kind unhashable": lambda root: token_shard_records(root, json.dumps({"kind": ["t2i"]})),
    "token row label a bool": lambda root: token_shard_records(
        root, json.dumps({"kind": "class", "label": True, "class_name": "c", "codes_row": 0})
    ),
    # one short line naming the same image for each of a million segments decoded it a million times
    "interleaved too many segments": lambda root: interleaved_records(
        root, json.dumps({"segments": [{"image": "0.png"}] * (MAX_SEGMENTS + 1)})
    ),
}
RAW_ERROR_WORDS = {
    "huge integer": "invalid JSON",
    "image path too long": "unreadable image file",
    "token row turns not pairs": "wrong type: turns (int)",
    "token row kind unhashable": "kind ['t2i']",
    "token row label a bool": "wrong type: label (bool)",
    "interleaved too many segments": f"record too large: {MAX_SEGMENTS + 1} segments, over the limit of {MAX_SEGMENTS}",
}


@pytest.mark.parametrize("case", sorted(RAW_ERROR_CASES))
def test_record_that_raised_a_raw_error_is_a_bad_record(case, tmp_path):
    spec, good, bad, words = RAW_ERROR_CASES[case](tmp_path)
    check_bad_record(spec, good, bad, [*words, RAW_ERROR_WORDS[case]])


# ---- 2. the token-shard index is checked whole at load -----------------------------------------


def drop(field: str):
    return lambda index: {k: v for k, v in index.items() if k != field}


def edit(**changes):
    return lambda index: {**index, **changes}


def edit_shard(**changes):
    return lambda index: {**index, "shards": [{**index["shards"][0], **changes}, *index["shards"][1:]]}


# (change to a good index, words the error must hold: the field, what was expected, what was
# found; a tuple holds alternatives, for wording that pydantic chooses)
INDEX_CASES = {
    "no shards": (drop("shards"), ["shards: missing", "expected tuple[ShardEntry, ...]"]),
    "no image_size": (drop("image_size"), ["image_size: missing", "expected PositiveInt"]),
    "no shard name": (
        lambda index: {**index, "shards": [{"count": 2, "images": 2}, *index["shards"][1:]]},
        ["shards.0.name", ("missing", "required")],
    ),
    "shards not a list": (edit(shards={"name": "shard-00000"}), ["shards: ", "tuple", "shard-00000"]),
    "shard not a table": (edit(shards=["shard-00000"]), ["shards.0: ", "dictionary", "'shard-00000'"]),
    "name not a string": (edit_shard(name=7), ["shards.0.name: ", "string", "7"]),
    "image_size a string": (edit(image_size="32"), ["image_size: ", "integer", "'32'"]),
    "image_size zero": (edit(image_size=0), ["image_size: ", "greater than or equal to 1", "0"]),
    "codebook_size a bool": (edit(codebook_size=True), ["codebook_size: ", "integer", "True"]),
    "negative shard count": (edit_shard(count=-1), ["shards.0.count: ", "greater than or equal to 1", "-1"]),
    "count off": (edit(count=99), ["count: expected the shards' total 5, got 99"]),
    "images off": (edit(images=4, shape=[4, TOKENS]), ["images: expected the shards' total 5, got 4"]),
    "shape off": (edit(shape=[5, 8]), ["shape: expected [images, tokens_per_image] = [5, 16], got [5, 8]"]),
    "tokens not a grid": (
        edit(tokens_per_image=15, shape=[5, 15]),
        ["tokens_per_image: expected a square grid whose side divides image_size 32, got 15"],
    ),
    "no shards listed": (edit(shards=[]), ["shards: the index lists no shards"]),
    "shard twice": (
        lambda index: {**index, "shards": [index["shards"][0]] * 2, "count": 4, "images": 4, "shape": [4, TOKENS]},
        ["shards: names listed more than once: ['shard-00000']"],
    ),
    "unknown version": (edit(version=2), ["version: ", "1", "2"]),
    "unknown field": (edit(colour="red"), ["colour: ", "unknown field"]),
    "wrong format": (edit(format="other"), ["not a token-shard index (format 'other')"]),
}


def good_token_folder(root: Path) -> Path:
    return write_token_shards(root / "tok", [[{"kind": "t2i", "caption": f"c{s}{i}"} for i in range(n)]
                                            for s, n in enumerate((2, 3))])


@pytest.mark.parametrize("case", sorted(INDEX_CASES))
def test_token_shard_index_is_checked_at_load_naming_file_and_field(case, tmp_path):
    folder = good_token_folder(tmp_path)
    assert len(list(build_source({"type": "token_shards", "path": str(folder)}).iter_epoch())) == 5
    change, words = INDEX_CASES[case]
    index_file = folder / "index.json"
    index_file.write_text(json.dumps(change(json.loads(index_file.read_text()))))
    with pytest.raises(ValueError) as error:
        build_source({"type": "token_shards", "path": str(folder)})
    message = str(error.value)
    assert not isinstance(error.value, BadSample) and message.startswith(f"{index_file}: "), message
    assert all(any(w in message for w in (word if isinstance(word, tuple) else (word,))) for word in words), (
        message,
        words,
    )


@pytest.mark.parametrize("content", [deep_json(), '{"shards": ' + deep_json() + "}", "[1, 2]", "{oops"])
def test_token_shard_index_that_is_no_json_object_is_refused_by_name(content, tmp_path):
    folder = good_token_folder(tmp_path)
    (folder / "index.json").write_text(content)
    with pytest.raises(ValueError, match="^" + re.escape(f"{folder / 'index.json'}: ")):
        build_source({"type": "token_shards", "path": str(folder)})


def test_token_shard_codes_that_disagree_with_the_index_lose_only_their_shard(tmp_path):
    folder = good_token_folder(tmp_path)
    codes_file = folder / "shard-00000.safetensors"
    save_file({"codes": torch.full((2, TOKENS), CODEBOOK, dtype=torch.int32)}, str(codes_file))  # out of range
    second = folder / "shard-00001.jsonl"
    good = [f"{second}:line {n}" for n in (1, 2, 3)]
    spec = {"type": "token_shards", "path": str(folder)}
    check_bad_record(spec, good, 0, [str(codes_file), f"outside [0, {CODEBOOK})", "the shard's records are lost"])
    save_file({"codes": torch.zeros((2, TOKENS + 1), dtype=torch.int32)}, str(codes_file))  # wrong shape
    check_bad_record(spec, good, 0, [str(codes_file), f"expected an integer tensor of [2, {TOKENS}]"])


# ---- 3. token-shard names stay inside their folder -----------------------------------------------


@pytest.mark.parametrize("name", ["../outside", "sub/../../outside", "ABSOLUTE", "..", "./", "a//b", "a\\..\\b"])
def test_token_shard_names_outside_the_folder_are_refused(name, tmp_path):
    outside = tmp_path / "data" / "outside"  # a shard one level up from the shard folder
    write_token_shards(outside.parent, [[{"kind": "t2i", "caption": "SENTINEL"}]], names=["outside"])
    (outside.parent / "index.json").unlink()
    folder = write_token_shards(tmp_path / "data" / "tok", [[{"kind": "t2i", "caption": "inside"}]])
    name = str(outside) if name == "ABSOLUTE" else name
    index = json.loads((folder / "index.json").read_text())
    index["shards"][0]["name"] = name
    (folder / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError) as error:
        build_source({"type": "token_shards", "path": str(folder)})
    message = str(error.value)
    assert message.startswith(f"{folder / 'index.json'}: shards.0.name: must name files inside the shard folder")
    assert repr(name) in message


def test_token_shard_names_in_subfolders_are_read(tmp_path):
    folder = write_token_shards(tmp_path / "tok", [[{"kind": "t2i", "caption": "a"}]] * 2, names=["p/s0", "p/s1"])
    samples = list(build_source({"type": "token_shards", "path": str(folder)}).iter_epoch())
    assert sorted(s["source"] for s in samples) == [f"{folder / 'p' / n}.jsonl:line 1" for n in ("s0", "s1")]


# ---- image paths in records stay inside image_root ---------------------------------------------


SENTINEL_SIZE = (7, 5)  # no record's image has this size


@pytest.mark.parametrize("fmt", ["llava", "interleaved"])
@pytest.mark.parametrize("path", ["../sentinel.png", "sub/../../sentinel.png", "ABSOLUTE"])
def test_image_paths_leading_outside_image_root_are_bad_records(fmt, path, tmp_path):
    sentinel = save_png(random_image(99, SENTINEL_SIZE), tmp_path / "data" / "sentinel.png")  # one level up
    path = str(sentinel) if path == "ABSOLUTE" else path
    if fmt == "llava":
        spec, good, bad, words = llava_records(tmp_path, json.dumps({"id": "r2", "image": path, "conversations": QA}))
    else:
        spec, good, bad, words = interleaved_records(tmp_path, json.dumps({"segments": [{"image": path}]}))
        words = [f"{words[0]} segment 0"]
    samples = check_bad_record(spec, good, bad, [*words, repr(path), "leads outside the image root"])
    images = [s["image"] for s in samples] if fmt == "llava" else [x for s in samples for x in s["segments"]]
    assert all(not isinstance(x, Image.Image) or x.size != SENTINEL_SIZE for x in images)


def test_image_paths_that_stay_inside_image_root_are_read(tmp_path):
    record = {"id": "r2", "image": "sub/../2.png", "conversations": QA}  # the OS needs img/sub to exist
    (tmp_path / "data" / "img" / "sub").mkdir(parents=True)
    spec, good, _, words = llava_records(tmp_path, json.dumps(record))
    samples = list(build_source({**spec, "shuffle": False}).iter_epoch())
    assert [s["source"] for s in samples] == good[:2] + words + good[2:]
    assert canon(samples[2]["image"]) == canon(random_image(2))


# ---- mixture weights ---------------------------------------------------------------------------


@pytest.mark.parametrize("weight", [float("nan"), float("inf"), -1.0, "3", True])
def test_mixture_weight_that_is_no_finite_number_is_refused(weight, tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [{"text": "a"}])
    spec = {"type": "mixture", "sources": [{"type": "jsonl", "path": str(path), "weight": weight}]}
    with pytest.raises(ValueError, match=r"mixture: (sources\[0\]\.weight must be a number|weights must be finite)"):
        build_source(spec)
