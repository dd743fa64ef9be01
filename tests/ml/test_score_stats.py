"""Exam statistics: summary figures, per-question figures, histograms and Good/Average/Weak samples."""

from __future__ import annotations

import math

import pytest

from ml.score_stats import (
    BandsRefused,
    QuestionStats,
    Summary,
    discrimination_index,
    histogram,
    question_stats,
    sample_bands,
    summary,
)


def test_summary_of_an_even_number_of_totals_takes_the_middle_pair_for_the_median():
    figures = Summary(n=4, mean=2.5, median=2.5, std=pytest.approx(math.sqrt(1.25)), low=1, high=4)
    assert summary([4, 1, 3, 2]) == figures


def test_summary_of_an_odd_number_of_totals_takes_the_middle_one():
    figures = summary([5.0, 1.0, 3.0])
    assert (figures.median, figures.mean, figures.low, figures.high) == (3.0, 3.0, 1.0, 5.0)
    assert figures.std == pytest.approx(math.sqrt(8 / 3))  # population: divided by n, not n - 1


def test_summary_of_nothing_is_none():
    assert summary([]) is None


def test_question_stats_leave_out_scripts_with_no_score():
    stats = question_stats(
        scores=[2.0, None, 1.0, 0.0], blanks=[False, False, False, True], totals=[9.0, 8.0, 5.0, 1.0], max_score=2.0
    )
    assert stats.n == 3
    assert stats.mean == pytest.approx(1.0)
    assert stats.std == pytest.approx(math.sqrt(2 / 3))
    assert stats.full_marks == pytest.approx(1 / 3)
    assert stats.blank == pytest.approx(1 / 3)
    # Thirds of the 3 scored scripts: top 2.0 (total 9), bottom 0.0 (total 1).
    assert stats.discrimination == pytest.approx(1.0)


def test_question_stats_with_no_scores_are_all_undefined():
    assert question_stats(scores=[None, None], blanks=[False, True], totals=[1.0, 2.0], max_score=1.0) == QuestionStats(
        n=0, mean=None, std=None, full_marks=None, blank=None, discrimination=None
    )


def test_a_question_worth_nothing_has_no_full_marks_and_no_discrimination():
    stats = question_stats(scores=[0.0, 0.0, 0.0], blanks=[False] * 3, totals=[3.0, 2.0, 1.0], max_score=0.0)
    assert (stats.full_marks, stats.discrimination) == (0.0, None)


def test_question_stats_need_one_entry_per_script():
    with pytest.raises(ValueError, match="one entry per script"):
        question_stats(scores=[1.0], blanks=[False, False], totals=[1.0], max_score=1.0)


def test_the_discrimination_index_compares_the_top_and_bottom_thirds_by_total():
    # Seven scripts: thirds of 2. By total, the top two scored 3 and 2 (mean 2.5), the bottom two 0 and 1
    # (mean 0.5): (2.5 - 0.5) / 3.
    scores = [1, 3, 0, 2, 3, 1, 2]
    totals = [4, 10, 5, 9, 8, 7, 6]
    assert discrimination_index(scores=scores, totals=totals, max_score=3) == pytest.approx(2 / 3)


def test_a_question_the_weaker_scripts_did_better_on_discriminates_negatively():
    assert discrimination_index(scores=[0, 1, 1], totals=[9, 5, 1], max_score=1) == pytest.approx(-1.0)


def test_the_discrimination_index_needs_three_scripts_and_a_maximum():
    assert discrimination_index(scores=[1, 0], totals=[2, 1], max_score=1) is None
    assert discrimination_index(scores=[0, 0, 0], totals=[3, 2, 1], max_score=0) is None


def test_histogram_values_on_an_edge_fall_in_the_bin_above_it():
    # 0.3 // 0.1 is 2.0 in floating point: a careless histogram puts 0.3 in the bin [0.2, 0.3).
    values = [i / 10 for i in range(11)]
    assert histogram(values, low=0, high=1, bins=10) == [1, 1, 1, 1, 1, 1, 1, 1, 1, 2]
    assert histogram([0, 0.6, 1.2, 3, 5.4, 6], low=0, high=6, bins=10) == [1, 1, 1, 0, 0, 1, 0, 0, 0, 2]


def test_histogram_counts_values_outside_the_range_in_the_end_bins():
    assert histogram([-1, 0.5, 11], low=0, high=10, bins=5) == [2, 0, 0, 0, 1]


@pytest.mark.parametrize("low, high, bins", [(0, 10, 0), (5, 5, 10), (6, 1, 10)])
def test_histogram_refuses_an_empty_range_or_no_bins(low, high, bins):
    with pytest.raises(ValueError, match="bins >= 1 and high > low"):
        histogram([1], low=low, high=high, bins=bins)


def _ranked(totals):
    """Scripts numbered from 1 with the given totals, in script-number order."""
    return [(number, total) for number, total in enumerate(totals, start=1)]


def test_sample_bands_draw_exactly_n_disjoint_scripts_each():
    bands = sample_bands(_ranked([5, 9, 1, 7, 3, 8, 2, 6, 4, 10]), n=3)
    # By total, best first: 10 (script 10), 9 (2), 8 (6), 7 (4), 6 (8), 5 (1), 4 (9), 3 (5), 2 (7), 1 (3).
    assert bands == {"Good": [10, 2, 6], "Average": [4, 8, 1], "Weak": [5, 7, 3]}
    drawn = [key for band in bands.values() for key in band]
    assert len(drawn) == len(set(drawn)) == 9


@pytest.mark.parametrize("count, n", [(3, 1), (6, 2), (9, 3), (10, 3), (30, 10), (31, 4)])
def test_sample_bands_never_overlap_and_average_holds_the_median(count, n):
    totals = list(range(count, 0, -1))  # script 1 is best
    bands = sample_bands(_ranked(totals), n=n)
    assert [len(band) for band in bands.values()] == [n, n, n]
    assert max(bands["Good"]) < min(bands["Average"]) <= max(bands["Average"]) < min(bands["Weak"])
    middle = (count + 1) // 2  # the middle script; for an even count, the better of the middle two
    assert middle in bands["Average"]


def test_sample_bands_with_a_pass_mark_draw_only_from_scripts_that_reach_it():
    bands = sample_bands(_ranked([10, 2, 8, 4, 6, 3, 7, 5]), n=2, pass_mark=4)
    # Reaching 4: totals 10 (1), 8 (3), 7 (7), 6 (5), 5 (8), 4 (4); 4 counts: "at or above".
    assert bands == {"Good": [1, 3], "Average": [7, 5], "Weak": [8, 4]}


def test_tied_totals_keep_the_order_given():
    bands = sample_bands(_ranked([5] * 6), n=2)
    assert bands == {"Good": [1, 2], "Average": [3, 4], "Weak": [5, 6]}


def test_sample_bands_refuse_too_few_scripts_saying_how_many_there_are():
    with pytest.raises(BandsRefused, match=r"^Three bands of 2 need 6 scripts; there are 5\.$"):
        sample_bands(_ranked([1, 2, 3, 4, 5]), n=2)
    message = r"^Three bands of 2 need 6 scripts at or above the pass mark 3\.5; there are 4\.$"
    with pytest.raises(BandsRefused, match=message):
        sample_bands(_ranked([1, 2, 3, 4, 5, 6, 7]), n=2, pass_mark=3.5)


def test_sample_bands_need_at_least_one_script_each():
    with pytest.raises(BandsRefused, match="at least one script"):
        sample_bands(_ranked([1, 2, 3]), n=0)
