
import pytest

from ingest.errors import TranscriptFormatError
from ingest.records import Segment, Transcript, Word
from ingest.subtitles import detect_text_language, read_transcript, write_transcript

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
