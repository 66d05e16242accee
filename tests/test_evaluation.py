"""The eval command's arithmetic on a tiny hand-computed example, query-file errors, subsets,
splits, language pairs, and ``run_eval`` end to end with a fake service (no models)."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
from rich.console import Console

from benchmarks.subtitles import PAIRED, measure, sample_queries, subtitle_files
from evaluation.metrics import (Judgement, LabelledQuery, Span, aggregate, aggregate_splits, judge, language_pair,
                              load_queries, parse_query, scores, splits, subsets, with_pairs)
from evaluation.runner import run_eval
from ingest.subtitles import read_transcript
from tests.helpers import needs_fixtures


def hit(source: str, start: float, end: float) -> SimpleNamespace:
    return SimpleNamespace(source=f"/media/talks/{source}", start=start, end=end)


LABELS = [
    LabelledQuery("q1", (Span("a.opus", 10, 20),), ("same-language", "en"), "tune"),
    LabelledQuery("q2", (Span("a.opus", 0, 5),), ("cross-lingual", "ru"), "held-out"),
    parse_query({"query": '"q three"', "answers": [{"source": "c.flac", "start": 0, "end": 3},
                                                   {"source": "d.flac", "start": 5, "end": 9}], "tags": ["same-language", "ko"],
                 "split": "tune"}),
    LabelledQuery("q4", (Span("a.opus", 0, 5),), ("cross-lingual", "en"), "held-out"),
]
# The recordings' languages as the library holds them: c.flac and d.flac say the same in Korean and Russian.
LANGUAGES = {"a.opus": "en", "b.opus": "en", "c.flac": "ko", "d.flac": "ru"}
HITS = [
    # right recording at 2 but the wrong time; right span at 3
    [hit("b.opus", 10, 20), hit("a.opus", 30, 40), hit("a.opus", 15, 25)],
    [hit("a.opus", 4, 8)],
    # an alternative answer: c.flac at the wrong time still counts for rec-R@1; d.flac shares 1 s
    [hit("c.flac", 10, 12), hit("d.flac", 8, 10)],
    [],
]
JUDGED = [judge(label, hits) for label, hits in zip(LABELS, HITS)]


def test_judge_ranks_and_recording_at_1():
    assert JUDGED == [Judgement(3, False), Judgement(1, True), Judgement(2, True), Judgement(None, False)]


def test_overlap_must_be_real_not_a_graze():
    span = Span("a.opus", 10, 20)
    assert not span.matches(hit("a.opus", 20, 25))  # touching
    assert not span.matches(hit("a.opus", 5, 10.5))  # neighbour sentence reaching into the padding
    assert span.matches(hit("a.opus", 19, 30)) and span.matches(hit("a.opus", 12, 12.5))  # 1 s; all of a short hit
    assert Span("a.opus", 3, 3).matches(hit("a.opus", 0, 5))  # a point label inside the hit
    assert not span.matches(hit("b.opus", 10, 20))


def test_scores_by_hand():
    got = scores(JUDGED, k=10)
    expected = {"R@1": 1 / 4, "R@5": 3 / 4, "R@10": 3 / 4, "MRR@10": (1 / 3 + 1 + 1 / 2) / 4,
                "nDCG@10": (1 / 2 + 1 + 1 / math.log2(3)) / 4, "rec-R@1": 2 / 4}
    assert got.keys() == expected.keys()
    assert all(got[m] == pytest.approx(expected[m]) for m in expected)


def test_shallow_k_cuts_ranks_beyond_it():
    got = scores(JUDGED, k=2)
    assert list(got) == ["R@1", "R@2", "MRR@2", "nDCG@2", "rec-R@1"]
    assert got["R@2"] == pytest.approx(0.5) and got["MRR@2"] == pytest.approx(1.5 / 4)
    assert got["nDCG@2"] == pytest.approx((1 + 1 / math.log2(3)) / 4)


def test_subsets_and_aggregation():
    assert LABELS[2].tags == ("same-language", "ko", "quote")  # quoted text is tagged automatically
    assert subsets(LABELS) == {"all": [0, 1, 2, 3], "same-language": [0, 2], "cross-lingual": [1, 3], "quote": [2],
                               "en": [0, 3], "ru": [1], "ko": [2]}
    per = aggregate(LABELS, JUDGED, k=10)
    assert per["cross-lingual"]["R@1"] == pytest.approx(0.5) and per["cross-lingual"]["MRR@10"] == pytest.approx(0.5)
    assert per["same-language"]["MRR@10"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert per["quote"]["R@5"] == 1.0 and per["en"]["rec-R@1"] == 0.0


def test_language_pairs_from_the_recordings_languages():
    assert [language_pair(label, LANGUAGES) for label in LABELS] == ["en→en", "ru→en", "ko→ko", "en→en"]
    both = LabelledQuery("q", (Span("c.flac", 0, 1), Span("d.flac", 0, 1)), ("en",))
    assert language_pair(both, LANGUAGES) == "en→ko+ru"  # neither alternative is in the query's language
    assert language_pair(LabelledQuery("q", (Span("gone.flac", 0, 1),), ("ru",)), LANGUAGES) == "ru→?"
    assert language_pair(LabelledQuery("q", (Span("a.opus", 0, 1),), ("quote",)), LANGUAGES) is None  # no language tag
    paired = with_pairs(LABELS, LANGUAGES)
    assert paired[1].tags == ("cross-lingual", "ru", "ru→en") and paired[1].split == "held-out"
    assert subsets(paired)["en→en"] == [0, 3]


def test_splits_are_scored_apart():
    assert splits(LABELS) == {"tune": [0, 2], "held-out": [1, 3]}
    assert splits([LabelledQuery("q", (Span("a.opus", 0, 1),))]) == {}
    per = aggregate_splits(LABELS, JUDGED, k=10)
    assert per["tune"]["all"]["MRR@10"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert per["held-out"]["all"]["MRR@10"] == pytest.approx(1 / 2) and per["held-out"]["cross-lingual"]["R@1"] == 0.5
    assert "quote" in per["tune"] and "quote" not in per["held-out"]  # a subset with no member in a split is absent there


def test_empty_subset_scores_zero_not_error():
    assert scores([], k=10)["MRR@10"] == 0.0


@pytest.mark.parametrize("line, message", [
    ("{not json", "not valid JSON"),
    ('["a list"]', "expected a JSON object"),
    ('{"query": "", "source": "a.opus", "start": 0, "end": 1}', "'query' must be a non-empty string"),
    ('{"query": "q", "start": 0, "end": 1}', "missing 'source'"),
    ('{"query": "q", "source": "a.opus", "start": "x", "end": 1}', "numbers of seconds"),
    ('{"query": "q", "source": "a.opus", "start": 5, "end": 1}', "start <= end"),
    ('{"query": "q", "source": "dir/a.opus", "start": 0, "end": 1}', "file name"),
    ('{"query": "q", "answers": [], "tags": []}', "non-empty list"),
    ('{"query": "q", "answers": [{"source": "a.opus", "start": 0}]}', "answer 1: missing 'end'"),
    ('{"query": "q", "source": "a.opus", "start": 0, "end": 1, "tags": "en"}', "list of strings"),
    ('{"query": "q", "source": "a.opus", "start": 0, "end": 1, "tags": ["quote"]}', "not wrapped in double quotes"),
    ('{"query": "q", "source": "a.opus", "start": 0, "end": 1, "tags": ["same-language", "cross-lingual"]}', "not both"),
    ('{"query": "q", "source": "a.opus", "start": 0, "end": 1, "split": "test"}', "'split' must be 'tune' or 'held-out'"),
])
def test_load_errors_name_the_line(tmp_path, line, message):
    path = tmp_path / "q.jsonl"
    path.write_text('# comment\n{"query": "ok", "source": "a.opus", "start": 0, "end": 1}\n\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"q.jsonl:4[:,] .*{message}"):
        load_queries(path)


def test_load_missing_and_empty_files(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        load_queries(tmp_path / "absent.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no queries"):
        load_queries(tmp_path / "empty.jsonl")


def test_a_file_splits_every_query_or_none(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"query": "a", "source": "a.opus", "start": 0, "end": 1, "split": "held-out"}\n'
                    '{"query": "b", "source": "a.opus", "start": 0, "end": 1}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="q.jsonl: give every query a 'split' or none"):
        load_queries(path)


class FakeApp:
    """Answers each query with its fixed hits; the lexical mode is 'not implemented yet'."""

    where = "lib"

    def __init__(self):
        self.by_query = {label.query: hits for label, hits in zip(LABELS, HITS)}

    def recordings(self):
        return [SimpleNamespace(source=f"/media/talks/{name}", language=language) for name, language in LANGUAGES.items()]

    def search(self, request):
        if request.mode == "lexical":
            raise NotImplementedError("lexical search is not there yet")
        return self.by_query[request.query][:request.k]


@pytest.fixture
def queries_file(tmp_path):
    path = tmp_path / "dev.jsonl"
    rows = [{"query": label.query, "answers": [vars(a) for a in label.answers], "tags": list(label.tags), "split": label.split}
            for label in LABELS]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return path


def test_run_eval_json(queries_file, capsys):
    assert run_eval(FakeApp(), queries_file, 10, "dense,lexical", None) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["queries"] == 4 and result["subsets"]["cross-lingual"] == 2
    assert result["modes"]["lexical"] == {"available": False, "error": "NotImplementedError: lexical search is not there yet"}
    assert result["modes"]["dense"]["metrics"]["all"]["MRR@10"] == pytest.approx(11 / 24)
    assert [q["rank"]["dense"] for q in result["per_query"]] == [3, 1, 2, None]
    assert result["splits"] == {"tune": {"all": 2, "same-language": 2, "quote": 1, "en": 1, "ko": 1, "en→en": 1, "ko→ko": 1},
                                "held-out": {"all": 2, "cross-lingual": 2, "en": 1, "ru": 1, "en→en": 1, "ru→en": 1}}
    assert result["subsets"]["en→en"] == 2 and result["per_query"][1]["split"] == "held-out"
    held_out = result["modes"]["dense"]["splits"]["held-out"]
    assert held_out["all"]["MRR@10"] == pytest.approx(1 / 2) and held_out["ru→en"]["R@1"] == 1.0


def test_run_eval_table_and_bad_modes(queries_file, capsys):
    assert run_eval(FakeApp(), queries_file, 10, "dense", Console(width=200)) == 0
    out = capsys.readouterr().out
    assert "cross-lingual" in out and "0.458" in out and "mean search latency" in out
    assert "held-out" in out and "ru→en" in out and "2 / 2 / 4" in out  # n per split, then all
    with pytest.raises(ValueError, match="unknown mode"):
        run_eval(FakeApp(), queries_file, 10, "dense,bm25", None)


EN_SRT = """1
00:00:01,000 --> 00:00:04,000
Thank you very much for coming

