"""What every sub-command shares: clean terminal text, the device and output checks, and the
contract that turns failures into exit codes.

* A user error (``ValueError``, ``OSError``: a bad argument, file, config or a full disk) prints
  one line, ``showo CMD: error: ...``, and exits with 2.
* An interrupted training run prints where it stopped and exits with 128 + the signal (130 for
  Ctrl-C, 143 for SIGTERM); any other Ctrl-C exits with 130.
* Anything else is a bug: one line naming it, exit 1. ``--debug`` or ``SHOWO_DEBUG=1`` shows the
  traceback instead, for every kind.

Text that reaches the terminal, warnings included, is stripped of control characters (escape
sequences in a prompt, an answer or a file name cannot drive the terminal).
"""

from __future__ import annotations

import os
import sys
import unicodedata
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from ..model.precision import CHOICES, describe_dtype
from ..training.trainer import TrainingDiverged, TrainingInterrupted

USER_ERRORS = (ValueError, OSError, TrainingDiverged)


def terminal_text(value: object) -> str:
    """``value`` as one printable line: control characters dropped, line breaks as ' / ',
    characters that cannot be encoded (lone surrogates) as '?'."""
    text = str(value).encode("utf-8", "replace").decode("utf-8")
    lines = ("".join(c for c in line if unicodedata.category(c) != "Cc") for line in text.splitlines())
    return " / ".join(line.strip() for line in lines if line.strip())


def say(*parts: object, error: bool = False) -> None:
    """Print ``parts`` as one clean line (to stderr with ``error``)."""
    print(terminal_text(" ".join(str(p) for p in parts)), file=sys.stderr if error else sys.stdout, flush=True)


def debugging(args) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get("SHOWO_DEBUG", "") not in ("", "0")


def run_command(command: str, run: Callable[[], None], debug: bool) -> int:
    """Run one sub-command under the exit-code contract above; returns the exit code. Python
    warnings (a prompt cut to the budget, a bad record skipped) print as clean lines too."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        say(f"showo {command}: warning: {message}", error=True)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            run()
    except TrainingInterrupted as e:
        say(f"showo {command}: {e}", error=True)
        return e.exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        say(f"showo {command}: interrupted", error=True)
        return 130
    except USER_ERRORS as e:
        if debug:
            raise
        say(f"showo {command}: error: {e}", error=True)
        return 2
    except Exception as e:
        if debug:
            raise
        say(f"showo {command}: internal error: {type(e).__name__}: {e} "
            "(run again with --debug, or SHOWO_DEBUG=1, for the traceback)", error=True)
        return 1
    return 0


def check_device(name: str | None) -> torch.device:
    """``name`` as a device this torch can use, or a ValueError that says why not; None: CUDA when
    torch sees a GPU, else the CPU."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"--device {name!r}: not a device name (cpu, cuda, cuda:1, mps): {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: this torch ({torch.__version__}) sees no CUDA GPU; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: there are {torch.cuda.device_count()} CUDA devices")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name}: MPS is not available here; use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device {name}: showo runs on cpu, cuda or mps")
    return device


def check_dtype(name: str, device: torch.device) -> str:
    """``--dtype NAME`` checked against the choices (a ValueError naming it otherwise); returns what
    it comes to on ``device`` in a few words (``"bf16 (CPU with AMX)"``)."""
    if name not in CHOICES:
        raise ValueError(f"--dtype {name!r}: expected one of {', '.join(CHOICES)}")
    return describe_dtype(name, device)


def set_threads(threads: int | None) -> None:
    """``--threads``: the CPU threads torch may use (None: leave torch's choice)."""
    if threads is None:
        return
    if not 1 <= threads <= 4096:
        raise ValueError(f"--threads must lie in 1..4096, got {threads}")
    torch.set_num_threads(threads)


def output_folder(path: str | Path) -> Path:
    """``path`` made ready as a results folder (created if missing), or a ValueError if it is a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--output {path}: is a file; give a folder for the results")
    path.mkdir(parents=True, exist_ok=True)
    return path
