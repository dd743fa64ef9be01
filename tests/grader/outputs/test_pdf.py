import datetime
import io
import re
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pikepdf
import pypdfium2 as pdfium
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from grader.models import Script
from grader.outputs.pdf import html_pdf, sample_report_pdf, script_pdf
from grader.outputs.selectors import script_results
from ml.score_stats import BandsRefused

A4_PT = (595.276, 841.89)
RED = (208, 16, 26)


def _pdf(data: bytes) -> pdfium.PdfDocument:
    assert data.startswith(b"%PDF")
    return pdfium.PdfDocument(data)


def _texts(document: pdfium.PdfDocument) -> list[str]:
    """Each page's text with runs of whitespace made single spaces."""
    return [re.sub(r"\s+", " ", page.get_textpage().get_text_range()) for page in document]


def _result(exam, student_id: str):
    return next(result for result in script_results(exam=exam) if result.student.student_id == student_id)


def _text_box(page: pdfium.PdfPage, text: str) -> tuple[float, float, float, float]:
    """The first occurrence of ``text`` on ``page``: left, top, right, bottom in points from the top-left."""
    textpage = page.get_textpage()
    match = textpage.search(text).get_next()
    assert match, f"{text!r} is not on the page"
    index, count = match
    boxes = [textpage.get_charbox(i) for i in range(index, index + count)]
    height = page.get_height()
    return (min(b[0] for b in boxes), height - max(b[3] for b in boxes),
            max(b[2] for b in boxes), height - min(b[1] for b in boxes))


def _fit(width_px: int, height_px: int) -> tuple[float, float, float]:
    """Points per pixel and the image's offset on an A4 sheet, for a scan fitted within it."""
    scale = min(A4_PT[0] / width_px, A4_PT[1] / height_px)
    return scale, (A4_PT[0] - width_px * scale) / 2, (A4_PT[1] - height_px * scale) / 2


def _assert_label_beside_box(page: pdfium.PdfPage, text: str, crop, size=(1240, 1754)) -> None:
    scale, dx, dy = _fit(*size)
    x1, y1, x2, y2 = (dx + crop[0] * scale, dy + crop[1] * scale, dx + crop[2] * scale, dy + crop[3] * scale)
    left, top, right, bottom = _text_box(page, text)
    beside = x2 < left < x2 + 20 or x1 - 20 < right < x1
    assert beside and 0 < left and right < A4_PT[0], "the score is just beside its box, on the paper"
    assert y1 <= (top + bottom) / 2 <= y2, "the score is level with its box"
    # The box is drawn in red: sample the middle of its left edge at 2 px per point.
    image = page.render(scale=2).to_pil().convert("RGB")
    red = image.getpixel((round(2 * x1 + 1), round(y1 + y2)))
    assert red[0] > 150 and red[1] < 90 and red[2] < 90, f"box edge is {red}, not red"


@pytest.fixture
def dated_exam(scored_exam):
    scored_exam.subject = "Physics"
    scored_exam.date = datetime.date(2025, 3, 14)
    scored_exam.save()
    return scored_exam


def test_a_scored_script_is_a_summary_page_then_each_scanned_page_on_a4(dated_exam):
    document = _pdf(script_pdf(result=_result(dated_exam, "S1")))

    assert len(document) == 3
    for page in document:
        width, height = page.get_size()
        assert width == pytest.approx(A4_PT[0], abs=1) and height == pytest.approx(A4_PT[1], abs=1)


def test_the_summary_names_the_student_and_shows_each_score_the_total_and_the_comment(dated_exam):
    result = _result(dated_exam, "S2")
    result.script.comment = "Good method in Q1.\nShow your working in Q3."
    result.script.save()

    summary = _texts(_pdf(script_pdf(result=result)))[0]

    for text in ("Year 9 Science", "Physics", "14 March 2025", "Ben Okafor", "Student ID S2", "Class 9A",
                 "Q1 1.5 2", "Q2 1 1", "Q3 2 3", "4.5/6", "75%", "Comments", "Good method in Q1.",
                 "Show your working in Q3."):
        assert text in summary


def test_a_full_score_reads_as_whole_marks_and_a_script_without_a_comment_has_no_comments_heading(dated_exam):
    summary = _texts(_pdf(script_pdf(result=_result(dated_exam, "S1"))))[0]

    assert "6/6" in summary and "100%" in summary
    assert "Q1 2 2" in summary and "2.00" not in summary
    assert "Comments" not in summary


