"""The audio stream's x̂0 along the steps (LTX-2 / LTX-2.3 audio-video models), as pictures.

LTX-2 denoises a video latent and an audio latent together. The audio latent (C, T, F_bins) is the
audio VAE's code of a mel spectrogram (LTX-2: 8 channels, 16 frequency bins, 25 latent frames per
second). Two views of one step's audio x̂0:

- **latent**: the latent itself, channels stacked along the vertical axis (each channel's bins low
  to high), time along the horizontal axis. Needs nothing but the trace.
- **spectrogram**: the waveform the audio VAE decodes it to, as a log-magnitude STFT (dB),
  mono mix, 0 Hz at the bottom.

:func:`audio_steps_figure` stacks one row per step with one colour scale for all rows, so a step
whose audio is still noise looks different from one whose audio has settled.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from .energy_plots import figure_to_image


def latent_map(latent: torch.Tensor) -> np.ndarray:
    """An audio latent (C, T, F) as one picture (C·F, T): channel c's bins in rows c·F … c·F+F−1.

    Raises:
        ValueError: unless the latent is 3-D.
    """
    if latent.ndim != 3:
        raise ValueError(f"expected an audio latent (C, T, F), got shape {tuple(latent.shape)}")
    c, t, f = latent.shape
    return latent.detach().float().cpu().permute(0, 2, 1).reshape(c * f, t).numpy()


def spectrogram(waveform: torch.Tensor, sample_rate: int, n_fft: int = 1024, hop: int | None = None,
                floor_db: float = -120.0) -> tuple[np.ndarray, float, float]:
    """Log-magnitude STFT of a waveform, mono mix, in dB relative to full scale: a sine of amplitude 1
    reads about 0 dB, so the rows of several steps compare in level too.

    Args:
        waveform: (samples,), (channels, samples) or (1, channels, samples), any float dtype.
        sample_rate: samples per second.
        n_fft: FFT size (Hann window of the same length); shortened for very short clips.
        hop: hop length, default n_fft // 4.
        floor_db: lower limit of the dB values (silence).

    Returns:
        (dB array (n_fft // 2 + 1, frames), duration in seconds, Nyquist frequency in Hz).
    """
    wave = waveform.detach().float().cpu()
    while wave.ndim > 2:
        wave = wave[0]
    if wave.ndim == 2:
        wave = wave.mean(dim=0)
    if wave.numel() < 2:
        raise ValueError("the waveform is empty")
    n_fft = int(max(16, min(n_fft, 2 ** int(np.floor(np.log2(wave.numel()))))))
    hop = int(hop or max(1, n_fft // 4))
    window = torch.hann_window(n_fft)
    spec = torch.stft(wave, n_fft=n_fft, hop_length=hop, window=window, center=True, return_complex=True).abs()
    db = 20.0 * torch.log10((spec / (window.sum() / 2)).clamp_min(1e-12))
    return db.clamp_min(floor_db).numpy(), wave.numel() / float(sample_rate), sample_rate / 2.0


def audio_steps_figure(rows: Sequence[np.ndarray], labels: Sequence[str], title: str, kind: str = "latent",
                       duration: float | None = None, max_hz: float | None = None, channels: int | None = None):
    """One image row per step, shared colour scale, as a PIL image.

    Args:
        rows: 2-D arrays (vertical bins, time), one per step, all the same shape.
        labels: one label per row (e.g. "step 3  σ=0.612").
        kind: "latent" (rows from :func:`latent_map`; a symmetric scale around 0) or "spectrogram" (dB from
            :func:`spectrogram`; the loudest bin of all rows down to 90 dB below it).
        duration: clip length in seconds for the time axis (spectrograms), else latent frames.
        max_hz: the top of the frequency axis (spectrograms).
        channels: latent channels, to mark channel boundaries (latent view).

    Raises:
        ValueError: for no rows, mismatched labels or shapes.
    """
    if not rows:
        raise ValueError("no steps to draw")
    if len(labels) != len(rows):
        raise ValueError(f"{len(labels)} labels for {len(rows)} rows")
    arrays = [np.asarray(r, dtype=np.float32) for r in rows]
    if any(a.ndim != 2 or a.shape != arrays[0].shape for a in arrays):
        raise ValueError("every row must be a 2-D array of the same shape")
    height, width = arrays[0].shape
    values = np.concatenate([a.ravel() for a in arrays])
    finite = values[np.isfinite(values)]
    if kind == "spectrogram":  # one scale: the loudest bin of all steps down to 90 dB below it
        vmax = float(finite.max()) if finite.size else 0.0
        vmin, cmap, unit = vmax - 90.0, "magma", "dB (full scale)"
    else:
        lim = float(np.percentile(np.abs(finite), 99.5)) if finite.size else 1.0
        vmin, vmax, cmap, unit = -max(lim, 1e-6), max(lim, 1e-6), "RdBu_r", "latent value"
    n = len(arrays)
    row_h = 1.25 if kind == "spectrogram" else max(1.0, min(2.2, height / 60))
    fig = Figure(figsize=(11.0, 0.9 + row_h * n), dpi=100, facecolor="white")
    top, bottom = 0.55 / (0.9 + row_h * n), 0.45 / (0.9 + row_h * n)
    span = (1.0 - top - bottom) / n
    if kind == "spectrogram":
        extent = (0.0, duration or float(width), 0.0, (max_hz or float(height)) / 1000.0)
    else:
        extent = (-0.5, width - 0.5, -0.5, height - 0.5)
    image = None
    for i, (array, label) in enumerate(zip(arrays, labels)):
        ax = fig.add_axes([0.2, 1.0 - top - (i + 1) * span + 0.08 * span, 0.68, 0.84 * span])
        image = ax.imshow(array, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                          interpolation="nearest", extent=extent)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
        ax.tick_params(labelsize=7)
        if kind == "latent" and channels and channels > 1:
            per = height / channels
            for c in range(1, channels):
                ax.axhline(c * per - 0.5, color="black", lw=0.9, alpha=0.8)
            ax.set_yticks([])
        elif kind == "spectrogram":
            ax.set_yticks([0, extent[3]], ["0", f"{extent[3]:.0f} kHz"])
        if i < n - 1:
            ax.set_xticklabels([])
        else:
            ax.set_xlabel("time (s)" if kind == "spectrogram" and duration else "audio latent frame", fontsize=9)
    cax = fig.add_axes([0.9, bottom + 0.1 * span, 0.015, max(0.05, 1.0 - top - bottom - 0.2 * span)])
    bar = fig.colorbar(image, cax=cax)
    bar.set_label(unit, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=11, y=1.0 - 0.15 * top)
    return figure_to_image(fig)
