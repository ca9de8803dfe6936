"""LoRA adapters on a :class:`ShowoModel`, through ``peft``.

As transformers' and diffusers' adapter support does, peft's layers are injected into the model in
place (``peft.inject_adapter_in_model``): the model stays a ``ShowoModel`` whose targeted
``nn.Linear`` layers now hold a frozen base layer and a low-rank update, ``W x + (alpha / r) B A x``
(Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"). B starts at zero, so a new
adapter leaves the model's outputs exactly as they were.

* ``lora_config``: the peft ``LoraConfig`` of a rank, alpha, dropout and target layers (by default
  every attention projection, q/k/v and the output ``dense`` that this package names ``out_proj``,
  and both MLP layers), optionally with the embedding rows of given token ids trained too (peft's
  trainable tokens: new tokens learn their rows, the rest stay frozen).
* ``add_adapter`` / ``load_adapter`` / ``save_adapter``: an adapter is a folder in peft's layout,
  ``adapter_config.json`` and ``adapter_model.safetensors`` with its keys as
  ``PeftModel.save_pretrained`` names them, so ``peft.PeftModel.from_pretrained`` reads it too.
* ``merge_adapters`` / ``unmerge_adapters``: fold the update into the base weights (no cost per
  call) and take it back out; ``adapters_disabled``: a context in which the model is its base.
* ``base_state_dict``: the weights of the model as a plain ``ShowoModel`` (what
  ``save_pretrained`` writes): refused while an adapter is active and not merged.

peft is an optional dependency (``pip install 'showo[lora]'``), imported only here and only when
an adapter is used.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint_io import atomic_write, load_state_dict, read_json, replace_folder, save_safetensors

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"
ADAPTER_FILES = frozenset({CONFIG_FILE, WEIGHTS_FILE})
PEFT_PREFIX = "base_model.model."  # how PeftModel.save_pretrained prefixes an adapter's keys
DEFAULT = "default"  # peft's name for a model's first adapter


def _peft():
    try:
        import peft
    except ImportError as e:
        raise ImportError("LoRA adapters need peft: pip install 'showo[lora]'") from e
    return peft


def lora_config(rank: int = 16, alpha: float | None = None, dropout: float = 0.0,
                targets: Sequence[str] = LORA_TARGETS, token_ids: Sequence[int] | None = None) -> Any:
    """A peft ``LoraConfig``: rank ``rank``, scale ``alpha / rank`` (``alpha`` defaults to the rank:
    scale 1), ``dropout`` on the adapter's input, the layers whose names end in one of
    ``targets``; ``token_ids``: the embedding rows of these ids train too."""
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise ValueError(f"LoRA rank must be an integer >= 1, got {rank!r}")
    if not targets or any(not isinstance(t, str) or not t for t in targets):
        raise ValueError(f"LoRA targets must be a non-empty list of layer names (e.g. {list(LORA_TARGETS)}), "
                         f"got {targets!r}")
    # The input embedding only: peft's trainable rows of a Linear (meant for an output layer tied to
    # the embedding) drop its bias, and Show-o's output layer has one.
    rows = None if not token_ids else {"embed": list(token_ids)}
    return _peft().LoraConfig(r=rank, lora_alpha=rank if alpha is None else alpha, lora_dropout=dropout,
                              target_modules=list(targets), trainable_token_indices=rows, bias="none")


def add_adapter(model: nn.Module, config: Any, name: str = DEFAULT) -> None:
    """Inject a new adapter ``name`` (B = 0: the outputs do not change) into ``model`` in place;
    the base weights are frozen and, unless the config says ``inference_mode``, the adapter trains."""
    if name in adapter_names(model):
        raise ValueError(f"the model already has an adapter named {name!r}")
    names = {n.split(".")[-1] for n, _ in model.named_modules()}
    missing = [t for t in config.target_modules if t not in names]
    if missing:
        layers = sorted({n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise ValueError(f"LoRA targets {missing} name no layer of the model; its linear layers are {layers}")
    _peft().inject_adapter_in_model(config, model, adapter_name=name)


def adapter_names(model: nn.Module) -> list[str]:
    return list(getattr(model, "peft_config", {}))


def _tuner_layers(model: nn.Module) -> list[nn.Module]:
    if not adapter_names(model):
        return []
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


def adapter_state_dict(model: nn.Module, name: str = DEFAULT) -> dict[str, torch.Tensor]:
    """The weights of adapter ``name`` only, keyed as peft saves them (``base_model.model.…``)."""
    _check_name(model, name)
    return {PEFT_PREFIX + key: value.detach().contiguous() for key, value in _own_state(model, name).items()}


def _own_state(model: nn.Module, name: str) -> dict[str, torch.Tensor]:
    # save_embedding_layers=False: no whole embedding table is saved (showo never resizes one;
    # trained rows are the adapter's own), and peft's check of that opens the base's config.json
    # as a transformers config, which a showo folder is not
    return _peft().get_peft_model_state_dict(model, adapter_name=name, save_embedding_layers=False)


def save_adapter(model: nn.Module, folder: str | Path, name: str = DEFAULT, overwrite: bool = False,
                 base: str | None = None) -> None:
    """Write adapter ``name`` alone as a new folder in peft's layout (``adapter_config.json``,
    ``adapter_model.safetensors``), published whole. ``base``: the base model's folder or Hub id,
    recorded as ``base_model_name_or_path``."""
    replace_folder(folder, lambda tmp: write_adapter(model, tmp, name, base), overwrite)


def write_adapter(model: nn.Module, folder: str | Path, name: str = DEFAULT, base: str | None = None) -> None:
    """``save_adapter``'s files written into ``folder``, each atomically."""
    _check_name(model, name)
    values = model.peft_config[name].to_dict()
    values.update(base_model_name_or_path=base, inference_mode=True)
    values = {k: sorted(v) if isinstance(v, set) else v for k, v in values.items()}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / CONFIG_FILE, lambda tmp: tmp.write_text(json.dumps(values, indent=2, sort_keys=True)))
    save_safetensors(adapter_state_dict(model, name), folder / WEIGHTS_FILE)