def test_a_blank_answer_says_blank_and_an_unscored_one_shows_a_dash(dated_exam):
    blank = _texts(_pdf(script_pdf(result=_result(dated_exam, "S5"))))[0]
    assert "Q3 blank 0 3" in blank

    result = _result(dated_exam, "S4")
    q2 = result.rows[1].answer
    q2.suggested_score = None
    q2.save()
    document = _pdf(script_pdf(result=_result(dated_exam, "S4")))

    assert "Q2 — 1" in _texts(document)[0]
    assert "2.5/6" not in _texts(document)[0] and "1.5/6" in _texts(document)[0]
    _assert_label_beside_box(document[1], "—/1", q2.crop)


def test_a_script_without_a_student_is_named_by_its_number(dated_exam):
    Script.objects.filter(exam=dated_exam, number=3).update(student=None)
    result = next(r for r in script_results(exam=dated_exam) if r.script.number == 3)

    assert "Script 3 (no student)" in _texts(_pdf(script_pdf(result=result)))[0]


def test_each_score_is_written_in_red_beside_its_box_on_the_scanned_page(dated_exam):
    result = _result(dated_exam, "S2")
    document = _pdf(script_pdf(result=result))

    for row, text in zip(result.rows, ("1.5/2", "1/1", "2/3")):
        page = document[1 + row.answer.page.position]
        _assert_label_beside_box(page, text, row.answer.crop)


def test_a_page_that_is_not_a4_is_fitted_within_the_sheet_with_its_scores(dated_exam):
    result = _result(dated_exam, "S1")
    answer = result.rows[2].answer
    page = answer.page
    buffer = io.BytesIO()
    Image.new("L", (1754, 1240), "white").save(buffer, format="JPEG")
    page.image.save("landscape.jpg", ContentFile(buffer.getvalue()), save=False)
    page.width, page.height = 1754, 1240
    page.save()
    answer.crop = [100, 100, 900, 400]
    answer.save()

    document = _pdf(script_pdf(result=_result(dated_exam, "S1")))

    assert document[2].get_size() == pytest.approx(A4_PT, abs=1)
    _assert_label_beside_box(document[2], "3/3", answer.crop, size=(1754, 1240))


def test_a_score_with_no_room_right_of_its_box_goes_above_it_on_the_paper(dated_exam):
    result = _result(dated_exam, "S2")
    answer = result.rows[0].answer
    answer.crop = [700, 500, 1235, 600]
    answer.save()

    document = _pdf(script_pdf(result=_result(dated_exam, "S2")))

    scale, _, _ = _fit(1240, 1754)
    left, top, right, bottom = _text_box(document[1], "1.5/2")
    assert bottom <= 500 * scale and top > 500 * scale - 40
    assert 700 * scale <= left and right <= A4_PT[0] - 10


def test_a_discarded_page_is_left_out(dated_exam):
    result = _result(dated_exam, "S1")
    result.script.pages.filter(position=1).update(discarded=True)

    assert len(_pdf(script_pdf(result=result))) == 2


BANDS_OF_TWO = {"Good": ["Ada Lovelace", "Ben Okafor"], "Average": ["Femi Adeyemi", "Chloe Martin"],
                "Weak": ["Dev Patel", "Eva Rossi"]}


def _sections(texts: list[str]) -> list[tuple[str, list[str]]]:
    """The report after its cover as (separator text, [summary text of each sampled script])."""
    sections: list[tuple[str, list[str]]] = []
    for text in texts[1:]:
        if re.search(r"(Good|Average|Weak) — ", text):
            sections.append((text, []))
        elif "QUESTION SCORE OUT OF" in text:
            sections[-1][1].append(text)
    return sections


def test_the_sample_report_opens_with_the_exam_statistics_and_a_histogram(dated_exam):
    document = _pdf(sample_report_pdf(exam=dated_exam, n=2))
    cover = _texts(document)[0]

    # Totals 6, 4.5, 3, 2.5, 0, 4 out of 6.
    for text in ("SAMPLE REPORT", "Year 9 Science", "Scripts scored 6", "Mean 3.33 55.6", "Median 3.5 58.3",
                 "Standard deviation 1.86 31.1", "Highest 6 100", "Lowest 0 0", "Scripts per band 2",
                 "Distribution of totals", "0 1 2 3 4 5 6", "Total (marks out of 6)"):
        assert text in cover
    assert "Pass" not in cover
    # 1 cover, then per band a separator and 2 scripts of a summary and 2 scanned pages.
    assert len(document) == 1 + 3 * (1 + 2 * 3)


def test_each_band_page_names_its_scripts_and_exactly_n_scored_scripts_follow(dated_exam):
    sections = _sections(_texts(_pdf(sample_report_pdf(exam=dated_exam, n=2))))

    assert len(sections) == 3
    for (separator, summaries), (band, names) in zip(sections, BANDS_OF_TWO.items()):
        assert f"{band} — " in separator
        assert all(name in separator for name in names)
        assert len(summaries) == 2
        assert all(name in summary for name, summary in zip(names, summaries))
        assert all(f"{band.upper()} SAMPLE" in summary for summary in summaries)
    assert "Good — top 2 scripts by total" in sections[0][0]
    assert "Average — 2 scripts around the median" in sections[1][0]
    assert "Weak — bottom 2 scripts by total" in sections[2][0]


