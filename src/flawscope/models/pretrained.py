"""Backbone weights: local checkpoints (any common layout) and hub names, with RGB → grayscale folding."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from flawscope.models.checkpoint import CheckpointError

# Top-level module names of classifier heads in timm / torchvision / Cadene checkpoints: ignored, not errors.
_HEAD_NAMES = {"fc", "head", "classifier", "pre_logits", "last_linear", "global_pool", "head_drop", "fc_norm"}
# Wrappers that prefix every key: DataParallel/DDP, torch.compile, Lightning's `self.model`.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.")


@dataclass
class LoadReport:
    """What `load_backbone_weights` did.

    Attributes:
        source: the file or hub name the weights came from.
        loaded: number of tensors copied into the backbone.
        missing: backbone keys the checkpoint did not provide (kept at their initial values).
        unexpected: checkpoint keys the backbone has no place for (classifier heads are listed here too).
        folded: first-conv keys whose RGB kernels were summed to one channel (or repeated to three).
        resampled: ViT position embeddings interpolated to the model's patch grid (another input size).
    """

    source: str
    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    folded: list[str] = field(default_factory=list)
    resampled: list[str] = field(default_factory=list)


def parse_pretrained(pretrained: str | Path | None) -> tuple[str, str | Path | None]:
    """Classify a `pretrained=` value.

    Returns:
        ("none", None), ("hub", "" for the default weights or "timm-name.tag"), or ("file", Path).
    """
    if pretrained is None or pretrained is False or pretrained == "":
        return "none", None
    if isinstance(pretrained, str):
        if pretrained == "hub":
            return "hub", ""
        if pretrained.startswith("timm:"):
            return "hub", pretrained[len("timm:") :]
    path = Path(pretrained)
    if not path.is_file():
        raise CheckpointError(
            f"pretrained weights file {path} does not exist; pass an existing checkpoint file, "
            "'hub' for the default online weights, or 'timm:<model>.<tag>' (e.g. timm:resnet18.a1_in1k)"
        )
    return "file", path


def check_hub_name(hub: str, arch: str) -> str:
    """The timm model name to download for backbone `arch`; `hub` is "" or "<arch>.<tag>"."""
    if not hub:
        return arch
    if hub.split(".", 1)[0] != arch:
        raise CheckpointError(
            f"pretrained 'timm:{hub}' is a {hub.split('.', 1)[0]} checkpoint but the backbone is {arch}; "
            f"use timm:{arch}.<tag> (see timm.list_pretrained('{arch}*')) "
            f"or pass backbone={hub.split('.', 1)[0]}"
        )
    return hub


def timm_hub_state_dict(name: str) -> dict[str, torch.Tensor]:
    """Download timm pretrained weights (online users only) and return the model's state dict."""
    import timm

    try:
        return timm.create_model(name, pretrained=True).state_dict()
    except Exception as err:  # download and hub errors come in many types; the user needs one clear message
        raise CheckpointError(
            f"could not get pretrained weights {name!r} from the hub ({type(err).__name__}: {err}); "
            "check the name and your network, or download the weights and pass the file path"
        ) from err


