from dataclasses import replace
from types import SimpleNamespace

import numpy as np

from ingest.guards import is_known_hallucination, is_repetition_loop, is_untimed, keep_segment
from ingest.media import SAMPLE_RATE
from ingest.transcribe import Transcriber, WhisperSettings


def test_repetition_loops_are_caught():
    assert is_repetition_loop("it is said that it is said that it is said that it is said that it is said")
    assert is_repetition_loop("the the the the the the the the")
    assert is_repetition_loop("Спасибо. Спасибо. Спасибо. Спасибо. Спасибо. Спасибо.")


def test_ordinary_sentences_pass():
    assert not is_repetition_loop("Last spring our city launched five G pilots in the Riverside district.")
    assert not is_repetition_loop("Время ожидания на перекрёстках сократилось почти на треть.")
    assert not is_repetition_loop("주민을 위한 디지털 플랫폼을 소개하겠습니다.")


def test_stock_phrases_over_silence_are_dropped_only_when_alone():
    assert is_known_hallucination("Thank you for watching!")
    assert is_known_hallucination("Продолжение следует...")
    assert not is_known_hallucination("Thank you for watching the pilot results with us.")


def test_low_confidence_silence_is_dropped():
    assert not keep_segment("Some words", avg_logprob=-1.5, no_speech_prob=0.9)
    assert keep_segment("Some words", avg_logprob=-0.3, no_speech_prob=0.9)


