"""Penn Treebank word-level language modelling as a task of the flow."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from symbiotic import io
from symbiotic.config import ranged, section
from symbiotic.data import prepared
from symbiotic.data.lm_batches import batchify, window_count, windows
from symbiotic.errors import UserError
from symbiotic.metrics.lm import perplexity
from symbiotic.models.lm import HLSTMLanguageModel, LMConfig, StackedLMConfig, StackedLSTMLanguageModel
from symbiotic.runtime import lm as runtime
from symbiotic.tasks.base import Exports, LatencyTarget, Metric
from symbiotic.training import checkpoint, distributed
from symbiotic.training.config import TrainConfig as BaseTrainConfig

KINDS = {"hlstm_lm": (HLSTMLanguageModel, LMConfig), "stacked_lm": (StackedLSTMLanguageModel, StackedLMConfig)}


@dataclass(frozen=True)
class TrainConfig(BaseTrainConfig):
    """params ``train.ptb``: the shared recipe plus truncated BPTT over a prefix of the text."""

    bptt: int = ranged(70, lo=1)
    train_tokens: int | None = ranged(None, lo=100)  # null: the whole training text


@dataclass(frozen=True)
class ModelSpec:
    """params ``model.ptb``: the H-LSTM language model the flow starts from."""

    embed: int = ranged(lo=1)
    hidden: tuple[int, ...] = ranged(lo=1)
    gate_hidden: tuple[int, ...] = ranged(lo=1)
    dropout_gate: float = ranged(0.2, lo=0.0, hi=0.95)
    dropout_embed: float = ranged(0.65, lo=0.0, hi=0.95)
    dropout_words: float = ranged(0.1, lo=0.0, hi=0.95)


@dataclass(frozen=True)
class BaselineSpec:
    """params ``baseline.ptb``: the stacked nn.LSTM language model and its budget."""

    embed: int = ranged(lo=1)
    hidden: int = ranged(lo=1)
    layers: int = ranged(2, lo=1, hi=8)
    dropout: float = ranged(0.65, lo=0.0, hi=0.95)
    dropout_words: float = ranged(0.1, lo=0.0, hi=0.95)
    epochs: int = ranged(6, lo=1, hi=10000)


def latency_target(params: dict, task: str = "ptb") -> LatencyTarget:
    """The profile's model: the exported H-LSTM LM with every layer at the swept widths,
    on random tokens of the real vocabulary's size (``prepare.<task>.vocab_size``); any LM task
    (``task``) reuses it."""
    spec = section(params, f"model.{task}")
    layers, vocab = len(spec["hidden"]), int(section(params, f"prepare.{task}")["vocab_size"])

    def model(dims: dict[str, int]) -> HLSTMLanguageModel:
        return HLSTMLanguageModel(LMConfig(vocab=vocab, embed=dims["input"], hidden=(dims["hidden"],) * layers,
                                           gate_hidden=(dims["gate_hidden"],) * layers))

    def inputs(batch: int, steps: int, gen: torch.Generator) -> tuple[torch.Tensor]:
        return (torch.randint(0, vocab, (steps, batch), generator=gen),)

    base = {"input": int(spec["embed"]), "hidden": int(spec["hidden"][0]), "gate_hidden": int(spec["gate_hidden"][0])}
    return LatencyTarget(base, model, inputs, runtime.export, PTBTask.latency_call)


class PTBTask(Exports):
    name = "ptb"
    runtime = runtime
    metric = Metric("perplexity")
    splits = ("valid", "test")  # what score() accepts
    monitor_split = "valid"
    dims = ("embed", "hidden", "gate_hidden", "layers")  # of either model's config
    # Profile dimension -> unit key prefix it sizes ("hidden" sizes hidden.0, hidden.1, ...).
    profile_dims = {"input": "embed", "hidden": "hidden", "gate_hidden": "gate"}

    def __init__(self, data_dir: Path, cfg: TrainConfig):
        self.cfg = cfg
        paths = {split: Path(data_dir) / f"{split}.pt" for split in ("train", "valid", "test")}
        prepared.check(Path(data_dir), self.name, [*(p.name for p in paths.values()), "vocab.txt"])
        fix = prepared.rerun(self.name)
        self.vocab = len(_read_vocab(Path(data_dir) / "vocab.txt", fix))
        tokens = {split: _load(path, self.vocab, fix) for split, path in paths.items()}
        if cfg.train_tokens is not None:  # a documented prefix of the text, for the CPU default
            tokens["train"] = tokens["train"][: cfg.train_tokens]
        self.train = _batchify(tokens["train"], cfg.batch, paths["train"], f"train.{self.name}.batch", fix)
        self.valid, self.test = (_batchify(tokens[split], cfg.eval_batch, paths[split],
                                           f"train.{self.name}.eval_batch", fix) for split in ("valid", "test"))

    # ---- models ----------------------------------------------------------------------------
    def new_model(self, spec: dict) -> HLSTMLanguageModel:
        return HLSTMLanguageModel(LMConfig(vocab=self.vocab, **spec))

    def new_baseline(self, spec: dict) -> StackedLSTMLanguageModel:
        return StackedLSTMLanguageModel(StackedLMConfig(vocab=self.vocab, **spec))

    def model_from_checkpoint(self, ckpt: dict, source: str = "checkpoint") -> nn.Module:
        if ckpt["kind"] not in KINDS:
            raise UserError(f"{source} holds a '{ckpt['kind']}' model, not a language model",
                            "point the stage at a PTB checkpoint")
        cls, cfg_cls = KINDS[ckpt["kind"]]
        model = cls(checkpoint.build_config(cfg_cls, ckpt["config"], source))
        if model.config.vocab != self.vocab:
            raise UserError(f"{source} has a {model.config.vocab}-word vocabulary, the data {self.vocab}",
                            f"rerun the flow after prepare_{self.name}")
        return checkpoint.load_state(model, ckpt["state_dict"], source)

    @staticmethod
    def kind(model: nn.Module) -> str:
        return "hlstm_lm" if isinstance(model, HLSTMLanguageModel) else "stacked_lm"

    # ---- training and scoring ------------------------------------------------------------
    def train_steps(self) -> int:
        return window_count(self.train, self.cfg.bptt)

    def train_losses(self, model: nn.Module, epoch: int) -> Iterator[tuple[torch.Tensor, int]]:
        """One pass over the (possibly shortened) training text: each window's mean loss,
        weighted by its tokens (the epoch's loss is per token), the state carried across."""
        state = None
        for x, y in windows(self._mine(self.train), self.cfg.bptt):
            state = _detach(state)  # truncated BPTT: gradients stop at the window start
            logits, state = model(x, state)
            yield _cross_entropy(logits, y), y.numel()

    @staticmethod
    def from_nll(total_nll: float, count: int) -> float:
        """The score from the summed negative log-likelihood of ``count`` tokens: perplexity
        (another LM task scores the same sums its own way, e.g. bits per character)."""
        return perplexity(total_nll, count)

    @torch.no_grad()
    def score(self, model: nn.Module, split: str) -> float:
        """The score (:meth:`from_nll`) on ``valid`` or ``test`` (eval mode, state carried across windows)."""
        data = {"valid": self.valid, "test": self.test}[split]
        model.eval()
        state, total, count = None, 0.0, 0
        for x, y in windows(data, self.cfg.bptt):
            logits, state = model(x, state)
            total += _cross_entropy(logits, y, reduction="sum").item()
            count += y.numel()
        return self.from_nll(total, count)

    def scores(self, model: nn.Module) -> dict[str, float]:
        return {f"{split}_{self.metric.name}": self.score(model, split) for split in ("valid", "test")}

    def gradient_losses(self, model: nn.Module, batches: int, seed: int = 0) -> Iterator[torch.Tensor]:
        """Losses of ``batches`` training windows drawn with an explicit generator (eval mode),
        each with its weight (tokens: this rank's share of the window, of several processes)."""
        model.eval()
        starts = list(range(0, self.train.shape[0] - 1, self.cfg.bptt))
        gen = torch.Generator().manual_seed(self.cfg.seed + seed)
        pick = torch.randperm(len(starts), generator=gen)[:batches].tolist()
        for k in sorted(pick):
            s = starts[k]
            length = min(self.cfg.bptt, self.train.shape[0] - 1 - s)
            x, y = self._mine(self.train[s:s + length]), self._mine(self.train[s + 1:s + 1 + length])
            logits, _ = model(x)
            yield _cross_entropy(logits, y), y.numel()

    @staticmethod
    def _mine(data: torch.Tensor) -> torch.Tensor:
        """This process's streams (columns) of batched text: all of them in one process."""
        return data[:, distributed.current().rows(data.shape[1])]

    # ---- inference (export: tasks.base.Exports) and latency --------------------------------
    @staticmethod
    def input_length(steps: int) -> int:
        """Input tokens that give ``steps`` recurrent steps: one each."""
        return steps

    def latency_inputs(self, batch: int, seq_len: int, seed: int = 0) -> tuple[torch.Tensor]:
        """Random tokens (seq_len, batch): the values do not matter for latency."""
        gen = torch.Generator().manual_seed(seed)
        return (torch.randint(0, self.vocab, (seq_len, batch), generator=gen),)

    @staticmethod
    def latency_call(model: nn.Module, inputs: tuple, part: str):
        """Inference of the whole model, or of embedding + recurrent layers (``"recurrent"``):
        the vocabulary-sized decoder is the same for every step, so it is timed apart."""
        model.eval()
        (tokens,) = inputs
        if part == "full":
            return lambda: model(tokens)
        if part == "recurrent":
            return lambda: model.recurrent(tokens)
        raise ValueError(f"unknown latency part {part!r}")


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Over every (step, stream) position: logits (T, B, V), targets (T, B)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction=reduction)