def test_with_a_pass_mark_only_passing_scripts_are_sampled_and_the_pass_rate_is_shown(dated_exam):
    texts = _texts(_pdf(sample_report_pdf(exam=dated_exam, n=1, pass_mark=Decimal("2.5"))))

    assert "Pass mark 2.5 41.7" in texts[0] and "Pass rate 5 of 6 83.3" in texts[0] and "pass mark 2.5" in texts[0]
    sections = _sections(texts)
    # Eva Rossi (0) is below the pass mark: Dev Patel (2.5) is the weakest passing script.
    assert "Ada Lovelace" in sections[0][0]
    assert "Femi Adeyemi" in sections[1][0]
    assert "Dev Patel" in sections[2][0]
    assert "Weak — bottom 1 passing script by total" in sections[2][0]
    assert not any("Eva Rossi" in text for text in texts)


def test_a_script_nobody_scored_is_left_out_of_the_report(dated_exam):
    gus = dated_exam.students.get(student_id="S7")
    Script.objects.create(exam=dated_exam, number=7, student=gus)

    texts = _texts(_pdf(sample_report_pdf(exam=dated_exam, n=2)))

    assert "Scripts scored 6" in texts[0] and "1 script with no score at all is left out." in texts[0]
    assert not any("Gus Absent" in text for text in texts)


def test_the_sample_report_reports_progress_script_by_script(dated_exam):
    calls = []

    sample_report_pdf(exam=dated_exam, n=2, progress=lambda done, total: calls.append((done, total)))

    assert calls == [(done, 6) for done in range(1, 7)]


def test_bands_larger_than_the_scripts_allow_are_refused_with_a_clear_message(dated_exam):
    with pytest.raises(BandsRefused, match=r"Three bands of 3 need 9 scripts; there are 6\."):
        sample_report_pdf(exam=dated_exam, n=3)
    with pytest.raises(BandsRefused, match=r"at or above the pass mark 4; there are 3\."):
        sample_report_pdf(exam=dated_exam, n=2, pass_mark=4)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (40, 40), 90).save(buffer, format="PNG")
    return buffer.getvalue()


def _image_count(data: bytes) -> int:
    """How many pictures a PDF embeds, wherever they are drawn (pages, SVG drawings)."""
    with pikepdf.open(io.BytesIO(data)) as document:
        return sum(1 for obj in document.objects if isinstance(obj, pikepdf.Stream) and obj.get("/Subtype") == "/Image")


