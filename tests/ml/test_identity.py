"""Scripts are matched to roster students from noisy NAME, ID and CLASS readings, one to one."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest

from ml.demo_data import DemoConfig, demo_build
from ml.identity import (
    IdentityConfig,
    IdentityResult,
    RosterEntry,
    ScriptMatch,
    WrittenIdentity,
    candidate_fits,
    id_alphabet,
    id_similarity,
    identity_match,
    identity_score,
    name_similarity,
    roster_texts,
)

ROSTER = (
    RosterEntry(student_id="S1001", name="Zara Mensah", class_name="9A"),
    RosterEntry(student_id="S1002", name="Noah Chen", class_name="9A"),
    RosterEntry(student_id="S1004", name="Wei Chen", class_name="9A"),
    RosterEntry(student_id="S1007", name="Jamal Patel", class_name="9B"),
    RosterEntry(student_id="S1010", name="Mei Chen", class_name="9B"),
    RosterEntry(student_id="S1014", name="Wei Tanaka", class_name="9A"),
    RosterEntry(student_id="S1015", name="Hannah Ivanov", class_name="9B"),
    RosterEntry(student_id="S1016", name="Sofia O'Brien", class_name="9B"),
)
BY_ID = {entry.student_id: entry for entry in ROSTER}


def read(name: str | None, student_id: str | None, class_name: str | None = None, *,
         script: int = 1) -> WrittenIdentity:
    return WrittenIdentity(script=script, name=name, student_id=student_id, class_name=class_name,
                           confidence=None)


def match_one(written: WrittenIdentity) -> ScriptMatch:
    result = identity_match(written=[written], roster=ROSTER)
    return result.matches[0]


# --- scores ------------------------------------------------------------------------------------

def test_an_exact_reading_scores_one_and_is_matched_confidently():
    written = read("Wei Tanaka", "S1014", "9A")
    assert identity_score(written=written, entry=BY_ID["S1014"]) == 1.0
    assert match_one(written) == ScriptMatch(script=1, student_id="S1014", score=1.0, runner_up_id="S1004",
                                             runner_up_score=pytest.approx(0.6),
                                             confident=True)


@pytest.mark.parametrize(("name", "student_id", "expected"), [
    ("Hannah Ivanv", "S1015", "S1015"),      # one letter dropped, ID exact
    ("Sofa O'Brien", "S1016", "S1016"),
    ("Jamal Patel", "S1207", "S1007"),       # exact name, one wrong ID digit
    ("Wei Tanaka", "S1019", "S1014"),        # the wrong digit is one edit from S1010 and S1015 too
    ("Tanaka Wei", "S1014", "S1014"),        # "Last First"
    ("WEI TANAKA", "S1014", "S1014"),        # capitals-only handwriting
    ("CHEN WEI", "S1004", "S1004"),
    ("Wei Tanaka", "S1O14", "S1014"),        # OCR confusions in the ID
    ("Wei Tanaka", "5IOI4", "S1014"),
    ("Noah Chen", "s 1002", "S1002"),
])
def test_a_misspelt_swapped_or_capitalised_name_or_a_slip_in_the_id_still_matches_confidently(
        name, student_id, expected):
    match = match_one(read(name, student_id))
    assert (match.student_id, match.confident) == (expected, True)
    assert match.score >= 0.8


def test_word_order_and_case_do_not_change_the_name_score():
    assert name_similarity(written="Tanaka Wei", expected="Wei Tanaka") == 1.0
    assert name_similarity(written="WEI TANAKA", expected="Wei Tanaka") == 1.0
    assert name_similarity(written="OBRIEN SOFIA", expected="Sofia O'Brien") == 1.0
    assert name_similarity(written="José", expected="Jose") == 1.0


def test_a_misread_first_letter_costs_a_swapped_name_little():
    # token_sort_ratio would sort "yanaka wei" after "wei tanaka" and score 0.5.
    assert name_similarity(written="Yanaka Wei", expected="Wei Tanaka") == pytest.approx(0.889, abs=1e-3)


def test_ocr_letter_digit_confusions_are_near_equal_but_a_wrong_digit_is_not():
    assert id_similarity(written="S1014", expected="S1014") == 1.0
    assert id_similarity(written="S1O14", expected="S1014") == pytest.approx(0.96)
    assert id_similarity(written="5I0l4", expected="S1014") == pytest.approx(0.88)
    assert id_similarity(written="8Z", expected="B2") == pytest.approx(0.8)
    # Classmates' IDs are this close, so a wrong digit must count for much less than 0.8.
    assert id_similarity(written="S1015", expected="S1014") == pytest.approx(0.6)
    assert id_similarity(written="S1025", expected="S1014") == pytest.approx(0.2)
    assert id_similarity(written="S1O15", expected="S1014") == pytest.approx(0.56)
    assert id_similarity(written="", expected="S1014") == 0.0


def test_a_written_class_with_a_space_earns_the_same_small_bonus_and_a_different_class_a_penalty():
    entry = BY_ID["S1015"]

    def score(class_name: str | None) -> float:
        # One wrong ID digit keeps the score far enough below 1 for the bonus to show.
        return identity_score(written=read("Hannah Ivanv", "S1025", class_name), entry=entry)

    assert score("9 B") == score("9b") == pytest.approx(score(None) + 0.05)
    assert score("9A") == pytest.approx(score(None) - 0.05)


def test_either_field_exact_with_the_other_plausible_is_confident_but_both_poor_is_not():
    config = IdentityConfig()
    entry = BY_ID["S1014"]
    exact_id = identity_score(written=read("Wei Tanakka", "S1014"), entry=entry)
    exact_name = identity_score(written=read("Wei Tanaka", "S1024"), entry=entry)
    both_rough = identity_score(written=read("Wai Tenaka", "S1024"), entry=entry)
    assert exact_id >= config.threshold and exact_name >= config.threshold
    assert both_rough < config.threshold


def test_an_unread_field_leaves_the_score_to_the_other():
    entry = BY_ID["S1014"]
    assert identity_score(written=read(None, "S1014"), entry=entry) == 1.0
    assert identity_score(written=read("Wei Tanaka", None), entry=entry) == 1.0
    assert identity_score(written=read("  ", ""), entry=entry) == 0.0
    assert identity_score(written=read(None, None, "9A"), entry=entry) == 0.0


@pytest.mark.parametrize("written", [
    read("Wei Tanaka", "S1014", "9A"), read("Zz", "99999", "12C"), read("Mei Chen", "S1O1O", "9 B"),
])
def test_scores_stay_between_zero_and_one(written):
    for entry in ROSTER:
        assert 0.0 <= identity_score(written=written, entry=entry) <= 1.0


# --- matching ----------------------------------------------------------------------------------

def test_two_students_with_the_same_surname_are_told_apart_by_first_name_and_id():
    result = identity_match(written=[read("Mei Chen", "S1010", "9B", script=1),
                                     read("WEI CHEN", "S1004", "9 A", script=2),
                                     read("Chen Noah", "S1002", script=3)], roster=ROSTER)
    assert [(m.script, m.student_id, m.confident) for m in result.matches] == [
        (1, "S1010", True), (2, "S1004", True), (3, "S1002", True)]


def test_a_surname_alone_does_not_pick_between_students_who_share_it():
    match = match_one(read("Chen", None))
    assert match.confident is False
    assert {match.student_id, match.runner_up_id} <= {"S1002", "S1004", "S1010"}


def test_a_wrong_id_digit_alone_picks_nobody():
    # S1012 is one digit from S1002, S1010, S1014, S1015 and S1016 alike.
    match = match_one(read(None, "S1012"))
    assert (match.student_id, match.runner_up_score, match.confident) == (None, pytest.approx(0.6), False)


def test_a_script_with_unreadable_name_and_id_is_unmatched():
    result = identity_match(written=[read("Wei Tanaka", "S1014", script=1),
                                     read(None, None, "9A", script=2),
                                     read("~~", "#", script=3)], roster=ROSTER)
    assert result.unmatched == (2, 3)
    assert result.matches[1] == ScriptMatch(script=2, student_id=None, score=0.0, runner_up_id=None,
                                            runner_up_score=0.0, confident=False)
    assert result.matches[2].student_id is None and not result.matches[2].confident


def test_two_scripts_claiming_the_same_student_are_reported_and_only_one_is_assigned():
    result = identity_match(written=[read("Sofia O'Brien", "S1016", "9B", script=7),
                                     read("Wei Tanaka", "S1014", script=8),
                                     read("Sofia O'Brien", "S1016", script=9)], roster=ROSTER)
    assert result.duplicates == ("S1016",)
    assigned = [m.script for m in result.matches if m.student_id == "S1016"]
    assert len(assigned) == 1
    # No other student comes near "Sofia O'Brien", so the other claimant gets nobody.
    assert result.unmatched == tuple({7, 9} - set(assigned))
    # Equal claims: the teacher must decide, so neither is confident.
    assert [m.confident for m in result.matches] == [False, True, False]


def test_a_clearly_better_claim_on_a_student_stays_confident():
    result = identity_match(written=[read("Wei Tanaka", "S1014", "9A", script=1),
                                     read("Wei Tanaka", "S1O24", script=2)], roster=ROSTER)
    assert result.duplicates == ("S1014",)
    assert (result.matches[0].student_id, result.matches[0].confident) == ("S1014", True)
    assert result.matches[1] == ScriptMatch(script=2, student_id=None, score=0.0, runner_up_id="S1014",
                                            runner_up_score=pytest.approx(0.78), confident=False)
    assert result.unmatched == (2,)


def test_roster_students_without_a_script_are_absent_in_roster_order():
    result = identity_match(written=[read("Hannah Ivanov", "S1015", script=1),
                                     read("Zara Mensah", "S1001", script=2)], roster=ROSTER)
    assert result.absent == ("S1002", "S1004", "S1007", "S1010", "S1014", "S1016")
    assert (result.unmatched, result.duplicates) == ((), ())


def test_matching_nothing_or_against_an_empty_roster_leaves_everything_over():
    assert identity_match(written=[], roster=ROSTER) == IdentityResult(
        matches=(), absent=tuple(BY_ID), unmatched=(), duplicates=())
    result = identity_match(written=[read("Wei Tanaka", "S1014")], roster=[])
    assert result.unmatched == (1,)
    assert result.matches[0] == ScriptMatch(script=1, student_id=None, score=0.0, runner_up_id=None,
                                            runner_up_score=0.0, confident=False)


def test_repeated_script_numbers_or_student_ids_are_refused():
    with pytest.raises(ValueError, match="script"):
        identity_match(written=[read("A", "1"), read("B", "2")], roster=ROSTER)
    with pytest.raises(ValueError, match="S1001"):
        identity_match(written=[], roster=[*ROSTER, RosterEntry(student_id="S1001", name="Zara Mensah")])


@pytest.mark.parametrize("options", [{"id_weight": 1.5}, {"margin": -0.1}, {"accept": 0.9, "threshold": 0.8}])
def test_settings_outside_their_ranges_are_refused(options):
    with pytest.raises(ValueError):
        IdentityConfig(**options)


# --- demo --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[RosterEntry], dict]:
    out: Path = tmp_path_factory.mktemp("identity-demo")
    truth = demo_build(out_dir=out, config=DemoConfig(students=12, absent=2, seed=7))
    rows = openpyxl.load_workbook(out / "roster.xlsx").active.iter_rows(min_row=2, values_only=True)
    roster = [RosterEntry(student_id=row[0], name=row[1], class_name=row[2]) for row in rows]
    assert json.loads((out / "truth.json").read_text()) == truth
    return roster, truth


def test_every_demo_script_read_perfectly_goes_to_its_student_and_nearly_all_confidently(demo):
    roster, truth = demo
    scripts = truth["scripts"]
    # The set must exercise the hard cases for the test to mean anything.
    assert {"misspelt", "swapped"} <= {s["name_variant"] for s in scripts}
    assert "wrong_digit" in {s["id_variant"] for s in scripts}
    written = [read(s["written_name"], s["written_id"], s["written_class"], script=i)
               for i, s in enumerate(scripts)]

    result = identity_match(written=written, roster=roster)

    assert [m.student_id for m in result.matches] == [s["student_id"] for s in scripts]
    assert sum(m.confident for m in result.matches) >= 0.9 * len(scripts)  # all 10 in practice
    assert result.absent == tuple(truth["absent"])
    assert (result.unmatched, result.duplicates) == ((), ())


def test_demo_ids_misread_with_letters_for_digits_still_match_every_script(demo):
    roster, truth = demo
    misread = str.maketrans({"0": "O", "1": "l", "5": "S"})
    written = [read(s["written_name"], s["written_id"].translate(misread), s["written_class"], script=i)
               for i, s in enumerate(truth["scripts"])]

    result = identity_match(written=written, roster=roster)

    assert [m.student_id for m in result.matches] == [s["student_id"] for s in truth["scripts"]]
    assert all(m.confident for m in result.matches)


def test_a_digits_only_second_reading_of_the_id_rescues_a_garbled_text_reading():
    roster = [RosterEntry(student_id=f"S10{n:02d}", name=name) for n, name in enumerate(
        ["Mariam Rahman", "Ethan Nowak", "Ruby Popescu", "Sofia Costa"], start=1)]
    garbled = WrittenIdentity(script=1, name="Mrian Ralmmn", student_id="Slooy")
    with_digits = WrittenIdentity(script=1, name="Mrian Ralmmn", student_id="Slooy", id_alternatives=("51001",))

    without = identity_match(written=[garbled], roster=roster).matches[0]
    rescued = identity_match(written=[with_digits], roster=roster).matches[0]

    assert not without.confident
    assert rescued.student_id == "S1001" and rescued.confident


# --- matching from the ink (EasyOCR's frames) -------------------------------------------------

@pytest.fixture(scope="module")
def demo_ink(demo_folder_for) -> tuple[list[RosterEntry], dict, list[WrittenIdentity]]:
    """The 12-student demo's identity boxes read by EasyOCR, with frames, as the app reads them."""
    from ml.pages import document_pages
    from ml.recognition.base import Region
    from ml.recognition.ocr import OcrConfig, OcrRecognizer

    folder = demo_folder_for(students=12, absent=2, seed=7)
    truth = json.loads((folder / "truth.json").read_text())
    rows = openpyxl.load_workbook(folder / "roster.xlsx").active.iter_rows(min_row=2, values_only=True)
    roster = [RosterEntry(student_id=row[0], name=row[1], class_name=row[2]) for row in rows]
    pages = list(document_pages(path=folder / "scans.pdf", kind="pdf", max_pixels=10**9, dpi=150))
    engine = OcrRecognizer(OcrConfig(threads=1))
    kinds = {"NAME": ("name", "name"), "ID": ("text", "id"), "CLASS": ("text", "class")}
    written = []
    for number, script in enumerate(truth["scripts"]):
        fields = script["fields"]
        regions = [Region(index=i, bbox=tuple(f["scan_box"]), kind=kinds[f["label"]][0]) for i, f in enumerate(fields)]
        readings = engine.read_page(page=pages[script["scan_pages"][0]], regions=regions)
        texts = {fields[r.index]["label"]: r.text for r in readings}
        written.append(WrittenIdentity(
            script=number, name=texts.get("NAME"), student_id=texts.get("ID"), class_name=texts.get("CLASS"),
            frames={kinds[fields[r.index]["label"]][1]: r.frames for r in readings if r.frames is not None}))
    return roster, truth, written


