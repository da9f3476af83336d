"""Stage-level work of the training steps: params in, checkpoint, metrics and history out.

Each function here is what one ``stages/<name>.py`` calls. They read their
params sections into typed configs before any work, resume an interrupted run
of the same inputs, and write outputs atomically at the end.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

from symbiotic import io
from symbiotic.config import build, ranged, section
from symbiotic.errors import UserError
from symbiotic.flow.common import recurrent_density
from symbiotic.models.counting import count_parameters
from symbiotic.tasks.base import TrainConfig
from symbiotic.training import checkpoint
from symbiotic.training.loop import Trainer
from symbiotic.training.resume import Resume
from symbiotic.training.schedule import Threshold


@dataclass(frozen=True)
class ThresholdConfig:
    slack: float = ranged(0.0, lo=0.0, hi=10.0)  # allowed relative degradation over the baseline
    split: str = ranged("test", choices=("test", "valid"))  # the paper checks test perplexity
    value: float | None = ranged(None, lo=0.0)  # null: the baseline's score on `split`


@dataclass(frozen=True)
class ModelSpec:
    embed: int = ranged(lo=1)
    hidden: tuple[int, ...] = ranged(lo=1)
    gate_hidden: tuple[int, ...] = ranged(lo=1)
    dropout_gate: float = ranged(0.2, lo=0.0, hi=0.95)
    dropout_embed: float = ranged(0.65, lo=0.0, hi=0.95)
    dropout_words: float = ranged(0.1, lo=0.0, hi=0.95)


class Context:
    """Params, the task and the resume file of one stage run."""

    def __init__(self, stage: str, task_name: str, params: dict, data: Path, resume_dir: Path | None):
        if task_name != "ptb":
            raise UserError(f"unknown task '{task_name}' for {stage}", "use: ptb")
        self.stage, self.task_name, self.params = stage, task_name, params
        self.train_cfg = build(TrainConfig, section(params, f"train.{task_name}"), f"train.{task_name}")
        self.data, self.resume_dir = data, resume_dir
        self.start = time.perf_counter()

    def cfg(self, cls, name: str):
        where = f"{name}.{self.task_name}"
        return build(cls, section(self.params, where), where)

    def task(self):
        from symbiotic.tasks.ptb import PTBTask

        if self.train_cfg.threads:
            torch.set_num_threads(self.train_cfg.threads)
        return PTBTask(self.data, self.train_cfg)

    def resume(self, sections: list[str], inputs: list[Path]) -> Resume:
        chosen = {s: section(self.params, f"{s}.{self.task_name}") for s in sections}
        return Resume(self.resume_dir, f"{self.task_name}_{self.stage}", chosen, inputs)

    def seconds(self) -> float:
        return round(time.perf_counter() - self.start, 1)


def threshold_from(ctx: Context, baseline_metrics: Path) -> tuple[Threshold, ThresholdConfig]:
    cfg = ctx.cfg(ThresholdConfig, "threshold")
    if cfg.value is not None:
        return Threshold(cfg.value, higher_is_worse=True, slack=cfg.slack), cfg
    try:
        base = json.loads(Path(baseline_metrics).read_text())
        limit = float(base[f"{cfg.split}_perplexity"])
    except (OSError, ValueError, KeyError):
        raise UserError(f"baseline metrics {baseline_metrics} are missing or lack {cfg.split}_perplexity",
                        "run the baseline stage first (dvc repro)") from None
    return Threshold(limit, higher_is_worse=True, slack=cfg.slack), cfg


def describe(task, model) -> dict:
    """Scores, parameter counts, widths and sparsity of a model, for metrics files."""
    counts = count_parameters(model)
    out = {"valid_perplexity": task.score(model, "valid"), "test_perplexity": task.score(model, "test"),
           **{f"params_{k}": v for k, v in counts.items()}}
    cfg = model.config
    out["dims"] = {k: v for k, v in cfg.to_dict().items() if k in ("embed", "hidden", "gate_hidden", "layers")}
    if hasattr(model, "layers"):
        out["recurrent_density"] = recurrent_density(model)
    return out


def write(ctx: Context, task, model, trainer: Trainer, out_model: Path, metrics: Path, history: Path,
          extra: dict, log: list[dict] | None = None, log_path: Path | None = None) -> dict:
    result = {**describe(task, model), **extra, "lr_final": trainer.lr, "epochs": trainer.epochs_done,
              "seconds": ctx.seconds()}
    checkpoint.save(out_model, model, task.kind(model), meta={"lr": trainer.lr, "stage": ctx.stage})
    io.save_csv(pd.DataFrame(trainer.history or [{"tag": ctx.stage, "epoch": 0}]), history)
    if log_path is not None:
        io.save_csv(pd.DataFrame(log or [{"iteration": 0}]), log_path)
    io.save_json(_flat(result), metrics)
    return result


def _flat(d: dict, prefix: str = "") -> dict:
    """Nested dicts become dotted keys: DVC metrics compare flat numbers best."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, (list, tuple)):
            out[f"{prefix}{k}"] = "x".join(str(x) for x in v)
        else:
            out[f"{prefix}{k}"] = v
    return out
