"""Tier 0: pictures of the audio x̂0 (cos_core.audio), on plain tensors."""
import math

import numpy as np
import pytest
import torch

from cos_core.audio import audio_steps_figure, latent_map, spectrogram


def test_latent_map_stacks_channels_with_their_bins():
    latent = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)  # (C, T, F)
    picture = latent_map(latent)
    assert picture.shape == (8, 3)
    assert np.array_equal(picture[:4, 1], latent[0, 1].numpy()) and np.array_equal(picture[4:, 2], latent[1, 2].numpy())
    with pytest.raises(ValueError, match="audio latent"):
        latent_map(torch.zeros(1, 2, 3, 4))


def test_spectrogram_finds_a_tone():
    rate, hz = 16000, 1000.0
    t = torch.arange(rate) / rate
    wave = torch.stack([torch.sin(2 * math.pi * hz * t), torch.sin(2 * math.pi * hz * t)])  # stereo, 1 s
    db, seconds, nyquist = spectrogram(wave, rate, n_fft=512)
    assert seconds == pytest.approx(1.0) and nyquist == 8000.0
    assert db.shape[0] == 257 and abs(db.max()) < 1.5 and db.min() >= -120.0  # full-scale sine: about 0 dB
    peak = int(np.argmax(db.mean(axis=1)))
    assert abs(peak * nyquist / (db.shape[0] - 1) - hz) < 40
    quiet, _, _ = spectrogram(wave * 0.1, rate, n_fft=512)
    assert quiet.max() == pytest.approx(db.max() - 20.0, abs=0.1), "levels compare across clips"
    short, _, _ = spectrogram(torch.randn(1, 2, 100), rate)  # (B, channels, samples), shorter than n_fft
    assert short.shape[0] == 33


def test_audio_steps_figure_has_a_row_per_step():
    rows = [np.random.default_rng(i).normal(size=(32, 20)) for i in range(3)]
    image = audio_steps_figure(rows, ["step 0", "step 1", "step 2"], "audio", kind="latent", channels=2)
    fewer = audio_steps_figure(rows[:1], ["step 0"], "audio", kind="latent", channels=2)
    assert image.size[0] == fewer.size[0] and image.size[1] > fewer.size[1]
    spectro = audio_steps_figure([-np.abs(r) * 10 for r in rows], ["a", "b", "c"], "s", kind="spectrogram",
                                 duration=0.5, max_hz=8000)
    assert spectro.mode == "RGB" and np.asarray(spectro).std() > 10
    with pytest.raises(ValueError, match="labels"):
        audio_steps_figure(rows, ["one"], "x")
    with pytest.raises(ValueError, match="same shape"):
        audio_steps_figure([rows[0], rows[0][:5]], ["a", "b"], "x")
