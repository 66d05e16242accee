"""The shared third-party speech clips (real and synthetic voices): language, words, timing,
translation without repetition loops, a talk that switches language midway, no text invented after
the speech and quiet speech heard, even where Whisper first loops on it."""
from __future__ import annotations

import numpy as np

from benchmarks.asr import harder
from benchmarks.speech import character_errors
from ingest.align import overlap
from ingest.guards import is_repetition_loop
from ingest.media import SAMPLE_RATE, load_audio
from ingest.transcribe import window_parts
from tests.helpers import FIXTURES, needs_fixtures


@needs_fixtures("en/en_asterisk_conf.flac")
def test_english_conference_prompts(models):
    transcript = models.transcriber(load_audio(FIXTURES / "en/en_asterisk_conf.flac"))
    assert transcript.language == "en" and transcript.translation == []
    text = " ".join(s.text for s in transcript.segments).lower()
    assert "conference" in text and "pin" in text and "leader" in text
    # "This conference is locked" is the 5th prompt, spoken at about 10.9-12.2 s
    locked = [s for s in transcript.segments if "locked" in s.text.lower()]
    assert locked and overlap(locked[0].start, locked[0].end, 10.5, 12.5) > 0.5


@needs_fixtures("ru/ru_festival.flac")
def test_russian_smart_city_text_with_english_rendering(models, monkeypatch):
    heard_again = []
    check = models.transcriber._language_of
    monkeypatch.setattr(models.transcriber, "_language_of", lambda audio, segments: heard_again.append(segments[0].start) or check(audio, segments))
    transcript = models.transcriber(load_audio(FIXTURES / "ru/ru_festival.flac"))
    # Whisper heard the opening surely as Russian while transcribing it, so it is not heard again
    # (a short tail, heard unsure on its own, may be).
    assert transcript.segments[0].start not in heard_again
    assert transcript.language == "ru" and transcript.language_probability > 0.9
    text = " ".join(s.text for s in transcript.segments).lower()
    assert "искусственного интеллекта" in text and "москвы" in text
    english = " ".join(s.text for s in transcript.translation).lower()
    assert "artificial intelligence" in english
    assert not any(is_repetition_loop(s.text) for s in transcript.translation)


@needs_fixtures("ko/mimic3_kss_rainbow.flac")
def test_korean_paragraph_translation_has_no_loops(models):
    transcript = models.transcriber(load_audio(FIXTURES / "ko/mimic3_kss_rainbow.flac"))
    assert transcript.language == "ko"
    assert "무지개" in " ".join(s.text for s in transcript.segments)
    assert transcript.translation, "Korean speech gets an English rendering"
    assert not any(is_repetition_loop(s.text) for s in transcript.translation)
    assert not any(is_repetition_loop(s.text) for s in transcript.segments)


@needs_fixtures("en/en_asterisk_conf.flac", "ru/ru_festival.flac")
def test_a_talk_that_switches_language_is_labelled_per_segment(models):
    english = load_audio(FIXTURES / "en/en_asterisk_conf.flac")[: 21 * SAMPLE_RATE]
    russian = load_audio(FIXTURES / "ru/ru_festival.flac")
    pause = np.zeros(SAMPLE_RATE, dtype=np.float32)
    transcript = models.transcriber(np.concatenate([english, pause, russian]))
    switch = 22.0
    first = [s for s in transcript.segments if s.end <= switch]
    second = [s for s in transcript.segments if s.start >= switch]
    assert first and {s.language for s in first} == {"en"}
    assert second and {s.language for s in second} == {"ru"}
    assert "интеллект" in " ".join(s.text for s in second).lower()
    # only the Russian half is translated
    assert transcript.translation and min(s.start for s in transcript.translation) >= switch - 1.5


@needs_fixtures("ru/mimic3_ru_rainbow.flac")
def test_no_text_is_invented_after_the_speech_ends(real_app):
    # whisper base closes this clip with subtitle credits timed on its last frame
    path = FIXTURES / "ru/mimic3_ru_rainbow.flac"
    transcript = real_app.transcriber(load_audio(path), translate=False)
    text = " ".join(s.text for s in transcript.segments)
    _, trailing = character_errors(text, path.with_suffix(".txt").read_text(encoding="utf-8"))
    assert trailing <= 3, text[-80:]
    assert "оттенков" in text.lower()


@needs_fixtures("ko/leopard_test_ko.flac")
def test_quiet_speech_over_room_noise_is_heard(real_app):
    quiet = harder(load_audio(FIXTURES / "ko/leopard_test_ko.flac"), "quiet", np.random.default_rng(0))
    assert np.sqrt(np.mean(np.square(quiet))) < 0.01
    transcript = real_app.transcriber(quiet, translate=False)
    assert transcript.language == "ko"
    assert "옆으로" in " ".join(s.text for s in transcript.segments)


@needs_fixtures("ko/zeroth/zeroth_ko_test_0089.flac")
def test_quiet_speech_whisper_loops_on_is_read_not_refused(real_app):
    """At -45 dBFS over this noise whisper base loops on the whole clip here («검은색…», «아, 아, …»),
    the loop guard dropped both segments and the clip was refused as holding no speech. The
    looped stretch is decoded again at sampled temperatures, which read it (imperfectly: the
    words vary from run to run)."""
    quiet = harder(load_audio(FIXTURES / "ko/zeroth/zeroth_ko_test_0089.flac"), "quiet", np.random.default_rng(2))
    transcript = real_app.transcriber(quiet, translate=False)  # NoSpeechError before
    text = " ".join(s.text for s in transcript.segments)
    # «거미와 그 거미가 만들어 내는 강철만큼이나 튼튼한 거미줄은 우연의 산물입니까»: sampled, the reading
    # varies widely (character error rates 0.58-1.06 over 70 runs), but it holds words of the sentence
    assert not is_repetition_loop(text) and any(word in text for word in ("거미", "강철", "만들")), text


@needs_fixtures("ru/ru_festival.flac")
def test_a_long_recording_is_heard_in_parts_at_once_and_loses_nothing_at_the_cut(models):
    """Two minutes or more are cut in a pause into parts decoded at once (WhisperSettings.parallel):
    every stretch of speech is still heard, on the recording's clock, in the language of the whole."""
    clip = load_audio(FIXTURES / "ru/ru_festival.flac")
    pause = np.zeros(SAMPLE_RATE, dtype=np.float32)
    audio = np.concatenate([clip, pause] * 5)
    parts = window_parts(audio, models.transcriber.settings.parallel)
    assert len(parts) == 2 and min(part.size for _, part in parts) >= 30 * SAMPLE_RATE
    cut = parts[1][0]
    transcript = models.transcriber(audio)
    assert transcript.language == "ru" and transcript.language_probability > 0.9
    step = audio.size / 5 / SAMPLE_RATE
    for i in range(5):  # each telling of the clip is heard where it is said
        assert any(i * step - 1 <= s.start and s.end <= (i + 1) * step + 1 for s in transcript.segments), i
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts) and all(a.end <= b.start + 0.5 for a, b in zip(transcript.segments, transcript.segments[1:]))
    before = " ".join(s.text for s in transcript.segments if s.end <= cut).lower()
    after = " ".join(s.text for s in transcript.segments if s.start >= cut).lower()
    assert "москв" in before and "москв" in after
    assert any(t.end <= cut for t in transcript.translation) and any(t.start >= cut for t in transcript.translation)
