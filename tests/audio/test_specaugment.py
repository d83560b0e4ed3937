import pytest
import torch

from whisper_ja.audio.specaugment import SpecAugmentConfig, spec_augment, spec_augment_masks
from whisper_ja.config import ConfigError, load_config


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_time_masks_stay_inside_real_frames_and_scale_with_clip_length():
    config = SpecAugmentConfig(freq_masks=0, time_masks=2, time_width=0.1, time_width_max=0)
    lengths = torch.tensor([100, 1000])
    widest = torch.zeros(2, dtype=torch.long)
    for seed in range(200):
        _, time = spec_augment_masks(lengths, 80, 3000, config, _gen(seed))
        assert not time[0, 100:].any() and not time[1, 1000:].any()  # never the padding
        widest = torch.maximum(widest, time.sum(dim=1))
    # Two masks of at most 10% of the real frames each: <= 20 and <= 200 frames.
    assert widest[0] <= 20 and widest[1] <= 200
    assert widest[1] > 100  # the long clip really gets wide masks (bound is adaptive)


def test_time_width_cap_and_freq_width_bound():
    config = SpecAugmentConfig(freq_masks=1, freq_width=10, time_masks=1, time_width=1.0,
                               time_width_max=30)
    for seed in range(100):
        freq, time = spec_augment_masks(torch.tensor([2000]), 80, 2000, config, _gen(seed))
        assert freq.sum() <= 10 and time.sum() <= 30
        if freq.any():  # one contiguous band
            idx = freq[0].nonzero().flatten()
            assert (idx[-1] - idx[0] + 1) == len(idx)


def test_masked_cells_take_the_clip_mean_and_input_is_untouched():
    features = torch.randn(3, 80, 400)
    lengths = torch.tensor([400, 250, 120])
    before = features.clone()
    out = spec_augment(features, lengths, SpecAugmentConfig(), _gen(1))
    assert torch.equal(features, before)
    assert out.shape == features.shape
    changed = out != features
    assert changed.any()
    for row, length in enumerate(lengths.tolist()):
        mean = features[row, :, :length].mean()
        assert torch.allclose(out[row][changed[row]], mean.expand(int(changed[row].sum())),
                              atol=1e-5)
        assert not changed[row, :, length:].any()  # padding stays Whisper's silence


def test_same_generator_same_masks_and_disabled_is_identity():
    features = torch.randn(2, 80, 300)
    lengths = torch.tensor([300, 200])
    a = spec_augment(features, lengths, SpecAugmentConfig(), _gen(7))
    b = spec_augment(features, lengths, SpecAugmentConfig(), _gen(7))
    c = spec_augment(features, lengths, SpecAugmentConfig(), _gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    off = spec_augment(features, lengths, SpecAugmentConfig(enabled=False), _gen(7))
    assert off is features


@pytest.mark.parametrize(("override", "name"), [
    ("freq_masks=-1", "specaugment.freq_masks"),
    ("time_width=1.5", "specaugment.time_width"),
    ("freq_width=200", "specaugment.freq_width"),
])
def test_bad_settings_name_the_setting(override, name):
    with pytest.raises(ConfigError, match=name):
        load_config(SpecAugmentConfig, overrides=[override])