def _detach(state):
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(_detach(s) for s in state)


def _load(path: Path, vocab: int, fix: str) -> torch.Tensor:
    """One split's token ids, checked: a 1-D int64 tensor of 2 or more ids, each in [0, vocab);
    ``fix`` (rerun the task's prepare stage) ends every error."""
    tokens = io.read_tensors(path, "prepared split", fix)
    if not isinstance(tokens, torch.Tensor):
        raise UserError(f"{path} holds a {type(tokens).__name__}, not a 1-D int64 tensor of token ids", fix)
    if tokens.dim() != 1 or tokens.dtype != torch.int64:
        raise UserError(f"{path} holds a {tokens.dim()}-D {tokens.dtype} tensor, not a 1-D int64 tensor of "
                        f"token ids", fix)
    if tokens.numel() < 2:  # a target needs an input before it
        raise UserError(f"{path} holds {tokens.numel()} tokens: a split needs 2 or more", fix)
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= vocab:
        raise UserError(f"{path} has token ids {lo}..{hi}, outside the {vocab}-word vocabulary of "
                        f"vocab.txt (ids 0..{vocab - 1})", fix)
    return tokens


def _batchify(tokens: torch.Tensor, batch: int, path: Path, key: str, fix: str) -> torch.Tensor:
    """``batchify``, refusing a split too short for one window of ``batch`` streams."""
    data = batchify(tokens, batch)
    if data.shape[0] < 2:  # each stream needs an input and its target
        raise UserError(f"{path}: {tokens.numel()} tokens make no batch of {batch} streams of 2 tokens "
                        f"({key} is {batch})", f"lower {key}, or {fix}")
    return data


def _read_vocab(path: Path, fix: str) -> list[str]:
    """vocab.txt's words, one a line, none twice: the id of a word is its line number - 1."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"prepared data {path} not found", fix) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is unreadable ({type(exc).__name__})", fix) from None
    words, seen = text.splitlines(), {}
    if not words:
        raise UserError(f"{path} is empty", fix)
    for line, word in enumerate(words, 1):
        if len(word.split()) != 1 or word != word.strip():
            raise UserError(f"line {line} of {path} is {word!r}, not one word", fix)
        if word in seen:
            raise UserError(f"{path} lists {word!r} twice (lines {seen[word]} and {line})", fix)
        seen[word] = line
    return words
