"""Which floating-point precision to run in: ``resolve_dtype`` turns a user's choice (``"auto"``,
``"bf16"``, a ``torch.dtype``, ...) into a ``torch.dtype``, and ``describe_dtype`` says in a few
words what was chosen and why, for the one line the CLI prints.

``"auto"`` picks bfloat16 only where the hardware runs it fast and fp32 elsewhere: bf16 halves the
memory and, on a GPU with bf16 units or a CPU with AMX or AVX512-BF16 instructions, speeds up the
matrix products severalfold; on other CPUs torch emulates it and it is slower than fp32. (The
released inference scripts run in fp32 throughout: github showlab/Show-o, ``inference_t2i.py``
loads both models with ``from_pretrained(...).to(device)``.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

NAMES: dict[str, torch.dtype] = {
    "fp32": torch.float32, "float32": torch.float32,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16,
}
CHOICES = ("auto", "fp32", "bf16", "fp16")  # what the CLI offers; NAMES also takes the long names
SHORT = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
# CPU instructions that make bf16 matrix products fast, best first, as Linux names them in /proc/cpuinfo
FAST_BF16_FLAGS = {"amx_bf16": "AMX", "avx512_bf16": "AVX512-BF16"}


def cpu_bf16_instructions() -> str | None:
    """The name of the best fast-bf16 instruction set this CPU has ("AMX", "AVX512-BF16"), or None.

    Read from /proc/cpuinfo on Linux; elsewhere (or when it cannot be read) from the flags torch's
    own CPU probe reports (``torch.cpu.get_capabilities``, which names them alike).
    ``torch.backends.cpu.get_cpu_capability()`` is no help here: it says "AVX512" on CPUs with and
    without bf16 instructions. Kept as a small function so tests can replace it."""
    flags = _proc_cpuinfo_flags() or _torch_cpu_flags()
    return next((name for flag, name in FAST_BF16_FLAGS.items() if flag in flags), None)


def _proc_cpuinfo_flags() -> set[str]:
    if not sys.platform.startswith("linux"):
        return set()
    try:
        return cpuinfo_flags(Path("/proc/cpuinfo").read_text())
    except OSError:
        return set()


def cpuinfo_flags(text: str) -> set[str]:
    """The flags of every ``flags : ...`` line of a /proc/cpuinfo text."""
    return {flag for line in text.splitlines() if line.split(":", 1)[0].strip() == "flags"
            for flag in line.split(":", 1)[-1].split()}


def _torch_cpu_flags() -> set[str]:
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is None:
        return set()
    try:
        return {name for name, present in capabilities().items() if present is True}
    except RuntimeError:
        return set()


def cuda_has_bf16(device: torch.device) -> bool:
    """True when the CUDA device runs bf16 natively (Ampere or later). Kept small for tests."""
    if not torch.cuda.is_available():
        return False
    with torch.cuda.device(device):
        return torch.cuda.is_bf16_supported(including_emulation=False)


def resolve_dtype(
    dtype: str | torch.dtype | None, device: str | torch.device = "cpu", argument: str = "dtype"
) -> torch.dtype | None:
    """``dtype`` as a ``torch.dtype`` for running on ``device``.

    None stays None (keep the precision the weights are stored in); ``"auto"`` is bf16 where the
    hardware runs it fast (``auto_choice``), else fp32; ``"fp32"``/``"float32"``, ``"bf16"``/
    ``"bfloat16"``, ``"fp16"``/``"float16"`` and those three ``torch.dtype`` values are themselves.
    Anything else is a ``ValueError`` that names ``argument``."""
    if dtype is None or (isinstance(dtype, torch.dtype) and dtype in SHORT):
        return dtype
    if dtype == "auto":
        return auto_choice(device)[0]
    if isinstance(dtype, str) and dtype in NAMES:
        return NAMES[dtype]
    raise ValueError(f"{argument} must be one of {', '.join(CHOICES)} (or float32, bfloat16, float16, a "
                     f"torch.dtype of those, or None for the stored precision), got {dtype!r}")


def auto_choice(device: str | torch.device) -> tuple[torch.dtype, str]:
    """What ``"auto"`` picks on ``device``, and why in a few words."""
    device = torch.device(device)
    if device.type == "cuda":
        if cuda_has_bf16(device):
            return torch.bfloat16, "GPU with bf16"
        return torch.float32, "no bf16 on this GPU"
    if device.type == "cpu":
        instructions = cpu_bf16_instructions()
        if instructions is not None:
            return torch.bfloat16, f"CPU with {instructions}"
        return torch.float32, "no fast bf16 on this CPU"
    return torch.float32, f"auto picks bf16 only on CUDA and on CPUs with AMX or AVX512-BF16, not on {device.type}"


def describe_dtype(dtype: str | torch.dtype | None, device: str | torch.device = "cpu") -> str:
    """One line saying what ``dtype`` comes to on ``device``: ``"bf16 (CPU with AMX)"``,
    ``"fp32 (no fast bf16 on this CPU)"``, ``"bf16 (as asked)"``, ``"as stored in the checkpoint"``."""
    if dtype == "auto":
        chosen, why = auto_choice(device)
        return f"{SHORT[chosen]} ({why})"
    resolved = resolve_dtype(dtype, device)
    return "as stored in the checkpoint" if resolved is None else f"{SHORT[resolved]} (as asked)"
