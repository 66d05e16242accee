from ingest.align import attach, overlap, render
from ingest.records import Segment


def test_overlap():
    assert overlap(0, 10, 5, 15) == 5
    assert overlap(0, 1, 2, 3) == 0


def test_render_takes_pieces_mostly_inside_the_span():
    english = [Segment(0, 4, "One.", "en"), Segment(4, 10, "Two.", "en"), Segment(10, 14, "Three.", "en")]
    assert render(english, 3.5, 10.5) == "Two."
    assert render(english, 0, 14) == "One. Two. Three."
    # a short clip inside a long translated sentence still gets that sentence
    assert render(english, 5, 6) == "Two."
    assert render(english, 20, 30) is None


def test_attach_gives_each_piece_to_the_segment_it_overlaps_most():
    original = [Segment(0, 5, "Раз.", "ru"), Segment(5, 9, "Два.", "ru"), Segment(9, 12, "Three.", "en")]
    english = [Segment(0.2, 5.5, "One.", "en"), Segment(5.6, 8.8, "Two.", "en")]
    attach(original, english)
    assert [s.translation for s in original] == ["One.", "Two.", None]
