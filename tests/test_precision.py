"""Precision: ``resolve_dtype`` and what ``"auto"`` picks on each kind of hardware (the probes
replaced), weights converted on load exactly as ``tensor.to(dtype)`` converts them and one
tensor at a time, the pipeline's ``torch_dtype``, and the CLI's ``--dtype``."""

import weakref

import pytest
import torch
from conftest import TINY, build_tiny_pipeline, write_released_folder
from PIL import Image
from safetensors.torch import save_file

from showo import ShowoModel
from showo.cli.main import build_parser, main
from showo.model import checkpoint_io, precision
from showo.model.checkpoint_io import load_state_dict
from showo.model.precision import cpuinfo_flags, describe_dtype, resolve_dtype
from showo.model.released_checkpoint import ours_to_released
from showo.pipeline import ShowoPipeline


@pytest.fixture
def cpu_with(monkeypatch):
    """``cpu_with("AMX")`` / ``cpu_with(None)``: the CPU probe answers as such a CPU would."""
    return lambda instructions: monkeypatch.setattr(precision, "cpu_bf16_instructions", lambda: instructions)


# -- resolve_dtype ----------------------------------------------------------------------------------
@pytest.mark.parametrize("given, expected", [
    ("fp32", torch.float32), ("float32", torch.float32), (torch.float32, torch.float32),
    ("bf16", torch.bfloat16), ("bfloat16", torch.bfloat16), (torch.bfloat16, torch.bfloat16),
    ("fp16", torch.float16), ("float16", torch.float16), (torch.float16, torch.float16),
    (None, None),
])
def test_every_name_resolves(given, expected):
    assert resolve_dtype(given, "cpu") is expected


@pytest.mark.parametrize("bad", ["fp64", "BF16", "", "bfloat", 16, torch.float64, torch.int8, object()])
def test_a_bad_value_names_the_argument_and_the_choices(bad):
    with pytest.raises(ValueError) as caught:
        resolve_dtype(bad, "cpu", argument="torch_dtype")
    message = str(caught.value)
    assert message.startswith("torch_dtype must be one of auto, fp32, bf16, fp16") and message.endswith(f"got {bad!r}")


@pytest.mark.parametrize("instructions, expected, said", [
    ("AMX", torch.bfloat16, "bf16 (CPU with AMX)"),
    ("AVX512-BF16", torch.bfloat16, "bf16 (CPU with AVX512-BF16)"),
    (None, torch.float32, "fp32 (no fast bf16 on this CPU)"),
])
def test_auto_on_the_cpu_follows_its_instructions(cpu_with, instructions, expected, said):
    cpu_with(instructions)
    assert resolve_dtype("auto", "cpu") is expected and describe_dtype("auto", torch.device("cpu")) == said


@pytest.mark.parametrize("has_bf16, expected, said", [
    (True, torch.bfloat16, "bf16 (GPU with bf16)"), (False, torch.float32, "fp32 (no bf16 on this GPU)"),
])
def test_auto_on_cuda_follows_the_gpu(monkeypatch, cpu_with, has_bf16, expected, said):
    cpu_with("AMX")  # the CPU's answer must not leak into the GPU's
    monkeypatch.setattr(precision, "cuda_has_bf16", lambda device: has_bf16)
    assert resolve_dtype("auto", "cuda:0") is expected and describe_dtype("auto", "cuda") == said


def test_auto_elsewhere_is_fp32_and_explicit_choices_say_so(cpu_with):
    cpu_with("AMX")
    assert resolve_dtype("auto", "mps") is torch.float32 and describe_dtype("auto", "mps").startswith("fp32 (")
    assert describe_dtype("fp16", "cpu") == "fp16 (as asked)"
    assert describe_dtype(None, "cpu") == "as stored in the checkpoint"


def test_the_cpu_probe_reads_cpuinfo_flags_then_torchs(monkeypatch):
    text = "processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\nbugs\t\t: spectre\nflags : amx_tile amx_bf16\n"
    assert cpuinfo_flags(text) == {"fpu", "sse", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}
    for proc, torch_flags, expected in [({"avx512_bf16", "amx_bf16"}, set(), "AMX"),
                                        ({"avx512f", "avx512_bf16"}, {"amx_bf16"}, "AVX512-BF16"),
                                        ({"avx512f", "avx2"}, set(), None),
                                        (set(), {"avx512_bf16"}, "AVX512-BF16"),  # no /proc/cpuinfo: torch's probe
                                        (set(), set(), None)]:
        monkeypatch.setattr(precision, "_proc_cpuinfo_flags", lambda proc=proc: proc)
        monkeypatch.setattr(precision, "_torch_cpu_flags", lambda flags=torch_flags: flags)
        assert precision.cpu_bf16_instructions() == expected


