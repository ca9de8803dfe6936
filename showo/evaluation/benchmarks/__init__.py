"""Public benchmarks, one command each (``showo eval``): the pictures of GenEval's and DPG-Bench's
prompts in the layouts their own scorers read (``geneval``, ``dpg``, through ``drawing``), a
built-in yes/no and short-answer evaluation (``vqa``, ``vqa_scoring``), Show-o as an lmms-eval model
(``lmms_eval_model``, ``likelihood``), and the record every run writes beside its outputs
(``records``). ``lmms_eval_model`` is not imported here: only lmms-eval and its users need it."""