def test_every_demo_script_is_matched_from_its_ink_confidently_and_never_wrongly(demo_ink):
    roster, truth, written = demo_ink

    result = identity_match(written=written, roster=roster)

    confident = [m for m in result.matches if m.confident]
    expected = {number: script["student_id"] for number, script in enumerate(truth["scripts"])}
    assert all(m.student_id == expected[m.script] for m in confident)
    assert len(confident) >= 0.9 * len(written)
    assert all(m.fit is not None and m.fit >= IdentityConfig().fit_margin for m in confident)


def test_a_script_whose_student_is_missing_from_the_roster_is_never_matched_confidently(demo_ink):
    roster, truth, written = demo_ink
    for number, script in enumerate(truth["scripts"]):
        without = [entry for entry in roster if entry.student_id != script["student_id"]]

        match = identity_match(written=written, roster=without).matches[number]

        assert not match.confident, f"script {number} went to {match.student_id} instead of nobody"


def test_without_frames_the_readings_decide_and_with_them_the_ink(demo_ink):
    roster, _, written = demo_ink
    garbled = WrittenIdentity(script=99, name="Zzzz Qqqq", student_id="X0000", frames=written[0].frames)

    match = identity_match(written=[garbled], roster=roster).matches[0]

    assert match.fit is not None
    assert match.student_id == identity_match(written=[written[0]], roster=roster).matches[0].student_id


