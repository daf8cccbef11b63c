// The draw page: strokes on a canvas (mouse, touch, pen), sent as a PNG to /api/predict after every stroke;
// every model's answer is shown, with the time from the end of the stroke to the answers on screen.
"use strict";

const pad = document.getElementById("pad");
const ink = pad.getContext("2d");
const strokes = [];  // each a list of [x, y] in canvas pixels; undo drops the last
let current = null;
let asked = 0;  // requests sent; an answer older than the latest is dropped
window.zoo = { answered: 0, latencies: [], last: null };

function point(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
}

function paint() {
  ink.fillStyle = "#fff";
  ink.fillRect(0, 0, pad.width, pad.height);
  ink.strokeStyle = "#000";
  ink.lineWidth = 18;
  ink.lineCap = "round";
  ink.lineJoin = "round";
  for (const stroke of strokes) {
    ink.beginPath();
    ink.moveTo(...stroke[0]);
    for (const p of stroke.length > 1 ? stroke.slice(1) : [stroke[0]]) ink.lineTo(...p);
    ink.stroke();
  }
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  current = [point(event)];
  strokes.push(current);
  paint();
});
pad.addEventListener("pointermove", (event) => {
  if (!current) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) current.push(point(e));
  paint();
});
function endStroke() {
  if (!current) return;
  current = null;
  ask(null);
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

document.getElementById("undo").addEventListener("click", () => { strokes.pop(); paint(); strokes.length ? ask(null) : reset(); });
document.getElementById("clear").addEventListener("click", () => { strokes.length = 0; paint(); reset(); });
document.getElementById("saliency").addEventListener("change", () => { if (strokes.length) ask(null); });
document.getElementById("file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) ask(file);
  event.target.value = "";
});

function canvasPng() {
  // toDataURL, not toBlob: headless Chromium delays toBlob's encoding by a second
  const text = atob(pad.toDataURL("image/png").split(",")[1]);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return new Blob([bytes], { type: "image/png" });
}

function reset() {
  asked += 1;
  document.getElementById("answers").replaceChildren();
  document.getElementById("saw-box").hidden = true;
  document.getElementById("error").hidden = true;
  say("Draw a digit to see every model's answer.");
}

function say(text) { document.getElementById("status").textContent = text; }

function showError(text) {
  const box = document.getElementById("error");
  box.textContent = text;
  box.hidden = false;
}

async function ask(file) {
  const started = performance.now();
  const seq = ++asked;
  const body = file || canvasPng();
  const name = file ? file.name : "drawing";
  const saliency = document.getElementById("saliency").checked ? "&saliency=1" : "";
  let reply, payload;
  try {
    reply = await fetch(`/api/predict?name=${encodeURIComponent(name)}${saliency}`,
                        { method: "POST", body, headers: { "Content-Type": file && file.type ? file.type : "image/png" } });
    payload = await reply.json();
  } catch (err) {
    if (seq === asked) { showError(`The server did not answer (${err.message}).`); say(""); }
    return;
  }
  if (seq !== asked) return;
  if (!reply.ok) {
    document.getElementById("answers").replaceChildren();
    document.getElementById("saw-box").hidden = true;
    showError(payload.error || `The server said ${reply.status}.`);
    say("");
    window.zoo.last = { error: payload.error, status: reply.status };
    document.body.dataset.answered = String(++window.zoo.answered);
    return;
  }
  document.getElementById("error").hidden = true;
  show(payload);
  requestAnimationFrame(() => {  // the answers are painted by the next frame
    const ms = performance.now() - started;
    window.zoo.latencies.push(ms);
    window.zoo.last = payload;
    document.body.dataset.answered = String(++window.zoo.answered);
    say(`${payload.answers.length} models answered in ${Math.round(ms)} ms` +
        (file ? ` (upload: ${file.name})` : "") + ".");
  });
}

function element(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

function bar(p) {
  const fill = element("span", { class: "fill" });
  fill.style.width = `${Math.max(1, Math.round(120 * p))}px`;  // through the CSSOM: the page allows no inline styles
  return fill;
}

function show(payload) {
  const saw = document.getElementById("saw");
  saw.src = payload.saw;
  document.getElementById("saw-box").hidden = false;
  const cards = payload.answers.map((a) => {
    const rejected = a.number === null;
    const bars = a.top.map(([digit, p]) => element("div", { class: "bar" },
      element("b", {}, String(digit)),
      bar(p),
      `${(100 * p).toFixed(1)}%`));
    const card = element("article", { class: rejected ? "card rejected" : "card", "data-model": a.key },
      element("h3", {}, `model ${a.key} `, element("span", { class: a.origin === "reference" ? "origin" : "origin run" },
                                           a.run ? `${a.origin}: ${a.run}` : a.origin)),
      element("div", { class: "digit", "data-answer": rejected ? "" : a.number }, rejected ? a.verdict : a.number),
      element("div", { class: "verdict" }, rejected ? (a.reason || "") : `${a.verdict}, ${(100 * a.confidence).toFixed(1)}% sure`),
      ...bars);
    if (a.saliency) card.append(element("img", { class: "saliency", src: a.saliency, alt: `where model ${a.key} looked` }));
    card.title = a.title;
    return card;
  });
  document.getElementById("answers").replaceChildren(...cards);
}

paint();
