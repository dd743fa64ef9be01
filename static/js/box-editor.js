/* Answer boxes in markdesk: the template box editor, and BoxKit, the helpers it shares with
 * script-boxes.js (which is loaded after this file).
 *
 * Every box is [x1, y1, x2, y2] in page pixels at 150 dpi, x2/y2 exclusive: template-page pixels in
 * the editor, scan-page pixels on a script. On screen a box is drawn at `pixels * zoom` CSS px.
 * Pages are 0-based in the data and shown 1-based to teachers.
 */
"use strict";

(() => {
  // ------------------------------------------------------------------ BoxKit: shared helpers

  const ZOOMS = [0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1, 1.25, 1.5, 2, 3];
  const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  const HANDLES = ["nw", "n", "ne", "e", "se", "s", "sw", "w"];

  const clamp = (value, low, high) => Math.min(Math.max(value, low), high);

  const BoxKit = {
    ZOOMS,
    clamp,

    /** The CSRF token that base.html puts on <body hx-headers>. */
    csrfToken() {
      try {
        return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
      } catch {
        return "";
      }
    },

    /** POST JSON; resolves to {ok, status, data}. `data.problems` always explains a failure. */
    async post(url, body) {
      let response;
      try {
        response = await fetch(url, {
          method: "POST",
          credentials: "same-origin",
          keepalive: true,
          headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": BoxKit.csrfToken() },
          body: JSON.stringify(body ?? {}),
        });
      } catch {
        return { ok: false, status: 0, data: { problems: ["The server could not be reached. Check the connection and try again."] } };
      }
      let data = {};
      try {
        data = await response.json();
      } catch {
        data = {};
      }
      if (!response.ok && !Array.isArray(data.problems)) {
        const reason =
          response.status === 403 ? "You can look at these boxes but not change them."
          : response.status === 404 ? "That box is no longer there. Reload the page to see the current boxes."
          : `The server could not save this (error ${response.status}). Try again in a moment.`;
        data = { ...data, problems: [reason] };
      }
      return { ok: response.ok, status: response.status, data };
    },

    /** A URL reversed with id 0 (".../boxes/0/delete/") with the real id put in. */
    urlWithId(template, id) {
      const at = template.lastIndexOf("/0/");
      return `${template.slice(0, at)}/${id}/${template.slice(at + 3)}`;
    },

    /** The box spanned by two points (page px), rounded and kept on a width x height page. */
    fromCorners(ax, ay, bx, by, width, height) {
      const x1 = clamp(Math.round(Math.min(ax, bx)), 0, width);
      const y1 = clamp(Math.round(Math.min(ay, by)), 0, height);
      const x2 = clamp(Math.round(Math.max(ax, bx)), 0, width);
      const y2 = clamp(Math.round(Math.max(ay, by)), 0, height);
      return [x1, y1, x2, y2];
    },

    /** `bbox` moved by (dx, dy) page px, stopping at the page edges. */
    moved(bbox, dx, dy, width, height) {
      const [x1, y1, x2, y2] = bbox;
      const mx = clamp(Math.round(dx), -x1, width - x2);
      const my = clamp(Math.round(dy), -y1, height - y2);
      return [x1 + mx, y1 + my, x2 + mx, y2 + my];
    },

    /** `bbox` with the edges named in `edges` ("n", "se", ...) dragged by (dx, dy); never smaller than 1 px. */
    resized(bbox, edges, dx, dy, width, height) {
      let [x1, y1, x2, y2] = bbox;
      dx = Math.round(dx);
      dy = Math.round(dy);
      if (edges.includes("w")) x1 = clamp(x1 + dx, 0, x2 - 1);
      if (edges.includes("e")) x2 = clamp(x2 + dx, x1 + 1, width);
      if (edges.includes("n")) y1 = clamp(y1 + dy, 0, y2 - 1);
      if (edges.includes("s")) y2 = clamp(y2 + dy, y1 + 1, height);
      return [x1, y1, x2, y2];
    },

    /** The box after an arrow key: 1 px (Alt: 10 px); Shift resizes from the right/bottom edge. Null for other keys. */
    nudged(bbox, event, width, height) {
      const direction = ARROWS[event.key];
      if (!direction) return null;
      const step = event.altKey ? 10 : 1;
      const dx = direction[0] * step;
      const dy = direction[1] * step;
      return event.shiftKey ? BoxKit.resized(bbox, "se", dx, dy, width, height) : BoxKit.moved(bbox, dx, dy, width, height);
    },

    same(a, b) {
      return a.length === b.length && a.every((value, i) => value === b[i]);
    },

    sizeText(bbox) {
      return `${bbox[2] - bbox[0]} × ${bbox[3] - bbox[1]} px`;
    },

    /** Position an absolutely placed element over page pixels `bbox` at `zoom`. */
    place(element, bbox, zoom) {
      element.style.left = `${bbox[0] * zoom}px`;
      element.style.top = `${bbox[1] * zoom}px`;
      element.style.width = `${(bbox[2] - bbox[0]) * zoom}px`;
      element.style.height = `${(bbox[3] - bbox[1]) * zoom}px`;
      // A label tag sits above the box, or inside it when the box touches the top of the page.
      element.classList.toggle("label-inside", bbox[1] * zoom < 20);
    },

    addHandles(element) {
      for (const edge of HANDLES) {
        const handle = document.createElement("span");
        handle.className = `handle handle-${edge}`;
        handle.dataset.edge = edge;
        handle.setAttribute("aria-hidden", "true");
        element.append(handle);
      }
    },

    /** The pointer's position in page pixels over `stage` (the element holding the page image). */
    pointerAt(event, stage, zoom) {
      const rect = stage.getBoundingClientRect();
      return [(event.clientX - rect.left) / zoom, (event.clientY - rect.top) / zoom];
    },

    /**
     * Follow a pointer drag that began with `event` on `surface`. `onMove(dx, dy, ev)` gets screen-pixel
     * offsets once the pointer has travelled `slop` px; `onEnd(moved, dx, dy, ev)` when it is released.
     */
    drag(event, surface, { slop = 0, onMove, onEnd }) {
      const startX = event.clientX;
      const startY = event.clientY;
      let moved = false;
      let dx = 0;
      let dy = 0;
      try {
        surface.setPointerCapture(event.pointerId);
      } catch {
        /* the pointer is already gone */
      }
      const move = (ev) => {
        if (ev.pointerId !== event.pointerId) return;
        dx = ev.clientX - startX;
        dy = ev.clientY - startY;
        if (!moved && Math.hypot(dx, dy) < slop) return;
        moved = true;
        onMove?.(dx, dy, ev);
      };
      const end = (ev) => {
        if (ev.pointerId !== event.pointerId) return;
        surface.removeEventListener("pointermove", move);
        surface.removeEventListener("pointerup", end);
        surface.removeEventListener("pointercancel", end);
        onEnd?.(moved && ev.type === "pointerup", dx, dy, ev);
      };
      surface.addEventListener("pointermove", move);
      surface.addEventListener("pointerup", end);
      surface.addEventListener("pointercancel", end);
    },

    /** Run a function `ms` after the last call for the same key (holding an arrow key sends one save). */
    debouncer(ms) {
      const waiting = new Map();
      return {
        schedule(key, fn) {
          clearTimeout(waiting.get(key)?.timer);
          const timer = setTimeout(() => {
            waiting.delete(key);
            fn();
          }, ms);
          waiting.set(key, { timer, fn });
        },
        flush(key) {
          const entry = waiting.get(key);
          if (!entry) return;
          clearTimeout(entry.timer);
          waiting.delete(key);
          entry.fn();
        },
        flushAll() {
          for (const key of [...waiting.keys()]) this.flush(key);
        },
        cancel(key) {
          clearTimeout(waiting.get(key)?.timer);
          waiting.delete(key);
        },
        has(key) {
          return waiting.has(key);
        },
      };
    },

    /** Requests one after another, so the server sees changes in the order they were made. */
    queue() {
      let tail = Promise.resolve();
      return {
        run(task) {
          const result = tail.then(task);
          tail = result.catch(() => {});
          return result;
        },
      };
    },

    /** The status line under the toolbar: "Saving…", "Saved", or the server's problems in red. */
    statusLine(element) {
      const show = (kind, text) => {
        element.className = `status status-${kind}`;
        element.textContent = text;
      };
      return {
        saving: (text = "Saving…") => show("saving", text),
        saved: (text = "Saved") => show("saved", text),
        info: (text) => show("info", text),
        error: (problems) => show("error", (Array.isArray(problems) ? problems : [problems]).join(" ")),
      };
    },

    /** True when keys typed at `target` belong to a text field, not to the page. */
    isTyping(target) {
      return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
    },

    zoomIn(zoom) {
      return ZOOMS.find((step) => step > zoom * 1.001) ?? ZOOMS[ZOOMS.length - 1];
    },

    zoomOut(zoom) {
      return [...ZOOMS].reverse().find((step) => step < zoom * 0.999) ?? ZOOMS[0];
    },

    /**
     * The viewing keys both box pages share: ? help, + and - zoom, 0 fit. Returns true when `event`
     * was one of them (and handled). `view` gives `help`, the current `zoom()` and `zoomTo(next)` / `fit()`.
     */
    viewKey(event, view) {
      const actions = {
        "?": () => view.help.toggle(),
        "+": () => view.zoomTo(BoxKit.zoomIn(view.zoom())),
        "=": () => view.zoomTo(BoxKit.zoomIn(view.zoom())),
        "-": () => view.zoomTo(BoxKit.zoomOut(view.zoom())),
        "_": () => view.zoomTo(BoxKit.zoomOut(view.zoom())),
        "0": () => view.fit(),
      };
      if (!(event.key in actions)) return false;
      event.preventDefault();
      actions[event.key]();
      return true;
    },

    /** The item after (or before) `current` in `items`; the first (last) with none; null past the end. */
    cycle(items, current, backwards) {
      if (!items.length) return null;
      const at = items.indexOf(current);
      if (at < 0) return backwards ? items[items.length - 1] : items[0];
      const next = at + (backwards ? -1 : 1);
      return next >= 0 && next < items.length ? items[next] : null;
    },

    /** Wire the `?` button and key to the keyboard help <dialog>. Returns {toggle}. */
    help(button, dialog) {
      const toggle = () => {
        if (!dialog) return;
        if (dialog.open) dialog.close();
        else dialog.showModal();
      };
      button?.addEventListener("click", toggle);
      return { toggle };
    },

    /** Reveal the parts of the page that only work with JavaScript, and mark the page as enhanced. */
    enhance(root) {
      root.classList.add("js");
      for (const element of root.querySelectorAll("[data-js-only]")) element.hidden = false;
      for (const element of root.querySelectorAll("[data-no-js]")) element.hidden = true;
    },
  };

  window.BoxKit = BoxKit;

  // ------------------------------------------------------------------ the template box editor

  const RESERVED = new Set(["NAME", "ID", "CLASS"]);
  const MIN_DRAW_PX = 8; // screen px: smaller drags are clicks
  const CLICK_SLOP_PX = 3;

  function editorStart(root) {
    const kit = BoxKit;

    /* Send a box; when its label is not in the answer key the server asks (409, confirm): the teacher
     * says yes and it is sent again with the question added, or no and nothing changes. */
    async function postBox(url, body) {
      const result = await kit.post(url, body);
      if (result.status !== 409 || !result.data.confirm) return result;
      if (!window.confirm(result.data.problems.join("\n"))) {
        return { ok: false, status: 409, data: { problems: ["Not saved: the label is not in the answer key."] } };
      }
      return kit.post(url, { ...body, add_question: true });
    }
    const state = JSON.parse(document.getElementById("editor-state").textContent);
    const canChange = root.dataset.canChange === "true";
    const urls = { save: root.dataset.saveUrl, remove: root.dataset.deleteUrl, decide: root.dataset.decideUrl };
    const pages = state.pages;
    const panels = [...root.querySelectorAll(".page-panel")];
    const stages = panels.map((panel) => panel.querySelector(".stage"));
    const scroller = root.querySelector(".stage-scroll");
    const tabs = [...root.querySelectorAll("[data-page-tab]")];
    const status = kit.statusLine(root.querySelector("#editor-status"));
    const announcer = root.querySelector("#editor-announce");
    const zoomOutput = root.querySelector("#zoom-level");
    const form = root.querySelector("#box-form");
    const labelInput = root.querySelector("#box-label");
    const labelList = root.querySelector("#box-labels");
    const geometry = root.querySelector("#box-geometry");
    const stepButton = root.querySelector("#box-step");
    const saveButton = root.querySelector("#box-save");
    const deleteButton = root.querySelector("#box-delete");
    const undoButton = root.querySelector("#undo");
    const noneText = root.querySelector("#box-none");
    const boxList = root.querySelector("#box-list");
    const suggestionList = root.querySelector("#suggestion-list");
    const help = kit.help(root.querySelector("#help-open"), document.getElementById("keys-help"));

    const queue = kit.queue();
    const later = kit.debouncer(300);
    const boxes = new Map();
    const labels = new Set(state.labels);
    const undoStack = [];
    const alias = new Map(); // id of a box deleted and re-created by undo -> its new id
    let suggestions = state.suggestions.slice();
    let pageIndex = 0;
    let zoom = 1;
    let fitWidth = true;
    let selected = null; // a box id, "draft" (drawn, label not saved yet) or null
    let draft = null;
    let stepParent = null; // while drawing a step: the id of its question box
    let panelFor; // the selection the side panel shows

    kit.enhance(root);
    for (const box of state.boxes) adopt(box);
    if (!pages.length) return;

    // ---------------------------------------------------------------- data

    function adopt(data) {
      const box = boxes.get(data.id) ?? {};
      const sent = box.sending;
      Object.assign(box, { ...data, bbox: box.bbox && sent && !kit.same(box.bbox, sent) ? box.bbox : [...data.bbox] });
      box.saved = { page: data.page, bbox: [...data.bbox], label: data.label };
      delete box.sending;
      boxes.set(box.id, box);
      if (!box.parent) labels.add(box.label);
      return box;
    }

    const resolve = (id) => {
      while (alias.has(id)) id = alias.get(id);
      return id;
    };
    const getBox = (id) => (id === "draft" ? draft : boxes.get(id));
    const stepsOf = (id) => [...boxes.values()].filter((box) => box.parent === id).sort((a, b) => a.order - b.order);
    const boxedLabels = () => new Set([...boxes.values()].filter((box) => !box.parent).map((box) => box.label));

    /** The page's boxes in reading order, each question followed by its steps. */
    function pageBoxes(page = pageIndex) {
      const tops = [...boxes.values()]
        .filter((box) => box.page === page && !box.parent)
        .sort((a, b) => a.bbox[1] - b.bbox[1] || a.bbox[0] - b.bbox[0]);
      return tops.flatMap((box) => [box, ...stepsOf(box.id)]);
    }

    function nextLabel() {
      const taken = boxedLabels();
      for (let n = 1; ; n += 1) if (!taken.has(`Q${n}`)) return `Q${n}`;
    }

    function describe(box) {
      const [x1, y1] = box.bbox;
      const name = box.parent ? `${box.label} step ${box.order}` : box.label;
      return `${name}: ${kit.sizeText(box.bbox)} at ${x1}, ${y1}`;
    }

    // ---------------------------------------------------------------- drawing on screen

    function render() {
      const page = pages[pageIndex];
      const stage = stages[pageIndex];
      stage.style.width = `${page.width * zoom}px`;
      stage.style.height = `${page.height * zoom}px`;
      const layer = stage.querySelector(".overlay");
      layer.replaceChildren();
      for (const suggestion of suggestions.filter((s) => s.page === pageIndex)) {
        layer.append(suggestionElement(suggestion), ...suggestionSteps(suggestion));
      }
      for (const box of pageBoxes()) layer.append(boxElement(box));
      if (draft && draft.page === pageIndex) layer.append(boxElement(draft));
      stage.classList.toggle("step-mode", stepParent != null);
      zoomOutput.textContent = `${Math.round(zoom * 100)}%`;
      root.dataset.zoom = String(zoom);
      root.dataset.page = String(pageIndex);
      renderPanel();
      renderList();
      if (undoButton) undoButton.disabled = !undoStack.length;
    }

    function boxElement(box) {
      const element = document.createElement("div");
      element.className = "box";
      element.id = `box-${box.id}`;
      element.dataset.id = box.id;
      element.classList.toggle("is-step", Boolean(box.parent));
      element.classList.toggle("identity", !box.parent && RESERVED.has(box.label));
      element.classList.toggle("draft", box.id === "draft");
      element.classList.toggle("selected", box.id === selected);
      element.classList.toggle("parent-of-step", box.id === stepParent);
      element.setAttribute("aria-hidden", "true");
      const tag = document.createElement("span");
      tag.className = "box-label";
      tag.textContent = box.parent ? String(box.order) : box.id === "draft" ? `${box.label} · not saved` : box.label;
      element.append(tag);
      kit.place(element, box.bbox, zoom);
      if (box.id === selected && canChange && stepParent == null) kit.addHandles(element);
      return element;
    }

    // Where a suggestion comes from: [short name in the list, what the box on the page says].
    const SUGGESTION_SOURCES = {
      frame: ["frame", "a printed box with writing"],
      ink: ["ink", "handwriting"],
      vlm: ["VLM", "the VLM's answer regions"],
    };

    function suggestionElement(suggestion) {
      const element = document.createElement("div");
      element.className = "suggestion";
      kit.place(element, suggestion.bbox, zoom);
      element.dataset.source = suggestion.source;
      element.title = `Suggested from the scans (${SUGGESTION_SOURCES[suggestion.source]?.[1] || suggestion.source})`;
      if (canChange) {
        const actions = document.createElement("div");
        actions.className = "suggestion-actions";
        actions.append(button("Accept", () => decide(suggestion, true)), button("Reject", () => decide(suggestion, false)));
        element.append(actions);
      }
      return element;
    }

    /** The VLM's steps of a suggested answer, dotted inside it and numbered in order (accepted with it). */
    function suggestionSteps(suggestion) {
      return (suggestion.steps || []).map((bbox, index) => {
        const element = document.createElement("div");
        element.className = "suggestion-step";
        element.setAttribute("aria-hidden", "true");
        const number = document.createElement("span");
        number.textContent = String(index + 1);
        element.append(number);
        kit.place(element, bbox, zoom);
        return element;
      });
    }

    const stepsCounted = (count) => `${count} step${count === 1 ? "" : "s"}`;
    const stepsText = (suggestion) => (suggestion.steps?.length ? ` · ${stepsCounted(suggestion.steps.length)}` : "");

    function button(text, onClick, className = "") {
      const element = document.createElement("button");
      element.type = "button";
      element.textContent = text;
      if (className) element.className = className;
      element.addEventListener("click", onClick);
      return element;
    }

    /** Move one box's element (and its steps') without rebuilding the page: used while dragging. */
    function placeOne(box) {
      const element = document.getElementById(`box-${box.id}`);
      if (element) kit.place(element, box.bbox, zoom);
      if (!box.parent && box.id !== "draft") {
        for (const step of stepsOf(box.id)) {
          const stepElement = document.getElementById(`box-${step.id}`);
          if (stepElement) kit.place(stepElement, step.bbox, zoom);
        }
      }
      if (box.id === selected) geometry.textContent = geometryText(box);
    }

    function geometryText(box) {
      const [x1, y1, x2, y2] = box.bbox;
      return `Page ${box.page + 1} · ${x2 - x1} × ${y2 - y1} px · from (${x1}, ${y1}) to (${x2}, ${y2})`;
    }

    function renderPanel() {
      const box = selected == null ? null : getBox(selected);
      form.hidden = !box;
      noneText.hidden = Boolean(box);
      if (!box) {
        panelFor = null;
        return;
      }
      if (panelFor !== selected) {
        labelInput.value = box.label;
        panelFor = selected;
      }
      labelInput.disabled = !canChange || Boolean(box.parent);
      root.querySelector("#box-label-help").textContent = box.parent
        ? `Step ${box.order} of ${box.label}: steps take their question's label.`
        : !canChange
          ? ""
          : box.id === "draft"
            ? "Type NAME, ID, CLASS or a question such as Q3, then press Enter to save the new box."
            : "NAME, ID, CLASS or a question such as Q3. Enter saves.";
      if (saveButton) saveButton.hidden = Boolean(box.parent);
      geometry.textContent = geometryText(box);
      if (stepButton) stepButton.disabled = !canChange || box.id === "draft" || RESERVED.has(box.label);
      if (deleteButton) deleteButton.disabled = !canChange;
    }

    function renderList() {
      labelList.replaceChildren(...[...labels].map((label) => Object.assign(document.createElement("option"), { value: label })));
      boxList.replaceChildren();
      const tops = pageBoxes().filter((box) => !box.parent);
      if (!tops.length) {
        const empty = document.createElement("li");
        empty.className = "empty";
        empty.textContent = canChange ? "No boxes on this page yet. Drag on the page to draw one." : "No boxes on this page.";
        boxList.append(empty);
      }
      for (const box of tops) {
        const item = document.createElement("li");
        item.append(listButton(box));
        const steps = stepsOf(box.id);
        if (steps.length) {
          const nested = document.createElement("ul");
          for (const step of steps) {
            const stepItem = document.createElement("li");
            stepItem.append(listButton(step));
            nested.append(stepItem);
          }
          item.append(nested);
        }
        boxList.append(item);
      }
      if (suggestionList) {
        suggestionList.replaceChildren();
        const here = suggestions.filter((s) => s.page === pageIndex);
        suggestionList.closest("section").hidden = !suggestions.length;
        for (const suggestion of here) {
          const item = document.createElement("li");
          const text = document.createElement("span");
          const source = SUGGESTION_SOURCES[suggestion.source]?.[0] || suggestion.source;
          text.textContent = ` ${kit.sizeText(suggestion.bbox)} · ${source}${stepsText(suggestion)}`;
          if (canChange) {
            // The proposed label (from the answer key, in reading order) can be edited in place.
            const label = document.createElement("input");
            label.className = "suggestion-label";
            label.size = 6;
            label.value = suggestion.label || "";
            label.setAttribute("aria-label", `Label for the suggested box ${kit.sizeText(suggestion.bbox)}`);
            label.addEventListener("input", () => { suggestion.label = label.value; });
            label.addEventListener("keydown", (event) => {
              if (event.key === "Enter") { event.preventDefault(); decide(suggestion, true); }
            });
            item.append(label, text, button("Accept", () => decide(suggestion, true)), button("Reject", () => decide(suggestion, false)));
          } else {
            text.textContent = `${suggestion.label || "?"} · ${kit.sizeText(suggestion.bbox)} · ${source}${stepsText(suggestion)}`;
            item.append(text);
          }
          suggestionList.append(item);
        }
        if (canChange && suggestions.length) {
          const all = document.createElement("li");
          all.append(button(`Accept all ${suggestions.length} with these labels`, acceptAll, "primary"));
          suggestionList.append(all);
        }
        if (!here.length && suggestions.length) {
          const other = document.createElement("li");
          other.className = "empty";
          other.textContent = "None on this page; see the other pages.";
          suggestionList.append(other);
        }
      }
    }

    function listButton(box) {
      const element = button("", () => {
        select(box.id);
        stages[pageIndex].focus({ preventScroll: true });
      }, "box-item");
      element.setAttribute("aria-pressed", String(box.id === selected));
      const name = document.createElement("strong");
      name.textContent = box.parent ? `Step ${box.order}` : box.label;
      const size = document.createElement("small");
      size.textContent = kit.sizeText(box.bbox);
      element.append(name, size);
      return element;
    }

    function announce(text) {
      if (announcer) announcer.textContent = text;
    }

    // ---------------------------------------------------------------- selection, pages, zoom

    function select(id, { scroll = true } = {}) {
      if (id !== "draft" && draft && selected === "draft") leaveDraft();
      if (selected != null && selected !== id && selected !== "draft") later.flush(selected);
      if (stepParent != null && id !== stepParent) stepParent = null;
      selected = id;
      render();
      const box = id == null ? null : getBox(id);
      if (box) {
        announce(`${describe(box)}. Selected.`);
        if (scroll) document.getElementById(`box-${box.id}`)?.scrollIntoView({ block: "nearest", inline: "nearest" });
      }
    }

    function showPage(index) {
      if (index === pageIndex && panels[index].classList.contains("current")) return;
      select(null);
      stepParent = null;
      pageIndex = index;
      panels.forEach((panel, i) => panel.classList.toggle("current", i === index));
      tabs.forEach((tab) => tab.setAttribute("aria-pressed", String(Number(tab.dataset.pageTab) === index)));
      history.replaceState(null, "", `#page-${index + 1}`);
      if (fitWidth) zoom = fitZoom();
      render();
    }

    function fitZoom() {
      const available = scroller.clientWidth - 24;
      return Math.max(0.1, available / pages[pageIndex].width);
    }

    function zoomTo(next, { fit = false } = {}) {
      const before = { left: scroller.scrollLeft / Math.max(1, scroller.scrollWidth), top: scroller.scrollTop / Math.max(1, scroller.scrollHeight) };
      fitWidth = fit;
      zoom = fit ? fitZoom() : next;
      render();
      scroller.scrollLeft = before.left * scroller.scrollWidth;
      scroller.scrollTop = before.top * scroller.scrollHeight;
      if (selected != null) document.getElementById(`box-${selected}`)?.scrollIntoView({ block: "nearest", inline: "nearest" });
    }

    // ---------------------------------------------------------------- saving

    function saveBox(id, { fromUndo = false, note } = {}) {
      const box = boxes.get(id);
      if (!box) return Promise.resolve(false);
      status.saving();
      return queue.run(async () => {
        const current = boxes.get(id);
        if (!current) return false;
        const before = { page: current.saved.page, bbox: [...current.saved.bbox], label: current.saved.label };
        const body = { id, page: current.page, bbox: [...current.bbox], label: current.label };
        if (current.parent) body.parent = current.parent;
        current.sending = body.bbox;
        const result = await postBox(urls.save, body);
        if (!result.ok) {
          delete current.sending;
          later.cancel(id);
          Object.assign(current, { page: current.saved.page, bbox: [...current.saved.bbox], label: current.saved.label });
          if (!current.parent) for (const step of stepsOf(id)) step.bbox = [...step.saved.bbox];
          if (selected === id) panelFor = undefined;
          status.error(result.data.problems);
          render();
          return false;
        }
        const saved = adopt(result.data.box);
        const moved = !kit.same(before.bbox, saved.saved.bbox);
        if (!saved.parent) stepsFollow(saved, before.bbox);
        if (!fromUndo && (moved || before.label !== saved.label)) {
          undoStack.push({ type: "update", id, before });
        }
        if (selected === id && panelFor === id && document.activeElement !== labelInput) panelFor = undefined;
        status.saved(note ?? `Saved ${saved.parent ? `${saved.label} step ${saved.order}` : saved.label}.`);
        render();
        return true;
      });
    }

    /** The server carries a question's steps along when the box is moved without resizing; so do we. */
    function stepsFollow(box, oldBbox) {
      const [ox1, oy1, ox2, oy2] = oldBbox;
      const [x1, y1, x2, y2] = box.saved.bbox;
      const same = ox2 - ox1 === x2 - x1 && oy2 - oy1 === y2 - y1;
      const dx = same ? x1 - ox1 : 0;
      const dy = same ? y1 - oy1 : 0;
      for (const step of stepsOf(box.id)) {
        step.saved.bbox = step.saved.bbox.map((v, i) => v + (i % 2 ? dy : dx));
        step.bbox = [...step.saved.bbox];
        step.page = box.page;
        step.label = box.label;
      }
    }

    /** While a question moves on screen, its steps move with it (they are saved with it). */
    function stepsPreview(box) {
      if (box.parent || box.id === "draft") return;
      const [sx1, sy1, sx2, sy2] = box.saved.bbox;
      const [x1, y1, x2, y2] = box.bbox;
      const same = sx2 - sx1 === x2 - x1 && sy2 - sy1 === y2 - y1;
      for (const step of stepsOf(box.id)) {
        step.bbox = same ? step.saved.bbox.map((v, i) => v + (i % 2 ? y1 - sy1 : x1 - sx1)) : [...step.saved.bbox];
      }
    }

    function createDraft(bbox) {
      draft = { id: "draft", page: pageIndex, bbox, label: nextLabel(), parent: null, order: 0 };
      select("draft");
      status.info("New box: type its label and press Enter to save it.");
      labelInput.focus();
      labelInput.select();
    }

    function leaveDraft() {
      if (!draft) return;
      if (panelFor === "draft" && labelInput.value.trim()) draft.label = labelInput.value.trim();
      commitDraft();
    }

    function discardDraft() {
      draft = null;
      if (selected === "draft") selected = null;
      status.info("New box discarded.");
      render();
      stages[pageIndex].focus({ preventScroll: true });
    }

    function commitDraft() {
      if (!draft || draft.committing) return Promise.resolve(false);
      const pending = draft;
      pending.committing = true;
      status.saving();
      return queue.run(async () => {
        const result = await postBox(urls.save, { page: pending.page, bbox: pending.bbox, label: pending.label });
        pending.committing = false;
        if (!result.ok) {
          // The unsaved box stays (dashed) so the teacher can correct its label or delete it.
          status.error(result.data.problems);
          render();
          if (draft === pending && selected === "draft" && document.activeElement === stages[pageIndex]) {
            labelInput.focus();
            labelInput.select();
          }
          return false;
        }
        const box = adopt(result.data.box);
        if (draft === pending) draft = null;
        if (selected === "draft") selected = box.id;
        if (panelFor === "draft") panelFor = undefined;
        undoStack.push({ type: "create", id: box.id });
        status.saved(`Saved ${box.label}.`);
        render();
        return true;
      });
    }

    function createStep(bbox) {
      const parent = boxes.get(stepParent);
      stepParent = null;
      if (!parent) return;
      status.saving();
      queue.run(async () => {
        const result = await kit.post(urls.save, { page: parent.page, bbox, label: parent.label, parent: parent.id });
        if (!result.ok) {
          status.error(result.data.problems);
          render();
          return;
        }
        const step = adopt(result.data.box);
        undoStack.push({ type: "create", id: step.id });
        status.saved(`Saved ${parent.label} step ${step.order}.`);
        select(step.id);
      });
    }

    function startStep() {
      const box = selected == null ? null : getBox(selected);
      if (!box || box.id === "draft") return;
      const parent = box.parent ? boxes.get(box.parent) : box;
      if (RESERVED.has(parent.label)) {
        status.error(["NAME, ID and CLASS boxes cannot have steps."]);
        return;
      }
      later.flush(parent.id);
      selected = parent.id;
      stepParent = parent.id;
      render();
      status.info(`Draw step ${stepsOf(parent.id).length + 1} inside ${parent.label}: drag inside the box. Escape cancels.`);
      stages[pageIndex].focus({ preventScroll: true });
    }

    async function removeBox(id) {
      const url = kit.urlWithId(urls.remove, id);
      status.saving("Deleting…");
      let result = await queue.run(() => kit.post(url, {}));
      if (result.status === 409 && result.data.confirm) {
        if (!window.confirm(`${result.data.problems.join("\n")}\n\nDelete it anyway?`)) {
          status.info("Nothing was deleted.");
          return null;
        }
        result = await queue.run(() => kit.post(url, { confirm: true }));
      }
      if (!result.ok) {
        status.error(result.data.problems);
        return null;
      }
      const box = boxes.get(id);
      const copy = (b) => ({ id: b.id, page: b.saved.page, bbox: [...b.saved.bbox], label: b.saved.label, parent: b.parent });
      const snapshot = { box: copy(box), steps: stepsOf(id).map(copy) };
      boxes.delete(id);
      for (const step of snapshot.steps) boxes.delete(step.id);
      if (box.parent) stepsOf(box.parent).forEach((step, i) => (step.order = i + 1));
      if (selected === id || snapshot.steps.some((s) => s.id === selected)) selected = null;
      render();
      return snapshot;
    }

    async function deleteSelected() {
      if (selected === "draft") {
        discardDraft();
        return;
      }
      const box = boxes.get(selected);
      if (!box) return;
      const steps = stepsOf(box.id).length;
      const what = box.parent
        ? `step ${box.order} of ${box.label}`
        : `the ${box.label} box${steps ? ` and its ${steps} step${steps > 1 ? "s" : ""}` : ""}`;
      if (!window.confirm(`Delete ${what}?`)) return;
      later.cancel(box.id);
      const snapshot = await removeBox(box.id);
      stages[pageIndex].focus({ preventScroll: true });
      if (!snapshot) return;
      undoStack.push({ type: "delete", snapshot });
      status.saved(`Deleted ${what}. Ctrl+Z brings it back.`);
      render();
    }

    async function recreate(snapshot) {
      const { box, steps } = snapshot;
      // Undoing a delete brings back the question the box took with it, without asking again.
      const body = { page: box.page, bbox: box.bbox, label: box.label, add_question: true };
      if (box.parent) body.parent = resolve(box.parent);
      const result = await queue.run(() => kit.post(urls.save, body));
      if (!result.ok) {
        status.error(result.data.problems);
        return null;
      }
      const made = adopt(result.data.box);
      alias.set(box.id, made.id);
      for (const step of steps) {
        const stepResult = await queue.run(() => kit.post(urls.save, { page: made.page, bbox: step.bbox, label: made.label, parent: made.id }));
        if (stepResult.ok) alias.set(step.id, adopt(stepResult.data.box).id);
        else status.error(stepResult.data.problems);
      }
      return made;
    }

    async function undo() {
      later.flushAll();
      if (draft) {
        discardDraft();
        return;
      }
      const entry = undoStack.pop();
      if (!entry) {
        status.info("Nothing to undo.");
        render();
        return;
      }
      if (entry.type === "create") {
        const id = resolve(entry.id);
        const box = boxes.get(id);
        if (!box) return undo();
        const snapshot = await removeBox(id);
        if (snapshot) status.saved(`Undone: ${box.parent ? `${box.label} step` : box.label} removed again.`);
        else undoStack.push(entry);
      } else if (entry.type === "delete") {
        const made = await recreate(entry.snapshot);
        if (made) {
          status.saved(`Undone: ${made.parent ? `${made.label} step ${made.order}` : made.label} is back.`);
          if (made.page !== pageIndex) showPage(made.page);
          select(made.id);
        } else {
          undoStack.push(entry);
        }
      } else {
        const id = resolve(entry.id);
        const box = boxes.get(id);
        if (!box) return undo();
        Object.assign(box, { page: entry.before.page, bbox: [...entry.before.bbox], label: entry.before.label });
        if (selected === id) panelFor = undefined;
        if (box.page !== pageIndex) showPage(box.page);
        await saveBox(id, { fromUndo: true, note: `Undone: ${box.label} is back where it was.` });
      }
      render();
    }

    /** Accept every suggestion with its label, in reading order; the first refusal stops the run. */
    async function acceptAll() {
      for (const suggestion of suggestions.slice()) {
        if (!(await decide(suggestion, true, { quiet: true }))) return;
      }
      status.saved("Accepted every suggested box.");
      render();
    }

    async function decide(suggestion, accept, { quiet = false } = {}) {
      let body = { accept: false };
      if (accept) {
        let label = (suggestion.label || "").trim();
        if (!label) label = (window.prompt("Label for this box: NAME, ID, CLASS or a question such as Q3", nextLabel()) || "").trim();
        if (!label) return false;
        body = { accept: true, label };
      }
      status.saving();
      const result = await queue.run(() => postBox(kit.urlWithId(urls.decide, suggestion.id), body));
      if (!result.ok) {
        status.error(result.data.problems);
        return false;
      }
      suggestions = suggestions.filter((s) => s.id !== suggestion.id);
      if (result.data.box) {
        const box = adopt(result.data.box);
        const steps = (result.data.steps || []).map(adopt);
        undoStack.push({ type: "create", id: box.id });
        if (quiet) return true;
        status.saved(`Accepted as ${box.label}${steps.length ? ` with ${stepsCounted(steps.length)}` : ""}.`);
        select(box.id);
      } else {
        status.saved("Suggestion rejected.");
        render();
      }
      return true;
    }

    // ---------------------------------------------------------------- mouse

    function startDraw(event, stage) {
      const page = pages[pageIndex];
      const [ax, ay] = kit.pointerAt(event, stage, zoom);
      const ghost = document.createElement("div");
      ghost.className = `box drawing${stepParent != null ? " is-step" : ""}`;
      stage.querySelector(".overlay").append(ghost);
      let bbox = null;
      kit.drag(event, stage, {
        onMove(dx, dy, ev) {
          const [bx, by] = kit.pointerAt(ev, stage, zoom);
          bbox = kit.fromCorners(ax, ay, bx, by, page.width, page.height);
          kit.place(ghost, bbox, zoom);
        },
        onEnd(moved) {
          ghost.remove();
          const tiny = !bbox || (bbox[2] - bbox[0]) * zoom < MIN_DRAW_PX || (bbox[3] - bbox[1]) * zoom < MIN_DRAW_PX;
          if (!moved || tiny) {
            if (stepParent == null) select(null);
            return;
          }
          if (stepParent != null) createStep(bbox);
          else createDraft(bbox);
        },
      });
    }

    function startMove(event, stage, id, edge) {
      const box = getBox(id);
      const page = pages[box.page];
      const start = [...box.bbox];
      kit.drag(event, stage, {
        slop: CLICK_SLOP_PX,
        onMove(dx, dy) {
          box.bbox = edge
            ? kit.resized(start, edge, dx / zoom, dy / zoom, page.width, page.height)
            : kit.moved(start, dx / zoom, dy / zoom, page.width, page.height);
          stepsPreview(box);
          placeOne(box);
        },
        onEnd(moved) {
          if (!moved || kit.same(start, box.bbox)) return;
          if (id === "draft") return;
          later.cancel(id);
          saveBox(id);
        },
      });
    }

    for (const stage of stages) {
      stage.tabIndex = 0;
      stage.addEventListener("dragstart", (event) => event.preventDefault());
      stage.addEventListener("pointerdown", (event) => {
        if (event.button !== 0 || event.target.closest("button")) return;
        event.preventDefault();
        const boxElementHit = event.target.closest(".box");
        const handle = event.target.closest(".handle");
        const raw = boxElementHit?.dataset.id;
        const id = raw == null ? null : raw === "draft" ? "draft" : Number(raw);
        if (!canChange) {
          select(id, { scroll: false });
          stage.focus({ preventScroll: true });
          return;
        }
        if (stepParent == null && boxElementHit) {
          if (id !== selected) select(id, { scroll: false });
          stage.focus({ preventScroll: true });
          startMove(event, stage, id, handle?.dataset.edge);
          return;
        }
        if (draft && selected === "draft") leaveDraft();
        stage.focus({ preventScroll: true });
        startDraw(event, stage);
      });
    }

    // ---------------------------------------------------------------- keyboard

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const label = labelInput.value.trim();
      if (!label) {
        status.error(["Type a label: NAME, ID, CLASS or a question such as Q3."]);
        return;
      }
      if (selected === "draft") {
        draft.label = label;
        stages[pageIndex].focus({ preventScroll: true });
        await commitDraft();
        return;
      }
      const box = boxes.get(selected);
      stages[pageIndex].focus({ preventScroll: true });
      if (!box || box.parent || label === box.label) return;
      box.label = label;
      later.cancel(box.id);
      saveBox(box.id);
    });

    labelInput.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      event.preventDefault();
      if (selected === "draft") {
        discardDraft();
        return;
      }
      panelFor = undefined;
      render();
      stages[pageIndex].focus({ preventScroll: true });
    });

    labelInput.addEventListener("focusout", (event) => {
      // Leaving the label of a new box saves it, unless the teacher went to the panel's own buttons.
      if (selected === "draft" && !form.contains(event.relatedTarget)) leaveDraft();
    });

    stepButton?.addEventListener("click", startStep);
    deleteButton?.addEventListener("click", deleteSelected);
    undoButton?.addEventListener("click", undo);
    tabs.forEach((tab) => tab.addEventListener("click", () => showPage(Number(tab.dataset.pageTab))));
    root.querySelector("[data-zoom='in']").addEventListener("click", () => zoomTo(kit.zoomIn(zoom)));
    root.querySelector("[data-zoom='out']").addEventListener("click", () => zoomTo(kit.zoomOut(zoom)));
    root.querySelector("[data-zoom='fit']").addEventListener("click", () => zoomTo(zoom, { fit: true }));

    document.addEventListener("keydown", (event) => {
      if (event.defaultPrevented || event.isComposing) return;
      const target = event.target;
      if (target instanceof Element && target.closest("dialog")) return;
      if (kit.isTyping(target)) return;
      const stage = stages[pageIndex];
      const onStage = target === stage;
      const command = event.ctrlKey || event.metaKey;
      if (command && !event.altKey && !event.shiftKey && event.key.toLowerCase() === "z") {
        if (!canChange) return;
        event.preventDefault();
        undo();
        return;
      }
      if (command) return;
      if (kit.viewKey(event, { help, zoom: () => zoom, zoomTo, fit: () => zoomTo(zoom, { fit: true }) })) return;
      switch (event.key) {
        case "Escape":
          if (stepParent != null) {
            stepParent = null;
            status.info("Step drawing cancelled.");
            render();
          } else if (selected === "draft") {
            discardDraft();
          } else if (selected != null) {
            select(null);
          }
          return;
        case "Tab": {
          if (!onStage) return;
          const next = kit.cycle(pageBoxes().map((box) => box.id), selected, event.shiftKey);
          if (next == null) {
            select(null, { scroll: false });
            return; // let focus leave the page
          }
          event.preventDefault();
          select(next);
          return;
        }
        default:
      }
      if (selected == null || !canChange || stepParent != null) return;
      if (event.key === "Delete" || event.key === "Backspace") {
        event.preventDefault();
        deleteSelected();
        return;
      }
      if ((event.key === "s" || event.key === "S") && !event.altKey) {
        event.preventDefault();
        startStep();
        return;
      }
      if (event.key === "Enter" && onStage) {
        event.preventDefault();
        if (!labelInput.disabled) {
          labelInput.focus();
          labelInput.select();
        }
        return;
      }
      const box = getBox(selected);
      const page = pages[box.page];
      const next = kit.nudged(box.bbox, event, page.width, page.height);
      if (!next) return;
      event.preventDefault();
      box.bbox = next;
      stepsPreview(box);
      placeOne(box);
      if (box.id !== "draft") later.schedule(box.id, () => saveBox(box.id));
    });

    window.addEventListener("resize", () => {
      if (fitWidth) zoomTo(zoom, { fit: true });
    });
    window.addEventListener("pagehide", () => later.flushAll());

    const fromHash = /^#page-(\d+)$/.exec(location.hash);
    const first = fromHash ? clamp(Number(fromHash[1]) - 1, 0, pages.length - 1) : 0;
    pageIndex = first;
    panels.forEach((panel, i) => panel.classList.toggle("current", i === first));
    tabs.forEach((tab) => tab.setAttribute("aria-pressed", String(Number(tab.dataset.pageTab) === first)));
    zoomTo(zoom, { fit: true });
  }

  const start = () => {
    const root = document.getElementById("box-editor");
    if (root) editorStart(root);
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
