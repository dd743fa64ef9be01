/* Keyboard grading of a rubric question (templates/grading/question.html, rows with a .rubric-form).
 *
 * Tab moves through a row's dimension boxes and on to its feedback box, as in any form; the total is
 * added up as the teacher types and marked when a dimension or the total is above its maximum (the
 * server checks again). Enter in a score box, or Ctrl+Enter in the feedback, saves the row and goes on
 * to the next answer still without a score. In the feedback box Alt+1..9 adds or removes bank comment
 * 1..9 and Alt+s saves what was written as a new bank comment. Where the rubric model made suggestions
 * (grey placeholders, a draft of the feedback), saving with Enter takes them for the boxes left empty.
 * ] and [ in a score box go to the next and previous question; a live line counts the rows scored and
 * says when the question is done. Without JavaScript the form posts as is.
 */
(function () {
  "use strict";

  let advanceFrom = null; // the row saved from the keyboard: focus moves on once its save comes back
  let bankFrom = null; // the row whose feedback went to the comment bank: the page is drawn again with it

  const rowOf = (el) => (el && el.closest ? el.closest("tbody.grading-row") : null);
  const rows = () => Array.from(document.querySelectorAll("tbody.grading-row"));
  const firstBox = (row) => (row ? row.querySelector("input.rubric-points:not([readonly])") : null);
  const unscored = (row) => Array.from(row.querySelectorAll("input.rubric-points")).some((box) => box.value.trim() === "");

  function focusBox(box) {
    if (!box) return false;
    box.focus();
    box.select();
    box.scrollIntoView({ block: "nearest" });
    return true;
  }

  /* "x / n scored" under the heading; once every row has its score, that the question is done and where ]
   * goes, as on a question without a rubric. */
  function countUpdate() {
    const count = document.getElementById("rubric-count");
    if (!count) return;
    const all = rows();
    const done = all.filter((row) => !unscored(row)).length;
    count.textContent = all.length && done === all.length
      ? `Question done: all ${all.length} scored. Press ] for ${count.dataset.nextLabel}.`
      : `${done} / ${all.length} scored`;
  }

  /* ] and [ in a score box go to the next and previous question (scores never hold them). */
  function questionGo(key) {
    const page = document.getElementById("grading-page");
    const url = page && page.dataset[key === "]" ? "nextUrl" : "prevUrl"];
    if (url) window.location.assign(url);
  }

  const number = (text) => Number(text.trim().replace(",", "."));

  /* The sum of the row's dimension boxes into its <output>; over-maximum boxes and totals are marked. */
  function totalUpdate(form) {
    const boxes = Array.from(form.querySelectorAll("input.rubric-points"));
    let total = 0, complete = true;
    for (const box of boxes) {
      const text = box.value.trim();
      const value = number(text);
      const bad = text !== "" && (Number.isNaN(value) || value < 0 || value > Number(box.dataset.max));
      box.classList.toggle("rubric-over", bad);
      box.setAttribute("aria-invalid", bad ? "true" : "false");
      if (text === "") complete = false; else if (!Number.isNaN(value)) total += value;
    }
    const output = form.querySelector("output.rubric-total");
    output.value = complete ? String(Math.round(total * 100) / 100) : (total ? `${Math.round(total * 100) / 100} so far` : "–");
    output.classList.toggle("rubric-over", total > Number(form.dataset.max));
  }

  /* Enter accepts the rubric model's suggestion: empty boxes take the grey one, an empty feedback box the draft. */
  function accept(form) {
    for (const box of form.querySelectorAll("input.rubric-points")) {
      if (box.value.trim() === "" && box.placeholder && !box.readOnly) box.value = box.placeholder;
    }
    const feedback = form.querySelector("textarea.rubric-feedback");
    if (feedback && feedback.value.trim() === "" && feedback.dataset.draft && !feedback.readOnly) {
      feedback.value = feedback.dataset.draft;
    }
    totalUpdate(form);
  }

  function submit(form, advance) {
    if (!form.hasAttribute("hx-post")) return;
    if (advance) accept(form);
    advanceFrom = advance ? rowOf(form).id : null;
    const state = form.querySelector(".grading-state");
    if (state) state.textContent = "saving…";
    htmx.trigger(form, "submit");
  }

  function toggleComment(form, digit) {
    const box = form.querySelector(`input[name=comment][value="${digit}"]`);
    if (!box || box.disabled) return false;
    box.checked = !box.checked;
    const state = form.querySelector(".grading-state");
    if (state) state.textContent = `comment ${digit} ${box.checked ? "added" : "removed"}`;
    return true;
  }

  document.addEventListener("input", (event) => {
    if (event.target.matches && event.target.matches("input.rubric-points")) totalUpdate(event.target.form);
  });

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (!target.matches) return;
    const form = target.form;
    if (target.matches("input.rubric-points")) {
      if (event.key === "Enter" || event.code === "NumpadEnter") { event.preventDefault(); submit(form, true); }
      if (event.key === "]" || event.key === "[") { event.preventDefault(); questionGo(event.key); }
      return;
    }
    if (!target.matches("textarea.rubric-feedback")) return;
    if (event.key === "Enter" && event.ctrlKey) { event.preventDefault(); submit(form, true); return; }
    if (!event.altKey || event.ctrlKey || event.metaKey) return;
    const digit = /^Digit([1-9])$/.exec(event.code);
    if (digit) { event.preventDefault(); toggleComment(form, digit[1]); return; }
    if (event.code === "KeyS") {
      event.preventDefault();
      if (!target.value.trim()) return;
      form.querySelector("input[name=save_comment]").checked = true;
      bankFrom = rowOf(form).id;
      submit(form, false);
    }
  });

  document.addEventListener("htmx:afterSettle", (event) => {
    const row = event.detail.elt && event.detail.elt.closest ? event.detail.elt.closest("tbody.grading-row") : null;
    if (!row || !row.querySelector(".rubric-form")) return;
    totalUpdate(row.querySelector(".rubric-form"));
    countUpdate();
    if (row.classList.contains("grading-refused") || row.classList.contains("grading-stale")) {
      advanceFrom = bankFrom = null;
      focusBox(firstBox(row));
      return;
    }
    if (bankFrom === row.id) {
      // Every row and the bank show the new comment, numbered, once the page is drawn again.
      bankFrom = null;
      if (row.classList.contains("grading-saved")) { window.location.hash = row.id; window.location.reload(); }
      return;
    }
    if (advanceFrom !== row.id) return;
    advanceFrom = null;
    const all = rows();
    const start = all.indexOf(row);
    for (let i = 1; i <= all.length; i += 1) {
      const next = all[(start + i) % all.length];
      if (next !== row && unscored(next) && focusBox(firstBox(next))) return;
    }
    // None left: the focus stays on this row's scores, where ] goes on to the next question.
    focusBox(firstBox(row));
  });

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("form.rubric-form").forEach(totalUpdate);
    countUpdate();
    const named = window.location.hash.match(/^#answer-(\d+)$/);
    const row = (named && document.getElementById("answer-" + named[1])) || rows().find(unscored) || rows()[0];
    focusBox(firstBox(row));
  });
})();