def read_adapter_config(folder: str | Path) -> Any:
    """The ``LoraConfig`` of an adapter folder; a clear error for a folder that holds none."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no {CONFIG_FILE}: not a LoRA adapter folder (save_adapter writes one)")
    values = read_json(path)
    if values.get("peft_type") != "LORA":
        raise ValueError(f"{path}: peft_type is {values.get('peft_type')!r}; showo loads LoRA adapters ('LORA')")
    known = set(_peft().LoraConfig.__dataclass_fields__)
    return _peft().LoraConfig(**{k: v for k, v in values.items() if k in known})


def load_adapter(model: nn.Module, folder: str | Path, name: str = DEFAULT, trainable: bool = False) -> None:
    """Add the adapter saved in ``folder`` to ``model`` as ``name``; every key of the file must
    fit the model and every weight of the adapter must be in the file."""
    config = read_adapter_config(folder)
    config.inference_mode = not trainable
    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: {CONFIG_FILE} but no {WEIGHTS_FILE}")
    state = {k.removeprefix(PEFT_PREFIX): v for k, v in load_state_dict(path).items()}
    add_adapter(model, config, name)
    _peft().set_peft_model_state_dict(model, state, adapter_name=name)
    own = set(_own_state(model, name))
    unexpected, missing = sorted(set(state) - own), sorted(own - set(state))
    if unexpected or missing:
        from peft.tuners.tuners_utils import delete_adapter

        delete_adapter(model, name, prefix="lora_")  # the model is its base again
        del model.peft_config[name]
        raise ValueError(f"{path}: the adapter does not fit the model: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")


def merge_adapters(model: nn.Module, keep_copy: bool = True) -> None:
    """Fold the active adapters into the base weights: a call then costs what the base costs.
    ``keep_copy``: keep the base weights aside while merged, so that ``unmerge_adapters`` restores
    them bit for bit (peft's unmerge subtracts the update again, exact only up to float rounding);
    False saves that memory."""
    for layer in _tuner_layers(model):
        if not layer.merged and not layer.disable_adapters:
            base = layer.get_base_layer()
            if keep_copy:
                layer._showo_unmerged = {k: v.detach().clone() for k, v in base.named_parameters(recurse=False)}
            layer.merge()


def unmerge_adapters(model: nn.Module) -> None:
    """Take merged adapters back out of the base weights."""
    for layer in _tuner_layers(model):
        saved = layer.__dict__.pop("_showo_unmerged", None)
        while layer.merged:
            layer.unmerge()
        if saved is not None:
            with torch.no_grad():
                for key, param in layer.get_base_layer().named_parameters(recurse=False):
                    param.copy_(saved[key])


@contextlib.contextmanager
def adapters_disabled(model: nn.Module) -> Iterator[None]:
    """The model runs as its base inside the block (merged adapters are taken out for it and put
    back after)."""
    layers = _tuner_layers(model)
    merged = any(layer.merged for layer in layers)
    unmerge_adapters(model)
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer in layers:
            layer.enable_adapters(True)
        if merged:
            merge_adapters(model)


def base_state_dict(model: nn.Module, allow_unmerged: bool = False) -> dict[str, torch.Tensor]:
    """The model's weights under a plain ``ShowoModel``'s names: the base layers' weights, which
    hold the adapters' updates when they are merged. Refused while an adapter is active and not
    merged (those weights would silently drop it) unless ``allow_unmerged``."""
    layers = _tuner_layers(model)
    if not layers:
        return model.state_dict()
    if not allow_unmerged and any(not layer.merged and not layer.disable_adapters for layer in layers):
        raise ValueError("the model has a LoRA adapter that is not merged: save it alone with save_adapter(), or "
                         "merge_adapters() first to write the merged weights")
    from peft.utils.other import AuxiliaryTrainingWrapper

    state: dict[str, torch.Tensor] = {}
    _plain_state(model, "", set(map(id, layers)), AuxiliaryTrainingWrapper, state)
    return state


def _plain_state(module: nn.Module, prefix: str, tuners: set[int], wrapper: type, out: dict[str, torch.Tensor]) -> None:
    """``module``'s parameters and buffers under their names without peft: a peft layer stands for
    its base layer, a wrapper of trainable token rows for the layer it wraps."""
    if isinstance(module, wrapper):
        module = module.original_module if module.original_module is not None else module.token_adapter
    if id(module) in tuners:
        module = module.get_base_layer()
    for key, value in module._parameters.items():
        if value is not None:
            out[prefix + key] = value.detach()
    for key, value in module._buffers.items():
        if value is not None and key not in module._non_persistent_buffers_set:
            out[prefix + key] = value
    for key, child in module._modules.items():
        if child is not None:
            _plain_state(child, f"{prefix}{key}.", tuners, wrapper, out)


def _check_name(model: nn.Module, name: str) -> None:
    if name not in adapter_names(model):
        raise ValueError(f"the model has no adapter named {name!r}; its adapters: {adapter_names(model)}")
