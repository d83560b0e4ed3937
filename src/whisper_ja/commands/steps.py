"""Long commands made of steps that a re-run with the same settings resumes after.

``whisper-ja demo`` runs synthesis, training and evaluations that take minutes each; an
interrupted run continues where it stopped instead of starting over, and a run with other
settings in the same folder is refused rather than mixed with the earlier one.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from whisper_ja.config import ConfigError

__all__ = ["ResumableSteps"]


class ResumableSteps:
    """Records finished steps in ``OUT/{name}_state.json`` so a re-run skips them.

    Args:
        out: The command's output folder (created).
        name: The command's name (state file, messages).
        settings: The settings the steps depend on, as JSON-able values; a state file made
            with other settings is refused.
        fresh: Delete ``out`` first and start over.

    Raises:
        ConfigError: ``out`` holds a run with other settings.
    """

    def __init__(self, out: Path, name: str, settings: dict[str, Any], *,
                 fresh: bool = False) -> None:
        self.out, self.name = out, name
        self.file = out / f"{name}_state.json"
        if fresh and out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        state = (json.loads(self.file.read_text(encoding="utf-8")) if self.file.is_file()
                 else {"settings": settings, "done": {}})
        if state["settings"] != settings:
            changed = sorted(k for k in settings if state["settings"].get(k) != settings[k])
            raise ConfigError(f"out: {out} holds a {name} run with other settings "
                              f"({', '.join(changed)}); pass --fresh or choose another --out")
        self.state = state
        self._save()

    def _save(self) -> None:
        self.file.write_text(json.dumps(self.state, indent=2, ensure_ascii=False) + "\n",
                             encoding="utf-8")

    def run(self, step: str, work: Callable[[], Any]) -> float:
        """Run ``work`` unless ``step`` is done; returns its wall time (0 when skipped)."""
        if step in self.state["done"]:
            print(f"[{self.name}] {step}: already done in an earlier run, skipped")
            return 0.0
        print(f"[{self.name}] {step} ...", flush=True)
        began = time.perf_counter()
        work()
        seconds = time.perf_counter() - began
        self.state["done"][step] = round(seconds, 1)
        self._save()
        print(f"[{self.name}] {step}: done in {seconds:.0f} s", flush=True)
        return seconds
