"""Text-to-image (and inpainting / extrapolation) by MaskGIT decoding, using Show-o's structure.

In a t2i sequence no text position attends to an image position, so the text prefix
(conditional and unconditional rows together) runs once and its keys/values are reused at
every step; each step runs only ``<soi> image <eoi>`` and computes logits only for the image
positions and only over the image codes. With ``cache_refresh_every`` a step may also reuse the
keys/values of the image positions that did not change (``_ReusingImageLogits``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model.omni_attention import omni_attention_mask
from ..model.validation import is_integer, shown
from . import arguments
from .compiled_step import compiled_step, static_cache
from .maskgit import MASKED, MaskGITSampler, refuse_in_released_mode


def image_span(input_ids: torch.Tensor, layout) -> tuple[int, int]:
    """(start, end) of the image tokens of a batch of t2i sequences whose image ends the sequence."""
    soi = (input_ids == layout.soi_id).nonzero()
    if soi.numel() == 0:
        raise ValueError("input_ids hold no <soi>: expected t2i sequences `... <soi> image <eoi>`")
    positions = soi[:, 1].view(input_ids.shape[0], -1)[:, -1]  # last <soi> of each row
    if not (positions == positions[0]).all() or not (input_ids[:, -1] == layout.eoi_id).all():
        raise ValueError("every row must end with `<soi> image <eoi>` at the same positions")
    return int(positions[0]) + 1, input_ids.shape[1] - 1


def codes_to_ids(codes: torch.Tensor, layout) -> torch.Tensor:
    """Sampler codes (``MASKED`` where unknown) -> token ids ([MASK] where unknown)."""
    return torch.where(codes == MASKED, torch.full_like(codes, layout.mask_id), codes + layout.image_offset)


def initial_codes(input_ids: torch.Tensor, layout, start: int, end: int) -> torch.Tensor:
    """(B, N) codes of the image span, ``MASKED`` where [MASK]."""
    ids = input_ids[:, start:end]
    if not layout.is_image_slot(ids).all():
        raise ValueError("the image span may hold only image codes and [MASK]")
    return torch.where(ids == layout.mask_id, torch.full_like(ids, MASKED), ids - layout.image_offset)


def guided(cond: torch.Tensor, uncond: torch.Tensor | None, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``(1 + w) * cond - w * uncond``."""
    if uncond is None or guidance_scale == 0:
        return cond
    return (1 + guidance_scale) * cond - guidance_scale * uncond


def decoding_setup(input_ids, uncond_input_ids, guidance_scale, layout, positions: int | None = None):
    """Checks shared by every MaskGIT path; returns (start, end, codes, rows), where ``rows``
    are the sequences the model runs (cond, then uncond when guided). ``positions``: the model's
    (``max_position_embeddings``), which the sequences must fit."""
    arguments.guidance_scale(guidance_scale)
    _check_ids("input_ids", input_ids)
    if guidance_scale > 0 and uncond_input_ids is None:
        raise ValueError("guidance_scale > 0 needs uncond_input_ids (the same layout with an empty prompt)")
    if guidance_scale > 0:
        _check_ids("uncond_input_ids", uncond_input_ids)
        if uncond_input_ids.shape != input_ids.shape:
            raise ValueError(f"uncond_input_ids must have the shape of input_ids {tuple(input_ids.shape)}, "
                             f"got {tuple(uncond_input_ids.shape)}")
    if positions is not None:
        arguments.check_fits("the image sequence", [(input_ids.shape[1], "tokens")], positions,
                             "a shorter text budget or a smaller picture")
    start, end = image_span(input_ids, layout)
    codes = initial_codes(input_ids, layout, start, end)
    rows = input_ids if guidance_scale == 0 else torch.cat([input_ids, uncond_input_ids])
    layout.check_ids(rows)
    return start, end, codes, rows


def _check_ids(name: str, ids) -> None:
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.shape[0] == 0 or ids.shape[1] == 0:
        got = f"shape {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"{name} must be a non-empty (batch, length) tensor of ids, got {got}")


