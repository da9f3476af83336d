"""Hand-counted parameter numbers for tiny models of both LM classes."""

import torch

from symbiotic.models.counting import count_parameters
from symbiotic.models.lm import HLSTMLanguageModel, LMConfig, StackedLMConfig, StackedLSTMLanguageModel


def _hlstm(hidden=(4,), gate_hidden=(2,)):
    model = HLSTMLanguageModel(LMConfig(vocab=5, embed=3, hidden=hidden, gate_hidden=gate_hidden))
    model.reset_parameters(torch.Generator().manual_seed(0))
    return model


def test_hlstm_one_layer_dense_counts():
    # V=5, E=3, H=4, G=2
    # embedding 5*3 = 15
    # recurrent: u_x 8*3=24, u_h 8*4=32, u_b 8, w 4*4*2=32, w_b 4*4=16 -> 112
    # decoder 5*4 + 5 = 25; total 15 + 112 + 25 = 152
    c = count_parameters(_hlstm())
    assert (c["embedding_dense"], c["recurrent_dense"], c["decoder_dense"], c["total_dense"]) == (15, 112, 25, 152)


def test_hlstm_unpruned_nonzero_equals_dense():
    c = count_parameters(_hlstm())
    assert (c["embedding_nonzero"], c["recurrent_nonzero"], c["decoder_nonzero"]) == (15, 112, 25)


def test_hlstm_two_layers_second_reads_first_hidden():
    # layer 0 (I=3, H=4, G=2): 112 as above
    # layer 1 (I=4, H=3, G=1): u_x 4*4=16, u_h 4*3=12, u_b 4, w 4*3*1=12, w_b 4*3=12 -> 56
    # decoder 5*3 + 5 = 20; total 15 + 168 + 20 = 203
    c = count_parameters(_hlstm(hidden=(4, 3), gate_hidden=(2, 1)))
    assert (c["recurrent_dense"], c["decoder_dense"], c["total_dense"]) == (168, 20, 203)


def test_hlstm_nonzero_drops_by_exactly_the_masked_count():
    model = _hlstm()
    model.layers[0].mask_u_h[:, 0] = 0  # 8 recurrent entries
    model.mask_decoder_w[1:3] = 0  # 2 rows * 4 = 8 decoder entries
    c = count_parameters(model)
    assert (c["recurrent_nonzero"], c["decoder_nonzero"], c["total_nonzero"]) == (112 - 8, 25 - 8, 152 - 16)
    assert c["total_dense"] == 152  # dense is shape only


def test_stacked_dense_counts():
    # V=5, E=3, H=4, 2 layers; nn.LSTM has 4H = 16 gate rows per layer
    # embedding 15
    # layer 0: w_ih 16*3=48, w_hh 16*4=64, b_ih 16, b_hh 16 -> 144
    # layer 1: w_ih 16*4=64, w_hh 64, biases 32 -> 160; recurrent 304
    # decoder 5*4 + 5 = 25; total 15 + 304 + 25 = 344
    model = StackedLSTMLanguageModel(StackedLMConfig(vocab=5, embed=3, hidden=4, layers=2))
    model.reset_parameters(torch.Generator().manual_seed(0))
    c = count_parameters(model)
    assert (c["embedding_dense"], c["recurrent_dense"], c["decoder_dense"], c["total_dense"]) == (15, 304, 25, 344)
    assert c["total_nonzero"] == 344


def test_stacked_nonzero_counts_actual_zeros_in_lstm_weights():
    model = StackedLSTMLanguageModel(StackedLMConfig(vocab=5, embed=3, hidden=4, layers=2))
    model.reset_parameters(torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.lstm.weight_hh_l0[:2].zero_()  # 2 rows * 4 = 8 entries
    c = count_parameters(model)
    assert (c["recurrent_nonzero"], c["recurrent_dense"]) == (304 - 8, 304)
