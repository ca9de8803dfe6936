"""Hugging Face Hub ids wherever a folder is taken (``showo.model.hub.resolve_folder``).

No test reaches the network: each builds a cache in the Hugging Face Hub layout under tmp_path
(``models--org--name/refs/<revision>`` holding a commit hash, ``snapshots/<commit>/...`` linking
to ``blobs/``) and resolves ids from it offline (``HF_HUB_OFFLINE=1``, ``local_files_only=True``)
or with the Hub unreachable; the download path is checked with a stand-in ``snapshot_download``.
"""

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import numpy as np
import pytest
import torch
from conftest import CORPUS, TINY, build_tiny_pipeline, released_config_json, write_released_folder
from huggingface_hub import constants
from huggingface_hub.utils import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

from showo import MagvitV2, ShowoModel, TextTokenizer, magvit_preset
from showo.model.hub import PIPELINE_FILES, is_hub_id, resolve_folder
from showo.model.released_checkpoint import ours_to_released
from showo.pipeline import ShowoPipeline

# -- a cache in the Hugging Face Hub layout ------------------------------------------------------


def put_in_cache(cache: Path, repo_id: str, folder: Path, revision: str = "main") -> str:
    """Store ``folder`` as ``repo_id`` at ``revision`` the way huggingface_hub does; return the commit."""
    commit = hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / commit / file.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(commit)  # no newline, as huggingface_hub writes it
    return commit


