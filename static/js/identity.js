/* The identity screen (/exams/<id>/identity/): confirm who wrote each script, from the keyboard.
 *
 * Each script is a row (article.id-row) holding plain forms that work without JavaScript: one per
 * candidate, a roster <select> with Confirm, and "Not on the roster". htmx posts them and swaps the
 * row. This script adds row-to-row focus, shortcut keys and a roster search box that replaces the
 * <select> (the select stays in the form and carries the chosen student).
 *
 * Keys: j/↓ next row, k/↑ previous row, 1/2 confirm candidate 1/2, Enter confirm the highlighted
 * choice, / search the roster, 0 or n not on the roster, ? help.
 */
"use strict";

(() => {
  const list = document.getElementById("identity-rows");
  if (!list) return;

  const MAX_RESULTS = 8;
  const canChange = list.dataset.canChange === "true";
  const roster = JSON.parse(document.getElementById("identity-roster").textContent);
  const dialog = document.getElementById("keys-help");
  const keysButton = document.getElementById("keys-open");
  let pendingFocus = null; // script number whose row gets the focus back after its swap

  for (const element of document.querySelectorAll("[data-js-only]")) element.hidden = false;

  const rows = () => [...list.querySelectorAll(".id-row")];
  const rowOf = (number) => document.getElementById(`script-${number}`);
  const currentRow = () => document.activeElement?.closest?.(".id-row") ?? list.querySelector(".id-row.current");

  // ---------------------------------------------------------------- focus

  function focusRow(row) {
    if (!row) return;
    for (const other of rows()) {
      other.classList.toggle("current", other === row);
      other.tabIndex = other === row ? 0 : -1;
    }
    row.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    const all = rows();
    if (!all.length) return;
    const index = all.indexOf(currentRow());
    const next = index < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, index + step));
    focusRow(all[next]);
  }

  // ---------------------------------------------------------------- choosing

  function submit(row, form) {
    if (!row || !form) return;
    pendingFocus = row.dataset.script;
    form.requestSubmit();
  }

  function confirmDefault(row) {
    const candidate = row.querySelector("button.choice.default");
    if (candidate) return submit(row, candidate.form);
    const pick = row.querySelector("form[data-pick]");
    const select = pick?.querySelector("select");
    if (select?.value) return submit(row, pick);
    openSearch(row);
  }

  // ---------------------------------------------------------------- roster search

  const fold = (text) =>
    text
      .normalize("NFD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase();

  function matches(query) {
    const words = fold(query).split(/\s+/).filter(Boolean);
    if (!words.length) return [];
    const scored = [];
    for (const student of roster) {
      const name = fold(student.name);
      const id = fold(student.id);
      if (!words.every((word) => name.includes(word) || id.includes(word))) continue;
      const nameWords = name.split(/\s+/);
      // IDs typed in full first, then names with a word starting with what was typed, then the rest.
      const rank =
        (id === words.join("") ? 0 : 2) + (words.every((w) => nameWords.some((n) => n.startsWith(w)) || id.startsWith(w)) ? 0 : 1);
      scored.push([rank, student]);
    }
    scored.sort((a, b) => a[0] - b[0] || a[1].name.localeCompare(b[1].name));
    return scored.slice(0, MAX_RESULTS).map(([, student]) => student);
  }

  function enhance(row) {
    for (const element of row.querySelectorAll("[data-js-only]")) element.hidden = false;
    if (!canChange) return;
    const form = row.querySelector("form[data-pick]");
    if (!form || form.querySelector(".roster-search")) return;
    const number = row.dataset.script;
    const select = form.querySelector("select");
    for (const element of form.querySelectorAll("[data-no-js]")) element.hidden = true;

    const box = document.createElement("div");
    box.className = "roster-search";
    const input = document.createElement("input");
    input.type = "search";
    input.autocomplete = "off";
    input.placeholder = "Search the roster by name or ID  ( / )";
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-label", `Search the roster for the writer of script ${number}`);
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    const results = document.createElement("ul");
    results.className = "roster-results";
    results.id = `roster-results-${number}`;
    results.setAttribute("role", "listbox");
    results.hidden = true;
    input.setAttribute("aria-controls", results.id);
    box.append(input, results);
    form.prepend(box);

    let shown = [];
    let active = 0;

    function render() {
      results.replaceChildren();
      shown.forEach((student, index) => {
        const item = document.createElement("li");
        item.id = `${results.id}-${index}`;
        item.setAttribute("role", "option");
        item.setAttribute("aria-selected", String(index === active));
        const name = document.createElement("span");
        name.textContent = student.name;
        const about = document.createElement("small");
        const onScript = student.script && String(student.script) !== number ? ` · on script ${student.script}` : "";
        about.textContent = `${student.id}${student.class ? ` · ${student.class}` : ""}${onScript}`;
        item.append(name, about);
        item.addEventListener("mousedown", (event) => {
          event.preventDefault(); // keep the focus in the input
          choose(student);
        });
        results.append(item);
      });
      if (!shown.length && input.value.trim()) {
        const item = document.createElement("li");
        item.setAttribute("aria-disabled", "true");
        item.textContent = "Nobody on the roster matches.";
        results.append(item);
      }
      results.hidden = !input.value.trim();
      input.setAttribute("aria-expanded", String(!results.hidden));
      if (shown.length) input.setAttribute("aria-activedescendant", `${results.id}-${active}`);
      else input.removeAttribute("aria-activedescendant");
    }

    function choose(student) {
      select.value = String(student.pk);
      results.hidden = true;
      submit(row, form);
    }

    input.addEventListener("input", () => {
      shown = matches(input.value);
      active = 0;
      render();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        if (shown.length) active = (active + (event.key === "ArrowDown" ? 1 : shown.length - 1)) % shown.length;
        render();
      } else if (event.key === "Enter") {
        event.preventDefault();
        if (shown[active]) choose(shown[active]);
      } else if (event.key === "Escape") {
        event.preventDefault();
        input.value = "";
        shown = [];
        render();
        focusRow(row);
      }
      event.stopPropagation(); // letters typed here are a search, not shortcuts
    });
    input.addEventListener("blur", () => {
      results.hidden = true;
      input.setAttribute("aria-expanded", "false");
    });
    input.addEventListener("focus", () => {
      for (const other of rows()) other.classList.toggle("current", other === row);
      if (input.value.trim()) render();
    });
  }

  function openSearch(row) {
    const input = row?.querySelector(".roster-search input");
    if (!input) return;
    for (const other of rows()) other.classList.toggle("current", other === row);
    input.focus();
    input.select();
  }

  // ---------------------------------------------------------------- keys

  function toggleHelp() {
    if (!dialog) return;
    if (dialog.open) dialog.close();
    else dialog.showModal();
  }

  keysButton?.addEventListener("click", toggleHelp);

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (dialog?.open) {
      if (event.key === "?") {
        event.preventDefault();
        dialog.close();
      }
      return;
    }
    const target = event.target;
    if (target.closest?.("input, select, textarea, [contenteditable]")) return;
    const row = currentRow();
    const key = event.key;
    if (key === "j" || key === "ArrowDown") {
      event.preventDefault();
      move(1);
    } else if (key === "k" || key === "ArrowUp") {
      event.preventDefault();
      move(-1);
    } else if (key === "?") {
      event.preventDefault();
      toggleHelp();
    } else if (!canChange) {
      return;
    } else if (key === "/") {
      event.preventDefault();
      openSearch(row ?? rows()[0]);
    } else if ((key === "1" || key === "2") && row) {
      event.preventDefault();
      submit(row, row.querySelector(`form[data-choice="${key}"]`));
    } else if ((key === "0" || key === "n") && row) {
      event.preventDefault();
      submit(row, row.querySelector("form[data-none]"));
    } else if (key === "Enter" && row && target === row) {
      event.preventDefault();
      confirmDefault(row);
    }
  });

  // ---------------------------------------------------------------- after a save

  document.body.addEventListener("htmx:load", (event) => {
    const row = event.target.closest?.(".id-row");
    if (!row || event.target !== row) return;
    enhance(row);
    if (pendingFocus === row.dataset.script) {
      pendingFocus = null;
      focusRow(row);
    }
  });

  document.body.addEventListener("identitySaved", (event) => {
    const { script, student, released } = event.detail;
    for (const entry of roster) {
      if (entry.script === script) entry.script = null;
      if (entry.pk === student) entry.script = script;
    }
    const other = released && rowOf(released);
    if (other && window.htmx) htmx.ajax("GET", other.dataset.rowUrl, { target: other, swap: "outerHTML" });
  });

  rows().forEach(enhance);
  const first = rows()[0];
  if (first) first.tabIndex = 0;
  const anchored = location.hash.startsWith("#script-") && document.querySelector(location.hash);
  if (anchored) focusRow(anchored);
})();
