"""Stage-level work of the training steps: params in, checkpoint, metrics and history out.

Each function here is what one ``stages/<name>.py`` calls. They read their
params sections into typed configs before any work, resume an interrupted run
of the same inputs, and write outputs atomically at the end.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

from symbiotic import io
from symbiotic.config import build, ranged, section
from symbiotic.errors import UserError
from symbiotic.hardware.measure import default_threads, resolve_device
from symbiotic.hardware.report import accept_foreign, load_profile
from symbiotic.models.counting import count_parameters
from symbiotic.sparsity.masks import recurrent_density, recurrent_masks
from symbiotic.tasks import task_class, task_module
from symbiotic.training import checkpoint, curves, distributed
from symbiotic.training.loop import Trainer
from symbiotic.training.resume import Resume
from symbiotic.training.schedule import Threshold


# Keys that decide only what a stage does with a finished loop, not the loop: changing one after
# a refusal must resume the saved iterations, not redo them.
OUTCOME_ONLY = frozenset({"if_none_accepted"})


@dataclass(frozen=True)
class ThresholdConfig:
    slack: float = ranged(0.0, lo=0.0, hi=10.0)  # allowed relative degradation over the baseline
    split: str = ranged("test", choices=("test", "valid"))  # the paper checks the test score
    value: float | None = ranged(None, lo=0.0)  # null: the baseline's score on `split`


class Context:
    """Params, the task and the resume file of one stage run."""

    def __init__(self, stage: str, task_name: str, params: dict, data: Path, resume_dir: Path | None,
                 trains: bool = True, curves_dir: Path | None = None):
        self.module = task_module(task_name)  # an unknown task fails here, before any work
        self.metric = task_class(task_name).metric
        self.splits = task_class(task_name).splits
        self.stage, self.task_name, self.params = stage, task_name, params
        where = f"train.{task_name}"
        self.train_cfg = build(self.module.TrainConfig, section(params, where), where)
        self.data, self.resume_dir = data, resume_dir
        self.world = self._processes(where) if trains else distributed.World()
        curves.open_folder(curves_dir)  # the Trainer logs every epoch there (dvclive)
        self.start = time.perf_counter()

    def _processes(self, where: str) -> distributed.World:
        """Start ``train.<task>.processes`` processes under torchrun (this call returns in each
        of them), or join the ones torchrun started; checked before any work."""
        cfg = self.train_cfg
        if cfg.processes > cfg.batch:
            raise UserError(f"{where}.batch ({cfg.batch}) is smaller than {where}.processes ({cfg.processes})",
                            f"every process trains on a share of each batch: raise {where}.batch or lower "
                            f"{where}.processes")
        distributed.launch(cfg.processes)
        return distributed.start(cfg.processes, f"{where}.processes")

    def cfg(self, cls, name: str):
        where = f"{name}.{self.task_name}"
        return build(cls, section(self.params, where), where)

    def model_spec(self) -> dict:
        """params model.<task> checked by the task's ModelSpec, as keyword arguments."""
        return asdict(self.cfg(self.module.ModelSpec, "model"))

    def baseline_spec(self):
        return self.cfg(self.module.BaselineSpec, "baseline")

    def task(self):
        if self.train_cfg.threads:
            torch.set_num_threads(self.train_cfg.threads)
        elif self.world.active:  # the processes share the cores (rank 0 times with all of them)
            torch.set_num_threads(max(1, default_threads() // self.world.size))
        return task_class(self.task_name)(self.data, self.train_cfg)

    def resume(self, sections: list[str], inputs: list[Path], phase: str = "") -> Resume:
        """The resume file of this stage (of one ``phase`` of it, where a stage has two loops)."""
        chosen = {s: {k: v for k, v in section(self.params, f"{s}.{self.task_name}").items()
                      if k not in OUTCOME_ONLY} for s in sections}
        name = f"{self.task_name}_{self.stage}" + (f"_{phase}" if phase else "")
        return Resume(self.resume_dir, name, chosen, inputs)

    def target(self, folder: Path):
        """The device this stage times on, its threads and the profile measured there, checked
        before the data is loaded (another machine's or task's profile is refused at once)."""
        if self.train_cfg.threads:  # as task() does: the threads the profile must have had
            torch.set_num_threads(self.train_cfg.threads)
        device, threads = resolve_device(self.params.get("device")), default_threads()
        profile = load_profile(folder, task=self.task_name, device=device, threads=threads,
                               accept_foreign=accept_foreign(self.params))
        return profile, device, threads

    def seconds(self) -> float:
        return round(time.perf_counter() - self.start, 1)


@dataclass(frozen=True)
class Step:
    """The trained model of an earlier step, and the learning rate it ended at."""

    path: str
    model: torch.nn.Module
    lr: float | None


def load_step(task, path: Path, hlstm: bool = True) -> Step:
    """An earlier step's checkpoint, checked against the task and against what the stage needs:
    the steps work on the H-LSTM (``hlstm``), the baseline is the stock LSTM (one-line errors)."""
    ckpt = checkpoint.load(path)
    model = task.model_from_checkpoint(ckpt, str(path))
    if bool(recurrent_masks(model)) != hlstm:  # only the H-LSTM has masks
        want, got = ("an H-LSTM step", "the stock-LSTM baseline") if hlstm else ("the stock-LSTM baseline",
                                                                                 "an H-LSTM step")
        raise UserError(f"{path} holds {got} ('{ckpt['kind']}'), this stage needs {want}",
                        "pass the checkpoint of the step before it (see dvc.yaml)")
    meta = ckpt.get("meta") if isinstance(ckpt.get("meta"), dict) else {}
    return Step(str(path), model, meta.get("lr"))


def threshold_from(ctx: Context, baseline_metrics: Path) -> tuple[Threshold, ThresholdConfig]:
    """The score a pruned model must keep: the baseline's ``{split}_{metric}``, or a set value."""
    cfg = ctx.cfg(ThresholdConfig, "threshold")
    if cfg.split not in ctx.splits:
        raise UserError(f"threshold.{ctx.task_name}.split is '{cfg.split}', but {ctx.task_name} has no such split",
                        f"set it to one of: {', '.join(ctx.splits)}")
    higher_is_worse = ctx.metric.lower_is_better
    if cfg.value is not None:
        return Threshold(cfg.value, higher_is_worse=higher_is_worse, slack=cfg.slack), cfg
    key = f"{cfg.split}_{ctx.metric.name}"
    try:
        limit = float(json.loads(Path(baseline_metrics).read_text())[key])
    except (OSError, ValueError, KeyError):
        raise UserError(f"baseline metrics {baseline_metrics} are missing or lack {key}",
                        "run the baseline stage first (dvc repro)") from None
    return Threshold(limit, higher_is_worse=higher_is_worse, slack=cfg.slack), cfg


def describe(task, model) -> dict:
    """Scores, parameter counts, widths and sparsity of a model, for metrics files."""
    counts = count_parameters(model)
    out = {**task.scores(model), **{f"params_{k}": v for k, v in counts.items()}}
    cfg = model.config.to_dict()
    out["dims"] = {k: v for k, v in cfg.items() if k in task.dims}
    if recurrent_masks(model):  # the baselines have no masks
        out["recurrent_density"] = recurrent_density(model)
    return out


def write(ctx: Context, task, model, trainer: Trainer, out_model: Path, metrics: Path, history: Path,
          extra: dict, log: list[dict] | None = None, log_path: Path | None = None) -> dict:
    result = {**describe(task, model), **extra, "lr_final": trainer.lr, "epochs": trainer.epochs_done,
              "seconds": ctx.seconds()}
    _check_scores(task, result)
    result["processes"] = ctx.world.size
    if not ctx.world.writer:  # every rank computed the result; rank 0 writes it
        return result
    curves.close()
    checkpoint.save(out_model, model, task.kind(model), meta={"lr": trainer.lr, "stage": ctx.stage})
    io.save_csv(pd.DataFrame(trainer.history or [{"tag": ctx.stage, "epoch": 0}]), history)
    if log_path is not None:
        io.save_csv(pd.DataFrame(log or [{"iteration": 0}]), log_path)
    io.save_json(_flat(result), metrics)
    return result


def _check_scores(task, result: dict) -> None:
    """No output is written for a model whose score is not a finite number."""
    for split in task.splits:
        value = result[f"{split}_{task.metric.name}"]
        if not math.isfinite(value):
            raise UserError(f"the {task.name} model's {split} {task.metric.name} is {value}; nothing was written",
                            f"its training diverged: lower train.{task.name}.lr and rerun")


def score_line(task, result: dict) -> str:
    """e.g. 'test perplexity 354.40' or 'test wer 31.20': for the stages' last line."""
    name = task.metric.name
    return f"test {name} {result[f'test_{name}']:.2f}"


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