@torch.no_grad()
def generate_image_tokens(
    model,
    input_ids: torch.Tensor,
    uncond_input_ids: torch.Tensor | None = None,
    steps: int = 18,
    guidance_scale: float = 1.75,
    schedule: str = "cosine",
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    mode: str = "maskgit",
    callback=None,
    compile: bool = False,
    *,
    unmask: str = "schedule",
    confidence_threshold: float | None = None,
    entropy_budget: float | None = None,
    order: str = "confidence",
    guidance_interval: tuple[float, float] | None = None,
    draw: str = "multinomial",
    cache_refresh_every: int | None = None,
    cache_warmup_steps: int = 1,
) -> torch.Tensor:
    """(B, N) image codes. ``input_ids``: t2i sequences, image positions [MASK] or known codes.

    ``generator``: one ``torch.Generator`` for the batch, or a list with one per row (then
    each row's result does not depend on the others). ``callback(step, logits, sampled)``
    is called after every step (progress bars, denoising strips, tests).

    ``compile``: run each step's model call through ``torch.compile`` (CUDA graphs on CUDA;
    ``showo.generation.compiled_step``); the first call per model and shape pays the compile.

    Sampling accelerations, all off by default and refused with ``mode="released"``
    (``MaskGITSampler`` says what each trades):

    * ``unmask="confidence"`` (with ``confidence_threshold``) or ``"entropy"`` (with
      ``entropy_budget``): a step also commits the positions the model is sure of; ``steps`` is
      then the most model calls, and decoding stops once no position is unknown;
    * ``order="halton"``: positions are committed in a fixed 2D Halton order over the grid;
    * ``guidance_interval=(lo, hi)``: guidance only on steps with ``lo <= step / steps < hi``;
      the other steps run only the conditional rows, and their logits are the conditional ones;
    * ``draw="inverse_cdf"``: codes drawn from the same distribution by a cheaper method;
    * ``cache_refresh_every=k``: reuse across steps the keys/values of the image positions whose
      id did not change (``_ReusingImageLogits``): the first ``cache_warmup_steps`` steps and
      every k-th step run the whole image, the others only the unknown and the just-committed
      positions, reading the rest's keys/values as an earlier step wrote them (stale: the
      approximation; ``k=1`` is exact). Not with ``compile`` (a cheap step's shape varies).

    Refused before any forward pass: steps, schedule, temperature, mode, guidance or an option
    out of range (``MaskGITSampler``, ``showo.generation.arguments``) and sequences longer than
    the model's positions."""
    sampler = MaskGITSampler(steps, schedule, temperature, mode, unmask, confidence_threshold, entropy_budget,
                             order, guidance_interval, draw)
    check_kv_reuse(cache_refresh_every, cache_warmup_steps, mode, compile)
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable or None, got {type(callback).__name__}")
    layout = model.layout
    start, end, codes, rows = decoding_setup(input_ids, uncond_input_ids, guidance_scale, layout,
                                             arguments.positions(model))
    if cache_refresh_every is None:
        step_logits = _cached_image_logits(model, rows, start - 1, compile)
    else:
        step_logits = _ReusingImageLogits(model, rows, start - 1, cache_refresh_every, cache_warmup_steps)
    initially_masked = (codes == MASKED).sum(dim=-1)
    sampled = codes
    batch = codes.shape[0]
    for step in range(steps):
        guide = guidance_scale > 0 and sampler.guided_at(step)
        segment = _image_ids(codes, rows, start, end, layout)
        logits = step_logits(segment if guide else segment[:batch])  # (R, N, C), or (B, N, C) unguided
        logits = guided(logits[:batch], logits[batch:] if guide else None, guidance_scale)
        sampled, codes = sampler.step(step, logits, codes, initially_masked, generator)
        if callback is not None:
            callback(step, logits, sampled)
        if sampler.adaptive and not bool((codes == MASKED).any()):  # the one host sync, adaptive only
            break
    return sampled


