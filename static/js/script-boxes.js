/* One script's answer boxes (/exams/<id>/scripts/<n>/boxes/): where each template box lies on this
 * script's scan pages, and nudging one box for this script only.
 *
 * Boxes are [x1, y1, x2, y2] in scan-page pixels at 150 dpi on the page whose id is `scan_page`.
 * Uses BoxKit from box-editor.js, which is loaded first.
 */
"use strict";

(() => {
  const kit = window.BoxKit;
  const root = document.getElementById("script-boxes");
  if (!kit || !root) return;

  const CLICK_SLOP_PX = 3;
  const state = JSON.parse(document.getElementById("script-state").textContent);
  const canChange = root.dataset.canChange === "true";
  const adjustUrl = root.dataset.adjustUrl;
  const pages = new Map(state.pages.map((page) => [page.id, page]));
  const boxes = new Map();
  const stages = [...root.querySelectorAll(".stage[data-page-id]")];
  const scroller = root.querySelector(".stage-scroll");
  const status = kit.statusLine(root.querySelector("#script-status"));
  const announcer = root.querySelector("#script-announce");
  const zoomOutput = root.querySelector("#zoom-level");
  const wholeButton = root.querySelector("[data-zoom='page']");
  const panel = root.querySelector("#script-box-panel");
  const boxList = root.querySelector("#script-box-list");
  const resetButton = root.querySelector("#box-reset");
  const help = kit.help(root.querySelector("#help-open"), document.getElementById("keys-help"));
  const queue = kit.queue();
  const later = kit.debouncer(300);
  let zoom = 1;
  let fit = "width"; // "width", "page" (the whole page on screen) or null (a chosen zoom)
  let selected = null;

  kit.enhance(root);
  for (const data of state.boxes) adopt(data);
  if (!stages.length) return;

  function adopt(data) {
    const box = boxes.get(data.id) ?? {};
    const sent = box.sending;
    const keepLocal = box.bbox && sent && !kit.same(box.bbox, sent);
    Object.assign(box, { ...data, bbox: keepLocal ? box.bbox : data.bbox && [...data.bbox] });
    box.saved = data.bbox && [...data.bbox];
    delete box.sending;
    boxes.set(box.id, box);
    return box;
  }

  const placed = () => [...boxes.values()].filter((box) => box.bbox && pages.has(box.scan_page));
  const boxesOn = (pageId) =>
    placed()
      .filter((box) => box.scan_page === pageId)
      .sort((a, b) => a.bbox[1] - b.bbox[1] || a.bbox[0] - b.bbox[0]);
  const stageOf = (box) => stages.find((stage) => Number(stage.dataset.pageId) === box.scan_page);

  // ---------------------------------------------------------------- drawing on screen

  function render() {
    for (const stage of stages) {
      const page = pages.get(Number(stage.dataset.pageId));
      stage.style.width = `${page.width * zoom}px`;
      stage.style.height = `${page.height * zoom}px`;
      const layer = stage.querySelector(".overlay");
      layer.replaceChildren(...boxesOn(page.id).map(boxElement));
    }
    zoomOutput.textContent = `${Math.round(zoom * 100)}%`;
    root.dataset.zoom = String(zoom);
    wholeButton?.setAttribute("aria-pressed", String(fit === "page"));
    renderPanel();
    renderList();
  }

  function boxElement(box) {
    const element = document.createElement("div");
    element.className = "box";
    element.id = `box-${box.id}`;
    element.dataset.id = box.id;
    element.setAttribute("aria-hidden", "true");
    element.classList.toggle("identity", ["NAME", "ID", "CLASS"].includes(box.label));
    element.classList.toggle("adjusted", box.adjusted);
    element.classList.toggle("selected", box.id === selected);
    const tag = document.createElement("span");
    tag.className = "box-label";
    tag.textContent = box.adjusted ? `${box.label} · moved here` : box.label;
    element.append(tag);
    kit.place(element, box.bbox, zoom);
    if (box.id === selected && canChange) kit.addHandles(element);
    return element;
  }

  function placeOne(box) {
    const element = document.getElementById(`box-${box.id}`);
    if (element) kit.place(element, box.bbox, zoom);
    renderPanel();
  }

  function renderPanel() {
    const box = selected == null ? null : boxes.get(selected);
    panel.querySelector("#box-none").hidden = Boolean(box);
    const details = panel.querySelector("#box-details");
    details.hidden = !box;
    if (!box) return;
    const page = pages.get(box.scan_page);
    const [x1, y1, x2, y2] = box.bbox;
    panel.querySelector("#box-title").textContent = box.label;
    panel.querySelector("#box-geometry").textContent =
      `Page ${page.position + 1} · ${x2 - x1} × ${y2 - y1} px · from (${x1}, ${y1}) to (${x2}, ${y2})`;
    panel.querySelector("#box-origin").textContent = box.adjusted
      ? "Moved by hand for this script only. The blank exam's box is unchanged."
      : "Where the box of the blank exam lands on this scan.";
    if (resetButton) resetButton.disabled = !box.adjusted;
  }

  function renderList() {
    boxList.replaceChildren();
    for (const box of [...boxes.values()].sort((a, b) => a.template_page - b.template_page || a.template_bbox[1] - b.template_bbox[1])) {
      const item = document.createElement("li");
      if (!box.bbox || !pages.has(box.scan_page)) {
        item.className = "missing";
        item.textContent = `${box.label}: this script has no page ${box.template_page + 1}.`;
        boxList.append(item);
        continue;
      }
      const button = document.createElement("button");
      button.type = "button";
      button.className = "box-item";
      button.setAttribute("aria-pressed", String(box.id === selected));
      const name = document.createElement("strong");
      name.textContent = box.label;
      const note = document.createElement("small");
      note.textContent = `page ${pages.get(box.scan_page).position + 1}${box.adjusted ? " · moved" : ""}`;
      button.append(name, note);
      if (box.adjusted) button.classList.add("adjusted");
      button.addEventListener("click", () => {
        select(box.id);
        stageOf(box)?.focus({ preventScroll: true });
      });
      item.append(button);
      boxList.append(item);
    }
  }

  function select(id, { scroll = true } = {}) {
    if (selected != null && selected !== id) later.flush(selected);
    selected = id;
    render();
    const box = id == null ? null : boxes.get(id);
    if (!box) return;
    if (announcer) announcer.textContent = `${box.label}${box.adjusted ? " (moved for this script)" : ""}: ${kit.sizeText(box.bbox)}. Selected.`;
    if (scroll) document.getElementById(`box-${id}`)?.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  // ---------------------------------------------------------------- zoom

  function fitZoom(kind) {
    const widest = Math.max(...[...pages.values()].map((page) => page.width));
    const width = (scroller.clientWidth - 24) / widest;
    if (kind === "width") return Math.max(0.1, width);
    const tallest = Math.max(...[...pages.values()].map((page) => page.height));
    const height = (window.innerHeight - 140) / tallest;
    return Math.max(0.1, Math.min(width, height));
  }

  function zoomTo(next, kind = null) {
    const anchor = selected != null ? document.getElementById(`box-${selected}`) : null;
    const fraction = scroller.scrollTop / Math.max(1, scroller.scrollHeight);
    fit = kind;
    zoom = kind ? fitZoom(kind) : next;
    render();
    if (anchor) document.getElementById(`box-${selected}`)?.scrollIntoView({ block: "center", inline: "nearest" });
    else scroller.scrollTop = fraction * scroller.scrollHeight;
  }

  // ---------------------------------------------------------------- saving

  function save(id, body, note) {
    status.saving();
    return queue.run(async () => {
      const box = boxes.get(id);
      const payload = typeof body === "function" ? body(box) : body;
      if (payload.bbox) box.sending = payload.bbox;
      const result = await kit.post(kit.urlWithId(adjustUrl, id), payload);
      if (!result.ok) {
        delete box.sending;
        later.cancel(id);
        box.bbox = box.saved && [...box.saved];
        status.error(result.data.problems);
        render();
        return false;
      }
      adopt(result.data);
      status.saved(note(boxes.get(id)));
      render();
      return true;
    });
  }

  const saveBbox = (id) =>
    save(id, (box) => ({ bbox: [...box.bbox] }), (box) => `Saved ${box.label} for this script.`);

  function reset(id) {
    later.cancel(id);
    save(id, { reset: true }, (box) => `${box.label} is back where the blank exam puts it.`);
  }

  // ---------------------------------------------------------------- mouse and keys

  for (const stage of stages) {
    stage.tabIndex = 0;
    stage.addEventListener("dragstart", (event) => event.preventDefault());
    stage.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      event.preventDefault();
      stage.focus({ preventScroll: true });
      const hit = event.target.closest(".box");
      const id = hit ? Number(hit.dataset.id) : null;
      if (id !== selected) select(id, { scroll: false });
      if (id == null || !canChange) return;
      const box = boxes.get(id);
      const page = pages.get(box.scan_page);
      const start = [...box.bbox];
      const edge = event.target.closest(".handle")?.dataset.edge;
      kit.drag(event, stage, {
        slop: CLICK_SLOP_PX,
        onMove(dx, dy) {
          box.bbox = edge
            ? kit.resized(start, edge, dx / zoom, dy / zoom, page.width, page.height)
            : kit.moved(start, dx / zoom, dy / zoom, page.width, page.height);
          placeOne(box);
        },
        onEnd(moved) {
          if (!moved || kit.same(start, box.bbox)) return;
          later.cancel(id);
          saveBbox(id);
        },
      });
    });
  }

  resetButton?.addEventListener("click", () => selected != null && reset(selected));
  root.querySelector("[data-zoom='in']").addEventListener("click", () => zoomTo(kit.zoomIn(zoom)));
  root.querySelector("[data-zoom='out']").addEventListener("click", () => zoomTo(kit.zoomOut(zoom)));
  root.querySelector("[data-zoom='width']").addEventListener("click", () => zoomTo(zoom, "width"));
  wholeButton?.addEventListener("click", () => zoomTo(zoom, fit === "page" ? "width" : "page"));

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing || event.ctrlKey || event.metaKey) return;
    const target = event.target;
    if (target instanceof Element && target.closest("dialog")) return;
    if (kit.isTyping(target)) return;
    if (kit.viewKey(event, { help, zoom: () => zoom, zoomTo, fit: () => zoomTo(zoom, "width") })) return;
    switch (event.key) {
      case "Escape":
        if (selected != null) select(null);
        return;
      case "Tab": {
        const stage = stages.find((s) => s === target);
        if (!stage) return;
        const next = kit.cycle(boxesOn(Number(stage.dataset.pageId)).map((box) => box.id), selected, event.shiftKey);
        if (next == null) {
          select(null, { scroll: false });
          return;
        }
        event.preventDefault();
        select(next);
        return;
      }
      default:
    }
    if (selected == null || !canChange) return;
    const box = boxes.get(selected);
    const page = pages.get(box.scan_page);
    const next = kit.nudged(box.bbox, event, page.width, page.height);
    if (!next) return;
    event.preventDefault();
    box.bbox = next;
    placeOne(box);
    later.schedule(box.id, () => saveBbox(box.id));
  });

  window.addEventListener("resize", () => {
    if (fit) zoomTo(zoom, fit);
  });
  window.addEventListener("pagehide", () => later.flushAll());

  zoomTo(zoom, "width");
})();