# -- weights converted as they are read ---------------------------------------------------------------
def sample_state() -> dict[str, torch.Tensor]:
    """fp32 tensors of awkward sizes (none a multiple of the small chunk below), an int buffer, a
    bool mask, a 0-d scalar and an empty tensor."""
    g = torch.Generator().manual_seed(0)
    return {
        "big": torch.randn(37, 29, generator=g) * 1e3,
        "vector": torch.randn(101, generator=g),
        "scalar": torch.tensor(3.14159),
        "empty": torch.zeros(0, 4),
        "ids": torch.arange(7, dtype=torch.int64),
        "mask": torch.tensor([True, False, True]),
        "half": torch.randn(9, generator=g).half(),
    }


def write(state: dict[str, torch.Tensor], path):
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


def as_converted(state, dtype):
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


def assert_identical(loaded: dict, expected: dict) -> None:
    assert set(loaded) == set(expected)
    for name, tensor in expected.items():
        assert loaded[name].dtype == tensor.dtype and loaded[name].shape == tensor.shape, name
        assert torch.equal(loaded[name], tensor), name


@pytest.fixture(params=["model.safetensors", "pytorch_model.bin", "legacy.bin"])
def weight_file(request, tmp_path):
    state = sample_state()
    if request.param == "legacy.bin":  # an old non-zip pickle: loaded whole, then converted one by one
        torch.save(state, tmp_path / request.param, _use_new_zipfile_serialization=False)
        return tmp_path / request.param, state
    return write(state, tmp_path / request.param), state


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, None])
def test_loaded_tensors_equal_the_converted_originals(weight_file, dtype, monkeypatch):
    monkeypatch.setattr(checkpoint_io, "CHUNK_BYTES", 64)  # many chunks per tensor, a short last one
    path, state = weight_file
    assert_identical(load_state_dict(path, dtype), state if dtype is None else as_converted(state, dtype))


def test_views_and_shared_tensors_of_a_pickle_load_as_saved(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_io, "CHUNK_BYTES", 64)
    base = torch.randn(6, 10)
    state = {"base": base, "row": base[2], "transposed": base.t(), "strided": base[:, ::3], "tied": base}
    loaded = load_state_dict(write(state, tmp_path / "views.bin"), torch.bfloat16)
    assert_identical(loaded, as_converted(state, torch.bfloat16))
    assert loaded["tied"] is loaded["base"]  # saved as one tensor, loaded as one


@pytest.mark.parametrize("file_name", ["model.safetensors", "pytorch_model.bin"])
def test_the_loader_holds_one_chunk_of_the_stored_precision_at_a_time(tmp_path, monkeypatch, file_name):
    """Every scratch buffer the loader reads stored-precision data into is recorded (weakly): one
    for the whole file, of at most CHUNK_BYTES, however many and however large the tensors."""
    monkeypatch.setattr(checkpoint_io, "CHUNK_BYTES", 256)
    made = []
    original = checkpoint_io._source_buffer

    def recording(nbytes):
        buffer = original(nbytes)
        made.append((weakref.ref(buffer), buffer.nbytes))
        return buffer

    monkeypatch.setattr(checkpoint_io, "_source_buffer", recording)
    g = torch.Generator().manual_seed(1)
    state = {f"w{i}": torch.randn(50 + i, 3, generator=g) for i in range(6)}  # 600 bytes and more: 3 chunks each
    loaded = load_state_dict(write(state, tmp_path / file_name), torch.bfloat16)
    assert_identical(loaded, as_converted(state, torch.bfloat16))
    assert [nbytes for _, nbytes in made] == [256]
    assert made[0][0]() is None  # let go once the file is read
    made.clear()
    assert_identical(load_state_dict(tmp_path / file_name), state)
    assert made == []  # nothing to convert: read straight into place


def test_a_truncated_safetensors_file_is_a_clear_error(tmp_path):
    path = write(sample_state(), tmp_path / "model.safetensors")
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_state_dict(path, torch.bfloat16)


# -- models -----------------------------------------------------------------------------------------
def assert_same_model(loaded: torch.nn.Module, expected: torch.nn.Module) -> None:
    """Every parameter and buffer (the rotary tables too) equal in value and dtype."""
    ours = dict(loaded.state_dict(keep_vars=True)) | dict(loaded.named_buffers())
    theirs = dict(expected.state_dict(keep_vars=True)) | dict(expected.named_buffers())
    assert_identical(ours, theirs)


@pytest.fixture
def fp32_model():
    torch.manual_seed(0)
    return ShowoModel(TINY).eval()


def test_a_showo_folder_loads_as_bf16_exactly(tmp_path, fp32_model):
    """As loading it whole and casting it did: ``from_pretrained(path).to(torch.bfloat16)``."""
    fp32_model.save_pretrained(tmp_path / "m")
    stored = ShowoModel.from_pretrained(tmp_path / "m")
    assert stored.dtype == torch.float32  # None (the library's default) keeps the stored precision
    cast = stored.to(torch.bfloat16)
    for dtype in (torch.bfloat16, "bf16"):
        assert_same_model(ShowoModel.from_pretrained(tmp_path / "m", dtype=dtype), cast)


