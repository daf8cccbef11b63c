// The dashboard: the zoo's models from /api/models as a sortable table, the accuracy-size frontier, and for
// each model its training curves, confusion matrix, mistakes, filters and summary.
"use strict";

const COLUMNS = [
  ["key", "model", (m) => m.key],
  ["origin", "origin", (m) => (m.run ? `${m.origin}: ${m.run}` : m.origin)],
  ["family", "family", (m) => m.family],
  ["params", "parameters", (m) => m.params],
  ["macs", "MACs/image", (m) => m.macs],
  ["final_test_acc", "final test acc. %", (m) => m.final_test_acc],
  ["seeds", "seeds: mean ± std", (m) => (m.seeds ? m.seeds.mean : null)],
  ["epochs", "epochs", (m) => m.epochs],
];
let rows = [];
let sortBy = { column: "params", ascending: true };

function element(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

function cell(name, m) {
  if (name === "params" || name === "macs") return m[name].toLocaleString("en");
  if (name === "final_test_acc") return m.final_test_acc == null ? "—" : m.final_test_acc.toFixed(2);
  if (name === "origin") return m.run ? `${m.origin}: ${m.run}` : m.origin;
  if (name === "seeds") return m.seeds ? `${m.seeds.mean.toFixed(2)} ± ${m.seeds.std.toFixed(2)} (${m.seeds.n})` : "—";
  return m[name] == null ? "—" : String(m[name]);
}

function drawTable() {
  const [, , value] = COLUMNS.find(([name]) => name === sortBy.column);
  const sorted = [...rows].sort((a, b) => {
    const x = value(a), y = value(b);
    if (x === y) return 0;
    if (x == null) return 1;
    if (y == null) return -1;
    return (x < y ? -1 : 1) * (sortBy.ascending ? 1 : -1);
  });
  const head = element("tr", {}, ...COLUMNS.map(([name, label]) => {
    const th = element("th", { "data-column": name, scope: "col" }, label);
    if (name === sortBy.column) th.setAttribute("aria-sort", sortBy.ascending ? "ascending" : "descending");
    th.addEventListener("click", () => {
      sortBy = { column: name, ascending: name === sortBy.column ? !sortBy.ascending : true };
      drawTable();
    });
    return th;
  }));
  document.querySelector("#board thead").replaceChildren(head);
  document.querySelector("#board tbody").replaceChildren(...sorted.map((m) => element("tr",
    { "data-model": m.key, "data-origin": m.origin },
    ...COLUMNS.map(([name]) => element("td", { class: ["key", "origin", "family"].includes(name) ? "text" : "" }, cell(name, m))))));
}

function figure(src, caption) {
  return element("figure", {}, element("img", { src, alt: caption, loading: "lazy" }), element("figcaption", {}, caption));
}

const CAPTIONS = { curves: "training curves", confusion: "confusion matrix", mistakes: "mistakes", filters: "first-layer filters" };

function drawModels() {
  const blocks = rows.map((m) => {
    const details = element("details", { class: "model", "data-model": m.key, "data-origin": m.origin },
      element("summary", {}, `model ${m.key} (${m.run ? `${m.origin}: ${m.run}` : m.origin}): ${m.description}`));
    const figures = element("div", { class: "figures" },
      ...Object.entries(m.figures).map(([kind, src]) => figure(src, CAPTIONS[kind] || kind)));
    details.append(figures);
    if (m.summary) {
      const pre = element("pre", { class: "summary" }, "…");
      details.append(pre);
      details.addEventListener("toggle", async () => {
        if (details.open && pre.textContent === "…") {
          const reply = await fetch(m.summary);
          pre.textContent = reply.ok ? await reply.text() : "(no summary)";
        }
      });
    }
    return details;
  });
  document.getElementById("models").replaceChildren(...blocks);
}

async function load() {
  try {
    const reply = await fetch("/api/models");
    const payload = await reply.json();
    if (!reply.ok) throw new Error(payload.error || reply.status);
    rows = payload.models;
    drawTable();
    drawModels();
    if (payload.frontier.length) {
      document.getElementById("frontier").replaceChildren(...payload.frontier.map((src) =>
        element("img", { src, alt: "final test accuracy against parameters and MACs, with the Pareto frontier" })));
      document.getElementById("frontier-box").hidden = false;
    }
    document.body.dataset.loaded = String(rows.length);
  } catch (err) {
    const box = document.getElementById("error");
    box.textContent = `The zoo could not be listed (${err.message}).`;
    box.hidden = false;
  }
}

load();
