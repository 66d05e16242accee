
import json
import re

import pytest

from core.errors import TranscriptFormatError
from ingest.records import Segment, Transcript, Word
from core.language import detect_text_language
from ingest.subtitles import read_transcript, write_transcript

SRT = """1
00:00:01,000 --> 00:00:04,500
주민을 위한 디지털 플랫폼을 소개합니다.

2
00:00:05,000 --> 00:00:09,250
플랫폼에서 민원을 신청할 수 있습니다.
"""
VTT = """WEBVTT

00:00:02.500 --> 00:00:06.000
Умные светофоры сокращают время ожидания.

00:01:06.000 --> 00:01:08.125
Общественный транспорт получает приоритет.
"""


def test_srt_cues_and_language_are_read(tmp_path):
    path = tmp_path / "talk.srt"
    path.write_text(SRT, encoding="utf-8")
    transcript = read_transcript(path)
    assert transcript.language == "ko"
    assert [(s.start, s.end) for s in transcript.segments] == [(1.0, 4.5), (5.0, 9.25)]
    assert transcript.segments[1].text.startswith("플랫폼에서")


def test_vtt_times_include_minutes_and_milliseconds(tmp_path):
    path = tmp_path / "talk.vtt"
    path.write_text(VTT, encoding="utf-8")
    transcript = read_transcript(path)
    assert transcript.language == "ru"
    assert transcript.segments[1].start == pytest.approx(66.0)
    assert transcript.segments[1].end == pytest.approx(68.125)


def test_given_language_wins_and_translation_file_is_read(tmp_path):
    original, english = tmp_path / "a.srt", tmp_path / "a.en.srt"
    original.write_text(SRT, encoding="utf-8")
    english.write_text(SRT.replace("주민을 위한 디지털 플랫폼을 소개합니다.", "Introducing a platform.")
                       .replace("플랫폼에서 민원을 신청할 수 있습니다.", "File requests on it."), encoding="utf-8")
    transcript = read_transcript(original, language="ko", translation=english)
    assert transcript.translation[0].text == "Introducing a platform."
    assert transcript.translation[1].start == 5.0


def test_json_export_reads_back_losslessly(tmp_path):
    transcript = Transcript("ru", 12.0, [Segment(0.5, 3.0, "Привет мир.", "ru", [Word(0.5, 1.2, " Привет", 0.9), Word(1.3, 3.0, " мир.", 0.8)], "Hello world.")],
                            [Segment(0.4, 3.1, "Hello world.", "en")])
    path = tmp_path / "t.json"
    path.write_text(write_transcript(transcript, "json", {"title": "x"}), encoding="utf-8")
    again = read_transcript(path)
    assert again == transcript


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitle_export_round_trips(tmp_path, fmt):
    transcript = Transcript("en", 9.0, [Segment(1.0, 4.5, "First line.", "en"), Segment(5.0, 9.0, "Second line.", "en")])
    path = tmp_path / f"t.{fmt}"
    path.write_text(write_transcript(transcript, fmt), encoding="utf-8")
    assert [(s.start, s.end, s.text) for s in read_transcript(path).segments] == [(1.0, 4.5, "First line."), (5.0, 9.0, "Second line.")]