@pytest.mark.parametrize("file_name", ["pytorch_model.bin", "pytorch_model.safetensors"])
def test_a_released_folder_loads_as_bf16_exactly(tmp_path, fp32_model, llm_config_dir, file_name):
    folder = write_released_folder(tmp_path / "released", ours_to_released(fp32_model.state_dict()), file_name)
    loaded = ShowoModel.from_pretrained(folder, llm_config=llm_config_dir, dtype=torch.bfloat16)
    assert_same_model(loaded, ShowoModel.from_pretrained(folder, llm_config=llm_config_dir).to(torch.bfloat16))
    assert_identical(loaded.state_dict(), as_converted(fp32_model.state_dict(), torch.bfloat16))


def test_a_bad_dtype_is_refused_before_anything_is_read(tmp_path):
    with pytest.raises(ValueError, match=r"^dtype must be one of .* got 'int8'"):
        ShowoModel.from_pretrained(tmp_path / "nothing here", dtype="int8")
    with pytest.raises(ValueError, match=r"^torch_dtype must be one of .* got 'fp64'"):
        ShowoPipeline.from_pretrained(tmp_path / "nothing here", torch_dtype="fp64")


# -- the pipeline -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory):
    folder = tmp_path_factory.mktemp("precision") / "pipe"
    build_tiny_pipeline().save_pretrained(folder)
    return folder


def dtypes(pipe: ShowoPipeline) -> tuple[torch.dtype, torch.dtype]:
    return pipe.dtype, pipe.vq_dtype


def test_auto_puts_the_transformer_in_bf16_on_fast_hardware_and_keeps_the_image_tokenizer(saved_pipeline, cpu_with):
    cpu_with("AMX")
    pipe = ShowoPipeline.from_pretrained(saved_pipeline, device="cpu")
    assert dtypes(pipe) == (torch.bfloat16, torch.float32)
    reference = ShowoPipeline.from_pretrained(saved_pipeline, device="cpu", torch_dtype=None)
    assert_same_model(pipe.model, reference.model.to(torch.bfloat16))
    assert_same_model(pipe.vq, reference.vq)
    cpu_with(None)
    assert dtypes(ShowoPipeline.from_pretrained(saved_pipeline, device="cpu")) == (torch.float32, torch.float32)


def test_an_explicit_dtype_applies_to_both_models(saved_pipeline, cpu_with):
    cpu_with(None)
    for given, expected in [("bf16", torch.bfloat16), (torch.float16, torch.float16), ("fp32", torch.float32)]:
        assert dtypes(ShowoPipeline.from_pretrained(saved_pipeline, device="cpu", torch_dtype=given)) == (expected,) * 2


def test_to_takes_the_same_choices(saved_pipeline, cpu_with):
    cpu_with("AVX512-BF16")
    pipe = ShowoPipeline.from_pretrained(saved_pipeline, device="cpu", torch_dtype="fp32")
    assert dtypes(pipe.to(dtype="auto")) == (torch.bfloat16, torch.float32)
    assert dtypes(pipe.to("cpu", "fp16")) == (torch.float16, torch.float16)
    assert dtypes(pipe.to(torch.float32)) == (torch.float32, torch.float32)
    with pytest.raises(ValueError, match=r"^torch_dtype must be one of"):
        pipe.to(dtype="double")


# -- the command line -------------------------------------------------------------------------------
MODEL_COMMANDS = ("generate", "inpaint", "extrapolate", "answer", "caption", "serve", "quickstart")


def test_every_command_that_loads_a_model_takes_dtype_auto_by_default():
    commands = build_parser()._subparsers._group_actions[0].choices
    for name in MODEL_COMMANDS:
        (action,) = [a for a in commands[name]._actions if "--dtype" in a.option_strings]
        assert action.default == "auto", name


@pytest.mark.parametrize("dtype, probe, expected, line", [
    ("bf16", None, (torch.bfloat16, torch.bfloat16), "showo generate: dtype bf16 (as asked)"),
    ("auto", "AMX", (torch.bfloat16, torch.float32), "showo generate: dtype bf16 (CPU with AMX)"),
    ("auto", None, (torch.float32, torch.float32), "showo generate: dtype fp32 (no fast bf16 on this CPU)"),
])
def test_cli_dtype_loads_that_precision_and_says_so(saved_pipeline, tmp_path, capsys, monkeypatch, cpu_with,
                                                    dtype, probe, expected, line):
    cpu_with(probe)
    loaded, load = [], ShowoPipeline.from_pretrained
    monkeypatch.setattr(ShowoPipeline, "from_pretrained", lambda *a, **k: loaded.append(load(*a, **k)) or loaded[-1])
    argv = ["generate", "a red circle", "--steps", "1", "--model", str(saved_pipeline), "--device", "cpu"]
    assert main([*argv, "--dtype", dtype, "--output", str(tmp_path)]) == 0
    assert dtypes(loaded[0]) == expected
    assert capsys.readouterr().err.splitlines().count(line) == 1