def read_checkpoint(source: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a weights file into a flat state dict and its metadata.

    Understands plain state dicts, timm/torchvision checkpoints, `.safetensors`, and flawscope/Lightning
    checkpoints (weights under "state_dict" with a "model." prefix).

    Returns:
        (state_dict with wrapper prefixes removed, metadata dict: may hold "model_config").
    """
    path = Path(source)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return _strip_wrappers(load_file(str(path))), {}
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # Lightning checkpoints pickle hyper-parameters (dataclasses, paths) that weights_only refuses; it is
        # a local file the user chose to load, so fall back to a full unpickle as torch < 2.6 always did.
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:
            raise CheckpointError(
                f"{path} is not a PyTorch checkpoint ({type(err).__name__}: {err})"
            ) from err
    except Exception as err:  # zip/pickle/EOF errors from a non-checkpoint file
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{path} holds a {type(obj).__name__}, not a state dict; save weights with "
            "torch.save(model.state_dict(), path)"
        )
    meta: dict[str, Any] = {}
    cfg = obj.get("model_config") or (obj.get("hyper_parameters") or {}).get("model_config")
    if cfg is not None:
        meta["model_config"] = cfg if isinstance(cfg, Mapping) else getattr(cfg, "__dict__", {})
    for key in ("state_dict", "model_state_dict", "model", "state_dict_ema"):
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise CheckpointError(
            f"{path} holds no tensors (keys: {', '.join(list(obj)[:8])}); is it a checkpoint?"
        )
    return _strip_wrappers(state), meta


def _strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            inner = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            # Lightning modules may also hold loss buffers beside `model.`: keep only the model's keys.
            if inner and (prefix == "model." or len(inner) == len(state)):
                state, changed = inner, True
    return state


def _find_prefix(state: Mapping[str, torch.Tensor], target_keys: list[str]) -> str:
    """The prefix under which `state` holds the backbone (e.g. "backbone.", "encoder.", "")."""
    targets = set(target_keys)
    candidates = {""}
    for tk in target_keys[:3]:
        for ck in state:
            if ck.endswith("." + tk):
                candidates.add(ck[: -len(tk)])
    return max(
        sorted(candidates), key=lambda p: sum(k[len(p) :] in targets for k in state if k.startswith(p))
    )


def _is_head_key(key: str) -> bool:
    return key.split(".", 1)[0] in _HEAD_NAMES


def _fits_by_folding(src: torch.Tensor, dst: torch.Tensor) -> bool:
    return (
        src.ndim == dst.ndim == 4
        and src.shape[0] == dst.shape[0]
        and src.shape[2:] == dst.shape[2:]
        and {src.shape[1], dst.shape[1]} == {1, 3}
    )


def _is_pos_embed(key: str, src: torch.Tensor, dst: torch.Tensor) -> bool:
    return key.endswith("pos_embed") and src.ndim == dst.ndim == 3 and src.shape[2] == dst.shape[2]


def _resample_pos_embed(src: torch.Tensor, dst: torch.Tensor, target: nn.Module) -> torch.Tensor:
    """A ViT's position embeddings for another patch grid (timm's bicubic resampling), class token kept."""
    import math

    from timm.layers import resample_abs_pos_embed

    prefix = int(getattr(target, "num_prefix_tokens", 1))
    old = int(round(math.sqrt(src.shape[1] - prefix)))
    grid = getattr(getattr(target, "patch_embed", None), "grid_size", None)
    new = list(grid) if grid is not None else [int(round(math.sqrt(dst.shape[1] - prefix)))] * 2
    if old * old != src.shape[1] - prefix or new[0] * new[1] != dst.shape[1] - prefix:
        raise CheckpointError(f"position embeddings of {tuple(src.shape)} cannot be resampled to "
                              f"{tuple(dst.shape)}: not a square patch grid; use the same input size")
    out = resample_abs_pos_embed(src, new_size=new, old_size=[old, old], num_prefix_tokens=prefix)
    return out.to(dst.dtype)


def load_backbone_weights(
    model: nn.Module, source: str | Path | Mapping[str, torch.Tensor], strict: bool = True
) -> LoadReport:
    """Load weights into a model's backbone (`model.backbone`, or the model itself when it has none).

    RGB first-conv kernels are folded to one channel by summing over RGB (timm's `adapt_input_conv`), so
    ImageNet weights serve grayscale radiographs. Classifier-head keys in the checkpoint are ignored.

    Args:
        model: a flawscope model (or any module).
        source: a checkpoint file (see `read_checkpoint`) or a state dict.
        strict: raise when backbone keys are missing or left over (the checkpoint is of another architecture).

    Returns:
        What was loaded, missing, unexpected and folded.

    Raises:
        CheckpointError: file missing or unreadable, no matching keys, a shape mismatch (names the first key
            and both shapes), or (strict) missing / left-over backbone keys.
    """
    from timm.models import adapt_input_conv

    if isinstance(source, Mapping):
        state, meta, label = _strip_wrappers(dict(source)), {}, "state dict"
    else:
        (state, meta), label = read_checkpoint(source), str(source)
    target = getattr(model, "backbone", model)
    target_state = target.state_dict()
    target_keys = list(target_state)
    model_name = getattr(getattr(model, "config", None), "name", "") or type(model).__name__
    ckpt_name = (meta.get("model_config") or {}).get("name")
    from_note = f" (a checkpoint of {ckpt_name!r})" if ckpt_name else ""

    prefix = _find_prefix(state, target_keys)
    sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    matched = [k for k in target_keys if k in sub]
    if not matched:
        raise CheckpointError(
            f"{label}{from_note} holds none of the weights of {model_name}'s backbone: "
            "it is a checkpoint of a "
            f"different model (checkpoint keys start {', '.join(list(state)[:3])}; the backbone expects "
            f"{', '.join(target_keys[:3])}); pass weights of the same architecture or pretrained=None"
        )
    report = LoadReport(source=label)
    new_state: dict[str, torch.Tensor] = {}
    for key in matched:
        src, dst = sub[key], target_state[key]
        if src.shape != dst.shape and _is_pos_embed(key, src, dst):
            new_state[key] = _resample_pos_embed(src, dst, target)
            report.resampled.append(key)
            continue
        if src.shape != dst.shape:
            if not _fits_by_folding(src, dst):
                raise CheckpointError(
                    f"{label}{from_note} does not fit {model_name}: {prefix}{key} has shape "
                    f"{tuple(src.shape)} "
                    f"in the checkpoint but {tuple(dst.shape)} in the model; "
                    "it is a checkpoint of a different "
                    "model or variant (e.g. resnet50 vs resnet18, or another num_classes/reduce_dim)"
                )
            src = adapt_input_conv(dst.shape[1], src, base_chans=src.shape[1])
            report.folded.append(key)
        new_state[key] = src.to(dst.dtype)
    report.missing = [k for k in target_keys if k not in sub and not k.endswith("num_batches_tracked")]
    report.unexpected = [k for k in sub if k not in target_state]
    stray = [k for k in report.unexpected if not _is_head_key(k)]
    if strict and (report.missing or stray):
        what = f"misses {report.missing[0]}" if report.missing else f"has extra {prefix}{stray[0]}"
        raise CheckpointError(
            f"{label}{from_note} {what} ({len(report.missing)} missing, {len(stray)} extra backbone keys): "
            "it is "
            f"a checkpoint of a different variant than {model_name}'s backbone; pass matching weights "
            "(or strict=False to load what fits)"
        )
    target.load_state_dict(new_state, strict=False)
    report.loaded = len(new_state)
    return report


# -- backbone checkpoints and --init ---------------------------------------------------------------------
BACKBONE_FILE_FORMAT = "flawscope-backbone/1"
INIT_HELP = "random | checkpoint:<backbone.pt from flawscope pretrain> | imagenet[:<local file or timm name>]"


def save_backbone(path: str | Path, state_dict: Mapping[str, torch.Tensor], arch: str, in_chans: int,
                  **meta: Any) -> Path:
    """Write a pre-trained backbone (what `flawscope pretrain` produces) that `--init checkpoint:` loads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": BACKBONE_FILE_FORMAT, "backbone": arch, "in_chans": int(in_chans),
                "meta": dict(meta), "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}}, path)
    return path


def read_backbone_header(path: str | Path) -> dict[str, Any]:
    """The backbone name, input channels and metadata of a `save_backbone` file.

    Raises:
        CheckpointError: the file is missing or is not a flawscope backbone checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"backbone checkpoint {path} does not exist; pass the backbone.pt that "
                              "`flawscope pretrain` wrote")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a file we wrote"
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(obj, Mapping) or obj.get("format") != BACKBONE_FILE_FORMAT:
        raise CheckpointError(
            f"{path} is not a flawscope backbone checkpoint (no format {BACKBONE_FILE_FORMAT!r}); "
            "use --init checkpoint: with a `flawscope pretrain` backbone.pt, or --init imagenet:<file> for "
            "other weights files"
        )
    return {"backbone": obj["backbone"], "in_chans": int(obj["in_chans"]), **dict(obj.get("meta") or {})}


def backbone_arch(build_kwargs: Mapping[str, Any], model_name: str) -> str:
    """The backbone architecture of a model: its `backbone` / `encoder` option, or the model itself."""
    return str(build_kwargs.get("backbone") or build_kwargs.get("encoder") or model_name)


def parse_init(init: str | None) -> tuple[str, str | Path | None]:
    """("random", None), ("checkpoint", Path) or ("imagenet", pretrained value for the model builder).

    Raises:
        ConfigError-like CheckpointError: an unknown form or a missing file.
    """
    text = "random" if init in (None, "", "random") else str(init)
    kind, _, value = text.partition(":")
    if kind == "random" and not value:
        return "random", None
    if kind == "checkpoint" and value:
        return "checkpoint", Path(value)
    if kind == "imagenet":
        if not value:
            return "imagenet", "hub"  # the backbone's default timm weights (online)
        if Path(value).is_file():
            return "imagenet", Path(value)
        if "/" in value or Path(value).suffix in (".pt", ".pth", ".bin", ".safetensors", ".ckpt"):
            raise CheckpointError(f"--init {text}: weights file {value} does not exist; pass an existing "
                                  "file, or a timm name such as imagenet:resnet18.a1_in1k (online)")
        return "imagenet", f"timm:{value}"
    raise CheckpointError(f"--init {text!r} is not understood; use {INIT_HELP}")


def check_init(init: str | None, arch: str, in_chans: int) -> dict[str, Any]:
    """Refuse, before training, a backbone checkpoint of another architecture or input channels.

    Returns:
        The checkpoint's header ({} for random and imagenet inits).
    """
    kind, value = parse_init(init)
    if kind != "checkpoint":
        return {}
    header = read_backbone_header(value)  # type: ignore[arg-type]
    if header["backbone"] != arch or header["in_chans"] != in_chans:
        raise CheckpointError(
            f"--init checkpoint {value} holds a {header['backbone']} backbone for "
            f"{header['in_chans']}-channel input, but this run builds a {arch} backbone for "
            f"{in_chans}-channel input; pre-train the same backbone (flawscope pretrain --backbone {arch} "
            f"--in-chans {in_chans}) or pass --backbone {header['backbone']} / "
            f"--in-chans {header['in_chans']}"
        )
    return header


def init_to_pretrained(init: str | None) -> str | Path | None:
    """The builders' `pretrained=` value for an --init value."""
    kind, value = parse_init(init)
    return None if kind == "random" else value


def pretrained_to_init(pretrained: str | Path | None) -> str:
    """The --init value of an older run's `pretrained:` option (config.yaml files written before --init)."""
    if pretrained in (None, ""):
        return "random"
    text = str(pretrained)
    if text == "hub":
        return "imagenet"
    return "imagenet:" + text.removeprefix("timm:")
