"""Checks of the arguments of every public generation entry, before any forward pass.

Each check raises one ``ValueError`` that names the argument, says what it must be and shows
what it got: numbers must be finite and in range, integers must be integers (not floats,
strings or booleans), texts must be strings of valid Unicode. Sequences are measured against
the model's positions (``config.llm.max_position_embeddings``) with the numbers: positions
needed and positions available.

Upper bounds where a larger value would only burn compute or overflow to NaN:

* ``MAX_STEPS`` = 1000 MaskGIT steps per picture (the paper samples in 16 to 50; a picture of
  N tokens changes nothing after N steps);
* ``MAX_GUIDANCE`` = 100: classifier-free guidance scales logit differences; far beyond the
  useful range (1 to 10) it only amplifies noise, and huge values overflow to NaN;
* ``MAX_TEMPERATURE`` = 100: a hotter sampler is uniform noise; an infinite one gives NaN;
* ``MIN_TEXT_TEMPERATURE`` = 1e-4: text logits are divided by the temperature, and a smaller
  positive one overflows to infinity (0 itself means greedy decoding);
* ``MAX_SEED`` = 2**63 - 1, the largest seed ``torch.Generator.manual_seed`` takes (rows of a
  batch use ``seed``, ``seed + 1``, ...).

Texts are measured in characters before they are tokenized, so a huge text costs nothing: a
tokenizer whose longest token spells ``k`` characters needs at least ``n / k`` tokens for ``n``
characters (true of byte-level BPEs, showo's and phi-1.5's, which have no normalizer that drops
characters), so a text of more than ``k`` characters per free position cannot fit and is refused
untokenized (a text-to-image prompt, which is cut rather than refused, is cut to that many).
"""

from __future__ import annotations

import contextlib
import warnings
import weakref
from collections.abc import Sequence
from typing import Any

from ..model.validation import is_finite_number, is_integer, shown, unicode_problem

MAX_STEPS = 1000
MAX_GUIDANCE = 100.0
MAX_TEMPERATURE = 100.0
MIN_TEXT_TEMPERATURE = 1e-4
MAX_SEED = 2**63 - 1


def integer(name: str, value: Any, low: int | None = None, high: int | None = None, why: str = "") -> int:
    """``value`` as an int in ``[low, high]`` (either bound may be None); ``why`` explains ``high``."""
    if not is_integer(value):
        raise ValueError(f"{name} must be an integer, got {shown(value)}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be at most {high}{why}, got {value}")
    return int(value)


def number(name: str, value: Any, low: float | None = None, high: float | None = None, why: str = "") -> float:
    """``value``, a finite int or float in ``[low, high]`` (either bound may be None)."""
    if not is_finite_number(value):
        kind = "a finite number" if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
        raise ValueError(f"{name} must be {kind}, got {shown(value)}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}{why}, got {value}")
    return value


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {shown(value)}")
    return value


def seed(value: Any, rows: int = 1, name: str = "seed") -> int | None:
    """None, or an int seed such that every row's ``seed + i`` is a valid generator seed."""
    if value is None:
        return None
    return integer(name, value, 0, MAX_SEED - (rows - 1), " (the largest generator seed, less one per extra row)")


def steps(value: Any) -> int:
    return integer("steps", value, 1, MAX_STEPS, " (more steps only burn compute)")


def guidance_scale(value: Any) -> float:
    return number("guidance_scale", value, 0, MAX_GUIDANCE, " (larger only amplifies noise)")


def text_temperature(value: Any) -> float:
    """The temperature of text sampling: 0 (greedy) or in ``[MIN_TEXT_TEMPERATURE, MAX_TEMPERATURE]``."""
    value = number("temperature", value, 0, MAX_TEMPERATURE, " (hotter is uniform noise)")
    if 0 < value < MIN_TEXT_TEMPERATURE:
        raise ValueError(f"temperature must be 0 (greedy) or at least {MIN_TEXT_TEMPERATURE} (the logits are "
                         f"divided by it), got {value}")
    return value


