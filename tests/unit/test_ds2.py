"""Tests for the DeepSpeech2-style acoustic model."""

import pytest
import torch

from symbiotic.errors import UserError
from symbiotic.models.ds2 import DeepSpeech2, DS2Config, ctc_loss, reverse_padded
from symbiotic.models.hlstm import HLSTMLayer

F_ = 13  # MFCC coefficients
RNNS = ["hlstm", "lstm"]


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _config(rnn="hlstm", **kw) -> DS2Config:
    base = dict(n_features=F_, conv_channels=4, rnn=rnn, hidden=8, gate_hidden=4, layers=2, dropout_gate=0.0)
    return DS2Config(**{**base, **kw})


def _model(rnn="hlstm", seed=0, **kw) -> DeepSpeech2:
    model = DeepSpeech2(_config(rnn, **kw))
    model.reset_parameters(torch.Generator().manual_seed(seed))
    return model


def _batch(lengths=(20, 13, 7), seed=1):
    """Random utterances zero-padded time-major: x (T_max, B, F), lengths (B,)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(max(lengths), len(lengths), F_)
    for b, n in enumerate(lengths):
        x[:n, b] = torch.randn(n, F_, generator=g)
    return x, torch.tensor(lengths)


def test_config_round_trip_and_from_model():
    cfg = _config()
    assert DS2Config.from_dict(cfg.to_dict()) == cfg
    assert _model().config == cfg
    assert _model("lstm").config == _config("lstm")


@pytest.mark.parametrize("kw, message", [
    (dict(rnn="gru"), "rnn='gru'"),
    (dict(hidden=0), "hidden=0"),
    (dict(gate_hidden=0), "gate_hidden=0"),
    (dict(dropout_gate=1.0), "dropout_gate=1.0"),
])
def test_config_validation(kw, message):
    with pytest.raises(UserError, match=message):
        _config(**kw)


def test_lstm_needs_no_gate_hidden():
    assert _config("lstm", gate_hidden=0).gate_hidden == (0, 0)


@pytest.mark.parametrize("n_features", [13, 40])
def test_conv_output_length_matches_actual(n_features):
    model = _model(n_features=n_features).eval()
    for T in (1, 2, 7, 10, 11, 24):
        x = torch.randn(1, 1, T, n_features)  # (B, 1, T, F)
        for block in model.conv:
            x = block(x)
        assert model.conv_output_length(torch.tensor([T])).item() == x.shape[2]


@pytest.mark.parametrize("rnn", RNNS)
def test_forward_shapes(rnn):
    model = _model(rnn)
    x, lengths = _batch()
    log_probs, out_lengths = model(x, lengths)
    assert log_probs.shape == (10, 3, 29)  # ceil(20 / 2) frames, 29 labels
    assert out_lengths.tolist() == [10, 7, 4]
    assert torch.allclose(log_probs.exp().sum(2), torch.ones(10, 3))


def test_recurrent_layers():
    assert [type(m) for m in _model("hlstm").recurrent_layers()] == [HLSTMLayer] * 4  # 2 layers x 2 directions
    assert [type(m) for m in _model("lstm").recurrent_layers()] == [torch.nn.LSTM] * 2
    assert len(_model("hlstm", bidirectional=False).recurrent_layers()) == 2


def test_reverse_padded_reverses_only_valid_frames():
    x = torch.arange(4.0)[:, None].expand(4, 2)  # (T, B): 0 1 2 3 in both columns
    out = reverse_padded(x, torch.tensor([4, 2]))
    assert out[:, 0].tolist() == [3, 2, 1, 0] and out[:, 1].tolist() == [1, 0, 2, 3]


@pytest.mark.parametrize("rnn", RNNS)
def test_padding_does_not_change_an_utterance(rnn):
    model = _model(rnn).eval()
    x, lengths = _batch((9, 21))
    alone, alone_len = model(x[:9, :1], lengths[:1])
    batched, _ = model(x, lengths)
    n = alone_len.item()
    assert torch.allclose(batched[:n, 0], alone[:, 0], atol=1e-5)


@pytest.mark.parametrize("rnn", RNNS)
def test_sgd_steps_reduce_ctc_loss(rnn):
    model = _model(rnn).train()
    x, lengths = _batch((16, 12))
    targets, target_lengths = torch.tensor([3, 4, 5, 6, 7, 8]), torch.tensor([3, 3])
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def loss():
        return ctc_loss(*model(x, lengths), targets, target_lengths)

    with torch.no_grad():
        before = loss().item()
    for _ in range(20):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    with torch.no_grad():
        after = loss().item()
    assert after < before


def test_wrong_feature_count_is_a_user_error():
    x, lengths = _batch()
    with pytest.raises(UserError, match="13 coefficients"):
        _model(n_features=20)(x, lengths)
