"""Answers that show their work: compare each object with what the question asks about, then answer.

A reasoned answer takes the objects of the picture in slot order (as the canonical caption
does); for each it names the object, restates what the question is about in the same order
of words (``any`` / ``object`` / ``anywhere`` for what the question leaves open) and marks
whether they agree; then it gives the short answer after ``ANSWER_MARKER``::

    Is there a red triangle?
    small green square top left is any red triangle anywhere no, large red circle top right
    is any red triangle anywhere no; answer: no

    Is the large circle above the small circle?
    large red circle top left is large any circle anywhere yes and small any circle anywhere
    no, small blue circle bottom right is large any circle anywhere no and small any circle
    anywhere yes; top left above bottom right; answer: yes

Each mark compares words at fixed distances before it, and each restatement copies the one
before it, so every token is a local step, which a small model learns far sooner than the
answer itself; ``ShowoPipeline.answer`` returns what follows the marker when a model's
``generation_config.json`` names it (``answer_marker``).
"""

from __future__ import annotations

from .language import RELATION_PHRASES, ObjSpec
from .qa import answer_parsed, parse_question, the_one
from .scene import Obj, Scene

ANSWER_MARKER = "answer:"


def _restated(spec: ObjSpec) -> str:
    return f"{spec.size or 'any'} {spec.colour or 'any'} {spec.shape or 'object'} {spec.slot or 'anywhere'}"


def _item(obj: Obj, specs: list[ObjSpec]) -> str:
    named = f"{obj.size} {obj.colour} {obj.shape} {obj.slot}"
    return named + " is " + " and ".join(f"{_restated(s)} {'yes' if s.matches(obj) else 'no'}" for s in specs)


def reasoned_answer(question: str, scene: Scene) -> str | None:
    """The worked answer to one of ``showo.world.qa``'s short-answer questions, or None
    (a caption question, a question it cannot parse, or one the scene does not answer)."""
    parsed = parse_question(question)
    if parsed is None or parsed[0] == "caption":
        return None
    form, specs = parsed
    answer = answer_parsed(form, specs, scene)
    if answer is None:
        return None
    scan = ", ".join(_item(o, specs) for o in scene.objects)
    if form == "relation":
        a, b = (the_one(s, scene) for s in specs)
        scan += f"; {a.slot} {RELATION_PHRASES[specs[0].relation[0]]} {b.slot}"
    return f"{scan}; {ANSWER_MARKER} {answer}"