def _image_ids(codes: torch.Tensor, rows: torch.Tensor, start: int, end: int, layout) -> torch.Tensor:
    """The ``<soi> image <eoi>`` segment of every row (cond and uncond share the image)."""
    ids = codes_to_ids(codes, layout).repeat(rows.shape[0] // codes.shape[0], 1)
    return torch.cat([rows[:, start - 1 : start], ids, rows[:, end:]], dim=1)


def _cached_image_logits(model, rows: torch.Tensor, prefix_length: int, compile: bool = False):
    """Run the text prefix of the R ``rows`` once; return ``step_logits``: segment ids -> image-code
    logits.

    The segment (``<soi> image <eoi>``, M ids) of all R rows (R, M) gives (R, N, C); that of only
    the first n rows (n, M), for example the conditional half of a guided batch on a step
    without guidance, gives (n, N, C), run against the first n rows of the prefix cache. A step
    writes its keys/values at the slots after the prefix (a tensor: no host value per step) and
    leaves the prefix untouched, so every step of one row count has the same shapes; with
    ``compile`` the step is compiled (``compiled_step``: CUDA graphs on CUDA)."""
    arguments.flag("compile", compile)
    prefix = _PrefixCache(model, rows, prefix_length)
    step = compiled_step(_image_step, rows.device) if compile else _image_step

    def logits(segment: torch.Tensor) -> torch.Tensor:
        count = _segment_rows(segment, rows.shape[0], prefix.full_slots.shape[0])
        cache = prefix.first_rows(count, static=compile)
        return step(model, cache, segment, prefix.segment_mask[:count], prefix.full_slots, prefix.weight, prefix.bias)

    return logits


class _PrefixCache:
    """The keys/values of the text prefix of the R ``rows``, computed once, with what every image
    step reads: ``segment_mask`` (R, 1, M, slots) the omni-attention rows of ``<soi> image <eoi>``,
    ``full_slots`` (M,) their cache slots, ``weight``/``bias`` the image-code rows of the head.
    ``spare_slots`` extra cache slots after the sequence are hidden from every token."""

    def __init__(self, model, rows: torch.Tensor, prefix_length: int, spare_slots: int = 0) -> None:
        layout = model.layout
        mask = omni_attention_mask(rows, layout)  # (R, 1, L, L)
        if spare_slots:
            mask = F.pad(mask, (0, spare_slots))  # (R, 1, L, L + spare), False there
        self.cache = model.new_cache(rows.shape[0], rows.shape[1] + spare_slots)
        model.hidden_states(rows[:, :prefix_length], attention_mask=mask[:, :, :prefix_length, :prefix_length],
                            cache=self.cache)
        codes = slice(layout.image_offset, layout.image_offset + layout.codebook_size)
        self.weight, self.bias = model.lm_head.weight[codes], model.lm_head.bias[codes]
        self.segment_mask = mask[:, :, prefix_length:, :]  # (R, 1, M, slots)
        self.full_slots = torch.arange(prefix_length, rows.shape[1], device=rows.device)  # (M,)
        self._first = {}  # row count -> the cache of the first rows (views of ``cache``)

    def first_rows(self, count: int, static: bool = False):
        """The prefix cache of the first ``count`` rows (``static``: marked for a compiled step)."""
        if count not in self._first:
            self._first[count] = self.cache.first_rows(count)
            if static:
                static_cache(self._first[count])
        return self._first[count]


def _image_step(model, cache, segment, segment_mask, slots, weight, bias) -> torch.Tensor:
    """One MaskGIT model call: the image-code logits (n, N, C) of a segment (n, M) on the prefix
    cache, written at ``slots`` (M,). Pure tensor work, so it compiles to one graph."""
    hidden = model.hidden_states(segment, attention_mask=segment_mask, cache=cache, cache_slots=slots)
    return F.linear(hidden[:, 1:-1], weight, bias)


def _segment_rows(segment, rows: int, width: int) -> int:
    """The row count of a segment for ``step_logits``: the first n of the R prefix rows, M ids each."""
    if not isinstance(segment, torch.Tensor) or segment.dim() != 2:
        raise ValueError(f"segment must be an (n, {width}) tensor of ids, got "
                         f"{tuple(segment.shape) if isinstance(segment, torch.Tensor) else type(segment).__name__}")
    if not 1 <= segment.shape[0] <= rows or segment.shape[1] != width:
        raise ValueError(f"segment must be (n, {width}) with 1 <= n <= {rows} (the first n prefix rows), "
                         f"got {tuple(segment.shape)}")
    return segment.shape[0]


# -- reusing the keys/values of unchanged image positions across steps ---------------------------

def check_cache_refresh_every(value, name: str = "cache_refresh_every"):
    """None (every step runs the whole image) or an integer k >= 1 (a full step every k steps)."""
    if value is not None and not (is_integer(value) and value >= 1):
        raise ValueError(f"{name} must be None (no reuse) or an integer >= 1 (a full step every k steps), "
                         f"got {shown(value)}")
    return value


def check_cache_warmup_steps(value, name: str = "cache_warmup_steps"):
    """An integer >= 1: the first step has no image keys/values to reuse, so it is always full."""
    if not (is_integer(value) and value >= 1):
        raise ValueError(f"{name} must be an integer >= 1 (the first steps always run the whole image), "
                         f"got {shown(value)}")
    return value


def check_kv_reuse(refresh_every, warmup_steps, mode: str, compile) -> None:
    """The key/value reuse options of ``generate_image_tokens``, and what they may not go with."""
    check_cache_refresh_every(refresh_every)
    check_cache_warmup_steps(warmup_steps)
    arguments.flag("compile", compile)
    if refresh_every is None:
        return
    if mode == "released":
        refuse_in_released_mode([f"cache_refresh_every={refresh_every!r}"])
    if compile:
        raise ValueError(f"compile=True needs steps of one shape, and cache_refresh_every={refresh_every!r} runs "
                         "a different number of positions at every step; choose one of them")


class _ReusingImageLogits:
    """``step_logits`` of ``_cached_image_logits`` that reuses, across steps, the keys/values of the
    image positions whose id did not change since they were written (ReCAP, NeurIPS 2025;
    Lumina-DiMOO's ML-Cache). The i-th call is step i.

    A full step (the first ``warmup_steps``, then every ``refresh_every``-th, and any step that
    runs rows never run before) runs the whole ``<soi> image <eoi>`` segment, as without reuse.
    A cheap step runs, per row, only the positions still unknown ([MASK], whose logits the
    sampler needs) and those whose id changed since their keys/values were written (just
    committed); every other image position, and ``<soi>``/``<eoi>``, is read from the cache as an
    earlier step wrote it, computed against the image of that step (stale: the approximation).

    Rows run K = the most positions any row needs; a row with fewer also runs other positions
    of its own whose keys/values go to a spare slot after the sequence that no token sees, so a
    row's result does not depend on the others. Each gathered position keeps its cache slot,
    rotary position, omni-attention row (the prefix and the whole image segment) and image cell.

    The returned logits stay (n, N, C): a position not run holds the last logits computed for
    it. Only known positions are not run, and the sampler, the callbacks' unknown positions and
    the adaptive rules read the logits of unknown positions only, which are always fresh."""

    def __init__(self, model, rows: torch.Tensor, prefix_length: int, refresh_every: int, warmup_steps: int):
        self.model, self.mask_id = model, model.layout.mask_id
        self.prefix = _PrefixCache(model, rows, prefix_length, spare_slots=1)
        self.spare_slot = rows.shape[1]
        self.first_image_slot = prefix_length + 1
        self.refresh_every, self.warmup_steps = refresh_every, warmup_steps
        self.step, self.ready_rows = 0, 0  # ready: the first rows whose whole segment has been run
        image = rows.shape[1] - prefix_length - 2
        self.written = torch.full((rows.shape[0], image), -1, device=rows.device)  # ids behind the cached k/v
        self.logits = rows.new_zeros((rows.shape[0], image, self.prefix.weight.shape[0]), dtype=model.dtype)

    def __call__(self, segment: torch.Tensor) -> torch.Tensor:
        count = _segment_rows(segment, self.written.shape[0], self.prefix.full_slots.shape[0])
        cache, ids = self.prefix.first_rows(count), segment[:, 1:-1]
        if self._full(count):
            prefix = self.prefix
            self.logits[:count] = _image_step(self.model, cache, segment, prefix.segment_mask[:count],
                                              prefix.full_slots, prefix.weight, prefix.bias)
            self.ready_rows = max(self.ready_rows, count)
        else:
            self._cheap_step(cache, ids)
        self.written[:count] = ids  # a position not run kept its id, so its cached k/v are of these ids
        self.step += 1
        return self.logits[:count].clone()

    def _full(self, count: int) -> bool:
        scheduled = self.step < self.warmup_steps or self.step % self.refresh_every == 0
        return scheduled or count > self.ready_rows

    def _cheap_step(self, cache, ids: torch.Tensor) -> None:
        """Run each row's unknown and changed positions; update their logits (the others keep theirs)."""
        count = ids.shape[0]
        needed = (ids == self.mask_id) | (ids != self.written[:count])  # (n, N)
        width = max(int(needed.sum(dim=-1).max()), 1)  # K: the one host sync of a cheap step
        positions = torch.sort((~needed).to(torch.uint8), dim=-1, stable=True).indices[:, :width]  # (n, K)
        runs = needed.gather(1, positions)  # (n, K), False: padding
        slots = self.first_image_slot + positions
        written_at = torch.where(runs, slots, torch.full_like(slots, self.spare_slot))
        mask = self.prefix.segment_mask[:count].take_along_dim((1 + positions)[:, None, :, None], dim=2)
        hidden = self.model.hidden_states(ids.gather(1, positions), attention_mask=mask, position_ids=slots,
                                          cache=cache, cache_slots=written_at, image_cells=positions)
        fresh = F.linear(hidden, self.prefix.weight, self.prefix.bias)  # (n, K, C)
        index = positions[..., None].expand_as(fresh)
        kept = self.logits[:count].gather(1, index)
        self.logits[:count] = self.logits[:count].scatter(1, index, torch.where(runs[..., None], fresh, kept))
