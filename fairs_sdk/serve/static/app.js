// fairs serve's page: open an image, click 4 extreme points, then corrective clicks.
//
// Points are (x, y) image pixels with pixel centres on integers (the SDK's convention):
// a click at CSS offset u in a canvas shown w CSS pixels wide over an image W pixels wide
// is x = u * W / w - 0.5. Every request sends all points so far; the newest answer wins.
// window.fairs.snapshot() exposes the state (points, last response) to tests.
"use strict";

(() => {
  const EXTREME_POINTS = 4;
  const COLORS = { extreme: "#e040fb", positive: "#2ecc40", negative: "#ff4136" };
  const MASK_RGBA = [30, 144, 255, 120];

  const $ = (id) => document.getElementById(id);
  const canvas = $("view");
  const ctx = canvas.getContext("2d");
  const stage = $("stage");

  const state = {
    name: null,        // file name of the image
    file: null,        // the File (kept to upload again if the server dropped it)
    image: null,       // HTMLImageElement
    imageId: null,
    actions: [],       // {kind: "extreme" | "positive" | "negative", x, y}, oldest first
    results: [],       // results[i]: the server's answer after actions[i] (null before 4 extreme points)
    overlay: null,     // canvas holding the tinted mask of the newest result
    seq: 0,            // bumped by every change; an answer for an older seq is dropped
    pending: 0,        // requests in flight
    lastError: null,
  };

  // ------------------------------------------------------------------ helpers
  function status(text, isError = false) {
    const el = $("status");
    el.textContent = text;
    el.classList.toggle("error", isError);
    if (isError) state.lastError = text;
  }

  function points(kind) {
    return state.actions.filter((a) => a.kind === kind).map((a) => [a.x, a.y]);
  }

  function current() {
    return state.results.length ? state.results[state.results.length - 1] : null;
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      return body.error || JSON.stringify(body);
    } catch (e) {
      return `${response.status} ${response.statusText}`;
    }
  }

  function updateButtons() {
    const hasImage = state.imageId !== null;
    $("undo").disabled = !hasImage || state.actions.length === 0;
    $("reset").disabled = !hasImage || state.actions.length === 0;
    $("download-mask").disabled = !current();
    $("download-coco").disabled = !current();
  }

  // ------------------------------------------------------------------ drawing
  function draw() {
    if (!state.image) return;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(state.image, 0, 0);
    if (state.overlay) ctx.drawImage(state.overlay, 0, 0);
    // Radius in image pixels that looks about 5 CSS pixels whatever the zoom.
    const scale = canvas.width / canvas.getBoundingClientRect().width;
    const r = Math.max(2, 5 * scale);
    for (const a of state.actions) {
      ctx.beginPath();
      ctx.arc(a.x + 0.5, a.y + 0.5, r, 0, 2 * Math.PI);  // canvas pixel j spans [j, j + 1)
      ctx.fillStyle = COLORS[a.kind];
      ctx.fill();
      ctx.lineWidth = Math.max(1, 1.5 * scale);
      ctx.strokeStyle = "#fff";
      ctx.stroke();
    }
  }

  async function setOverlay(result) {
    if (!result) {
      state.overlay = null;
      return;
    }
    const img = new Image();
    img.src = "data:image/png;base64," + result.mask_png;
    await img.decode();
    const off = document.createElement("canvas");
    off.width = result.width;
    off.height = result.height;
    const octx = off.getContext("2d");
    octx.drawImage(img, 0, 0);
    const data = octx.getImageData(0, 0, off.width, off.height);
    const px = data.data;
    for (let i = 0; i < px.length; i += 4) {
      const on = px[i] > 127;
      px[i] = MASK_RGBA[0];
      px[i + 1] = MASK_RGBA[1];
      px[i + 2] = MASK_RGBA[2];
      px[i + 3] = on ? MASK_RGBA[3] : 0;
    }
    octx.putImageData(data, 0, 0);
    state.overlay = off;
  }

  async function show() {
    await setOverlay(current());
    draw();
    updateButtons();
  }

  // ------------------------------------------------------------------ server
  async function upload() {
    const response = await fetch("/v1/images", {
      method: "POST",
      headers: { "Content-Type": "application/octet-stream" },
      body: state.file,
    });
    if (!response.ok) throw new Error(await errorText(response));
    const body = await response.json();
    state.imageId = body.image_id;
    return body;
  }

  async function segment() {
    const seq = ++state.seq;
    const request = {
      image_id: state.imageId,
      extreme_points: points("extreme"),
      positive_clicks: points("positive"),
      negative_clicks: points("negative"),
      mask_png: true,
    };
    state.pending += 1;
    status("Segmenting…");
    const t0 = performance.now();
    const post = () => fetch("/v1/segment", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
    });
    try {
      let response = await post();
      if (response.status === 404) {  // the server dropped the image from its cache: upload it again
        await upload();
        request.image_id = state.imageId;
        response = await post();
      }
      if (!response.ok) throw new Error(await errorText(response));
      const result = await response.json();
      if (seq !== state.seq) return;  // a newer click or an undo came meanwhile
      result.request = request;
      state.results[state.actions.length - 1] = result;
      const ms = Math.round(performance.now() - t0);
      const clicks = request.positive_clicks.length + request.negative_clicks.length;
      status(`Mask: ${result.area.toLocaleString()} pixels, ${clicks} correction${clicks === 1 ? "" : "s"}, ${ms} ms.`);
      await show();
    } catch (e) {
      if (seq === state.seq) status(`Error: ${e.message}`, true);
    } finally {
      state.pending -= 1;
    }
  }

  // ------------------------------------------------------------------ actions
  async function open(file) {
    if (!file) return;
    if (!file.type.startsWith("image/") && file.type !== "") {
      status(`${file.name} is not an image (${file.type}).`, true);
      return;
    }
    const url = URL.createObjectURL(file);
    const image = new Image();
    image.src = url;
    try {
      await image.decode();
    } catch (e) {
      status(`The browser cannot show ${file.name}.`, true);
      return;
    }
    Object.assign(state, { name: file.name, file, image, imageId: null, actions: [], results: [], overlay: null });
    state.seq += 1;
    canvas.width = image.naturalWidth;
    canvas.height = image.naturalHeight;
    stage.classList.remove("empty");
    draw();
    status(`Uploading ${file.name}…`);
    try {
      const body = await upload();
      status(`${file.name}: ${body.width} × ${body.height}. Click the object's 4 extreme points.`);
    } catch (e) {
      status(`Upload failed: ${e.message}`, true);
    }
    updateButtons();
  }

  function toImage(event) {
    const rect = canvas.getBoundingClientRect();
    const w = canvas.width, h = canvas.height;
    const x = ((event.clientX - rect.left) * w) / rect.width - 0.5;
    const y = ((event.clientY - rect.top) * h) / rect.height - 0.5;
    const clamp = (v, hi) => Math.min(Math.max(v, -0.5), hi - 0.5);
    return [clamp(x, w), clamp(y, h)];
  }

  function add(event, positive) {
    if (state.imageId === null) return;
    const [x, y] = toImage(event);
    const extreme = points("extreme").length;
    if (extreme < EXTREME_POINTS && !positive) {
      status(`First the ${EXTREME_POINTS} extreme points (left clicks); ${EXTREME_POINTS - extreme} to go.`);
      return;
    }
    const kind = extreme < EXTREME_POINTS ? "extreme" : positive ? "positive" : "negative";
    state.actions.push({ kind, x, y });
    state.results.push(state.results.length ? current() : null);  // shown until the answer comes
    if (points("extreme").length < EXTREME_POINTS) {
      state.seq += 1;
      status(`${EXTREME_POINTS - points("extreme").length} extreme point(s) to go.`);
      draw();
      updateButtons();
      return;
    }
    draw();
    segment();
  }

  function undo() {
    if (!state.actions.length) return;
    state.actions.pop();
    state.results.pop();
    state.seq += 1;  // an answer still on its way is for a state that no longer exists
    status(state.actions.length ? "Undone." : "Click the object's 4 extreme points.");
    show();
  }

  function reset() {
    state.actions = [];
    state.results = [];
    state.seq += 1;
    status("Reset. Click the object's 4 extreme points.");
    show();
  }

  function stem() {
    return (state.name || "image").replace(/\.[^.]+$/, "");
  }

  function download(blob, name) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }

  function downloadMask() {
    const result = current();
    if (!result) return;
    const bytes = Uint8Array.from(atob(result.mask_png), (c) => c.charCodeAt(0));
    download(new Blob([bytes], { type: "image/png" }), `${stem()}_mask.png`);
  }

  function coco() {
    const result = current();
    const [x0, y0, x1, y1] = result.bbox || [0, 0, 0, 0];
    return {
      images: [{ id: 1, file_name: state.name, width: result.width, height: result.height }],
      categories: [{ id: 1, name: "object" }],
      annotations: [{
        id: 1,
        image_id: 1,
        category_id: 1,
        segmentation: result.rle,
        area: result.area,
        bbox: [x0, y0, x1 - x0, y1 - y0],
        iscrowd: 0,
        extreme_points: result.request.extreme_points,
        positive_clicks: result.request.positive_clicks,
        negative_clicks: result.request.negative_clicks,
      }],
    };
  }

  function downloadCoco() {
    if (!current()) return;
    download(new Blob([JSON.stringify(coco(), null, 1)], { type: "application/json" }), `${stem()}.json`);
  }

  // ------------------------------------------------------------------ wiring
  canvas.addEventListener("click", (e) => add(e, true));
  canvas.addEventListener("contextmenu", (e) => {
    e.preventDefault();
    add(e, false);
  });
  $("file").addEventListener("change", (e) => open(e.target.files[0]));
  $("undo").addEventListener("click", undo);
  $("reset").addEventListener("click", reset);
  $("download-mask").addEventListener("click", downloadMask);
  $("download-coco").addEventListener("click", downloadCoco);
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT") return;
    if (e.key === "z" || e.key === "Z" || e.key === "Backspace") undo();
    if (e.key === "Escape") reset();
  });
  for (const type of ["dragenter", "dragover"]) {
    stage.addEventListener(type, (e) => {
      e.preventDefault();
      stage.classList.add("dragging");
    });
  }
  stage.addEventListener("dragleave", () => stage.classList.remove("dragging"));
  stage.addEventListener("drop", (e) => {
    e.preventDefault();
    stage.classList.remove("dragging");
    open(e.dataTransfer.files[0]);
  });
  window.addEventListener("resize", draw);

  fetch("/v1/model")
    .then((r) => r.json())
    .then((m) => {
      $("model").textContent = `${m.model} · ${m.backend} (${m.providers.join(", ")}) · input ${m.input_spec.input_size} px · fairs_sdk ${m.version}`;
    })
    .catch(() => { $("model").textContent = "model info unavailable"; });

  window.fairs = {
    snapshot: () => ({
      imageId: state.imageId,
      extreme: points("extreme"),
      positive: points("positive"),
      negative: points("negative"),
      pending: state.pending,
      result: current(),
      error: state.lastError,
    }),
    coco: () => (current() ? coco() : null),
  };
})();
