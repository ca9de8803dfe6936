"""``showo``: the lmms-eval model of ``showo.evaluation.benchmarks.lmms_eval_model``."""

from ...lmms_eval_model import ShowoLmms

__all__ = ["ShowoLmms"]