@pytest.fixture
def web_server() -> Iterator[tuple[str, list[str]]]:
    """A web server on this machine serving a picture at any path: its address and the paths asked for."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            body = _png()
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", asked
    server.shutdown()
    server.server_close()


@pytest.fixture
def other_files(scored_exam, tmp_path) -> dict[str, str]:
    """Pictures a document of ``scored_exam`` must not reach, by file:// URL: another exam's page, a file
    outside storage, and the other exam's page again through a link and a ".." inside this exam's folder."""
    other = default_storage.save(f"exams/{scored_exam.pk + 1}/pages/u1-p1.png", ContentFile(_png()))
    other_path = Path(default_storage.path(other))
    outside = tmp_path / "secret.png"
    outside.write_bytes(_png())
    own_folder = Path(default_storage.path(f"exams/{scored_exam.pk}/pages"))
    (own_folder / "link.png").symlink_to(other_path)
    return {
        "another exam's page": other_path.as_uri(),
        "a file outside storage": outside.as_uri(),
        "a link to another exam's page": (own_folder / "link.png").as_uri(),
        "a way out of the exam's folder": f"{own_folder.as_uri()}/../../{scored_exam.pk + 1}/pages/u1-p1.png",
    }


def test_a_document_renders_without_fetching_other_exams_files_or_network_addresses(
    scored_exam, other_files, web_server
):
    address, asked = web_server
    own_page = Path(scored_exam.pages.first().image.path).as_uri()
    links = [own_page, *other_files.values(), f"{address}/internal.png", f"file://{address[7:]}/x.png"]
    html = "<html><body>" + "".join(f'<img src="{link}" width="40" height="40">' for link in links) + "</body></html>"

    data = html_pdf(html=html, exam=scored_exam)

    assert _image_count(data) == 1, "only the exam's own page is in the PDF"
    assert asked == []


def test_a_page_image_that_is_really_an_svg_cannot_copy_another_exams_page_into_the_scored_script(
    dated_exam, other_files, web_server
):
    address, asked = web_server
    result = _result(dated_exam, "S1")
    page = result.script.pages.get(position=0)
    links = [*other_files.values(), f"{address}/admin/"]
    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="1240" height="1754">' + "".join(
        f'<image href="{link}" x="0" y="{40 * i}" width="40" height="40"/>' for i, link in enumerate(links)
    ) + "</svg>"
    Path(page.image.path).write_text(svg)

    data = script_pdf(result=result)

    assert _image_count(data) == 1, "the script's other page only"
    assert asked == []


@pytest.mark.parametrize(("max_total", "expected"), [(14, (14, 14.0)), (40, (14, 42.0)), (7.5, (10, 7.5))])
def test_the_histogram_counts_whole_marks_when_the_total_is_whole(max_total, expected):
    from grader.outputs.pdf import _histogram_bins

    assert _histogram_bins(max_total) == expected


def test_a_score_beside_a_full_width_box_of_the_demo_hides_neither_the_printed_marks_nor_the_writing(
    exam, teacher, demo_folder_for
):
    """The demo's sentence boxes run the width of the page, with the question's "[2]" printed above
    their right end: the label finds the margin instead of covering it."""
    import json

    from grader.outputs.pdf import A4_MM, LABEL_HEIGHT_MM, _label_width, _page_layout
    from ml import demo_data
    from tests.grader.reading.test_views_reading import demo_load

    folder = demo_folder_for(students=3, absent=0, seed=5)
    demo_load(exam=exam, teacher=teacher, folder=folder)
    truth = json.loads((folder / "truth.json").read_text())
    wide = {q.label for q in demo_data.QUESTIONS if q.box_size == "sentence"}
    assert wide == {"Q5", "Q11"}
    px = 150 / 25.4  # template px per mm
    # Where the blank exam prints each question's marks ("[1]", "[2]"), per template page, in mm.
    template = pdfium.PdfDocument(folder / "template.pdf")
    marks = []
    for sheet in template:
        text, height, found = sheet.get_textpage(), sheet.get_height(), []
        for needle in ("[1]", "[2]"):
            search = text.search(needle)
            while match := search.get_next():
                boxes = [text.get_charbox(i) for i in range(match[0], match[0] + match[1])]
                found.append(tuple(v * 25.4 / 72 for v in (min(b[0] for b in boxes), height - max(b[3] for b in boxes),
                                                            max(b[2] for b in boxes), height - min(b[1] for b in boxes))))
        marks.append(found)
    assert [len(found) for found in marks] == [6, 6]

    checked = 0
    for script in truth["scripts"]:
        for sheet in script["pages"]:
            page = exam.scripts.get(pages__source_index=sheet["scan_page"]).pages.get(source_index=sheet["scan_page"])
            answers = [a for a in script["answers"] if a["template_page"] == sheet["template_page"]]
            layout = _page_layout(page, [(a["scan_box"], f"2/{2 if a['label'] in wide else 1}") for a in answers])
            scale = layout.width / page.width

            def to_sheet(box):  # scan px -> mm on the A4 sheet
                return (layout.left + box[0] * scale, layout.top + box[1] * scale,
                        layout.left + box[2] * scale, layout.top + box[3] * scale)

            transform = sheet["transform"]

            def scan_bbox(x1, y1, x2, y2):  # template px -> scan px, bounding box of the corners
                corners = [(transform[0][0] * x + transform[0][1] * y + transform[0][2],
                            transform[1][0] * x + transform[1][1] * y + transform[1][2])
                           for x in (x1, x2) for y in (y1, y2)]
                return (min(c[0] for c in corners), min(c[1] for c in corners),
                        max(c[0] for c in corners), max(c[1] for c in corners))

            labels = [(b.label_left, b.label_top, b.label_left + _label_width(b.text), b.label_top + LABEL_HEIGHT_MM)
                      for b in layout.boxes]
            for answer, label in zip(answers, labels, strict=True):
                assert 0 <= label[0] and label[2] <= A4_MM[0] and 0 <= label[1] and label[3] <= A4_MM[1]
                covered = [to_sheet(a["scan_box"]) for a in answers]
                if answer["scan_ink_box"]:
                    covered.append(to_sheet(answer["scan_ink_box"]))
                covered += [to_sheet(scan_bbox(*(v * px for v in mark))) for mark in marks[sheet["template_page"]]]
                for other in covered:
                    overlap = label[0] < other[2] and other[0] < label[2] and label[1] < other[3] and other[1] < label[3]
                    assert not overlap, f"{answer['label']}'s score at {label} covers print or writing at {other}"
                checked += answer["label"] in wide
    assert checked == 2 * len(truth["scripts"])