def test_an_engine_that_scored_the_roster_itself_matches_like_the_ink():
    texts = roster_texts(roster=ROSTER, box="name")
    scores = [-3.0 if text in ("Wei Tanaka", "Tanaka Wei") else -60.0 for _, text in texts]
    written = WrittenIdentity(script=1, name="W. Tanka", student_id=None,
                              candidate_fits={"name": candidate_fits(texts=texts, scores=scores, reference=-2.0)})

    match = identity_match(written=[written], roster=ROSTER).matches[0]

    assert match.student_id == "S1014" and match.confident and match.fit == pytest.approx(57.0)


def test_a_roster_the_engine_finds_equally_unlikely_is_left_to_the_teacher():
    texts = roster_texts(roster=ROSTER, box="id")
    written = WrittenIdentity(script=1, name=None, student_id="S10??",
                              candidate_fits={"id": candidate_fits(texts=texts, scores=[-30.0] * len(texts), reference=-1.0)})

    assert not identity_match(written=[written], roster=ROSTER).matches[0].confident


def _fits(box: str, best: str, *, gap: float, others_gap: float = 20.0, reference: float = -1.0) -> dict:
    """An engine's scoring of the roster's ``box`` texts: ``best``'s student explains the ink ``gap`` nats
    per character worse than the free reading, everyone else ``others_gap``."""
    texts = roster_texts(roster=ROSTER, box=box)
    scores = [reference - len(text.replace(" ", "")) * (gap if student == best else others_gap)
              for student, text in texts]
    return candidate_fits(texts=texts, scores=scores, reference=reference)


