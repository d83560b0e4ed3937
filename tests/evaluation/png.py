"""Checks that a written PNG shows a drawn figure (not only a PNG signature)."""

from __future__ import annotations

import numpy as np
from matplotlib.image import imread


def assert_drawn_png(path) -> None:
    """A real, readable PNG of a drawn figure: a sensible size, and more than a blank page."""
    image = imread(path)
    height, width = image.shape[:2]
    assert height >= 200 and width >= 300
    colours = np.unique(image[..., :3].reshape(-1, 3), axis=0)
    assert len(colours) > 20, f"{path.name} looks blank"
    ink = (image[..., :3] < 0.5).any(axis=-1).mean()
    assert 0.005 < ink < 0.6, f"{path.name}: {ink:.3f} of the pixels are dark"