def text(name: str, value: Any, max_chars: int | None = None, what: str = "", cut: bool = False) -> str:
    """``value``, a string of valid Unicode. Over ``max_chars`` characters it is refused, or with
    ``cut`` cut to that many with a warning (``what`` says why, in either message). The length is
    measured before anything else reads the text."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__} {shown(value)}")
    if max_chars is not None and len(value) > max_chars:
        if not cut:
            raise ValueError(f"{name} is {len(value):,} characters long; {what}")
        warnings.warn(f"{name} of {len(value):,} characters is cut to its first {max_chars:,} before it is "
                      f"tokenized; {what}", stacklevel=4)
        value = value[:max_chars]
    problem = unicode_problem(value)
    if problem:
        raise ValueError(f"{name} holds {problem}")
    return value


def strings(name: str, value: Any) -> list[str]:
    """One string, or a non-empty list or tuple of strings, as a list; only the types are checked
    (the texts themselves are read by :func:`text` or :func:`measured_text`, length first)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"{name} must be a string or a list of strings, got {type(value).__name__} {shown(value)}")
    if not items:
        raise ValueError(f"{name} is empty: give at least one")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            where = name if isinstance(value, str) else f"{name}[{i}]"
            raise ValueError(f"{where} must be a string, got {type(item).__name__} {shown(item)}")
    return list(items)


def texts(name: str, value: Any, max_chars: int | None = None, what: str = "", cut: bool = False) -> list[str]:
    """One string, or a non-empty list or tuple of strings, as a list (each checked by :func:`text`)."""
    items = strings(name, value)
    if isinstance(value, str):
        return [text(name, value, max_chars, what, cut)]
    return [text(f"{name}[{i}]", item, max_chars, what, cut) for i, item in enumerate(items)]


# -- positions ----------------------------------------------------------------------------------


def positions(model) -> int:
    """The positions the model was built for: ``config.llm.max_position_embeddings``."""
    return model.config.llm.max_position_embeddings


def check_fits(what: str, parts: Sequence[tuple[int, str]], available: int, advice: str = "") -> None:
    """Refuse ``what`` when the positions it needs (the sum of ``parts``: (count, name)) exceed ``available``."""
    needed = sum(count for count, _ in parts)
    if needed > available:
        raise ValueError(f"{what} needs {needed:,} positions ({_detail(parts)}) but the model has {available:,} "
                         f"(max_position_embeddings){'; ' + advice if advice else ''}")


def _detail(parts: Sequence[tuple[int, str]]) -> str:
    return " + ".join(f"{count:,} {name}" for count, name in parts if count)


_LONGEST: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def longest_token(tokenizer) -> int | None:
    """Characters of the tokenizer's longest token (None when it cannot say): an upper bound on
    the characters one token of any text stands for."""
    try:
        return _LONGEST[tokenizer]
    except (KeyError, TypeError):
        pass
    try:
        vocab = tokenizer.tokenizer.get_vocab(with_added_tokens=True)
        longest = max(1, *(len(token) for token in vocab))
    except (AttributeError, TypeError, ValueError):
        return None
    with contextlib.suppress(TypeError):  # not weakly referenceable: measured again next time
        _LONGEST[tokenizer] = longest
    return longest


def max_chars(tokenizer, tokens: int) -> int | None:
    """The most characters a text of ``tokens`` tokens can have (None: no bound known)."""
    longest = longest_token(tokenizer)
    return None if longest is None else max(tokens, 0) * longest


def measured_text(
    name: str,
    value: Any,
    tokenizer,
    what: str,
    parts: Sequence[tuple[int | None, str]],
    available: int,
    advice: str = "",
    encode=None,
) -> list[int]:
    """Check the text ``value`` (:func:`text`), tokenize it and measure ``what`` against the model's
    ``available`` positions, refusing with the numbers. ``parts`` are the (count, name) of the
    sequence's parts, the text's own count None; ``encode`` (default ``tokenizer.encode``) turns
    the text into ids. A text with more characters than the room left could hold is refused
    before it is tokenized (see the module's docstring)."""
    fixed = [(count, part) for count, part in parts if count is not None]
    text_part = next(part for count, part in parts if count is None)
    room = available - sum(count for count, _ in fixed)
    suffix = f"; {advice}" if advice else ""
    if room <= 0:
        raise ValueError(f"{what} needs {available - room:,} positions before its {text_part} ({_detail(fixed)}) "
                         f"but the model has {available:,} (max_position_embeddings){suffix}")
    limit, longest = max_chars(tokenizer, room), longest_token(tokenizer)
    value = text(name, value, limit, f"{_detail(fixed)} leave room for {room:,} {text_part} in the model's "
                                     f"{available:,} positions (max_position_embeddings), and {room:,} tokens of this "
                                     f"tokenizer (its longest spells {longest} characters) hold at most "
                                     f"{limit if limit is None else f'{limit:,}'} characters{suffix}")
    ids = (encode or tokenizer.encode)(value)
    check_fits(what, [(len(ids), part) if count is None else (count, part) for count, part in parts], available,
               advice)
    return ids
