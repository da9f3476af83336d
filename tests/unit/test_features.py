import torch

from symbiotic.data.features import FeatureConfig, Normalization, frame_count, mfcc, mfcc_transform, normalize


def test_mfcc_shape_and_frame_count():
    cfg = FeatureConfig(n_mfcc=13, n_mels=20)
    samples = (torch.randn(16000, generator=torch.Generator().manual_seed(0)) * 1000).to(torch.int16)
    feats = mfcc(samples, mfcc_transform(cfg))
    # 1 s at 16 kHz, 10 ms hop = 160 samples: 16000 // 160 + 1 = 101 centred frames
    assert feats.shape == (101, 13)
    assert frame_count(16000, cfg) == 101
    assert frame_count(16159, cfg) == 101 and frame_count(16160, cfg) == 102


def test_window_is_20ms():
    transform = mfcc_transform(FeatureConfig())
    spec = transform.MelSpectrogram.spectrogram
    assert spec.win_length == 320 and spec.hop_length == 160  # 20 ms / 10 ms at 16 kHz
    assert spec.n_fft == 512  # zero-padded to the next power of two


def test_utterance_normalization_zero_mean_unit_std():
    feats = [torch.randn(50, 4) * 3 + 7]
    (out,), stats = normalize(feats, Normalization.UTTERANCE)
    assert stats is None
    assert torch.allclose(out.mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(out.std(0), torch.ones(4), atol=1e-3)


def test_global_normalization_reuses_train_stats():
    train = [torch.full((4, 2), 2.0), torch.full((4, 2), 4.0)]  # mean 3, std ~1.07
    _, stats = normalize(train, Normalization.GLOBAL)
    (test,), again = normalize([torch.full((1, 2), 3.0)], Normalization.GLOBAL, stats)
    assert again is stats
    assert torch.allclose(test, torch.zeros(1, 2))