def test_a_badly_read_name_is_rescued_by_an_id_the_ink_spells_nearly_exactly():
    badly_read_name = _fits("name", "S1014", gap=5.5, others_gap=8.0)
    written = WrittenIdentity(script=1, name="Wxi Tnkz", student_id="S1014",
                              candidate_fits={"name": badly_read_name, "id": _fits("id", "S1014", gap=0.5)})

    match = identity_match(written=[written], roster=ROSTER).matches[0]

    assert match.student_id == "S1014" and match.confident


def test_an_id_one_character_off_does_not_rescue_a_badly_read_name():
    # Someone missing from the roster: their ID misses S1014 by a digit, their name fits nobody.
    written = WrittenIdentity(script=1, name="Wxi Tnkz", student_id="S1019",
                              candidate_fits={"name": _fits("name", "S1014", gap=5.5, others_gap=8.0),
                                              "id": _fits("id", "S1014", gap=2.0)})

    match = identity_match(written=[written], roster=ROSTER).matches[0]

    assert match.student_id == "S1014" and match.fit >= IdentityConfig().fit_margin and not match.confident


def test_an_id_is_judged_in_the_rosters_own_letters_in_either_case_and_every_digit():
    # No ID on the roster has a 3, 8 or 9; a student missing from it may.
    assert id_alphabet(roster=ROSTER) == "0123456789Ss"
