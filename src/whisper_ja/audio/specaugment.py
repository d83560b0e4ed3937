"""SpecAugment on batches of Whisper log-mel features (training only).

Frequency masking and adaptive time masking from Park et al., "SpecAugment" (2019) and
"SpecAugment on large-scale datasets" (2020). Time warping is left out: the 2019 paper found it
the least useful part and it is the costliest.

Widths follow the papers' names: ``freq_width`` = F, ``freq_masks`` = mF, ``time_masks`` = mT and
the time-mask width bound T = ``time_width`` x the clip's *real* frame count (capped at
``time_width_max``). Whisper batches are padded (to 30 s, or to the batch's longest clip with
dynamic context), so a bound taken from the padded length would mask mostly padding on short
clips; taking it from the real length keeps the masking strength equal for every clip.

The masks are drawn with an explicit :class:`torch.Generator`, so a training step can be
replayed exactly (resume, tests) whatever else consumed the global random state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from whisper_ja.config import ConfigError, field

__all__ = ["SpecAugmentConfig", "spec_augment", "spec_augment_masks"]


@dataclass(frozen=True)
class SpecAugmentConfig:
    """SpecAugment (Park et al. 2019) on log-mel features, in training only.

    Frequency masks: ``freq_masks`` (mF) bands, each of a width drawn uniformly from
    ``0..freq_width`` (F) mel bins. Time masks: ``time_masks`` (mT) spans, each of a width drawn
    from ``0..T`` frames with T = ``time_width`` x the clip's real (unpadded) frames, capped at
    ``time_width_max`` (the adaptive policy of Park et al. 2020, so padding never dilutes it).
    Masked cells take the mean of the clip's real frames.
    """

    enabled: bool = field(True, help="apply SpecAugment to training batches")
    freq_masks: int = field(2, help="mF: number of frequency masks per clip")
    freq_width: int = field(15, help="F: maximum width of a frequency mask, in mel bins")
    time_masks: int = field(2, help="mT: number of time masks per clip")
    time_width: float = field(
        0.05, help="pS: maximum width of a time mask as a fraction of the clip's real frames")
    time_width_max: int = field(100, help="T cap: maximum time-mask width in frames (0 = none)")

    def __post_init__(self) -> None:
        for name in ("freq_masks", "time_masks", "time_width_max"):
            if getattr(self, name) < 0:
                raise ConfigError(f"specaugment.{name}: must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.freq_width <= 128:
            raise ConfigError(f"specaugment.freq_width: must be in 0..128 mel bins, "
                              f"got {self.freq_width}")
        if not 0 <= self.time_width <= 1:
            raise ConfigError(f"specaugment.time_width: must be a fraction in [0, 1], "
                              f"got {self.time_width}")


def _band_masks(count: int, max_width: int | torch.Tensor, extent: torch.Tensor, size: int,
                generator: torch.Generator) -> torch.Tensor:
    """Boolean ``(B, size)`` masks: ``count`` bands per row, each inside ``[0, extent)``.

    ``max_width`` and ``extent`` may differ per row (tensors of shape ``(B,)``).
    """
    batch = extent.shape[0]
    positions = torch.arange(size).unsqueeze(0)  # (1, size)
    mask = torch.zeros(batch, size, dtype=torch.bool)
    max_w = torch.as_tensor(max_width).expand(batch).clamp(min=0)
    for _ in range(count):
        # Width uniform in 0..max_w, start uniform in 0..extent - width (inclusive bounds).
        width = (torch.rand(batch, generator=generator) * (max_w + 1)).floor().long()
        width = torch.minimum(width, extent)
        start = (torch.rand(batch, generator=generator) * (extent - width + 1)).floor().long()
        start = torch.minimum(start, (extent - width).clamp(min=0))
        lo, hi = start.unsqueeze(1), (start + width).unsqueeze(1)
        mask |= (positions >= lo) & (positions < hi)
    return mask


def spec_augment_masks(lengths: torch.Tensor, n_mels: int, frames: int,
                       config: SpecAugmentConfig, generator: torch.Generator
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw the frequency and time masks of one batch.

    Args:
        lengths: ``(B,)`` real (unpadded) frame counts of the clips.
        n_mels: Number of mel bins (80 or 128).
        frames: Padded frame count of the batch.
        config: The widths and counts.
        generator: Source of randomness.

    Returns:
        ``(freq_mask (B, n_mels), time_mask (B, frames))``, True where masked.
    """
    lengths = lengths.to("cpu").long().clamp(max=frames)
    batch = lengths.shape[0]
    freq = _band_masks(config.freq_masks, config.freq_width,
                       torch.full((batch,), n_mels, dtype=torch.long), n_mels, generator)
    bound = (lengths.double() * config.time_width).floor().long()
    if config.time_width_max:
        bound = bound.clamp(max=config.time_width_max)
    time = _band_masks(config.time_masks, bound, lengths, frames, generator)
    return freq, time


def spec_augment(features: torch.Tensor, lengths: torch.Tensor, config: SpecAugmentConfig,
                 generator: torch.Generator) -> torch.Tensor:
    """Return a masked copy of ``features`` (the input is left untouched).

    Args:
        features: ``(B, n_mels, frames)`` log-mel features, padded.
        lengths: ``(B,)`` real frame counts; time masks fall inside them only.
        config: SpecAugment settings; ``enabled=False`` returns ``features`` itself.
        generator: CPU generator the masks are drawn from.

    Returns:
        The masked features, same shape, dtype and device. Masked cells hold the mean of the
        clip's real frames, so masking adds no new energy level; padding frames never change.
    """
    if not config.enabled or (config.freq_masks == 0 and config.time_masks == 0):
        return features
    batch, n_mels, frames = features.shape
    freq, time = spec_augment_masks(lengths, n_mels, frames, config, generator)
    freq, time = freq.to(features.device), time.to(features.device)
    real = (torch.arange(frames, device=features.device).unsqueeze(0)
            < lengths.to(features.device).unsqueeze(1))  # (B, frames)
    count = (real.sum(dim=1) * n_mels).clamp(min=1)
    mean = (features * real.unsqueeze(1)).sum(dim=(1, 2)) / count  # (B,)
    # Padding is left as it is (Whisper's silence): masks cover real frames only.
    masked = (freq.unsqueeze(2) & real.unsqueeze(1)) | time.unsqueeze(1)  # (B, n_mels, frames)
    return torch.where(masked, mean.view(batch, 1, 1).to(features.dtype), features)