2
00:00:05,000 --> 00:00:09,000
Today I will show you how to light up LEDs with Python.

3
00:00:10,000 --> 00:00:11,000
Who am I?

4
00:00:12,000 --> 00:00:16,000
"I work on the Python developer tools team"

5
00:00:20,000 --> 00:00:24,000
Thank you very much for coming
"""
KO_SRT = """1
00:00:01,000 --> 00:00:04,000
와 주셔서 정말 감사합니다

2
00:00:05,000 --> 00:00:07,000
오늘은 파이썬으로 LED를 켜는 법을

3
00:00:07,000 --> 00:00:09,000
여러분께 보여드리려고 합니다

4
00:00:10,000 --> 00:00:11,000
제가 누구냐고요?
"""
ELSEWHERE_SRT = """1
00:00:02,000 --> 00:00:03,000
와 주셔서 정말 감사합니다
"""


@pytest.fixture
def subtitle_cues(tmp_path):
    """Two languages of one talk on one clock, and a Korean-only talk, read as the benchmark reads them."""
    files = {("leds", "en"): EN_SRT, ("leds", "ko"): KO_SRT, ("other", "ko"): ELSEWHERE_SRT}
    cues = {}
    for (talk, language), text in files.items():
        (tmp_path / talk).mkdir(exist_ok=True)
        path = tmp_path / talk / f"{language}.srt"
        path.write_text(text, encoding="utf-8")
        cues[talk, language] = read_transcript(path, language).segments
    return cues


def test_subtitle_queries_ask_for_the_same_moment_in_the_other_language(subtitle_cues):
    asked = sample_queries(subtitle_cues, per_pair=10)
    # kept: one English cue (short, repeated and quoted ones are not) and the two long Korean ones;
    # the Korean thanks are said in the other talk too, and 제가 누구냐고요 has 7 syllables
    assert sorted((a.label.tags, a.label.query, a.language) for a in asked) == [
        (("en→ko",), "Today I will show you how to light up LEDs with Python.", "ko"),
        (("ko→en",), "여러분께 보여드리려고 합니다", "en"),
        (("ko→en",), "오늘은 파이썬으로 LED를 켜는 법을", "en")]
    english = next(a.label for a in asked if a.language == "ko")
    assert english.answers == (Span("leds.ko.srt", 2.0, 12.0),)  # the cue padded by 3 s, in the Korean recording
    assert next(a.label for a in asked if a.label.query.startswith("오늘")).answers == (Span("leds.en.srt", 2.0, 10.0),)
    # the Korean cues 5-7 s and 7-9 s both fall within the English cue's padded span
    assert all(english.answers[0].matches(SimpleNamespace(source="/lib/subtitles/leds.ko.srt", start=c.start, end=c.end))
               for c in subtitle_cues["leds", "ko"][1:3])


def test_subtitle_sampling_is_seeded(subtitle_cues):
    one = [a.label.query for a in sample_queries(subtitle_cues, per_pair=1, seed=1)]
    assert one == [a.label.query for a in sample_queries(subtitle_cues, per_pair=1, seed=1)]
    assert len(one) == 2  # one per direction
    assert {a.label.query for seed in range(20) for a in sample_queries(subtitle_cues, per_pair=1, seed=seed)} == {
        "Today I will show you how to light up LEDs with Python.", "여러분께 보여드리려고 합니다", "오늘은 파이썬으로 LED를 켜는 법을"}


@needs_fixtures("subtitles/pyconkr2020/committee_one_step_further")
def test_subtitle_benchmark_on_one_talk(models, real_settings, tmp_path):
    """The benchmark end to end with the real models, one talk (about 130 chunks) and no distractors."""
    files = {talk: path for talk, path in subtitle_files([PAIRED]).items() if talk[0] == "committee_one_step_further"}
    result = measure(real_settings.changed(library=tmp_path / "lib"), files, per_pair=10, modes=("hybrid", "lexical"))
    assert result["library"]["recordings"] == 2 and result["subsets"] == {"all": 20, "en→ko": 10, "ko→en": 10}
    hybrid = result["modes"]["hybrid"]["metrics"]
    assert hybrid["all"]["rec-R@1"] == 1.0  # one talk per language: every first hit is in it
    assert hybrid["en→ko"]["R@10"] >= 0.5 and hybrid["ko→en"]["R@10"] >= 0.5  # measured 1.0 both ways
    assert result["modes"]["lexical"]["available"]
