"""``showo quickstart``: every task measured on the held-out split of the built-in world
(``evaluate``, with the items and checks in ``tasks``), written up as a report (``report``).
``benchmarks``: the public benchmarks of ``showo eval`` (GenEval, DPG-Bench, VQA) and Show-o as an
lmms-eval model."""
