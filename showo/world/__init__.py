"""The built-in world: a procedural data set of coloured shapes, and its pixel-reading judge.

No data can be downloaded, so a tiny Show-o is trained and measured here. ``scene`` says
what a picture may hold and draws it, ``language`` turns scenes into captions and checks
captions against scenes, ``qa`` asks and answers questions, ``reasoning`` works answers out
object by object, ``dataset`` yields every kind of training sample, ``evaluator`` reads scenes
back from pixels, ``geneval`` holds GenEval-style prompts and their checks, ``heldout`` the test
items that the quickstart's evaluation and the training monitor share, ``concepts`` the fixed
checks of an opt-in concept the shipped model has never seen (``CONCEPTS``: the diamond, the dot,
cyan).
numpy and pillow only.
"""

from .concepts import (
    CONCEPT_QUESTION_KINDS,
    concept_prompts,
    concept_question_kinds,
    concept_questions,
    score_concept_answers,
)
from .dataset import KINDS, SPLITS, WorldDataset
from .evaluator import degrade_image, evaluator_accuracy, read_scene
from .geneval import GENEVAL_CATEGORIES, check_prompt, geneval_prompts, geneval_scores, scene_from_spec
from .language import (
    ObjSpec,
    answer_matches,
    canonical_caption,
    caption_matches,
    normalise_answer,
    parse_caption,
    random_caption,
)
from .qa import QA_KINDS, answer_question, make_question
from .scene import (
    CLASS_NAMES,
    COLOURS,
    CONCEPTS,
    HELDOUT_PAIRS,
    PALETTE,
    RELATIONS,
    SHAPES,
    SIZES,
    SLOTS,
    Obj,
    Scene,
    is_heldout,
    relation_holds,
    sample_scene,
)

__all__ = [
    "CLASS_NAMES",
    "COLOURS",
    "CONCEPTS",
    "CONCEPT_QUESTION_KINDS",
    "GENEVAL_CATEGORIES",
    "HELDOUT_PAIRS",
    "KINDS",
    "PALETTE",
    "QA_KINDS",
    "RELATIONS",
    "SHAPES",
    "SIZES",
    "SLOTS",
    "SPLITS",
    "Obj",
    "ObjSpec",
    "Scene",
    "WorldDataset",
    "answer_matches",
    "answer_question",
    "canonical_caption",
    "caption_matches",
    "check_prompt",
    "concept_prompts",
    "concept_question_kinds",
    "concept_questions",
    "degrade_image",
    "evaluator_accuracy",
    "geneval_prompts",
    "geneval_scores",
    "is_heldout",
    "make_question",
    "normalise_answer",
    "parse_caption",
    "random_caption",
    "read_scene",
    "relation_holds",
    "sample_scene",
    "scene_from_spec",
    "score_concept_answers",
]
