// The entrance terminal's page: the board from /events (Server-Sent Events), the clock following the
// hall clock of the box, the camera preview (/preview.mjpg) with the face box. No dependency.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  let offsetMs = 0;      // hall clock minus this browser's clock
  let zoneMin = 480;     // the hall's UTC offset, minutes
  let latestId = null;

  function pad(n) { return String(n).padStart(2, "0"); }

  function tick() {
    const t = new Date(Date.now() + offsetMs + zoneMin * 60000);
    $("clock").textContent = pad(t.getUTCHours()) + ":" + pad(t.getUTCMinutes()) + ":" + pad(t.getUTCSeconds());
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function extras(node, line) {
    if (line.pending) node.appendChild(el("div", "pending", "已记录，待上传"));
    if (line.verdict) node.appendChild(el("div", "verdict " + (line.verdict_status || ""), line.verdict));
  }

  function renderLatest(line) {
    const box = $("latest");
    if (!line) { box.className = "latest idle"; box.replaceChildren(); latestId = null; return; }
    const fresh = line.id !== latestId;
    latestId = line.id;
    box.className = "latest " + (line.ok ? "ok" : "bad") + (fresh ? " fresh" : "");
    box.dataset.id = line.id;
    const children = [];
    if (line.name) children.push(el("div", "name", line.name));
    if (line.staff) children.push(el("div", "staff", "工号 " + line.staff + " · " + line.time));
    else children.push(el("div", "staff", line.time));
    children.push(el("div", "result", line.result));
    box.replaceChildren(...children);
    extras(box, line);
  }

  function renderLines(lines) {
    const items = lines.map((line) => {
      const li = el("li", line.ok ? "ok" : "bad");
      li.dataset.id = line.id;
      li.appendChild(el("span", "time", line.time));
      li.appendChild(el("span", "name", line.name || ""));
      li.appendChild(el("span", "staff", line.staff || ""));
      const result = el("span", "result", line.result);
      li.appendChild(result);
      extras(li, line);
      return li;
    });
    $("lines").replaceChildren(...items);
  }

  function renderFace(state) {
    const box = $("facebox");
    if (!state.face) { box.hidden = true; return; }
    const [x0, y0, x1, y1] = state.face.box;
    box.hidden = false;
    box.className = "facebox " + state.face.stage;
    box.style.left = (x0 * 100) + "%";
    box.style.top = (y0 * 100) + "%";
    box.style.width = ((x1 - x0) * 100) + "%";
    box.style.height = ((y1 - y0) * 100) + "%";
  }

  function render(state) {
    offsetMs = state.now_ms - Date.now();
    zoneMin = state.offset_min;
    tick();
    $("date").textContent = state.date;
    const link = $("link");
    link.hidden = state.link === "connected";
    link.textContent = "网络中断：打卡记录保存在本机，恢复后自动上传";
    const camera = $("camera");
    if (state.camera && camera.hidden) {
      camera.hidden = false;
      startPreview();
    }
    renderFace(state);
    const prompt = $("prompt");
    prompt.textContent = state.prompt;
    prompt.className = "prompt" + (state.face && state.face.stage === "blink" ? " blink" : "");
    renderLatest(state.lines[0]);
    renderLines(state.lines.slice(1));
    document.body.dataset.version = state.version;
  }

  function startPreview() {
    const img = $("preview");
    img.onerror = () => setTimeout(() => { img.src = "/preview.mjpg?t=" + Date.now(); }, 2000);
    img.src = "/preview.mjpg";
  }

  function connect() {
    const source = new EventSource("/events");
    source.onmessage = (event) => render(JSON.parse(event.data));
    source.onerror = () => {
      const link = $("link");
      link.hidden = false;
      link.textContent = "终端服务重启中…";
    };
  }

  setInterval(tick, 250);
  connect();
})();
