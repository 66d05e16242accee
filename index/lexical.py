"""Language-aware terms for keyword search.

Plain word splitting fails on Korean, where particles stick to words (플랫폼을, 플랫폼에서), and on
Russian inflection (светофоры, светофорами). Korean words are split into morphemes by kiwipiepy
and only content morphemes are kept; Cyrillic and Latin words are stemmed with Snowball
(PyStemmer). Stop words are dropped: on a small library their weights are unreliable and they
let a talk on another subject outvote the right one. Queries go through the same analysis.
"""
from __future__ import annotations

import bisect
import importlib.util
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import Stemmer
from stop_words import get_stop_words

_WORD = re.compile(r"\w+", re.UNICODE)
HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_KOREAN = "<korean>"  # marker: the word goes to the morpheme analyser
# Korean morpheme tags that carry meaning: nouns, numerals, verb/adjective stems, roots, foreign words.
_KOREAN_CONTENT = ("NNG", "NNP", "NR", "SN", "SL", "SH", "XR", "VV", "VA")
# Names how text becomes terms; a library's stored terms made another way are made again when it
# opens (a query analysed one way finds nothing among terms made another). Change it with the analysis.
ANALYSIS = "kiwi-bare-dictionary;snowball-ru-en;stop-words;latin-in-korean-stemmed"


@dataclass(frozen=True)
class Term:
    """A normalised search term and where it sits in the original text (for highlighting)."""

    text: str
    start: int
    end: int


@lru_cache(maxsize=1)
def english_stop_words() -> frozenset[str]:
    """scikit-learn's English stop list (the Glasgow IR group's), read from its own module file:
    importing ``sklearn`` itself costs 2.5 s of a command-line search's start-up."""
    package = Path(next(iter(importlib.util.find_spec("sklearn").submodule_search_locations)))
    spec = importlib.util.spec_from_file_location("_english_stop_words", package / "feature_extraction" / "_stop_words.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ENGLISH_STOP_WORDS


class Analyzer:
    """Turns text in any of the supported scripts into search terms; one instance is reused."""

    @cached_property
    def _kiwi(self):
        from kiwipiepy import Kiwi

        # One worker thread: batches then cost ~0.3 ms a sentence; the default pool cost 4x that on 2 cores.
        # Without the multi-word dictionary (WikiData names of several words kept as one term, such
        # as "메타 플랫폼"): it took 1.4 of Kiwi's 2.2 s load and 190 of its 480 MB, and changed the
        # content morphemes of 5 of 3,744 real subtitle lines, each into the words a query would use.
        # Without the default dictionary (Wikipedia titles kept whole): 0.04-0.27 s less to load and
        # analyse first (two runs) and 64 MB less; 44 of the 3,744 lines split compounds into their
        # parts (국가법령정보센터 → 국가 법령 정보 센터), which a query for one part now finds, as Korean
        # search engines decompound. The development set scored the same (ANALYSIS names the change).
        return Kiwi(num_workers=1, load_multi_dict=False, load_default_dict=False)

    @cached_property
    def _stemmers(self) -> dict[str, Stemmer.Stemmer]:
        return {"ru": Stemmer.Stemmer("russian"), "en": Stemmer.Stemmer("english")}

    @cached_property
    def _stop(self) -> dict[str, frozenset[str]]:
        return {"ru": frozenset(get_stop_words("ru")), "en": english_stop_words()}

    def warm_up(self) -> None:
        """Load the analysers now: Kiwi's first analysis alone takes half a second, which a
        server's first Korean search would otherwise wait for."""
        self.terms_many(["분석기를 불러옵니다", "Загружаем анализаторы", "Loading the analysers"])

    def terms(self, text: str) -> list[Term]:
        """Terms in text order."""
        return self.terms_many([text])[0]

    def terms_many(self, texts: list[str], korean_wanted: bool = True) -> list[list[Term]]:
        """Terms of each text; Korean-bearing texts go through the morpheme analyser in one batch
        (one call per text cost ~13 ms of a search that shapes ten hits). Without
        ``korean_wanted`` Korean words are skipped: matching them against a query with no Korean
        term is pointless, and the analyser's first load costs about a second."""
        results: list[list[Term]] = []
        korean: list[tuple[int, list[tuple[int, int]]]] = []
        for index, text in enumerate(texts):
            result: list[Term] = []
            korean_spans: list[tuple[int, int]] = []
            for match in _WORD.finditer(text):
                key = self._key(match.group())
                if key is _KOREAN:
                    korean_spans.append(match.span())
                elif key is not None:
                    result.append(Term(key, *match.span()))
            results.append(result)
            if korean_spans:
                korean.append((index, korean_spans))
        if korean and korean_wanted:
            analysed = self._kiwi.tokenize([texts[i] for i, _ in korean])
            for (index, spans), tokens in zip(korean, analysed):
                starts = [lo for lo, _ in spans]
                inside = lambda at: (i := bisect.bisect_right(starts, at) - 1) >= 0 and at < spans[i][1]  # noqa: E731
                results[index] += [Term(key, token.start, token.start + token.len) for token in tokens
                                   if token.tag in _KOREAN_CONTENT and inside(token.start) and (key := self._morpheme(token)) is not None]
                results[index].sort(key=lambda term: term.start)
        return results

    @lru_cache(maxsize=200_000)  # noqa: B019 - one Analyzer lives as long as its store
    def _key(self, raw: str) -> str | None:
        """The term of one non-Korean word (None for a stop word); ``_KOREAN`` marks a Korean word.
        Cached: a search's hits repeat the same few hundred words."""
        word = raw.lower().replace("ё", "е")
        if HANGUL.search(word):
            return _KOREAN
        language = "ru" if CYRILLIC.search(word) else "en"
        if word in self._stop[language] or (len(word) == 1 and not word.isdigit()):
            return None
        return word if word.isdigit() else self._stemmers[language].stemWord(word)

    def _morpheme(self, token) -> str | None:
        """The term of a Korean content morpheme. A Latin word written onto a Korean particle
        ("devices를", "MakeCode라는": Kiwi tags it SL) is a word like any other Latin one,
        stemmed and stop-listed, so that it meets the same word written apart."""
        return self._key(token.form) if token.tag == "SL" else token.form.lower()

    @staticmethod
    def has_korean(terms: set[str]) -> bool:
        return any(HANGUL.search(term) for term in terms)

    @lru_cache(maxsize=4096)  # noqa: B019 - one Analyzer lives as long as its store
    def keys(self, text: str) -> tuple[str, ...]:
        """Just a query's terms. Cached: one search asks twice (keywords, then the clips), and a
        Korean query costs a morpheme analysis each time."""
        return tuple(term.text for term in self.terms(text))