@pytest.mark.parametrize("command", [
    ["generate", "a circle", "--output", "{out}"], ["answer", "What is it?", "{picture}", "--output", "{out}"],
    ["caption", "{picture}", "--output", "{out}"], ["quickstart", "--ci", "--output", "{out}"], ["serve"],
], ids=lambda argv: argv[0])
def test_a_bad_dtype_exits_2_with_one_line(command, capsys, monkeypatch, tmp_path):
    if command[0] == "serve":
        import importlib.util

        if importlib.util.find_spec("gradio") is None:
            pytest.skip("serve needs gradio")
    Image.new("RGB", (64, 64), "red").save(tmp_path / "picture.png")
    monkeypatch.setattr(ShowoPipeline, "from_pretrained", lambda *a, **k: pytest.fail("loaded a model"))
    argv = [a.format(out=tmp_path / "out", picture=tmp_path / "picture.png") for a in command]
    assert main([*argv, "--dtype", "fp64"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"showo {command[0]}: error: --dtype 'fp64': expected one of auto, fp32, bf16, fp16"]


def test_serve_hands_its_dtype_to_the_server(monkeypatch):
    import showo.cli.main as cli_main

    served = []
    monkeypatch.setattr(cli_main, "serve", lambda *args, **kwargs: served.append(args[-1]))
    assert main(["serve"]) == 0 and main(["serve", "--dtype", "fp32"]) == 0
    assert served == ["auto", "fp32"]


# -- the MLP's GELU -------------------------------------------------------------------------------------
def test_bf16_inference_on_a_cpu_takes_the_erf_gelu_which_stays_within_bf16_resolution_of_phis():
    from torch.nn import functional as F

    from showo.model.phi import gelu

    x = torch.linspace(-8, 8, 20001)
    assert torch.equal(gelu(x), F.gelu(x, approximate="tanh"))  # fp32: phi's tanh form, as released
    assert torch.equal(gelu(x.bfloat16()), F.gelu(x.bfloat16()))  # bf16 inference: the erf form
    with torch.autocast("cpu", dtype=torch.bfloat16):  # training under autocast keeps the tanh form
        assert torch.equal(gelu(x.bfloat16()), F.gelu(x.bfloat16(), approximate="tanh"))
    exact = x.double()
    gap = (F.gelu(exact) - F.gelu(exact, approximate="tanh")).abs()
    assert gap.max() < 5e-4  # the two forms, in float64
    value = F.gelu(exact).abs()
    half_ulp = 2.0 ** (torch.floor(torch.log2(value.clamp_min(1e-30))) - 8)  # bf16: 8 significant bits
    assert (gap < half_ulp)[value > 0.13].all()  # below bf16's resolution there


@pytest.mark.parametrize("causal", [False, True])
def test_bf16_inference_attention_over_short_keys_is_the_float32_softmax_path(causal):
    from torch.nn import functional as F

    from showo.model.phi import SHORT_KEYS, attend

    torch.manual_seed(0)
    for keys in (107, SHORT_KEYS + 1):
        q = torch.randn(2, 8, keys if causal else 66, 32)  # causal: one query a key
        k, v = torch.randn(2, 8, keys, 32), torch.randn(2, 8, keys, 32)
        mask = None if causal else torch.rand(2, 1, 66, keys) > 0.2
        reference = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        with torch.no_grad():
            got = attend(q.bfloat16(), k.bfloat16(), v.bfloat16(), mask, causal)
        assert (got.float() - reference).abs().max() < 0.05  # bf16's precision on values ~1
        kernel = F.scaled_dot_product_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), attn_mask=mask,
                                                is_causal=causal)
        assert torch.equal(got, kernel) == (keys > SHORT_KEYS)  # PyTorch's kernel only over long keys
    with torch.no_grad():  # by hand: a float32 softmax of the bf16 scores, rounded, then the bf16 matmul
        q, k, v = (torch.randn(1, 1, 3, 4).bfloat16() for _ in range(3))
        scores = (q @ k.transpose(-1, -2)).float() * 0.5  # 1 / sqrt(4)
        if causal:
            scores = scores.masked_fill(~torch.ones(3, 3, dtype=torch.bool).tril(), float("-inf"))
        expected = torch.softmax(scores, -1).bfloat16() @ v
        assert torch.equal(attend(q, k, v, None, causal), expected)
