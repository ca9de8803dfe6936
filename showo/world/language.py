"""The world's language: captions, a parser for them, and the checks that judge model text.

Captions name objects as noun phrases, ``[number] [size] [colour] shape[s] [at the SLOT]``,
joined by "and" or a relation ("to the left of", "above", ...). ``parse_caption`` reads
them back into partial object specs, so that generated captions and GenEval-style prompts
can be checked against a scene read from pixels.

A parsed caption holds for a scene when every spec's count is exact (the caption "a red
circle" is false of a picture with two red circles), distinct specs name distinct objects,
and every stated relation holds. It need not mention every object unless ``complete``.
The parser knows the shapes and colours of every concept (``scene.CONCEPTS``): no default text
names one. A word that fixes a size (a dot is always small: ``scene.WORD_SHAPES``) is never said
with a size word: "a red dot", never "a small red dot".
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, replace

import numpy as np

from .scene import ALL_COLOURS, ALL_SHAPES, RELATIONS, SIZES, SLOTS, WORD_SHAPES, Obj, Scene, relation_holds

NUMBER_WORDS = ("zero", "one", "two", "three", "four")
MAX_CAPTION_WORDS = 25
COUNT_WORDS = {"no": 0, "zero": 0, "a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "three": 3, "four": 4}
COUNT_WORDS.update({str(n): n for n in range(5)})
SYNONYMS = {"big": "large", "little": "small", "tiny": "small", "upper": "top", "lower": "bottom", "color": "colour"}
GENERIC_NOUNS = ("object", "shape", "thing")
RELATION_PHRASES = {"left of": "to the left of", "right of": "to the right of", "above": "above", "below": "below"}
_RELATION_PATTERNS = (
    (("to", "the", "left", "of"), "left of"), (("to", "the", "right", "of"), "right of"),
    (("on", "the", "left", "of"), "left of"), (("on", "the", "right", "of"), "right of"),
    (("left", "of"), "left of"), (("right", "of"), "right of"), (("above",), "above"), (("over",), "above"),
    (("below",), "below"), (("under",), "below"), (("beneath",), "below"),
)


def number_word(n: int) -> str:
    return NUMBER_WORDS[n]


def noun_phrase(shape: str | None, count: int = 1, colour: str | None = None, size: str | None = None,
                slot: str | None = None, where: str = "at the") -> str:
    """"a small red circle at the top left", "two blue squares", "a green object"; a dot's size goes unsaid."""
    noun = shape or "object"
    size = None if shape in WORD_SHAPES else size
    words = [w for w in (size, colour) if w] + [noun if count == 1 else noun + "s"]
    article = ("an" if words[0][0] in "aeiou" else "a") if count == 1 else number_word(count)
    words.insert(0, article)
    if slot:
        words += [where, slot] if where else [slot]
    return " ".join(words)


def object_phrase(obj: Obj, size: bool = True, colour: bool = True, slot: bool = True, where: str = "at the") -> str:
    return noun_phrase(obj.shape, 1, obj.colour if colour else None, obj.size if size else None,
                       obj.slot if slot else None, where)


