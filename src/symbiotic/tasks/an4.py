"""AN4 speech recognition with a DeepSpeech2-style model as a task of the flow.

The score is the word error rate in percent (the paper's Table 4); the
character error rate is reported beside it. AN4 has no validation split of its
own, so prepare holds out a few training speakers as one: the score after
each epoch and the pruning threshold read it, and the test set is only
reported (evaluate), never selected on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from symbiotic.config import ranged, section
from symbiotic.data import prepared
from symbiotic.data.an4_batches import Utterances, bucketed_batches, collate
from symbiotic.errors import UserError
from symbiotic.metrics.asr import cer, greedy_decode, labels_to_text, wer
from symbiotic.models.ds2 import DS2Config, DeepSpeech2, ctc_loss
from symbiotic.runtime import ds2 as runtime
from symbiotic.tasks.base import Exports, LatencyTarget, Metric
from symbiotic.training import checkpoint, distributed
from symbiotic.training.config import TrainConfig as BaseTrainConfig

KINDS = ("ds2_hlstm", "ds2_lstm")


@dataclass(frozen=True)
class TrainConfig(BaseTrainConfig):
    """params ``train.an4``: the shared recipe, on all training utterances unless told otherwise."""

    train_utterances: int | None = ranged(None, lo=1)  # null: all 948; N: the first N (quick checks only)


@dataclass(frozen=True)
class ModelSpec:
    """params ``model.an4``: the DeepSpeech2 with bidirectional H-LSTM layers the flow starts from."""

    hidden: int = ranged(lo=1)
    gate_hidden: int = ranged(lo=1)
    conv_channels: int = ranged(32, lo=1, hi=1024)
    layers: int = ranged(3, lo=1, hi=16)
    dropout_gate: float = ranged(0.2, lo=0.0, hi=0.95)


@dataclass(frozen=True)
class BaselineSpec:
    """params ``baseline.an4``: the DeepSpeech2 with bidirectional nn.LSTM layers and its budget."""

    hidden: int = ranged(lo=1)
    conv_channels: int = ranged(32, lo=1, hi=1024)
    layers: int = ranged(5, lo=1, hi=16)
    epochs: int = ranged(6, lo=1, hi=10000)


def latency_target(params: dict) -> LatencyTarget:
    """The profile's model: the exported DeepSpeech2 with every (bidirectional) layer at the
    swept widths, on random frames; the conv features its first layer reads keep their width."""
    spec = section(params, "model.an4")
    n_features = int(section(params, "prepare.an4.features")["n_mfcc"])
    channels, layers = int(spec["conv_channels"]), int(spec["layers"])

    def model(dims: dict[str, int]) -> DeepSpeech2:
        return DeepSpeech2(DS2Config(n_features=n_features, conv_channels=channels, rnn="hlstm",
                                     hidden=dims["hidden"], gate_hidden=dims["gate_hidden"], layers=layers))

    def inputs(batch: int, steps: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        frames = AN4Task.input_length(steps)
        return torch.randn(frames, batch, n_features, generator=gen), torch.full((batch,), frames, dtype=torch.int64)

    with torch.device("meta"):  # the conv features' width, from the model's own builder
        width = model({"hidden": 1, "gate_hidden": 1}).layers[0].fwd.input_size
    base = {"input": width, "hidden": int(spec["hidden"]), "gate_hidden": int(spec["gate_hidden"])}
    return LatencyTarget(base, model, inputs, runtime.export, AN4Task.latency_call)


class AN4Task(Exports):
    name = "an4"
    runtime = runtime
    metric = Metric("wer", unit="%")
    splits = ("valid", "test")  # what score() accepts
    monitor_split = "valid"
    dims = ("hidden", "gate_hidden", "layers")  # the conv front end keeps its width
    # Profile dimension -> unit key prefix it sizes; the conv features are not pruned.
    profile_dims = {"hidden": "hidden", "gate_hidden": "gate"}

    def __init__(self, data_dir: Path, cfg: TrainConfig):
        self.cfg = cfg
        prepared.check(Path(data_dir), self.name, ["train.pt", "valid.pt", "test.pt"])
        self.train = Utterances.load(Path(data_dir) / "train.pt")
        if cfg.train_utterances is not None:
            self.train = self.train.head(cfg.train_utterances)
        self.valid = Utterances.load(Path(data_dir) / "valid.pt")
        self.test = Utterances.load(Path(data_dir) / "test.pt")
        for name, split in (("valid", self.valid), ("test", self.test)):
            if split.n_features != self.train.n_features:
                raise UserError(f"{data_dir}: train has {self.train.n_features} features per frame, {name} "
                                f"{split.n_features}", "rerun the prepare_an4 stage")
        self.n_features = self.train.n_features

    # ---- models ----------------------------------------------------------------------------
    def new_model(self, spec: dict) -> DeepSpeech2:
        return DeepSpeech2(DS2Config(n_features=self.n_features, rnn="hlstm", **spec))

    def new_baseline(self, spec: dict) -> DeepSpeech2:
        return DeepSpeech2(DS2Config(n_features=self.n_features, rnn="lstm", gate_hidden=0, **spec))

    def model_from_checkpoint(self, ckpt: dict, source: str = "checkpoint") -> nn.Module:
        if ckpt["kind"] not in KINDS:
            raise UserError(f"{source} holds a '{ckpt['kind']}' model, not a DeepSpeech2 model",
                            "point the stage at an AN4 checkpoint")
        model = DeepSpeech2(checkpoint.build_config(DS2Config, ckpt["config"], source))
        if model.n_features != self.n_features:
            raise UserError(f"{source} takes {model.n_features} features per frame, the data has "
                            f"{self.n_features}", "rerun the flow after prepare_an4")
        return checkpoint.load_state(model, ckpt["state_dict"], source)

    @staticmethod
    def kind(model: DeepSpeech2) -> str:
        return f"ds2_{model.rnn}"

    # ---- training and scoring ------------------------------------------------------------
    def train_steps(self) -> int:
        return len(bucketed_batches(self.train.frames, self.cfg.batch, None, shuffle=False))

    def train_losses(self, model: nn.Module, epoch: int) -> Iterator[tuple[torch.Tensor, int]]:
        """One pass over all training utterances in length-bucketed batches: each batch's
        mean CTC loss, weighted by its utterances (the epoch's loss is per utterance).

        Epoch 0 of each stage's training visits the batches shortest first
        (DeepSpeech2's SortaGrad): short utterances have few CTC alignments, so
        a new model leaves the all-blank start sooner; later epochs shuffle.
        """
        gen = torch.Generator().manual_seed(self.cfg.seed * 1000 + epoch)  # a seed fixes every epoch
        for index in bucketed_batches(self.train.frames, self.cfg.batch, gen, shuffle=epoch > 0):
            mine, weight = self._mine(index)
            yield self._loss(model, mine), weight

    def _loss(self, model: nn.Module, index: list[int]) -> torch.Tensor:
        x, x_lengths, targets, target_lengths = collate(self.train, index)
        log_probs, out_lengths = model(x, x_lengths)
        return ctc_loss(log_probs, out_lengths, targets, target_lengths)

    def score(self, model: nn.Module, split: str) -> float:
        """Word error rate in percent on ``split`` ("valid" or "test")."""
        if split not in self.splits:
            raise UserError(f"AN4 has no '{split}' split", "set threshold.an4.split to valid or test")
        return self._error_rates(model, getattr(self, split))[0]

    def scores(self, model: nn.Module) -> dict[str, float]:
        """Corpus-level WER and CER in percent of both scored splits (test is the reported one)."""
        out = {}
        for split in self.splits:
            out[f"{split}_wer"], out[f"{split}_cer"] = self._error_rates(model, getattr(self, split))
        return out

    @torch.no_grad()
    def _error_rates(self, model: nn.Module, data: Utterances) -> tuple[float, float]:
        """Corpus-level WER and CER in percent of one split, greedy CTC decoding, eval mode."""
        model.eval()
        refs, hyps = [], []
        for index in bucketed_batches(data.frames, self.cfg.eval_batch, None, shuffle=False):
            x, x_lengths, _, _ = collate(data, index)
            log_probs, out_lengths = model(x, x_lengths)
            hyps += [labels_to_text(ids) for ids in greedy_decode(log_probs, out_lengths)]
            refs += [labels_to_text(data.labels(i).tolist()) for i in index]
        return 100.0 * wer(refs, hyps), 100.0 * cer(refs, hyps)

    def gradient_losses(self, model: nn.Module, batches: int, seed: int = 0) -> Iterator[torch.Tensor]:
        """Losses of ``batches`` training batches drawn with an explicit generator (eval mode),
        each with its weight (utterances)."""
        model.eval()
        gen = torch.Generator().manual_seed(self.cfg.seed + seed)
        all_batches = bucketed_batches(self.train.frames, self.cfg.batch, gen, shuffle=True)
        for index in all_batches[:batches]:
            mine, weight = self._mine(index)
            yield self._loss(model, mine), weight

    @staticmethod
    def _mine(index: list[int]) -> tuple[list[int], int]:
        """This process's share of a batch and its weight: the whole batch in one process. A
        rank whose share is empty (a last batch smaller than the processes) runs one utterance
        with weight 0, so that it still takes part in the gradients' all-reduce."""
        mine = index[distributed.current().rows(len(index))]
        return (mine, len(mine)) if mine else (index[:1], 0)

    # ---- inference (export: tasks.base.Exports) and latency --------------------------------
    @staticmethod
    def input_length(steps: int) -> int:
        """Input frames that give ``steps`` recurrent steps: the convolutions halve time."""
        return 2 * steps

    def latency_inputs(self, batch: int, seq_len: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Random frames (seq_len, batch, F) of one length: the values do not matter for latency."""
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(seq_len, batch, self.n_features, generator=gen)
        return x, torch.full((batch,), seq_len, dtype=torch.int64)

    @staticmethod
    def latency_call(model: nn.Module, inputs: tuple, part: str):
        """Inference of the whole model, or of the recurrent stack alone (``"recurrent"``) on
        the conv features: the convolutions are the same for every step, so they are timed apart."""
        model.eval()
        x, lengths = inputs
        if part == "full":
            return lambda: model(x, lengths)
        if part == "recurrent":
            with torch.no_grad():
                h, out_lengths = model.frontend(x, lengths)
            return lambda: model.recurrent_stack(h, out_lengths)
        raise ValueError(f"unknown latency part {part!r}")
