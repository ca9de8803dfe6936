"""Peak memory of loading a full-size Show-o checkpoint stored in fp32, as bf16 and as fp32.

Writes a show-o-256 model (~1.45B parameters, random weights) as an fp32 ``model.safetensors``
tensor by tensor (never more than one chunk in memory), then loads it in a fresh interpreter per
case with ``ShowoModel.from_pretrained(path, dtype=...)`` and reports the peak resident memory
(``ru_maxrss``) above that interpreter's own after importing torch and showo, against the size of
the loaded model. Target: loading as bf16 peaks at no more than 1.3x the bf16 model's size.

    python benchmarks/load_memory.py                        # writes /tmp/showo-load-memory, deletes it after
    python benchmarks/load_memory.py --output load.json --keep
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from showo import ShowoModel, showo_preset

TARGET_RATIO = 1.3
RSS_UNIT = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in bytes on macOS, KiB on Linux
CHUNK_ELEMENTS = 16 * 2**20  # random fp32 values made and written at a time
# name, dtype passed to from_pretrained, cast after loading (the way loading as bf16 went before)
CASES = (("bf16", "bf16", None), ("fp32", "fp32", None), ("fp32, then .to(bf16)", None, torch.bfloat16))


def write_model(folder: Path, preset: str) -> int:
    """``folder/config.json`` and an fp32 ``folder/model.safetensors`` with random weights, written a
    chunk at a time in the safetensors layout (8-byte header length, JSON header, raw little-endian
    data); returns the number of parameters."""
    config = showo_preset(preset)
    with torch.device("meta"):  # names and shapes only
        shapes = {name: tuple(t.shape) for name, t in ShowoModel(config).state_dict().items()}
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in shapes.items():
        nbytes = 4 * _numel(shape)
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned
    folder.mkdir(parents=True, exist_ok=True)
    config.save(folder / "config.json")
    generator = torch.Generator().manual_seed(0)
    with open(folder / "model.safetensors", "wb") as file:
        file.write(len(encoded).to_bytes(8, "little") + encoded)
        for shape in shapes.values():
            left = _numel(shape)
            while left:
                count = min(left, CHUNK_ELEMENTS)
                file.write((torch.randn(count, generator=generator) * 0.02).numpy().tobytes())
                left -= count
    return sum(_numel(shape) for shape in shapes.values())


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def measure(folder: str, dtype: str | None, cast: str | None) -> dict:
    """Run in the child: load, and report the peak above the interpreter's after its imports."""
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * RSS_UNIT
    start = time.perf_counter()
    model = ShowoModel.from_pretrained(folder, dtype=dtype)
    if cast is not None:
        model.to(getattr(torch, cast))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * RSS_UNIT
    tensors = list(model.parameters()) + list(model.buffers())
    return {"baseline_bytes": baseline, "peak_over_baseline_bytes": peak - baseline, "seconds": seconds,
            "model_bytes": sum(t.nbytes for t in tensors), "loaded_dtype": str(model.dtype)}


def run_case(folder: Path, name: str, dtype: str | None, cast: torch.dtype | None) -> dict:
    """One case in a fresh interpreter, so no case inherits another's high-water mark."""
    argv = [sys.executable, __file__, "--child", str(folder), "--child-dtype", str(dtype),
            "--child-cast", str(cast).removeprefix("torch.")]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"case": name, **result, "ratio": result["peak_over_baseline_bytes"] / result["model_bytes"]}


def report(results: list[dict], preset: str, params: int, file_bytes: int) -> None:
    gib = 2**30
    print(f"{preset}: {params / 1e9:.3f}B parameters, fp32 file {file_bytes / gib:.2f} GiB, "
          f"torch {torch.__version__}, {sys.platform}")
    print(f"{'case':<22} {'model GiB':>10} {'peak over base GiB':>19} {'peak / model':>13} {'seconds':>8}")
    for r in results:
        print(f"{r['case']:<22} {r['model_bytes'] / gib:>10.2f} {r['peak_over_baseline_bytes'] / gib:>19.2f} "
              f"{r['ratio']:>13.2f} {r['seconds']:>8.1f}")
    bf16 = next(r for r in results if r["case"] == "bf16")
    verdict = "meets" if bf16["ratio"] <= TARGET_RATIO else "MISSES"
    print(f"bf16 load peaks at {bf16['ratio']:.2f}x the bf16 model: {verdict} the {TARGET_RATIO}x target")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "showo-load-memory",
                        help="where the fp32 checkpoint is written (about 5.8 GB)")
    parser.add_argument("--preset", default="show-o-256")
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoint (reused by the next run)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-dtype", help=argparse.SUPPRESS)
    parser.add_argument("--child-cast", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, _none_or(args.child_dtype), _none_or(args.child_cast))))
        return
    try:
        if (args.folder / "model.safetensors").is_file():
            params = sum(t.numel() for t in _meta_model(args.preset).parameters())
        else:
            params = write_model(args.folder, args.preset)
        results = [run_case(args.folder, *case) for case in CASES]
        file_bytes = (args.folder / "model.safetensors").stat().st_size
    finally:
        if not args.keep:
            shutil.rmtree(args.folder, ignore_errors=True)
    report(results, args.preset, params, file_bytes)
    if args.output:
        args.output.write_text(json.dumps({"preset": args.preset, "params": params, "file_bytes": file_bytes,
                                           "target_ratio": TARGET_RATIO, "cases": results}, indent=2) + "\n")


def _none_or(value: str) -> str | None:
    return None if value == "None" else value


def _meta_model(preset: str) -> ShowoModel:
    with torch.device("meta"):
        return ShowoModel(showo_preset(preset))


if __name__ == "__main__":
    main()
