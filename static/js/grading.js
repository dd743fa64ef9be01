/* Keyboard-first grading of one question (templates/grading/question.html).
 *
 * Only the score boxes are in the tab order. A changed score is saved at once: this script fires
 * the custom "gradesave" event that each box's hx-post listens for (on change, and on Enter, where
 * an empty box first takes its suggestion). A failed request keeps the typed value, marks the row
 * "not saved — retrying" and tries again with backoff; nothing is dropped silently.
 */
(function () {
  "use strict";

  const RETRY_MS = [1000, 2000, 4000, 8000, 15000, 30000];
  const NUMPAD = { Numpad0: "0", Numpad1: "1", Numpad2: "2", Numpad3: "3", Numpad4: "4", Numpad5: "5", Numpad6: "6",
                   Numpad7: "7", Numpad8: "8", Numpad9: "9", NumpadDecimal: "." };
  let lastRow = null; // the row (tbody) the teacher last worked in

  const scoreBoxes = () => Array.from(document.querySelectorAll("input.grading-score"));
  const rowBoxes = () => Array.from(document.querySelectorAll("tbody.grading-row input.grading-score"));
  const rowOf = (el) => (el && el.closest ? el.closest("tbody.grading-row") : null);
  const currentRow = () => rowOf(document.activeElement) || (lastRow && document.contains(lastRow) ? lastRow : null)
    || (lastRow && document.getElementById(lastRow.id)) || null;

  function focusBox(input) {
    if (!input) return false;
    input.focus();
    input.select();
    input.scrollIntoView({ block: "nearest" });
    return true;
  }

  function setState(input, text, cls) {
    const row = rowOf(input);
    const state = input.parentElement.querySelector(".grading-state");
    if (state) state.textContent = text;
    if (row) {
      row.classList.remove("grading-saved", "grading-retrying", "grading-refused", "grading-stale", "grading-sending");
      if (cls) row.classList.add(cls);
    }
  }

  /* Save the box when its value differs from what the server last rendered (and is not already on its way). */
  function save(input) {
    if (!input || !input.hasAttribute("hx-post")) return;
    const value = input.value.trim();
    if (value === (input.dataset.saved || "") || value === input.dataset.sent) return;
    input.dataset.sent = value;
    setState(input, "saving…", "grading-sending");
    htmx.process(input); // a row swapped in a moment ago may not be wired up yet
    htmx.trigger(input, "gradesave");
  }

  // A row's box is unscored while it holds no saved teacher score (a suggestion is only a placeholder).
  const unscored = (box) => !box.readOnly && (box.dataset.saved || "") === "" && box.value.trim() === "";

  function announce(text) {
    const region = document.getElementById("grading-announce");
    if (region) { region.textContent = ""; window.setTimeout(() => { region.textContent = text; }, 50); }
  }

  /* "12 / 28 scored" under the heading; once every row has a score, "Question done" and the way on. */
  function countUpdate(reached) {
    const count = document.getElementById("grading-count");
    if (!count) return;
    const boxes = rowBoxes();
    const done = boxes.filter((box) => !unscored(box)).length;
    let text = `${done} / ${boxes.length} scored`;
    if (boxes.length && done === boxes.length) {
      const next = count.dataset.nextLabel;
      text = `Question done: all ${boxes.length} scored. Press ] for ${next}.`;
      if (reached) announce(text);
    }
    count.textContent = text;
  }

  function move(input, step) {
    const boxes = scoreBoxes();
    const index = boxes.indexOf(input);
    return focusBox(boxes[index + step]);
  }

  function nextMatching(from, test) {
    const boxes = rowBoxes();
    const start = boxes.indexOf(from);
    for (let i = 1; i <= boxes.length; i += 1) {
      const box = boxes[(start + i + boxes.length) % boxes.length];
      if (test(box)) return focusBox(box);
    }
    return false;
  }

  function openPage(row) {
    const button = row && row.querySelector(".grading-crop");
    if (!button) return;
    const dialog = document.getElementById("grading-page-view");
    const img = dialog.querySelector("img");
    const outline = dialog.querySelector(".grading-box-outline");
    const box = button.dataset.box.split(",").map(Number);
    const place = () => {
      const w = img.naturalWidth, h = img.naturalHeight;
      if (!w || !h) return;
      outline.style.left = (100 * box[0] / w) + "%";
      outline.style.top = (100 * box[1] / h) + "%";
      outline.style.width = (100 * (box[2] - box[0]) / w) + "%";
      outline.style.height = (100 * (box[3] - box[1]) / h) + "%";
      outline.scrollIntoView({ block: "center" });
    };
    img.onload = place;
    img.src = button.dataset.pageUrl;
    dialog.returnFocusTo = row.querySelector("input.grading-score");
    dialog.showModal();
    if (img.complete) place();
  }

  function toggleKeys() {
    const dialog = document.getElementById("grading-keys");
    if (dialog.open) dialog.close(); else dialog.showModal();
  }

  function goQuestion(which) {
    const url = document.getElementById("grading-page").dataset[which + "Url"];
    if (url) window.location.assign(url);
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    const key = event.key;
    if (target.closest && target.closest("dialog")) {
      if (key === "?") { event.preventDefault(); target.closest("dialog").close(); }
      return;
    }
    const row = rowOf(target);
    if (row) lastRow = row;

    // Correcting the text read: Enter saves, Escape goes back to the score box.
    if (target.matches("input[name=text]")) {
      const box = row && row.querySelector("input.grading-score");
      if (key === "Escape") { event.preventDefault(); target.value = target.defaultValue; focusBox(box); }
      if (key === "Enter") { event.preventDefault(); const form = target.form; focusBox(box); htmx.trigger(form, "submit"); }
      return;
    }
    // Choosing an answer to pull out of a group: arrows move along its members, Escape goes back.
    if (target.matches("button.grading-pullout")) {
      const group = target.closest("tr.grading-group");
      const buttons = Array.from(group.querySelectorAll("button.grading-pullout"));
      const index = buttons.indexOf(target);
      const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[key];
      if (step && buttons[index + step]) { event.preventDefault(); buttons[index + step].focus(); }
      if (key === "Escape" || key === "p") { event.preventDefault(); focusBox(group.querySelector("input.grading-score")); }
      return;
    }
    // In the history: arrows move between Revert buttons, Escape goes back.
    if (target.matches("button.grading-revert")) {
      const buttons = Array.from(row.querySelectorAll("button.grading-revert"));
      const index = buttons.indexOf(target);
      if (key === "ArrowDown" && buttons[index + 1]) { event.preventDefault(); buttons[index + 1].focus(); }
      if (key === "ArrowUp" && buttons[index - 1]) { event.preventDefault(); buttons[index - 1].focus(); }
      if (key === "Escape" || key === "h") { event.preventDefault(); focusBox(row.querySelector("input.grading-score")); }
      return;
    }
    const inBox = target.matches && target.matches("input.grading-score");
    if (!inBox && target.matches && target.matches("input, textarea, select")) return;

    if (inBox && (key === "Enter" || event.code === "NumpadEnter")) {
      event.preventDefault();
      if (target.value.trim() === "" && target.placeholder && !target.readOnly) target.value = target.placeholder;
      save(target);
      // On to the next box still without a score (wrapping round); when none is left, say so.
      if (!nextMatching(target, (box) => box !== target && unscored(box))) countUpdate(true);
      return;
    }
    // The number pad types digits with NumLock off too (it would send End, arrows and Enter).
    const pad = NUMPAD[event.code];
    if (inBox && pad !== undefined && key !== pad) {
      event.preventDefault();
      const start = target.selectionStart ?? target.value.length, end = target.selectionEnd ?? target.value.length;
      target.value = target.value.slice(0, start) + pad + target.value.slice(end);
      target.setSelectionRange(start + 1, start + 1);
      return;
    }
    if (key.length !== 1) return; // Tab, arrows, Backspace… behave as usual
    if (inBox && /[0-9.,]/.test(key)) return; // typing a score
    const current = inBox ? target : (currentRow() && currentRow().querySelector("input.grading-score"));
    const handled = {
      n: () => nextMatching(current, (box) => box !== current && unscored(box)),
      f: () => nextMatching(current, (box) => rowOf(box).classList.contains("grading-flagged")),
      "[": () => goQuestion("prev"),
      "]": () => goQuestion("next"),
      "?": toggleKeys,
      p: () => {
        const group = target.closest && target.closest("tr.grading-group");
        const first = group && group.querySelector("button.grading-pullout");
        if (first) first.focus();
      },
      z: () => { const r = rowOf(current); if (r) r.classList.toggle("grading-zoomed"); },
      w: () => openPage(rowOf(current)),
      e: () => {
        const text = rowOf(current) && rowOf(current).querySelector("input[name=text]");
        if (text) { text.focus(); text.select(); }
      },
      h: () => {
        const r = rowOf(current);
        if (!r) return;
        r.dataset.focusRevert = "1";
        r.querySelector(".grading-history-toggle").click();
      },
    }[key];
    if (handled) { event.preventDefault(); handled(); }
    else if (inBox) event.preventDefault(); // letters are not scores
  }

  const pending = new Map(); // score box -> the timer of its next try, while its save waits to be sent again

  function resend(input) {
    pending.delete(input);
    if (!document.contains(input)) return;
    delete input.dataset.sent;
    save(input);
    if (input.value.trim() === (input.dataset.saved || "")) setState(input, "", "");
  }

  function retry(input) {
    if (!input || !document.contains(input)) return;
    const attempt = Number(input.dataset.attempt || 0);
    input.dataset.attempt = String(attempt + 1);
    const wait = RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)];
    setState(input, "not saved — retrying", "grading-retrying");
    window.clearTimeout(pending.get(input));
    pending.set(input, window.setTimeout(() => resend(input), wait));
  }

  // When the connection comes back, send what is waiting at once rather than after its backoff.
  window.addEventListener("online", () => {
    for (const [input, timer] of [...pending]) {
      window.clearTimeout(timer);
      delete input.dataset.attempt;
      resend(input);
    }
  });

  document.addEventListener("keydown", onKey);
  document.addEventListener("gradingReady", () => countUpdate(false));
  document.addEventListener("focusin", (event) => {
    if (event.target.matches && event.target.matches("input.grading-score")) {
      lastRow = rowOf(event.target) || lastRow;
      event.target.select();
    }
  });
  document.addEventListener("change", (event) => {
    if (event.target.matches && event.target.matches("input.grading-score")) save(event.target);
  });
  document.addEventListener("click", (event) => {
    const crop = event.target.closest && event.target.closest(".grading-crop");
    if (crop) openPage(rowOf(crop));
    if (event.target.closest && event.target.closest("#grading-keys-open")) toggleKeys();
  });
  document.addEventListener("close", (event) => {
    if (event.target.returnFocusTo) focusBox(event.target.returnFocusTo);
  }, true);

  // Refusals (422) and stale saves (409) come back as the row with its message: show them.
  let focusedId = null; // the focused element's id before a swap, to focus its replacement after it
  const refusedValue = new Map(); // row id -> the score the server refused, put back after the swap
  document.addEventListener("htmx:beforeSwap", (event) => {
    focusedId = document.activeElement ? document.activeElement.id : null;
    const status = event.detail.xhr.status;
    if (status === 409 || status === 422) { event.detail.shouldSwap = true; event.detail.isError = false; }
    const sender = event.detail.requestConfig && event.detail.requestConfig.elt; // detail.elt is the target
    if (status === 422 && sender && sender.matches && sender.matches("input.grading-score")) {
      refusedValue.set(rowOf(sender).id, sender.dataset.sent || sender.value);
    }
  });
  const failed = (event) => {
    const elt = event.detail.elt;
    if (elt && elt.matches && elt.matches("input.grading-score")) retry(elt);
  };
  document.addEventListener("htmx:sendError", failed);
  document.addEventListener("htmx:timeout", failed);
  if (window.htmx && !htmx.config.timeout) htmx.config.timeout = 15000; // a save that hangs is retried too
  document.addEventListener("htmx:responseError", (event) => {
    const status = event.detail.xhr.status;
    if (status !== 409 && status !== 422) failed(event);
  });
  let pendingRevertFocus = null; // the row whose newest Revert button h asked to focus once its history shows
  document.addEventListener("htmx:afterSettle", (event) => {
    countUpdate(false);
    const row = event.detail.elt && event.detail.elt.closest ? event.detail.elt.closest("tbody.grading-row") : null;
    // A refused score keeps the teacher on its box, with what they typed, and is said aloud.
    if (row && row.classList.contains("grading-refused")) {
      const box = row.querySelector("input.grading-score");
      const message = row.querySelector(".grading-state");
      if (box && refusedValue.has(row.id)) box.value = refusedValue.get(row.id);
      refusedValue.delete(row.id);
      focusBox(box);
      if (message) announce(message.textContent);
      return;
    }
    const fresh = row ? row : (lastRow && document.getElementById(lastRow.id));
    if (fresh && fresh.id) lastRow = fresh;
    if (pendingRevertFocus && row && row.id === pendingRevertFocus) {
      pendingRevertFocus = null;
      const button = row.querySelector("button.grading-revert");
      if (button) { button.focus(); return; }
    }
    const active = document.activeElement;
    if (!active || active === document.body || !active.isConnected) {
      const again = focusedId && document.getElementById(focusedId);
      if (again) { again.focus(); if (again.select) again.select(); }
      else if (fresh) focusBox(fresh.querySelector("input.grading-score"));
    }
    // After a group is scored the page is drawn again: go on from where the teacher was to a box
    // still without a score, never back to one the group just scored.
    const swapped = event.detail.elt;
    const now = document.activeElement;
    if (swapped && swapped.id === "grading-main" && now && now.matches && now.matches("input.grading-score")
        && !unscored(now) && !nextMatching(now, (box) => box !== now && unscored(box))) countUpdate(true);
  });
  // A saved score or text is evidence for answers that read or fit the same: the server sends their
  // new suggestions, written into those rows in place so a box being typed in is never replaced.
  const suggestionsUpdate = (event) => {
    const suggestions = (event.detail && event.detail.suggestions) || {};
    for (const [id, suggestion] of Object.entries(suggestions)) {
      const row = document.getElementById("answer-" + id);
      const input = document.getElementById("score-" + id);
      if (!row || !input) continue;
      input.placeholder = suggestion.score;
      const score = row.querySelector(".grading-suggested-score");
      if (score) score.textContent = suggestion.score || "—";
      let reason = row.querySelector(".grading-reason");
      if (!reason && suggestion.reason) {
        reason = document.createElement("small");
        reason.className = "grading-reason";
        reason.title = "Why this suggestion";
        row.querySelector(".grading-suggested").appendChild(reason);
      }
      if (reason) reason.textContent = suggestion.reason;
    }
  };
  document.body.addEventListener("scoreSaved", suggestionsUpdate);
  document.body.addEventListener("textSaved", suggestionsUpdate);
  document.addEventListener("htmx:beforeRequest", (event) => {
    const row = rowOf(event.detail.elt);
    if (row && row.dataset.focusRevert) { pendingRevertFocus = row.id; delete row.dataset.focusRevert; }
  });
})();

/* On arrival, focus the row named in the address (#answer-12, from the completeness page), else the first
 * group or row still without a score, else the first box. */
document.addEventListener("DOMContentLoaded", () => {
  const named = window.location.hash.match(/^#answer-(\d+)$/);
  const boxes = Array.from(document.querySelectorAll("input.grading-score"));
  const open = boxes.find((box) => !box.readOnly && (box.dataset.saved || "") === "" && box.value.trim() === "");
  const box = (named && document.getElementById("score-" + named[1])) || open || boxes[0];
  if (box) { box.focus(); box.select(); }
  document.dispatchEvent(new Event("gradingReady"));
});