@pytest.mark.parametrize("name,body", [
    ("broken.srt", "1\n00:00:xx --> nonsense\nhello\n"),
    ("broken.vtt", "not a vtt file at all"),
    ("broken.json", "{\"segments\": [{\"start\": \"soon\"}]}"),
    ("empty.srt", ""),
    ("talk.docx", "whatever"),
])
def test_malformed_transcripts_give_clear_errors(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    with pytest.raises(TranscriptFormatError, match=name):
        read_transcript(path)


def test_text_language_detection():
    assert detect_text_language("Адаптивные светофоры сами меняют длительность сигнала") == "ru"
    assert detect_text_language("실시간 주차 정보도 제공됩니다") == "ko"
    assert detect_text_language("The portal publishes over three hundred data sets") == "en"


# -- imported transcripts are checked value by value -------------------------------------------------
def segment(start=1.0, end=2.0, text="Hello there.", **more) -> dict:
    return {"start": start, "end": end, "text": text, **more}


def refusal(tmp_path, name: str, body: str, **options) -> str:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    with pytest.raises(TranscriptFormatError) as refused:
        read_transcript(path, **options)
    message = str(refused.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message[len(f"{path}: "):]


def as_json(**body) -> str:
    return json.dumps(body)


@pytest.mark.parametrize("body, says", [
    ('{"segments": [{"start": NaN, "end": 2, "text": "a"}]}', "not valid JSON (NaN is not a JSON number"),
    ('{"segments": [{"start": 1, "end": Infinity, "text": "a"}]}', "not valid JSON (Infinity is not a JSON number"),
    ('{"segments": [{"start": -Infinity, "end": 2, "text": "a"}]}', "not valid JSON (-Infinity is not a JSON number"),
    ('{"segments": [{"start": 1, "end": 1e999, "text": "a"}]}', "segment 1: end inf s is not between 0 and 14400 s"),
    ('{"segments": [{"start": 1, "end": 1' + "0" * 400 + ', "text": "a"}]}', "segment 1: end inf s is not between"),
    (as_json(segments=[segment(end=1e308)]), "segment 1: end 1e+308 s is not between 0 and 14400 s"),
    (as_json(segments=[segment(start=-1.0)]), "segment 1: start -1 s is not between 0 and 14400 s"),
    (as_json(segments=[segment(start=5.0, end=3.0)]), "segment 1: ends before it starts (5 s to 3 s)"),
    (as_json(segments=[segment(), segment(start=4.0, end=5.0), segment(start=3.0, end=6.0)]),
     "segment 3: starts before segment 2 (3 s < 4 s)"),
    (as_json(segments=[segment(start="soon")]), 'segment 1: "start" must be a number of seconds'),
    (as_json(segments=[segment(end=True)]), 'segment 1: "end" must be a number of seconds'),
    (as_json(segments=[{"end": 2, "text": "a"}]), 'segment 1: "start" must be a number of seconds'),
    (as_json(segments=[segment(text=42)]), 'segment 1: "text" must be a string'),
    (as_json(segments=[segment(text=None)]), 'segment 1: "text" must be a string'),
    (as_json(segments=[segment(translation=["Hi"])]), 'segment 1: "translation" must be a string'),
    (as_json(segments=[segment(language="klingon")]), "segment 1: unknown language code 'klingon'"),
    (as_json(language="xx", segments=[segment()]), "language: unknown language code 'xx'"),
    (as_json(language=7, segments=[segment()]), "language: unknown language code 7"),
    (as_json(segments=[segment(words=[{"start": 1.5, "end": 1.2, "text": " Hello"}])]),
     "segment 1, word 1: ends before it starts (1.5 s to 1.2 s)"),
    (as_json(segments=[segment(words=[{"start": 1.5, "end": 1.6, "text": " Hello"}, {"start": 1.1, "end": 1.2, "text": " there."}])]),
     "segment 1, word 2: starts before segment 1, word 1 (1.1 s < 1.5 s)"),
    (as_json(segments=[segment(words=[{"start": 1.0, "end": 1e300, "text": " Hello"}])]), "segment 1, word 1: end 1e+300 s is not between"),
    (as_json(segments=[segment(words=[{"start": 1.0, "end": 1.2, "text": 3}])]), 'segment 1, word 1: "text" must be a string'),
    (as_json(segments=[segment(words=[{"start": 1.0, "end": 1.2, "text": " Hi", "probability": 2}])]),
     'segment 1, word 1: "probability" must be a number from 0 to 1'),
    (as_json(segments=[segment(words="Hello there")]), 'segment 1: "words": must be a list of objects'),
    (as_json(segments=[segment()], translation=[{"start": 3.0, "end": 1.0, "text": "Hi"}]), "translation 1: ends before it starts"),
    (as_json(segments=[segment()], duration=1e308), "duration: duration 1e+308 s is not between"),
    (as_json(segments={"start": 1}), '"segments": must be a list of objects'),
    (as_json(segments=["Hello"]), '"segments": must be a list of objects'),
    ('[{"start": 1, "end": 2, "text": "a"}]', 'top level: not a talksearch JSON transcript (an object with "segments")'),
    ('{"segments": ' + "[" * 100_000 + "]" * 100_000 + "}", "JSON nested too deeply"),
    ('{"segments": [', "not valid JSON (Expecting value: line 1 column 15 (char 14))"),
])
def test_json_transcripts_are_refused_with_where_the_fault_is(tmp_path, body, says):
    assert refusal(tmp_path, "talk.json", body).startswith(says)


def test_the_time_limit_is_the_one_given(tmp_path):
    body = as_json(segments=[segment(start=3000.0, end=7200.0)])
    assert refusal(tmp_path, "talk.json", body, max_seconds=3600).startswith("segment 1: end 7200 s is not between 0 and 3600 s")
    assert read_transcript(tmp_path / "talk.json").duration == 7200.0


def test_an_oversized_transcript_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.srt"
    with open(path, "wb") as handle:
        handle.truncate(33 * 2**20)  # sparse: nothing is written
    with pytest.raises(TranscriptFormatError, match=r"huge\.srt: larger than 32 MB"):
        read_transcript(path)


def test_unknown_language_given_for_subtitles_is_refused(tmp_path):
    assert refusal(tmp_path, "talk.srt", SRT, language="zz") == "language: unknown language code 'zz'"


def test_languages_whisper_or_the_detector_know_are_accepted(tmp_path):
    path = tmp_path / "talk.json"
    for code in ("haw", "jw", "jv", "yue", "en"):  # Whisper's own codes and the detector's
        path.write_text(as_json(language=code, segments=[segment()]), encoding="utf-8")
        assert read_transcript(path).language == code


@pytest.mark.parametrize("name, body, says", [
    ("talk.srt", "1\n99999999:00:00,000 --> 99999999:00:01,000\nHello.\n", "cue 1: start 3.6e+11 s is not between 0 and 14400 s"),
    ("talk.srt", "1\n99999999999999999999:00:00,000 --> 99999999999999999999:00:01,000\nHello.\n", "not a valid SRT file"),
    ("talk.srt", "1\n00:00:01,000 --> 00:00:02,000\nHello.\n\n2\n00:00:05,000 --> 00:00:03,000\nThere.\n",
     "cue 2: ends before it starts (5 s to 3 s)"),
    ("talk.vtt", "WEBVTT\n\n05:00:00.000 --> 05:00:02.000\nHello.\n", "cue 1: start 18000 s is not between 0 and 14400 s"),
])
def test_subtitles_with_absurd_times_are_refused(tmp_path, name, body, says):
    assert refusal(tmp_path, name, body).startswith(says)


def test_an_absurd_translation_file_is_refused_by_its_own_name(tmp_path):
    original, english = tmp_path / "a.srt", tmp_path / "a.en.srt"
    original.write_text(SRT, encoding="utf-8")
    english.write_text("1\n99999:00:00,000 --> 99999:00:01,000\nHello.\n", encoding="utf-8")
    with pytest.raises(TranscriptFormatError, match=rf"^{re.escape(str(english))}: cue 1: start 3\.59996e\+08 s"):
        read_transcript(original, translation=english)


def test_subtitle_cues_out_of_order_are_put_in_time_order(tmp_path):
    path = tmp_path / "talk.srt"
    path.write_text("1\n00:00:05,000 --> 00:00:06,000\nSecond.\n\n2\n00:00:01,000 --> 00:00:02,000\nFirst.\n", encoding="utf-8")
    assert [(s.start, s.text) for s in read_transcript(path, "en").segments] == [(1.0, "First."), (5.0, "Second.")]
