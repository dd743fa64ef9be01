// A filter over a list of checkboxes (grader/_form_fields.html, fieldset[data-pick-list]): typing narrows the
// list, Enter in the filter ticks the first name shown, the arrows move between the names shown, and a live
// line says who is chosen. Without this script the checkboxes post the same field on their own.
(function () {
  "use strict";

  function fold(text) {
    return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase().trim();
  }

  function setUp(list) {
    const filter = list.querySelector("[data-pick-filter]");
    const none = list.querySelector("[data-pick-none]");
    const count = list.querySelector("[data-pick-count]");
    const options = Array.from(list.querySelectorAll(".pick-option"));
    if (!filter || !options.length) return;
    filter.hidden = false;

    const shown = () => options.filter((option) => !option.hidden).map((option) => option.querySelector("input"));
    const name = (box) => box.closest(".pick-option").textContent.trim();

    function tell() {
      const chosen = options.map((option) => option.querySelector("input")).filter((box) => box.checked);
      count.textContent = chosen.length ? `Chosen: ${chosen.map(name).join(", ")}` : "No one chosen.";
    }

    function narrow() {
      const words = fold(filter.value).split(/\s+/).filter(Boolean);
      for (const option of options) {
        const text = fold(option.textContent);
        option.hidden = !words.every((word) => text.includes(word));
      }
      none.hidden = shown().length > 0;
    }

    filter.addEventListener("input", narrow);
    filter.addEventListener("keydown", (event) => {
      const boxes = shown();
      if (event.key === "Enter") {
        // Enter here must not send the whole form half filled in.
        event.preventDefault();
        if (!boxes.length) return;
        boxes[0].checked = !boxes[0].checked;
        boxes[0].dispatchEvent(new Event("change", { bubbles: true }));
        filter.select();
      } else if (event.key === "ArrowDown" && boxes.length) {
        event.preventDefault();
        boxes[0].focus();
      } else if (event.key === "Escape" && filter.value) {
        event.preventDefault();
        filter.value = "";
        narrow();
      }
    });

    list.querySelector(".pick-options").addEventListener("keydown", (event) => {
      const box = event.target;
      if (!(box instanceof HTMLInputElement)) return;
      const boxes = shown();
      const at = boxes.indexOf(box);
      if (event.key === "Enter") {
        event.preventDefault();
        box.click();
      } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        const next = at + (event.key === "ArrowDown" ? 1 : -1);
        if (next < 0) filter.focus();
        else if (next < boxes.length) boxes[next].focus();
      }
    });

    list.addEventListener("change", tell);
    tell();
  }

  function init() {
    document.querySelectorAll("[data-pick-list]").forEach(setUp);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
