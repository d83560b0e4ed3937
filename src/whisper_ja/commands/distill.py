"""``whisper-ja distill``: its settings and ``run()``."""

from __future__ import annotations

from whisper_ja.training.distill import DistillConfig, distill

__all__ = ["Settings", "run"]

Settings = DistillConfig
"""The settings of ``whisper-ja distill`` (flags and YAML keys)."""


def run(config: DistillConfig) -> int:
    """Entry point of ``whisper-ja distill``: train the student, then print a summary."""
    report = distill(config)
    counts = report["pseudo_labels"]
    last = report["last"] or {}
    layers = report["student_layers_from_teacher"]
    print(f"wrote {config.out}: student with decoder layers {layers} of the teacher's "
          f"{report['teacher_decoder_layers']}; pseudo-labels kept {counts['kept']} of "
          f"{counts['pseudo_labels']} (dropped: {counts['dropped_high_error']} high error, "
          f"{counts['dropped_looped']} looped, {counts['dropped_empty']} empty; "
          f"{report['kept_audio_hours']:.2f} of {report['audio_hours']:.2f} h kept); "
          f"{report['steps']} steps ({report['precision']}), last loss "
          f"{last.get('loss', float('nan')):.4f}; labelling {report['label_seconds']:.0f} s, "
          f"training {report['train_seconds']:.0f} s")
    return 0
