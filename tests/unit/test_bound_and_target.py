"""The profile's latency targets (what ships, every layer) and the bound's work counts."""

import copy

import pytest
import torch
from torch import nn

from helpers import ROOT
from symbiotic.config import load_params
from symbiotic.hardware.bound import bound_s, recurrent_work
from symbiotic.runtime.formats import every
from symbiotic.tasks import task_module


@pytest.fixture
def params():
    p = copy.deepcopy(load_params(ROOT / "params.yaml"))
    p["model"]["ptb"].update(embed=6, hidden=[8, 8], gate_hidden=[5, 5])
    p["model"]["an4"].update(conv_channels=2, hidden=8, gate_hidden=5, layers=2)
    return p


def test_ptb_target_builds_every_layer_at_the_swept_widths(params):
    target = task_module("ptb").latency_target(params)
    assert target.base == {"input": 6, "hidden": 8, "gate_hidden": 5}
    model = target.model({"input": 4, "hidden": 7, "gate_hidden": 3})
    assert model.config.hidden == (7, 7) and model.config.gate_hidden == (3, 3) and model.config.embed == 4
    exported = target.export(model, every("csr"), False, "dense")
    (tokens,) = target.inputs(2, 5, torch.Generator().manual_seed(0))
    assert tokens.shape == (5, 2) and int(tokens.max()) < model.config.vocab
    assert target.call(exported, (tokens,), "recurrent")().shape == (5, 2, 7)


def test_an4_target_is_bidirectional_and_steps_count_after_the_conv(params):
    target = task_module("an4").latency_target(params)
    model = target.model({"hidden": 6, "gate_hidden": 4, "input": target.base["input"]})
    exported = target.export(model, every("dense"), False, "dense")
    assert [layer.directions for layer in exported.layers] == [2, 2]
    x, lengths = target.inputs(2, 9, torch.Generator().manual_seed(0))
    assert x.shape[0] == 18 and torch.equal(lengths, torch.tensor([18, 18]))  # the conv halves time
    assert target.call(exported, (x, lengths), "recurrent")().shape == (9, 2, 6)


def test_work_counts_nonzeros_of_csr_and_every_entry_of_dense(params):
    target = task_module("ptb").latency_target(params)
    model = target.model(target.base)
    with torch.no_grad():
        model.layers[0].mask_u_h.zero_()
        model.layers[0].mask_u_h[0, :3] = 1  # 3 nonzeros left in layer 0's u_h
        model.layers[0].u_h.mul_(model.layers[0].mask_u_h)
    csr = target.export(model, {"u_x": "dense", "u_h": "csr", "w": "dense"}, False, "dense")
    I, H, G, T, B = 6, 8, 5, 7, 2
    per_column = (4 * G * I + 3 + 4 * H * G) + (4 * G * H + 4 * G * H + 4 * H * G)  # layer 0, then layer 1 (I = H)
    assert recurrent_work(csr, T, B) == (per_column * T * B, 2 * 5 * H * T * B)


def test_work_of_a_stock_lstm_and_the_bound():
    lstm = nn.Module()
    lstm.rnn = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    macs, elems = recurrent_work(lstm, 10, 2)
    assert macs == 2 * 4 * 4 * ((3 + 4) + (8 + 4)) * 10 * 2 and elems == 5 * 2 * 2 * 4 * 10 * 2
    assert bound_s((100, 10), {"macs_per_s": 100.0, "elems_per_s": 10.0}) == 2.0
