"""The quickstart report: one self-contained HTML page, ``metrics.json`` and the pictures.

``write_report(folder, metrics, artefacts)`` takes what ``evaluation.evaluate`` returns and
writes ``folder/report.html`` (pictures inline as base64 PNG, enlarged without smoothing so
that 64-pixel pictures stay readable), ``folder/metrics.json`` and every picture it shows
as a PNG file under ``folder/images/``. Missing parts of ``artefacts`` are left out.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from PIL import Image

from ..model.image_processing import grid, save_image, write_text_file

DISPLAY_HEIGHT = 128  # pixels; pictures are enlarged with NEAREST to this height
TARGETS = {"t2i_overall": 0.90, "vqa_accuracy": 0.95, "recon_psnr": 30.0}  # value >= target (the shipped model)
RETRAIN_TARGETS = {**TARGETS, "t2i_overall": 0.80, "vqa_accuracy": 0.90}  # the 30-minute --retrain
CHECKS = {
    "t2i_overall": "mean of the six GenEval-style categories below",
    "t2i_single_object": '"a circle": exactly one object, that shape',
    "t2i_two_objects": '"a circle and a square": exactly those two objects',
    "t2i_counting": '"three green squares": exactly that many, nothing else (classes never repeated in training)',
    "t2i_colors": '"a purple triangle": such an object is there',
    "t2i_position": '"a red circle to the left of a blue square": both there, relation holds (held-out pairs)',
    "t2i_attribute_binding": '"a red triangle and a white circle": both there, colours bound right (held-out pairs)',
    "vqa_accuracy": "one short-answer question per held-out picture, exact match after normalising",
    "caption_accuracy": "the caption of a held-out picture is true of it (every object named is there)",
    "recon_psnr": "image tokenizer alone: encode, decode, PSNR on [0, 1] pixels (dB)",
    "codebook_usage": "fraction of the codebook used over the reconstructed pictures",
    "inpaint_accuracy": "masked slot gets the requested colour and shape, other slots unchanged",
    "extrapolation_accuracy": "kept half unchanged, new half holds what the caption puts there",
    "mixed_modality_consistency": "each generated picture shows exactly what the text before it says",
    "evaluator_accuracy": "the judge itself: exact scene recovery from degraded renders",
}
STYLE = """
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: left; }
.examples { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; padding: 6px; border: 1px solid #ddd; width: fit-content; max-width: 420px; }
figcaption { font-size: 0.85em; max-width: 400px; }
img { image-rendering: pixelated; margin-right: 4px; }
.ok { color: #080; font-weight: bold; } .bad { color: #b00; font-weight: bold; }
.strip { overflow-x: auto; } .sequence { display: flex; align-items: center; gap: 8px; flex-wrap: wrap; }
"""


def format_value(name: str, value: float) -> str:
    return f"{value:.1f} dB" if name == "recon_psnr" else f"{value:.3f}"


def _target(name: str, metrics: dict, targets: dict[str, float]) -> tuple[str, bool] | None:
    """(">= target", whether the value meets it) for a metric with a target, else None."""
    if name not in targets:
        return None
    return f">= {format_value(name, targets[name])}", metrics[name] >= targets[name]


def metric_table(metrics: dict, targets: dict[str, float] = TARGETS) -> str:
    """The metrics as aligned text lines, ``targets`` beside the numbers (for the terminal)."""
    names = [n for n in metrics if n not in ("seconds", "seconds_total")]
    width = max(len(n) for n in names)
    lines = []
    for name in names:
        line = f"{name:<{width}}  {format_value(name, metrics[name]):>9}"
        target = _target(name, metrics, targets)
        if target is not None:
            line += f"   target {target[0]}  {'ok' if target[1] else 'below target'}"
        lines.append(line)
    if "seconds_total" in metrics:
        lines.append(f"{'seconds_total':<{width}}  {metrics['seconds_total']:>9.1f}")
    return "\n".join(lines)


class _Pictures:
    """Saves each picture under ``images/`` and returns its inline ``<img>`` tag."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob("[0-9][0-9][0-9]_*.png"):  # from an earlier report
            stale.unlink()
        self.count = 0

    def tag(self, image: Image.Image, name: str, title: str = "") -> str:
        self.count += 1
        image = image.convert("RGB")
        save_image(image, self.folder / f"{self.count:03d}_{name}.png")
        scale = max(1, DISPLAY_HEIGHT // image.height)
        big = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
        buffer = io.BytesIO()
        big.save(buffer, format="PNG")
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        return f'<img src="data:image/png;base64,{data}" alt="{_e(name)}" title="{_e(title)}">'


def _e(text) -> str:
    return html.escape(str(text))


def _verdict(correct: bool) -> str:
    return '<span class="ok">pass</span>' if correct else '<span class="bad">fail</span>'


def _figure(images: str, *lines: str) -> str:
    return f"<figure>{images}<figcaption>{'<br>'.join(lines)}</figcaption></figure>"


def _metrics_html(metrics: dict, targets: dict[str, float]) -> str:
    rows = []
    for name in (n for n in metrics if n not in ("seconds", "seconds_total")):
        target = _target(name, metrics, targets)
        wanted, met = ("", "") if target is None else (target[0], _verdict(target[1]))
        value = format_value(name, metrics[name])
        rows.append(f"<tr><td>{_e(name)}</td><td>{value}</td><td>{wanted}</td><td>{met}</td>"
                    f"<td>{_e(CHECKS.get(name, ''))}</td></tr>")
    head = "<tr><th>metric</th><th>value</th><th>target</th><th></th><th>what it checks</th></tr>"
    timing = "".join(f"<tr><td>{_e(k)}</td><td>{v:.1f} s</td></tr>" for k, v in metrics.get("seconds", {}).items())
    total = f"<tr><th>total</th><th>{metrics.get('seconds_total', 0.0):.1f} s</th></tr>"
    return (f"<h2>Metrics</h2><table>{head}{''.join(rows)}</table>"
            f"<h3>Time per part</h3><table>{timing}{total}</table>")


def _t2i_html(part: dict, pics: _Pictures) -> str:
    out = [("<h2>Text-to-image</h2><p>One picture per GenEval-style prompt; the scene read from the picture "
            "must satisfy the prompt. <i>read</i> is what the judge sees; <i>planned</i>, where "
            "shown, is the model's own full description of the prompt, which it drew (prompt planning).</p>")]
    progression = part.get("progression")
    if progression and progression["frames"]:
        strip = grid(progression["frames"], columns=len(progression["frames"]))
        out.append(f"<h3>Denoising progression</h3><p>{_e(progression['prompt'])}: the model's full prediction "
                   f"after each of {len(progression['frames'])} MaskGIT steps</p>"
                   f"<div class='strip'>{pics.tag(strip, 'progression', progression['prompt'])}</div>")
    figures = [_figure(pics.tag(x["image"], "t2i", x["prompt"]), f"<b>{_e(x['prompt'])}</b>",
                       *([f"planned: {_e(x['plan'])}"] if "plan" in x else []),
                       f"{_e(x['category'])}: {_verdict(x['correct'])}", f"read: {_e(x['read'])}")
               for x in part.get("examples", [])]
    return "".join(out) + f"<div class='examples'>{''.join(figures)}</div>"


def _vqa_html(part: dict, pics: _Pictures) -> str:
    figures = [_figure(pics.tag(x["image"], "vqa"), f"Q: {_e(x['question'])}", f"A: <b>{_e(x['predicted'])}</b>",
                       *([f"worked out: {_e(x['reasoning'])}"] if "reasoning" in x else []),
                       f"expected: {_e(x['expected'])} {_verdict(x['correct'])}") for x in part.get("examples", [])]
    return ("<h2>Question answering</h2><p>Held-out pictures, one question each, exact match after "
            "normalisation. <i>worked out</i>, where shown, is the model's reasoning before its answer "
            f"(showo.world.reasoning).</p><div class='examples'>{''.join(figures)}</div>")


def _captions_html(part: dict, pics: _Pictures) -> str:
    figures = [_figure(pics.tag(x["image"], "caption"), f"<b>{_e(x['caption'])}</b> {_verdict(x['correct'])}",
                       f"truth: {_e(x['truth'])}") for x in part.get("examples", [])]
    return ("<h2>Captioning</h2><p>The caption must be true of the picture (it may leave objects out).</p>"
            f"<div class='examples'>{''.join(figures)}</div>")


def _reconstruction_html(part: dict, pics: _Pictures) -> str:
    figures = [_figure(pics.tag(x["original"], "original") + pics.tag(x["reconstruction"], "reconstruction"),
                       f"original | reconstruction: {x['psnr']:.1f} dB") for x in part.get("examples", [])]
    return ("<h2>Image tokenizer</h2><p>Encode to codes and decode back.</p>"
            f"<div class='examples'>{''.join(figures)}</div>")


def _inpainting_html(part: dict, pics: _Pictures) -> str:
    figures = [_figure(pics.tag(x["image"], "inpaint_input") + pics.tag(x["mask"], "inpaint_mask")
                       + pics.tag(x["result"], "inpaint_result"),
                       f"input | mask | result: {_verdict(x['correct'])}", f"prompt: <b>{_e(x['prompt'])}</b>",
                       f"asked for a {_e(x['target'].class_name)} at the {_e(x['slot'])}", f"read: {_e(x['read'])}")
               for x in part.get("examples", [])]
    return ("<h2>Inpainting</h2><p>One object's quadrant is masked; the prompt describes the scene with a different "
            "object there. Pass: that slot holds the requested colour and shape and the other slots are unchanged."
            f"</p><div class='examples'>{''.join(figures)}</div>")


def _extrapolation_html(part: dict, pics: _Pictures) -> str:
    figures = [_figure(pics.tag(x["source"], "extrapolate_scene") + pics.tag(x["image"], "extrapolate_input")
                       + pics.tag(x["result"], "extrapolate_result"),
                       f"scene | input | output: {_verdict(x['correct'])}", f"prompt: <b>{_e(x['prompt'])}</b>")
               for x in part.get("examples", [])]
    return ("<h2>Extrapolation</h2><p>The input holds the scene's left half in its right half; extrapolating to the "
            "right by half a picture should give back the scene as the output's last square. Pass: its left slots hold "
            "exactly the kept objects (shape, colour, size) and its right slots the colours and shapes the caption "
            f"puts there (or nothing).</p><div class='examples'>{''.join(figures)}</div>")


def _mixed_html(part: dict, pics: _Pictures) -> str:
    out = [("<h2>Mixed modality</h2><p>The model continues an instruction with text and pictures; each picture "
            "must show exactly what the text so far describes.</p>")]
    for x in part.get("examples", []):
        verdicts = iter(x["consistent"])
        items = [f"<i>{_e(x['prompt'])}</i>"]
        for segment in x["segments"]:
            if isinstance(segment, str):
                items.append(_e(segment))
            else:
                items.append(_figure(pics.tag(segment, "mixed"), _verdict(next(verdicts))))
        if not any(not isinstance(s, str) for s in x["segments"]):
            items.append(f"(no picture) {_verdict(False)}")
        out.append(f"<div class='sequence'>{' '.join(items)}</div><hr>")
    return "".join(out)


SECTIONS = {"t2i": _t2i_html, "vqa": _vqa_html, "captions": _captions_html, "reconstruction": _reconstruction_html,
            "inpainting": _inpainting_html, "extrapolation": _extrapolation_html, "mixed": _mixed_html}


def _header(metrics: dict, artefacts: dict) -> str:
    facts = [f"model: {_e(artefacts['model'])}" if "model" in artefacts else "",
             f"seed: {artefacts['seed']}" if "seed" in artefacts else ""]
    budget = artefacts.get("budget")
    details = f"<details><summary>budget</summary><pre>{_e(json.dumps(budget, indent=1))}</pre></details>" \
        if budget else ""
    return ("<h1>Show-o quickstart on the built-in world</h1>"
            f"<p>{' &middot; '.join(f for f in facts if f)}</p>{details}")


def write_report(folder: str | Path, metrics: dict, artefacts: dict, targets: dict[str, float] = TARGETS) -> Path:
    """Write ``report.html`` (metrics beside ``targets``), ``metrics.json`` and ``images/`` into
    ``folder``; returns the page's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_file(folder / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    pics = _Pictures(folder / "images")
    body = [_header(metrics, artefacts), _metrics_html(metrics, targets)]
    body += [render(artefacts[name], pics) for name, render in SECTIONS.items() if artefacts.get(name)]
    if "evaluator_accuracy" in metrics:
        body.append(f"<h2>The judge</h2><p>Pictures are judged by reading scenes back from pixels; on rendered "
                    f"scenes with blur, noise and colour shifts it recovers {metrics['evaluator_accuracy']:.1%} "
                    "exactly.</p>")
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>showo quickstart</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")
    path = folder / "report.html"
    write_text_file(path, page)
    return path
