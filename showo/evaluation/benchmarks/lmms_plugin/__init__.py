"""Show-o as an lmms-eval plugin in the older layout (``LMMS_EVAL_PLUGINS=showo.evaluation.benchmarks.lmms_plugin``):
lmms-eval imports ``<plugin>.models`` for ``AVAILABLE_MODELS`` (model name -> class name, the class
in ``<plugin>.models.<name>``) and adds ``<plugin>/tasks`` to its task folders (none here). lmms-eval
0.7 prefers the entry point of ``pyproject.toml``; see ``showo.evaluation.benchmarks.lmms_eval_model``."""
