from ingest.guards import is_known_hallucination, is_repetition_loop, is_untimed, keep_segment


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
