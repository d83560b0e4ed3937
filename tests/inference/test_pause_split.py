"""Cutting segments at sentence pauses and snapping them onto speech (scripted times)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from whisper_ja.audio.io import load_audio
from whisper_ja.config import ConfigError, load_config
from whisper_ja.data.longform import speech_bounds
from whisper_ja.inference.backend import vocabulary_of
from whisper_ja.inference.options import LongformOptions, PauseSettings, VadSettings
from whisper_ja.inference.pause_split import (
    Cut,
    apply_cuts,
    end_context,
    find_cuts,
    known_end_probability,
    plan_cuts,
    snap_segments,
)
from whisper_ja.inference.timestamps import Segment, SpeechSpan, Word
from whisper_ja.inference.vad import pause_stretches


class _Chars:
    """A tokenizer whose token i is the i-th character of ``alphabet`` (one word each)."""

    alphabet = "元気出しなよ、この本は安い。"

    def decode(self, ids, skip_special_tokens=False):
        return "".join(self.alphabet[i] for i in ids)

    def encode(self, text, add_special_tokens=False):
        return [self.alphabet.index(c) for c in text]


TOK = _Chars()
IDS = tuple(TOK.encode("元気出しなよ、この本は安い。"))
# token k starts at 10 + 0.2 k, but the pause (11.3-11.6) pushes この and after by 0.4 s
STARTS = [10.0 + 0.2 * k + (0.4 if k >= 7 else 0.0) for k in range(len(IDS))]
STRETCHES = [SpeechSpan(10.2, 11.3), SpeechSpan(11.6, 13.0), SpeechSpan(14.0, 15.0)]
WORDS = tuple(Word(round(s, 3), round(s + 0.2, 3), TOK.decode([t])) for s, t in
              zip(STARTS, IDS, strict=True))


def _segment(start: float = 10.0, end: float = 13.4) -> Segment:
    return Segment(start, end, TOK.decode(IDS), WORDS, IDS, -0.2, 0.01)


def test_settings_are_checked_and_reachable_as_a_config_section():
    with pytest.raises(ConfigError, match="min_pause_ms"):
        PauseSettings(min_pause_ms=0)
    with pytest.raises(ConfigError, match="end_probability"):
        PauseSettings(end_probability=0.0)
    with pytest.raises(ConfigError, match="snap_s"):
        PauseSettings(snap_s=-1.0)
    options = load_config(LongformOptions, overrides=["pauses.end_probability=0.2",
                                                      "pauses.split=false"])
    assert options.pauses == PauseSettings(split=False, end_probability=0.2)
    assert not PauseSettings(split=False, snap_s=0.0).active


def test_only_pauses_inside_a_segment_are_candidates():
    # the second pause's middle (13.5) is inside the first segment only when it ends later
    assert plan_cuts([_segment()], STRETCHES) == [(0, SpeechSpan(11.3, 11.6))]
    first, second = _segment(end=13.6), Segment(13.9, 15.0, "本", (), (IDS[8],))
    assert plan_cuts([first, second], STRETCHES) == [(0, SpeechSpan(11.3, 11.6)),
                                                    (0, SpeechSpan(13.0, 14.0))]
    assert plan_cuts([Segment(11.5, 13.2, "x")], STRETCHES) == []


def test_a_cut_goes_before_the_first_word_after_the_pause_with_words_on_both_sides():
    pause = SpeechSpan(11.3, 11.6)
    (cut,) = find_cuts([_segment()], [(0, pause)], STARTS, TOK)
    # before この; 。 is asked after なよ (、 dropped), and なよ、 ends a sentence by grammar
    assert cut == Cut(0, 7, 6, pause, written_end=True)
    # a pause after every word (the last pause of the window) cuts nothing
    assert find_cuts([_segment()], [(0, SpeechSpan(13.0, 14.0))], STARTS, TOK) == []
    # nor one that would leave only punctuation on one side
    tail = tuple(TOK.encode("安い。"))
    late = [12.0, 12.2, 12.9]
    assert find_cuts([Segment(11.9, 13.4, "安い。", (), tail)],
                     [(0, SpeechSpan(12.5, 12.8))], late, TOK) == []


class _Stops(_Chars):
    alphabet = "雨でした。晴れた"


def test_a_cut_a_few_characters_off_a_full_stop_whisper_wrote_moves_just_after_it():
    tok = _Stops()
    ids = tuple(tok.encode("雨でした。晴れた"))
    segment = Segment(0.0, 3.0, "雨でした。晴れた", (), ids)
    # the times put 晴 before the pause's middle: the cut would fall at 晴|れ
    starts = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.6, 1.8]
    (cut,) = find_cuts([segment], [(0, SpeechSpan(1.1, 1.5))], starts, tok)
    assert cut.at == 5  # right after 。 (雨でした。|晴れた)


def test_end_context_drops_the_comma_whisper_wrote_instead_of_a_full_stop():
    text = TOK.encode("なよ、、この")
    assert end_context(text, 4, TOK) == 2 and end_context(text, 2, TOK) == 2


def test_a_cut_is_made_only_where_whisper_would_end_the_sentence():
    cut = Cut(0, 7, 6, SpeechSpan(11.3, 11.6))
    settings = PauseSettings(end_probability=0.1)
    assert apply_cuts([_segment()], [cut], [0.05], settings, TOK) == [_segment()]
    left, right = apply_cuts([_segment()], [cut], [0.3], settings, TOK)
    assert (left.start, left.end, left.text) == (10.0, 11.3, "元気出しなよ、")
    assert (right.start, right.end, right.text) == (11.6, 13.4, "この本は安い。")
    assert left.token_ids + right.token_ids == IDS
    assert "".join(w.text for w in left.words) == "元気出しなよ、"
    assert "".join(w.text for w in right.words) == "この本は安い。"
    assert right.avg_logprob == -0.2 and right.no_speech_prob == 0.01


def test_the_timing_pass_settles_a_cut_when_its_token_probabilities_decide_it():
    text, end = TOK.encode("元気出しなよ、この本は安い。この"), TOK.encode("。")[0]
    comma = Cut(0, 7, 6, SpeechSpan(11.3, 11.6))  # context なよ, then the 、 Whisper wrote
    full_stop = Cut(0, 14, 13, SpeechSpan(12.9, 13.2))  # context 安い, then 。
    probs = [0.5] * len(text)
    # 。 written there: its probability is P(。) itself, whatever the threshold
    probs[13] = 0.04
    assert known_end_probability(text, full_stop, probs, end, 0.1) == 0.04
    # 、 written with P 0.95: P(。) <= 0.05 < 0.1, refused without scoring (the bound kept)
    probs[6] = 0.95
    bound = known_end_probability(text, comma, probs, end, 0.1)
    assert bound == pytest.approx(0.05)
    assert apply_cuts([_segment()], [comma], [bound], PauseSettings(), TOK) == [_segment()]
    # 、 less sure: P(。) could reach the threshold, so the cut needs its scoring pass
    probs[6] = 0.6
    assert known_end_probability(text, comma, probs, end, 0.1) is None
    assert known_end_probability(text, comma, probs, end, 0.3) is None
    assert known_end_probability(text, comma, probs, end, 0.45) == pytest.approx(0.4)
    # a comma grammar reads as a sentence end settles the cut whatever the probabilities
    assert known_end_probability(text, dataclasses.replace(comma, written_end=True), probs, end,
                                 0.1) == 1.0


def test_starts_and_ends_in_silence_move_onto_speech_when_close():
    settings = PauseSettings(snap_s=0.5)
    early = Segment(9.8, 13.4, "a")  # starts 0.4 s before the onset, ends 0.4 s after
    inside = Segment(10.5, 12.0, "b")  # starts and ends in speech: kept
    far = Segment(13.2, 13.9, "c")  # the next onset is 0.8 s away, past its end
    snapped = snap_segments([early, inside, far], STRETCHES, settings)
    assert [(s.start, s.end) for s in snapped] == [(10.2, 13.0), (10.5, 12.0), (13.2, 13.9)]
    assert snap_segments([early], STRETCHES, PauseSettings(snap_s=0.0)) == [early]


def test_a_start_in_the_tail_of_a_speech_stretch_moves_onto_the_next_onset():
    # Silero's offset trails the speech: a start 0.2 s before the stretch's end (11.3) is the
    # previous sentence's end, so the segment starts at the next onset (11.6); 0.5 s before
    # the end is inside speech and kept.
    tail, inside = Segment(11.1, 13.0, "a"), Segment(10.8, 13.0, "b")
    snapped = snap_segments([tail, inside], STRETCHES, PauseSettings(snap_s=1.0))
    assert [s.start for s in snapped] == [11.6, 10.8]


def test_the_full_stop_is_one_token_in_whisper_vocabularies(tiny_whisper, tiny_whisper_dir):
    from tokenizers import Tokenizer

    hf = vocabulary_of(tiny_whisper.processor.tokenizer).sentence_end
    raw = Tokenizer.from_file(str(tiny_whisper_dir / "tokenizer.json")).encode(
        "。", add_special_tokens=False).ids
    assert hf is not None and [hf] == raw
    assert tiny_whisper.processor.tokenizer.decode([hf]) == "。"


def test_the_pause_pass_finds_a_short_pause_that_decoding_vad_bridges(ja_clips):
    speech = [load_audio(c.path) for c in ja_clips[:2]]
    pause = np.zeros(int(0.4 * 16000), dtype=np.float32)
    audio = np.concatenate([speech[0], pause, speech[1]])
    middle = (speech[0].size + pause.size / 2) / 16000
    fine = pause_stretches(audio, VadSettings(), PauseSettings(min_pause_ms=150))
    gaps = [SpeechSpan(a.end, b.start) for a, b in zip(fine, fine[1:], strict=False)]
    assert any(g.start < middle < g.end for g in gaps), fine
    # a pause shorter than min_pause_ms is no pause: the stretch runs through it (the clips'
    # own edges make the quiet between them ~1 s)
    coarse = pause_stretches(audio, VadSettings(), PauseSettings(min_pause_ms=1500))
    assert any(s.start < middle < s.end for s in coarse), coarse


def test_a_quiet_pause_silero_bridges_is_found_by_its_level(ja_clips):
    # 0.25 s at -50 dBFS between two sentences: Silero's probability decays too slowly to
    # drop under its threshold there; the level is 30 dB and more under the speech
    clips = [load_audio(c.path) for c in ja_clips[:2]]
    speech = [clip[slice(*speech_bounds(clip))] for clip in clips]  # no silence of their own
    rng = np.random.default_rng(0)
    hush = (10 ** (-50 / 20) * rng.standard_normal(4000)).astype(np.float32)
    audio = np.concatenate([speech[0], hush, speech[1]])
    middle = (speech[0].size + hush.size / 2) / 16000

    def gaps(settings: PauseSettings) -> list[SpeechSpan]:
        found = pause_stretches(audio, VadSettings(), settings)
        return [SpeechSpan(a.end, b.start) for a, b in zip(found, found[1:], strict=False)]

    assert any(g.start < middle < g.end for g in gaps(PauseSettings())), gaps(PauseSettings())
    assert not any(g.start < middle < g.end for g in gaps(PauseSettings(quiet_db=0)))
    with pytest.raises(ConfigError, match="quiet_db"):
        PauseSettings(quiet_db=-1)


def test_a_comma_after_a_continuative_form_is_no_sentence_end_by_grammar():
    tok = _Stops()
    tok.alphabet = "雨で降り、晴れた"
    ids = tuple(tok.encode("雨で降り、晴れた"))
    segment = Segment(0.0, 3.0, "雨で降り、晴れた", (), ids)
    starts = [0.0, 0.2, 0.4, 0.6, 0.8, 1.6, 1.8, 2.0]
    (cut,) = find_cuts([segment], [(0, SpeechSpan(1.0, 1.5))], starts, tok)
    assert cut.at == 5 and not cut.written_end


def test_a_timestamp_stretched_over_an_unwritten_sentence_is_ended_at_the_pause():
    from whisper_ja.inference.pause_split import trim_stretched_ends

    # Whisper wrote 元気出しなよ、 (tokens 10.0-11.2) and stretched the segment to 13.4 over
    # speech after the pause (11.3-11.6) that it did not write
    written = IDS[:7]
    segment = Segment(10.0, 13.4, TOK.decode(list(written)), (), written)
    pause = SpeechSpan(11.3, 11.6)
    (trimmed,) = trim_stretched_ends([segment], [(0, pause)], STARTS[:7], TOK)
    assert (trimmed.start, trimmed.end, trimmed.text) == (10.0, 11.3, segment.text)
    # words after the pause: the segment's text reaches there, nothing is trimmed
    assert trim_stretched_ends([_segment()], [(0, pause)], STARTS, TOK) == [_segment()]
    # under 1.5 s of speech after the pause: too short to be a skipped sentence
    short = Segment(10.0, 12.9, segment.text, (), written)
    assert trim_stretched_ends([short], [(0, pause)], STARTS[:7], TOK) == [short]


def test_a_space_whisper_wrote_after_a_conclusive_form_is_a_sentence_end_by_grammar():
    # an unpunctuated stretch: Whisper separates sentences with spaces, P(。) is low there
    tok = _Stops()
    tok.alphabet = "確認されました 彼が来た"
    written = "確認されました 彼が来た"
    ids = tuple(tok.encode(written))
    segment = Segment(0.0, 4.0, written, (), ids)
    starts = [0.2 * k + (0.6 if k >= 7 else 0.0) for k in range(len(ids))]
    (cut,) = find_cuts([segment], [(0, SpeechSpan(1.5, 1.9))], starts, tok)
    assert tok.decode(list(ids[:cut.at])).rstrip() == "確認されました" and cut.written_end
    assert known_end_probability(list(ids), cut, [0.99] * len(ids), 99, 0.1) == 1.0
    # a space after a continuative form is a clause all the same
    tok.alphabet = written = "気温が超え 暑さとなった"
    ids = tuple(tok.encode(written))
    (cut,) = find_cuts([Segment(0.0, 4.0, written, (), ids)], [(0, SpeechSpan(1.1, 1.5))],
                       [0.2 * k + (0.6 if k >= 5 else 0.0) for k in range(len(ids))], tok)
    assert not cut.written_end


def test_no_cut_leaves_a_particle_to_start_a_sentence():
    # Whisper wrote 。 inside a phrase (によります。と、): a sentence never starts with と
    tok = _Stops()
    tok.alphabet = written = "県によります。と、新たに"
    ids = tuple(tok.encode(written))
    segment = Segment(0.0, 4.0, written, (), ids)
    starts = [0.2 * k + (0.6 if k >= 7 else 0.0) for k in range(len(ids))]
    assert find_cuts([segment], [(0, SpeechSpan(1.5, 1.9))], starts, tok) == []