def tree(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` with what would show a write: kind, size, modification time."""
    return {str(p.relative_to(root)): (p.is_symlink(), p.is_dir(), p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in sorted(root.rglob("*"))} if root.exists() else {}


def no_network(*args, **kwargs):
    raise AssertionError("the Hub was contacted")


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """Downloads that cannot happen: huggingface_hub's calls to the Hub fail the test, and its
    default cache is a folder under tmp_path that must stay absent."""
    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", no_network)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_tree", no_network)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "default-hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    yield tmp_path / "cache"
    assert not (tmp_path / "default-hf-cache").exists(), "something was written to the default cache"


@pytest.fixture
def offline(monkeypatch, hub):
    """HF_HUB_OFFLINE=1 as a user sets it: in the environment, and in the constant huggingface_hub
    read from it at import (the test process imported it before this fixture ran)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return hub


def codes_and_pixels(pipe: ShowoPipeline):
    codes = pipe.generate_codes(["a red circle", "two green triangles"], steps=2, seed=3)
    return codes, [np.asarray(image) for image in pipe.decode_codes(codes)]


def assert_same_generation(a: ShowoPipeline, b: ShowoPipeline) -> None:
    (codes_a, pixels_a), (codes_b, pixels_b) = codes_and_pixels(a), codes_and_pixels(b)
    assert torch.equal(codes_a, codes_b)
    assert all(np.array_equal(x, y) for x, y in zip(pixels_a, pixels_b))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Two different tiny pipelines, saved by save_pretrained."""
    root = tmp_path_factory.mktemp("saved")
    for name, seed in (("a", 0), ("b", 1)):
        build_tiny_pipeline(seed=seed).save_pretrained(root / name)
    return root


# -- a pipeline folder under an id ---------------------------------------------------------------


def test_an_id_in_the_cache_loads_offline_as_its_folder_does(offline, saved, tmp_path):
    commit = put_in_cache(offline, "org/name", saved / "a")
    before = tree(tmp_path)
    folder = resolve_folder("org/name", cache_dir=offline)
    assert folder.resolve() == (offline / "models--org--name" / "snapshots" / commit).resolve()
    from_hub = ShowoPipeline.from_pretrained("org/name", cache_dir=offline)
    assert_same_generation(from_hub, ShowoPipeline.from_pretrained(saved / "a"))
    assert from_hub.generation == ShowoPipeline.from_pretrained(saved / "a").generation
    assert tree(tmp_path) == before, "nothing is written while resolving offline"


def test_revision_picks_its_snapshot(offline, saved):
    put_in_cache(offline, "org/name", saved / "a")
    commit_b = put_in_cache(offline, "org/name", saved / "b", revision="v2")
    a, b = (ShowoPipeline.from_pretrained(saved / name) for name in ("a", "b"))
    assert_same_generation(ShowoPipeline.from_pretrained("org/name", cache_dir=offline), a)
    assert_same_generation(ShowoPipeline.from_pretrained("org/name", revision="v2", cache_dir=offline), b)
    by_commit = ShowoPipeline.from_pretrained("org/name", revision=commit_b, cache_dir=offline)
    assert_same_generation(by_commit, b)
    assert not torch.equal(codes_and_pixels(a)[0], codes_and_pixels(b)[0]), "the two snapshots differ"


def test_local_files_only_resolves_from_the_cache(hub, saved, tmp_path):
    put_in_cache(hub, "org/name", saved / "a")
    before = tree(tmp_path)
    pipe = ShowoPipeline.from_pretrained("org/name", cache_dir=hub, local_files_only=True)
    assert_same_generation(pipe, ShowoPipeline.from_pretrained(saved / "a"))
    assert tree(tmp_path) == before


def test_hf_hub_offline_is_read_when_resolving_not_only_at_import(monkeypatch, hub, saved):
    """The variable set after huggingface_hub was imported still keeps showo off the network."""
    put_in_cache(hub, "org/name", saved / "a")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # constants.HF_HUB_OFFLINE stays False (the hub fixture)
    assert resolve_folder("org/name", cache_dir=hub).parent.name == "snapshots"


def test_each_component_loader_takes_an_id(offline, saved):
    put_in_cache(offline, "org/name", saved / "a")
    local = ShowoPipeline.from_pretrained(saved / "a", torch_dtype=torch.float32)  # the files hold fp32
    model = ShowoModel.from_pretrained("org/name", cache_dir=offline)
    assert all(torch.equal(x, y) for x, y in zip(model.state_dict().values(), local.model.state_dict().values()))
    vq = MagvitV2.from_pretrained("org/name", subfolder="vq", cache_dir=offline)
    assert all(torch.equal(x, y) for x, y in zip(vq.state_dict().values(), local.vq.state_dict().values()))
    tokenizer = TextTokenizer.from_folder("org/name", cache_dir=offline)
    assert tokenizer.encode(CORPUS[0]) == local.tokenizer.encode(CORPUS[0])


# -- the released layout: the model, the LLM's tokenizer and config, the image tokenizer ---------


def released_parts(tmp_path: Path):
    """A released-layout Show-o, a phi-like folder (tokenizer + LLM config.json), a MAGVIT-v2 folder
    with its weights at the top level (pytorch_model.bin), and the pipeline they make."""
    tokenizer = TextTokenizer.train_bpe(CORPUS * 5, vocab_size=320)
    vq_config = dataclasses.replace(magvit_preset("tiny"), encoder_channel_mult=(1, 1, 2, 2, 4),
                                    decoder_channel_mult=(1, 1, 2, 2, 4), encoder_blocks=(1,) * 5,
                                    decoder_blocks=(1,) * 5)  # downsamples by 16, as released Show-o expects
    config = dataclasses.replace(TINY, text_vocab_size=tokenizer.text_vocab_size, bos_id=tokenizer.bos_id,
                                 eos_id=tokenizer.eos_id, codebook_size=vq_config.codebook_size,
                                 image_size=128, downsample_factor=16, max_text_length=128)  # released default
    torch.manual_seed(2)
    model, vq = ShowoModel(config).eval(), MagvitV2(vq_config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    show_o = write_released_folder(tmp_path / "show-o", ours_to_released(model.state_dict()), "pytorch_model.bin")
    (show_o / "config.json").write_text(json.dumps({
        **released_config_json(), "llm_vocab_size": config.text_vocab_size, "codebook_size": config.codebook_size,
        "num_vq_tokens": config.num_image_tokens, "vocab_size": config.vocab_size,
        "mask_token_id": config.layout.mask_id,
    }))
    phi = tmp_path / "phi"
    tokenizer.save(phi)
    llm = config.llm
    (phi / "config.json").write_text(json.dumps({
        "model_type": "phi", "hidden_size": llm.hidden_size, "num_hidden_layers": llm.num_layers,
        "num_attention_heads": llm.num_heads, "intermediate_size": llm.intermediate_size,
        "partial_rotary_factor": llm.rotary_fraction, "rope_theta": llm.rope_base,
        "layer_norm_eps": llm.layer_norm_eps, "max_position_embeddings": llm.max_position_embeddings,
        "bos_token_id": config.bos_id, "eos_token_id": config.eos_id,
    }))
    magvit = tmp_path / "magvitv2"
    vq.write_to(magvit)
    (magvit / "model.safetensors").unlink()
    torch.save(vq.state_dict(), magvit / "pytorch_model.bin")
    return show_o, phi, magvit, ShowoPipeline(model, vq, tokenizer)


def test_released_layout_under_ids(offline, tmp_path):
    show_o, phi, magvit, expected = released_parts(tmp_path / "parts")
    put_in_cache(offline, "org/show-o", show_o)
    put_in_cache(offline, "org/phi", phi)
    put_in_cache(offline, "org/magvitv2", magvit)
    pipe = ShowoPipeline.from_pretrained("org/show-o", vq="org/magvitv2", tokenizer="org/phi",
                                         llm_config="org/phi", cache_dir=offline, torch_dtype=torch.float32)
    assert pipe.config == expected.config  # and generates as the fp32 pipeline it was saved from
    assert_same_generation(pipe, expected)


def test_released_magvit_id_with_its_weights_at_the_top(offline, tmp_path):
    torch.manual_seed(4)
    vq = MagvitV2(magvit_preset("tiny")).eval()
    folder = tmp_path / "released-magvit"
    folder.mkdir()
    torch.save(vq.state_dict(), folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps({"_class_name": "VQGANEncoder"}))  # names no shapes
    put_in_cache(offline, "org/magvitv2", folder)
    shapes = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(vq.config).items()}
    loaded = MagvitV2.from_pretrained("org/magvitv2", cache_dir=offline, **shapes)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.equal(loaded.encode(x), vq.encode(x))


# -- which files are fetched -----------------------------------------------------------------------


def fake_download(repo: dict[str, bytes], root: Path, calls: list):
    """A stand-in for huggingface_hub.snapshot_download over the files of ``repo``."""
    from huggingface_hub.utils import filter_repo_objects

    def snapshot_download(repo_id, *, revision=None, allow_patterns=None, cache_dir=None, token=None,
                          local_files_only=False):
        calls.append(dict(revision=revision, allow_patterns=list(allow_patterns), local_files_only=local_files_only))
        snapshot = root / "snapshots" / ("c" * 40)
        for name in filter_repo_objects(list(repo), allow_patterns=allow_patterns):
            (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
            (snapshot / name).write_bytes(repo[name])
        snapshot.mkdir(parents=True, exist_ok=True)
        return str(snapshot)

    return snapshot_download


def test_only_the_files_showo_reads_are_fetched_and_bin_only_without_safetensors(monkeypatch, hub, tmp_path):
    names = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "README.md", "optimizer.pt",
             "vq/config.json", "vq/pytorch_model.bin", "other/model.safetensors", "other/config.json")
    repo = dict.fromkeys(names, b"x")
    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download(repo, tmp_path / "fake", calls))
    folder = resolve_folder("org/name", revision="v1", token="secret")
    fetched = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert fetched == ["config.json", "model.safetensors", "tokenizer.json", "vq/config.json",
                       "vq/pytorch_model.bin"]
    assert calls[0]["revision"] == "v1" and not any(p.endswith(".bin") for p in calls[0]["allow_patterns"])
    assert calls[1] == dict(revision="c" * 40, allow_patterns=["vq/pytorch_model.bin"], local_files_only=False)
    assert set(calls[0]["allow_patterns"]) | set(calls[1]["allow_patterns"]) < set(PIPELINE_FILES)


def test_a_cached_listing_decides_the_bin_fallback(offline, saved):
    """huggingface_hub caches the repo's file list on download: a repo that has both formats is complete
    offline without the .bin, and one whose .bin is missing from the cache says it is only partly there."""
    tree_cache = pytest.importorskip("huggingface_hub._tree_cache")
    commit = put_in_cache(offline, "org/name", saved / "a")
    listing = {str(p.relative_to(saved / "a")) for p in (saved / "a").rglob("*") if p.is_file()}
    both = {name: tree_cache.TreeCacheEntry(size=1, blob_id="0" * 40) for name in listing | {"pytorch_model.bin"}}
    tree_cache.write_tree_cache(str(offline / "models--org--name"), commit, both)
    assert_same_generation(ShowoPipeline.from_pretrained("org/name", cache_dir=offline),
                           ShowoPipeline.from_pretrained(saved / "a"))

    commit = put_in_cache(offline, "org/released", saved / "a" / "vq")  # stands for a .bin-only repo ...
    (offline / "models--org--released" / "snapshots" / commit / "model.safetensors").unlink()  # ... half-fetched
    only_bin = {"config.json": tree_cache.TreeCacheEntry(size=1, blob_id="0" * 40),
                "pytorch_model.bin": tree_cache.TreeCacheEntry(size=1, blob_id="1" * 40)}
    tree_cache.write_tree_cache(str(offline / "models--org--released"), commit, only_bin)
    with pytest.raises(FileNotFoundError, match=r"org/released is not a local folder, and only partly in the "
                                                r"Hugging Face cache .*hf download org/released"):
        MagvitV2.from_pretrained("org/released", cache_dir=offline)


# -- errors ----------------------------------------------------------------------------------------


def test_offline_and_not_cached_says_what_to_download(offline):
    with pytest.raises(FileNotFoundError) as error:
        ShowoPipeline.from_pretrained("org/missing", cache_dir=offline)
    message = str(error.value)
    assert "org/missing is not a local folder, and not in the Hugging Face cache" in message
    assert str(offline) in message and "HF_HUB_OFFLINE=1" in message
    assert f"hf download org/missing --cache-dir {offline}" in message and "huggingface-cli download" in message
    assert "\n" not in message


def test_local_files_only_and_not_cached_says_so(hub, saved):
    put_in_cache(hub, "org/name", saved / "a")
    with pytest.raises(FileNotFoundError, match=r"org/name \(revision v9\) is not a local folder.*"
                                                r"local_files_only=True.*hf download org/name --revision v9"):
        ShowoModel.from_pretrained("org/name", revision="v9", cache_dir=hub, local_files_only=True)
    with pytest.raises(FileNotFoundError, match=r"microsoft/phi-1_5 is not a local folder.*local_files_only=True"):
        TextTokenizer.from_folder("microsoft/phi-1_5", cache_dir=hub, local_files_only=True)


def test_an_unreachable_hub_falls_back_to_the_cache_or_says_it_could_not_be_reached(monkeypatch, tmp_path, saved):
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "default-hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    cache = tmp_path / "cache"
    put_in_cache(cache, "org/name", saved / "a")
    assert_same_generation(ShowoPipeline.from_pretrained("org/name", cache_dir=cache),
                           ShowoPipeline.from_pretrained(saved / "a"))
    with pytest.raises(FileNotFoundError, match=r"org/other is not a local folder, and not in the Hugging Face "
                                                r"cache .*could not be reached.*hf download org/other"):
        ShowoPipeline.from_pretrained("org/other", cache_dir=cache)
    assert not (tmp_path / "default-hf-cache").exists()


@pytest.mark.parametrize(("error", "kind", "expected"), [
    (RepositoryNotFoundError, FileNotFoundError, "org/name is neither a local folder nor a model on the Hugging"),
    (GatedRepoError, PermissionError, "org/name is gated on the Hugging Face Hub: accept its conditions at "
                                      "https://huggingface.co/org/name"),
    (RevisionNotFoundError, FileNotFoundError, "org/name has no revision 'v3' on the Hugging Face Hub"),
])
def test_hub_errors_are_one_line_naming_the_id(monkeypatch, hub, error, kind, expected):
    def refuse(repo_id, **kwargs):
        raise error("404 Client Error\nmore lines", response=SimpleNamespace(headers={}, request=None, json=dict))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    with pytest.raises(kind) as raised:
        ShowoPipeline.from_pretrained("org/name", revision="v3")
    assert str(raised.value).startswith(expected) and "\n" not in str(raised.value)


# -- paths stay paths ------------------------------------------------------------------------------


def test_a_local_folder_that_looks_like_an_id_wins(offline, saved, tmp_path, monkeypatch):
    put_in_cache(offline, "org/name", saved / "b")
    monkeypatch.chdir(tmp_path)
    shutil.copytree(saved / "a", tmp_path / "org" / "name")
    assert resolve_folder("org/name", cache_dir=offline) == Path("org/name")
    assert_same_generation(ShowoPipeline.from_pretrained("org/name", cache_dir=offline),
                           ShowoPipeline.from_pretrained(saved / "a"))


def test_what_is_not_an_id_keeps_its_local_error(hub, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("missing", "no--such/name", "a/b/c", str(tmp_path / "org" / "name"), "./org/name", "~/org/name"):
        assert resolve_folder(name) == Path(name)
        with pytest.raises(FileNotFoundError, match="not a checkpoint folder"):
            ShowoModel.from_pretrained(name)
    assert resolve_folder(Path("org/name")) == Path("org/name"), "a Path is never an id"
    with pytest.raises(FileNotFoundError, match="no such checkpoint folder or file"):
        MagvitV2.from_pretrained("vq/model.safetensors")  # a file name is a path
    with pytest.raises(FileNotFoundError, match=r"no tokenizer\.json found"):
        TextTokenizer.from_folder("tok/tokenizer.json")
    assert [is_hub_id(n) for n in ("showlab/show-o", "microsoft/phi-1_5", "gpt2", "a/b/c", "org/x.json")] == [
        True, True, False, False, False]
    assert not any(tmp_path.iterdir()), "nothing is written"