def test_a_segment_whose_words_take_no_time_is_dropped():
    # «Редактор субтитров А.Синецкая Корректор В.Сухиашвили», as whisper base timed it on the last frame
    credits = [0.4, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert is_untimed(credits, 0.5)
    assert not keep_segment("Редактор субтитров", avg_logprob=-0.65, no_speech_prob=0.75, durations=credits)
    assert not is_untimed(credits, None)


def test_heard_words_and_a_stray_timeless_one_are_kept():
    assert not is_untimed([0.3, 0.0, 0.25, 0.4], 0.5)
    assert not is_untimed([0.0, 0.0], 0.5), "too few words to tell"
    assert keep_segment("Данок.", avg_logprob=-0.86, no_speech_prob=0.38, durations=[0.44])


LOOP, UH = " 검은색 검은색 검은색 검은색 검은색 검은색 검은색 검은색", " 아, 아, 아, 아, 아, 아, 아, 아, 아, 아, 아, 아,"


class LoopingWhisper:
    """Stands in for faster-whisper's model: at temperature 0 it says ``first`` (by default loops
    over 2-5 s and 5.2-8 s, as whisper base did on a quiet real Korean clip), at the sampled
    temperatures ``again`` (by default the words); it records each call's length and temperatures."""

    def __init__(self, first=((0.0, 1.5, " 안녕하세요."), (2.0, 5.0, LOOP), (5.2, 8.0, UH)),
                 again=((0.1, 5.5, " 검은색 강철은 선물입니까?"),)):
        self.first, self.again = first, again
        self.calls: list[tuple[float, list[float]]] = []

    def transcribe(self, audio, temperature, **_):
        self.calls.append((audio.size / SAMPLE_RATE, temperature))
        said = self.first if temperature[0] == 0.0 else self.again
        if said and isinstance(said[0], list):  # one answer per sampled decode, in turn
            said = said.pop(0)
        segments = [SimpleNamespace(start=a, end=b, text=text, avg_logprob=-0.4, no_speech_prob=0.1,
                                    words=[SimpleNamespace(start=a, end=b, word=text, probability=0.9)]) for a, b, text in said]
        return iter(segments), SimpleNamespace(language="ko", language_probability=0.99)


def test_a_stretch_whisper_loops_on_is_decoded_again_alone_at_sampled_temperatures():
    whisper = LoopingWhisper()
    transcriber = Transcriber(WhisperSettings(main_probability=None))
    transcriber._model = whisper
    window = transcriber.window(np.zeros(10 * SAMPLE_RATE, np.float32), 0.0, "ko", fixed=True, translate=False)
    assert [s.text for s in window.segments] == ["안녕하세요.", "검은색 강철은 선물입니까?"]
    assert window.segments[1].start == 2.1  # on the window's clock
    assert whisper.calls == [(10.0, [0.0]), (6.0, [0.2, 0.4, 0.6, 0.8, 1.0])]  # the looped 2-8 s only, as one

    whisper.calls.clear()
    transcriber.settings = replace(transcriber.settings, loop_retry_temperatures=())
    window = transcriber.window(np.zeros(10 * SAMPLE_RATE, np.float32), 0.0, "ko", fixed=True, translate=False)
    assert [s.text for s in window.segments] == ["안녕하세요."] and len(whisper.calls) == 1


def test_looped_stretches_either_side_of_a_kept_segment_are_decoded_again_apart_and_never_retell_it():
    """A kept answer between two loops is not decoded again with them, and what a retry hears over
    a kept segment (a loop's times can run over its neighbour's) is not added twice."""
    whisper = LoopingWhisper(first=((2.0, 5.0, LOOP), (5.1, 5.6, " 네, 맞습니다."), (5.4, 9.0, UH)),
                             again=((0.0, 0.3, " 네, 맞습니다."), (0.6, 2.9, " 강철은.")))
    transcriber = Transcriber(WhisperSettings(main_probability=None))
    transcriber._model = whisper
    window = transcriber.window(np.zeros(10 * SAMPLE_RATE, np.float32), 0.0, "ko", fixed=True, translate=False)
    assert [length for length, _ in whisper.calls] == [10.0, 3.0, 3.6]  # 2-5 s and 5.4-9 s, apart
    assert [(s.start, s.text) for s in window.segments] == [(2.0, "네, 맞습니다."), (2.6, "강철은."), (5.1, "네, 맞습니다."), (6.0, "강철은.")]


def test_a_stretch_that_loops_again_when_sampled_is_tried_again_a_few_times():
    """Sampling draws anew each time: a retry that loops again is followed by another, up to
    ``loop_retry_attempts``; then the stretch is given up."""
    looping_again = [(0.1, 5.5, LOOP)]
    whisper = LoopingWhisper(again=[looping_again, looping_again, [(0.1, 5.5, " 검은색 강철은 선물입니까?")]])
    transcriber = Transcriber(WhisperSettings(main_probability=None))
    transcriber._model = whisper
    window = transcriber.window(np.zeros(10 * SAMPLE_RATE, np.float32), 0.0, "ko", fixed=True, translate=False)
    assert [s.text for s in window.segments] == ["안녕하세요.", "검은색 강철은 선물입니까?"] and len(whisper.calls) == 4

    whisper = LoopingWhisper(again=[looping_again] * 4)
    transcriber._model = whisper
    window = transcriber.window(np.zeros(10 * SAMPLE_RATE, np.float32), 0.0, "ko", fixed=True, translate=False)
    assert [s.text for s in window.segments] == ["안녕하세요."] and len(whisper.calls) == 4  # 1 + 3 tries


class HearingWhisper:
    """Stands in for faster-whisper's model and the ear on its encoder: each 30-s window's segments
    come with the language heard as it was encoded; a stretch heard again on its own is recorded."""

    def __init__(self, windows):
        self.windows = windows  # [((language, probability), [(start, end, text), ...]), ...]
        self.ear = SimpleNamespace(heard=None)
        self.heard_again: list[tuple[float, float]] = []

    def transcribe(self, audio, language, **_):
        def segments():
            for heard, said in self.windows:
                self.ear.heard = heard
                for a, b, text in said:
                    yield SimpleNamespace(start=a, end=b, text=text, avg_logprob=-0.3, no_speech_prob=0.1,
                                          words=[SimpleNamespace(start=a, end=b, word=text, probability=0.9)])
        return segments(), SimpleNamespace(language=language, language_probability=0.99)

    def detect_language(self, audio):
        self.heard_again.append(audio.size / SAMPLE_RATE)
        return "ko", 0.97, []


def test_only_windows_not_surely_heard_in_the_main_language_while_transcribed_are_heard_again():
    whisper = HearingWhisper([(("ko", 0.98), [(0.0, 6.0, " 안녕하세요 여러분."), (6.5, 12.0, " 오늘은 도시 이야기입니다.")]),
                              (("ko", 0.62), [(30.0, 36.0, " 그리고 다음으로"), (36.5, 42.0, " 발표를 마치겠습니다.")])])
    transcriber = Transcriber(WhisperSettings())
    transcriber._model, transcriber._ear = whisper, whisper.ear
    window = transcriber.window(np.zeros(45 * SAMPLE_RATE, np.float32), 0.0, "ko", fixed=False, translate=False)
    assert [s.language for s in window.segments] == ["ko"] * 4
    assert whisper.heard_again == [12.0], "the unsure window, 30-42 s, only"

    whisper.heard_again.clear()
    transcriber.settings = replace(transcriber.settings, main_probability=None)
    transcriber.window(np.zeros(45 * SAMPLE_RATE, np.float32), 0.0, "ko", fixed=False, translate=False)
    assert whisper.heard_again == [12.0, 12.0], "with no bar for sure, every window is heard"


def test_speech_no_segment_holds_is_found_for_hearing_again():
    """Silero finds the speech; what kept segments cover, and slivers under ``MISSED_SECONDS``
    at their edges, are not heard again."""
    from ingest.media import load_audio
    from ingest.records import Segment
    from ingest.transcribe import MISSED_SECONDS
    from tests.helpers import DEMO

    speech = load_audio(DEMO / "en_5g_pilots.opus")[: 20 * SAMPLE_RATE]
    samples = np.concatenate([speech, np.zeros(3 * SAMPLE_RATE, np.float32), speech])  # 20 s, a pause, 20 s
    transcriber = Transcriber()
    said = [Segment(0.0, 20.0, "the first half", "en"), Segment(23.0, 43.0, "the second half", "en")]
    assert transcriber._uncovered(samples, said) == []
    [(start, end)] = transcriber._uncovered(samples, said[:1])  # the second half was passed over
    assert 22.0 < start < 24.0 and end > 40.0 and end - start >= MISSED_SECONDS
    assert transcriber._uncovered(samples, [Segment(0.0, 20.0, "", "en"), Segment(23.0, 41.5, "", "en")]) == []
