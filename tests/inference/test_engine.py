"""The engine's front door: which encoder context each kind of recording gets."""

from __future__ import annotations

import dataclasses

import pytest

from tests.inference.fake_backend import FakeBackend, speech, ts
from whisper_ja.audio.features import ContextPolicy, batch_context_frames
from whisper_ja.inference import vad
from whisper_ja.inference.backend import Generated
from whisper_ja.inference.engine import Engine, one_window_policy
from whisper_ja.inference.longform import decoder
from whisper_ja.inference.options import DecodingOptions, LongformOptions, PauseSettings
from whisper_ja.inference.timestamps import SpeechSpan

OPTIONS = DecodingOptions(longform=LongformOptions(
    vad=False, pauses=PauseSettings(split=False, snap_s=0.0, merge_gap_s=0.0)))


def _engine(policy: ContextPolicy, context: str) -> tuple[Engine, FakeBackend]:
    backend = FakeBackend(lambda w, r: Generated((ts(0.0), 3, ts(1.0)), -0.1, 0.0),
                          policy=policy)
    return Engine(backend, OPTIONS, "fake", one_window_policy(backend, context)), backend


def test_an_untouched_model_runs_clips_and_short_files_at_their_length_and_long_audio_at_30_s(
        monkeypatch):
    # ...and long audio's skipped speech, decoded again in pieces, at its length too
    heard = [SpeechSpan(0.0, 50.0)]
    monkeypatch.setattr(decoder, "speech_spans", lambda *a, **k: list(heard))
    monkeypatch.setattr(vad, "speech_spans", lambda *a, **k: list(heard))
    engine, backend = _engine(ContextPolicy(dynamic=False), "auto")
    list(engine.transcribe_many([speech(3.0), speech(4.0, seed=1)]))
    engine.decode_clips([speech(2.0)])
    assert backend.encode_policies == [ContextPolicy(), ContextPolicy()]
    # the 8 s floor: a 3 s file is encoded on 800 frames, not 3000
    assert batch_context_frames([speech(3.0)], backend.encode_policies[0]) == 800
    backend.encode_policies.clear()
    list(engine.transcribe(speech(50.0)).segments)
    assert backend.encode_policies and set(backend.encode_policies) == {None}
    # with VAD on, each window writes its first second only: the speech it skipped is
    # decoded again in pieces, at their own length
    backend.encode_policies.clear()
    with_vad = dataclasses.replace(OPTIONS.longform, vad=True)
    list(engine.transcribe(speech(50.0), options=dataclasses.replace(
        OPTIONS, longform=with_vad)).segments)
    assert backend.encode_policies[0] is None
    assert set(backend.encode_policies) == {None, ContextPolicy()}
    assert engine.context == ("dynamic (batch's longest clip, 8 s floor) for clips, "
                              "full (30 s) for long audio's windows")


@pytest.mark.parametrize("context", ["full", "dynamic"])
def test_a_context_asked_for_is_used_everywhere(context):
    own = ContextPolicy(dynamic=context == "dynamic", min_frames=1000)
    engine, backend = _engine(own, context)
    list(engine.transcribe_many([speech(3.0)]))
    engine.decode_clips([speech(2.0)])
    assert set(backend.encode_policies) == {None}


def test_a_model_fine_tuned_with_dynamic_context_keeps_its_recorded_policy():
    recorded = ContextPolicy(bucket_frames=200, min_frames=1000)
    engine, backend = _engine(recorded, "auto")
    assert engine.one_window is None
    list(engine.transcribe_many([speech(3.0)]))
    assert backend.encode_policies == [None]
    assert engine.context == "dynamic (batch's longest clip, 10 s floor)"