def join_phrases(phrases: list[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def canonical_caption(scene: Scene) -> str:
    """Every object with every attribute, in slot order: the target of "Describe the image.".

    Four objects would take 33 words, so they drop "at the": "a small red circle top left".
    """
    caption = join_phrases([object_phrase(o) for o in scene.objects])
    if len(caption.split()) > MAX_CAPTION_WORDS:
        caption = join_phrases([object_phrase(o, where="") for o in scene.objects])
    return caption


# ---------------------------------------------------------------- varied captions for t2i


def _grouped_phrases(scene: Scene, show: dict[str, bool], rng: np.random.Generator) -> list[str]:
    """One phrase per group of objects that the shown attributes cannot tell apart."""
    keys = [a for a in ("size", "colour", "slot") if show[a]]
    groups: dict[tuple, list[Obj]] = {}
    for obj in scene.objects:
        groups.setdefault((obj.shape,) + tuple(getattr(obj, k) for k in keys), []).append(obj)
    phrases = []
    for objs in groups.values():
        o = objs[0]
        phrases.append(noun_phrase(o.shape, len(objs), o.colour if show["colour"] else None,
                                   o.size if show["size"] else None, o.slot if show["slot"] else None, show["where"]))
    if rng.random() < 0.5:
        phrases = [phrases[k] for k in rng.permutation(len(phrases))]
    return phrases


def _list_caption(scene: Scene, show: dict[str, bool], rng: np.random.Generator) -> str:
    phrases = _grouped_phrases(scene, show, rng)
    body = join_phrases(phrases)
    n = len(scene.objects)
    first_plural = not phrases[0].startswith("a ")
    prefixes = ["", "", "there are " if first_plural else "there is ", "an image of ", "a picture of ",
                "a black background with "]
    if n >= 2:
        prefixes.append(f"{number_word(n)} objects: ")
    return prefixes[rng.integers(len(prefixes))] + body


def _relation_caption(scene: Scene, show: dict[str, bool], rng: np.random.Generator) -> str | None:
    """"a red circle to the left of a blue square"; None when the two phrases would be equal."""
    a, b = (scene.objects[k] for k in rng.permutation(2))
    first, second = (object_phrase(o, show["size"], show["colour"], slot=False) for o in (a, b))
    if first == second:
        return None
    true = [r for r in RELATIONS if relation_holds(r, a, b)]
    return f"{first} {RELATION_PHRASES[true[rng.integers(len(true))]]} {second}"


def random_caption(scene: Scene, rng: np.random.Generator) -> str:
    """A varied caption of at most ``MAX_CAPTION_WORDS`` words that is true of the scene."""
    # Colours are left out of 3 captions in 10 so that captions such as "a triangle and a circle"
    # are common enough to learn; at 1 in 10 the shipped model drew two triangles for it half
    # the time (docs/world-training/README.md, run 11).
    show = {"size": rng.random() < 0.4, "slot": rng.random() < 0.5, "colour": rng.random() >= 0.3,
            "where": ("at the", "in the")[rng.integers(2)]}
    if len(scene.objects) == 2 and rng.random() < 0.35:
        caption = _relation_caption(scene, show, rng)
        if caption is not None:
            return caption
    caption = _list_caption(scene, show, rng)
    for attribute in ("size", "where", "slot"):  # many fully described objects run long: say less
        if len(caption.split()) <= MAX_CAPTION_WORDS:
            break
        show[attribute] = "" if attribute == "where" else False
        caption = _list_caption(scene, show, rng)
    return caption


# ---------------------------------------------------------------- parsing


@dataclass(frozen=True)
class ObjSpec:
    """What a noun phrase says about objects; None means "not stated".

    ``count`` None means "some" (a plural without a number); ``shape`` None is a generic
    noun ("three objects", "the red object"); ``relation`` is (relation, index of the other
    spec) for "this spec's objects are <relation> that spec's objects".
    """

    shape: str | None = None
    colour: str | None = None
    size: str | None = None
    slot: str | None = None
    count: int | None = 1
    relation: tuple[str, int] | None = None

    def matches(self, obj: Obj) -> bool:
        return all(v is None or v == getattr(obj, k) for k, v in
                   (("shape", self.shape), ("colour", self.colour), ("size", self.size), ("slot", self.slot)))


def words_of(text: str) -> list[str]:
    """Lower-cased words without punctuation, synonyms mapped to the world's words."""
    words = re.sub(r"[^a-z0-9 ]", " ", text.lower().replace("-", " ")).split()
    return [SYNONYMS.get(w, w) for w in words]


def _noun(word: str) -> tuple[str | None, bool] | None:
    """(shape or None for a generic noun, plural) when ``word`` names objects."""
    for noun in ALL_SHAPES + GENERIC_NOUNS:
        if word in (noun, noun + "s"):
            return (noun if noun in ALL_SHAPES else None), word.endswith("s")
    return None


def _read_before(words: list[str], i: int, plural: bool) -> tuple[dict[str, str], int | None]:
    """Adjectives and the count word in front of the noun at ``i``."""
    attrs: dict[str, str] = {}
    j = i - 1
    while j >= 0 and (words[j] in ALL_COLOURS or words[j] in SIZES):
        attrs["colour" if words[j] in ALL_COLOURS else "size"] = words[j]
        j -= 1
    if j >= 0 and words[j] in COUNT_WORDS:
        return attrs, COUNT_WORDS[words[j]]
    return attrs, (None if plural else 1)


def _read_slot(words: list[str], i: int) -> tuple[str | None, int]:
    """A slot right after the noun ("at the top left corner"); returns the next index."""
    j = i
    if j < len(words) and words[j] in ("at", "in", "on"):
        j += 1
    if j < len(words) and words[j] == "the":
        j += 1
    slot = " ".join(words[j:j + 2])
    if slot not in SLOTS:
        return None, i
    j += 2
    if j < len(words) and words[j] in ("corner", "side"):
        j += 1
    return slot, j


def _read_relation(words: list[str], i: int) -> tuple[str | None, int]:
    j = i + (i < len(words) and words[i] in ("is", "are", "sits", "placed"))
    for pattern, relation in _RELATION_PATTERNS:
        if tuple(words[j:j + len(pattern)]) == pattern:
            return relation, j + len(pattern)
    return None, i


def parse_caption(text: str) -> list[ObjSpec]:
    """The noun phrases of ``text`` as specs, in order, with relations between neighbours."""
    words = words_of(text)
    specs: list[ObjSpec] = []
    pending: str | None = None
    i = 0
    while i < len(words):
        noun = _noun(words[i])
        if noun is None:
            i += 1
            continue
        attrs, count = _read_before(words, i, noun[1])
        slot, i = _read_slot(words, i + 1)
        if pending is not None:
            specs[-1] = replace(specs[-1], relation=(pending, len(specs)))
        specs.append(ObjSpec(noun[0], attrs.get("colour"), attrs.get("size"), slot, count))
        pending, i = _read_relation(words, i)
    return specs


# ---------------------------------------------------------------- judging


def _count_ok(spec: ObjSpec, scene: Scene, exact: bool) -> bool:
    n = sum(spec.matches(o) for o in scene.objects)
    if spec.count is None:
        return n >= 1
    return n == spec.count if exact else n >= spec.count


def _assignments(specs: list[ObjSpec], objects: tuple[Obj, ...], used: frozenset, k: int = 0):
    """Every way to give each shaped spec its own objects; generic specs take none."""
    if k == len(specs):
        yield []
        return
    spec = specs[k]
    need = 0 if spec.shape is None else (1 if spec.count is None else spec.count)
    free = [i for i, o in enumerate(objects) if i not in used and spec.matches(o)]
    for chosen in itertools.combinations(free, need):
        for rest in _assignments(specs, objects, used | set(chosen), k + 1):
            yield [chosen] + rest


def _relations_ok(specs: list[ObjSpec], chosen: list[tuple[int, ...]], scene: Scene) -> bool:
    for spec, mine in zip(specs, chosen):
        if spec.relation is not None:
            relation, other = spec.relation
            if not mine or not chosen[other]:
                return False
            if not all(relation_holds(relation, scene.objects[a], scene.objects[b])
                       for a in mine for b in chosen[other]):
                return False
    return True


def specs_hold(specs: list[ObjSpec], scene: Scene, exact_counts: bool = True, exact_total: bool = False) -> bool:
    """Whether the scene satisfies all specs (see the module docstring for the rules).

    ``exact_counts``: a spec's count must equal (not just reach) its matches in the scene;
    ``exact_total``: the shaped specs must account for every object of the scene.
    """
    if not specs or not all(_count_ok(s, scene, exact_counts) for s in specs):
        return False
    for chosen in _assignments(specs, scene.objects, frozenset()):
        used = sum(len(c) for c in chosen)
        if (not exact_total or used == len(scene.objects)) and _relations_ok(specs, chosen, scene):
            return True
    return False


def caption_matches(text: str, scene: Scene, complete: bool = False) -> bool:
    """Whether a (generated) caption is true of the scene; ``complete`` also asks it to name every object."""
    return specs_hold(parse_caption(text), scene, exact_counts=True, exact_total=complete)


def normalise_answer(text: str) -> str:
    """Lower case, no punctuation, no articles or leading preposition, digits as number words."""
    words = [NUMBER_WORDS[int(w)] if w.isdigit() and int(w) < len(NUMBER_WORDS) else w for w in words_of(text)]
    words = [w for w in words if w not in ("a", "an", "the", "corner")]
    if words and words[0] in ("at", "in", "on"):
        words = words[1:]
    return " ".join(words)


def answer_matches(predicted: str, expected: str) -> bool:
    """Exact match after ``normalise_answer``: "The Top-Left corner." matches "top left"."""
    return normalise_answer(predicted) == normalise_answer(expected)
