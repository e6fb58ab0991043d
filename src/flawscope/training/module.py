"""One LightningModule for classifiers and segmenters.

The plain `FlawModel` lives in `FlawModule.model`; export and inference use only it (anomalib's
torch_model / lightning_model split). The model's `ModelConfig` is saved in the checkpoint's hyperparameters
so `flawscope.models.checkpoint.load_model_from_checkpoint` rebuilds the model without the training code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
from torch import nn

from flawscope.errors import ConfigError, FlawscopeError
from flawscope.models.base import FlawModel, ModelConfig
from flawscope.training.losses import build_loss, default_loss


class NonFiniteLossError(FlawscopeError):
    """The training loss became NaN or infinite."""


# -- freezing ----------------------------------------------------------------------------------------------
def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def backbone_stages(model: nn.Module) -> list[nn.Module]:
    """The backbone's stages, input side first (the units `freeze_stages` counts).

    A model may say it itself with a `backbone_stages()` method. Otherwise the stages are read from a
    `backbone` (or SMP `encoder`) attribute: by timm's `feature_info` (stage k ends at the module that
    outputs feature level k, the stem counting with the first stage), else its parameterised children.
    """
    if callable(getattr(model, "backbone_stages", None)):
        return list(model.backbone_stages())
    backbone = getattr(model, "backbone", None) or getattr(model, "encoder", None)
    if not isinstance(backbone, nn.Module):
        raise ConfigError(f"model {type(model).__name__} has no `backbone` whose stages could be frozen; "
                          "use freeze_stages 0")
    children = [(name, m) for name, m in backbone.named_children()]
    ends: list[int] = []
    info = getattr(backbone, "feature_info", None)
    if info is not None:
        names = info.module_name() if hasattr(info, "module_name") else [d.get("module", "") for d in info]
        child_names = [n for n, _ in children]
        for full in names:
            # timm's features_only wrappers flatten "layer1.0" to "layer1_0"; plain models keep the top name.
            for candidate in (full.replace(".", "_"), full.split(".")[0]):
                if candidate in child_names:
                    pos = child_names.index(candidate)
                    if not ends or pos > ends[-1]:
                        ends.append(pos)
                    break
    if ends:
        stages, start = [], 0
        for end in ends:
            stages.append(nn.ModuleList([m for _, m in children[start:end + 1]]))
            start = end + 1
        return [s for s in stages if _has_params(s)]
    # No feature_info: look through single-child wrappers (e.g. SmallCNN.features), then let each
    # down-sampling pool open a new stage, as in VGG/SqueezeNet-style sequential feature stacks.
    modules = [m for _, m in children]
    while len([m for m in modules if _has_params(m)]) == 1 and len(list(modules[0].children())) > 0:
        modules = list(next(m for m in modules if _has_params(m)).children())
    pools = (nn.MaxPool2d, nn.AvgPool2d)
    if any(isinstance(m, pools) for m in modules):
        groups: list[list[nn.Module]] = [[]]
        for m in modules:
            if isinstance(m, pools) and groups[-1]:
                groups.append([])
            groups[-1].append(m)
        return [nn.ModuleList(g) for g in groups if _has_params(nn.ModuleList(g))]
    return [m for m in modules if _has_params(m)]


def freeze_stages(model: nn.Module, n: int) -> list[nn.Module]:
    """Freeze the first `n` backbone stages (no gradients, batch-norm statistics kept); return them."""
    if n <= 0:
        return []
    stages = backbone_stages(model)
    if n > len(stages):
        raise ConfigError(f"freeze_stages {n} is more than the {len(stages)} stages of the backbone of "
                          f"{type(model).__name__}; use 0..{len(stages)}")
    for stage in stages[:n]:
        stage.requires_grad_(False)
        stage.eval()
    return stages[:n]


_freeze = freeze_stages  # FlawModule's argument of the same name shadows the function


# -- the module ----------------------------------------------------------------------------------------------
class FlawModule(L.LightningModule):
    """Trains any FlawModel: classifiers (image logits) and segmenters (mask logits + image logit).

    Args:
        model: the plain model; its `config` travels in the checkpoint.
        loss: loss name (see `flawscope.training.losses`); None = the task's default.
        class_weights: per-class loss weights ("ce").
        pos_weight: defective-class weight ("bce").
        optimizer: "sgd" (momentum 0.9, the paper) or "adamw".
        lr: initial learning rate; decays to `min_lr` on a cosine over the trainer's max_epochs.
        weight_decay: L2 / decoupled weight decay.
        momentum: SGD momentum.
        min_lr: final learning rate of the cosine schedule.
        freeze_stages: leading backbone stages kept frozen.
        seg_weight, cls_weight: factors of the mask and image-level loss terms.
    """

    def __init__(
        self,
        model: FlawModel,
        loss: str | None = None,
        class_weights: Sequence[float] | None = None,
        pos_weight: float | None = None,
        optimizer: str = "sgd",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        min_lr: float = 1e-6,
        freeze_stages: int = 0,
        seg_weight: float = 1.0,
        cls_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if optimizer not in ("sgd", "adamw"):
            raise ConfigError(f"optimizer {optimizer!r} is unknown; use sgd or adamw")
        config: ModelConfig = model.config
        self.task = config.task
        self.num_outputs = config.num_outputs
        loss = loss or default_loss(self.task, len(config.class_names))
        self.save_hyperparameters(
            {"model_config": config.to_dict(), "loss": loss,
             "class_weights": None if class_weights is None else [float(w) for w in class_weights],
             "pos_weight": pos_weight, "optimizer": optimizer, "lr": lr, "weight_decay": weight_decay,
             "momentum": momentum, "min_lr": min_lr, "freeze_stages": freeze_stages,
             "seg_weight": seg_weight, "cls_weight": cls_weight}
        )
        self.model = model
        # Lets Lightning's model summary report FLOPs and layer output sizes at the model's input size.
        pre = config.preprocess
        self.example_input_array = torch.zeros(1, pre.in_chans, *pre.input_size)
        self.loss = build_loss(self.task, loss, class_weights, pos_weight, seg_weight, cls_weight)
        self.n_frozen = len(_freeze(model, freeze_stages))
        # Set by the run so a NaN error can name the files of the batch; index -> description.
        self.describe_samples: Callable[[Sequence[int]], list[str]] | None = None
        self._make_metrics()

    def _make_metrics(self) -> None:
        from torchmetrics.classification import (
            BinaryAccuracy,
            BinaryAUROC,
            BinaryF1Score,
            MulticlassAccuracy,
            MulticlassAUROC,
        )

        if self.num_outputs == 1 or self.task == "segment":
            self.val_auroc, self.val_acc = BinaryAUROC(), BinaryAccuracy()
        else:
            self.val_auroc = MulticlassAUROC(self.num_outputs)
            self.val_acc = MulticlassAccuracy(self.num_outputs, average="micro")
        # Pixel F1 is the Dice coefficient of the thresholded mask.
        self.val_dice = BinaryF1Score() if self.task == "segment" else None

    def train(self, mode: bool = True) -> FlawModule:
        super().train(mode)
        if self.n_frozen:
            # Looked up anew: DDP's SyncBatchNorm conversion replaces the batch-norm modules.
            for stage in backbone_stages(self.model)[: self.n_frozen]:
                stage.eval()  # frozen stages keep their batch-norm statistics
        return self

    # -- steps ------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.forward_outputs(x)

    @staticmethod
    def _val_scores(outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Validation-metric input: sigmoid of one logit (B,), or softmax of K logits (B, K)."""
        logits = outputs["logits"]
        return torch.sigmoid(logits[:, 0]) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        outputs = self.model.forward_outputs(batch["image"])
        terms = self.loss.terms(outputs, batch)
        loss = terms["loss"]
        if not torch.isfinite(loss):
            self._raise_non_finite(loss, batch, batch_idx)
        size = batch["image"].shape[0]
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=size,
                 sync_dist=True)
        if self.task == "segment":
            for key in ("seg", "cls"):
                if key in terms:
                    self.log(f"train_{key}_loss", terms[key], on_step=False, on_epoch=True, batch_size=size,
                             sync_dist=True)
        return loss

    def _raise_non_finite(self, loss: torch.Tensor, batch: dict, batch_idx: int) -> None:
        indices = [int(i) for i in batch["index"].reshape(-1).tolist()] if "index" in batch else []
        if self.describe_samples is not None and indices:
            where = ", ".join(self.describe_samples(indices))
        else:
            where = f"train sample indices {indices}"
        raise NonFiniteLossError(
            f"training loss is {loss.item()} at epoch {self.current_epoch}, step {batch_idx} "
            f"(global step {self.global_step}); batch: {where}. Check these images (e.g. a constant image "
            f"under minmax intensity), lower the learning rate (now {self.hparams.lr:g}) "
            "or use precision 32-true"
        )

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        outputs = self.model.forward_outputs(batch["image"])
        loss = self.loss(outputs, batch)
        self.log("val_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=batch["image"].shape[0], sync_dist=True)
        scores = self._val_scores(outputs)
        if scores.ndim == 1:
            target = batch["defective"].reshape(-1)
            keep = target >= 0
            target = target.long()
        else:
            target = batch["label"].reshape(-1).long()
            keep = target >= 0
        if keep.any():
            self.val_auroc.update(scores[keep], target[keep])
            self.val_acc.update(scores[keep], target[keep])
        if self.val_dice is not None and batch["has_mask"].any():
            has = batch["has_mask"].bool().reshape(-1)
            self.val_dice.update(torch.sigmoid(outputs["mask_logits"][has]), batch["mask"][has].long())

    def on_validation_epoch_end(self) -> None:
        # Metrics are computed by hand so an epoch without labelled items logs nothing instead of failing.
        metrics = {"val_auroc": self.val_auroc, "val_acc": self.val_acc, "val_dice": self.val_dice}
        for name, metric in metrics.items():
            if metric is not None and metric.update_called:
                self.log(name, metric.compute(), prog_bar=name == "val_auroc", sync_dist=True)
            if metric is not None:
                metric.reset()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A run resumed with more (or fewer) epochs stretches its cosine to the new length instead of
        # restarting it past the old end.
        max_epochs = self.trainer.max_epochs if self._trainer is not None else None
        for state in checkpoint.get("lr_schedulers", []):
            if max_epochs and max_epochs > 0 and "T_max" in state:
                state["T_max"] = max_epochs

    # -- optimisation -----------------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ConfigError("every parameter is frozen; lower freeze_stages")
        if hp.optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
        epochs = self.trainer.max_epochs if self.trainer.max_epochs and self.trainer.max_epochs > 0 else 1
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=min(hp.min_lr, hp.lr))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
