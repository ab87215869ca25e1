// Model stub with anywidget's interface (get/set/on/off/send/save_changes) and the scenarios.

class Model {
  constructor(state) { this.state = { ...state }; this.handlers = {}; this.sent = []; }
  get(k) { return this.state[k]; }
  set(k, v) { this.state[k] = v; this.emit(`change:${k}`, v); }
  on(ev, cb) { (this.handlers[ev] ||= []).push(cb); }
  off(ev, cb) { this.handlers[ev] = (this.handlers[ev] || []).filter((f) => f !== cb); }
  send(msg) { this.sent.push(msg); }
  save_changes() { this.saved = (this.saved || 0) + 1; }
  emit(ev, ...args) { for (const cb of this.handlers[ev] || []) cb(...args); }
}

const out = document.getElementById("result");
const result = {};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function finish() { out.textContent = JSON.stringify(result); out.dataset.done = "1"; }

function inkedPixels(el) {
  const c = el.querySelector("canvas");
  if (!c) return -1;
  const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
  return n;
}

function graphNodes(count) {
  const nodes = [];
  for (let i = 0; i < count; i++) {
    nodes.push({ id: `n${i}`, label: `node ${i}`, group: i % 3 ? "a" : "b", edges: i ? [`n${Math.floor(i / 2)}`] : [] });
  }
  return nodes;
}

async function graphScenario(mod, el) {
  const count = Number(new URLSearchParams(location.search).get("nodes") || 300);
  const model = new Model({ height: 560, error: "" });
  mod.default.render({ model, el });
  result.ready = model.sent.some((m) => m.type === "ready");
  model.emit("msg:custom", { type: "snapshot", nodes: graphNodes(count) });
  const status = el.querySelector(".gdb-graph-status");
  await sleep(2500);
  for (let i = 0; i < 50 && !(Number(status.dataset.frames) > 0 && inkedPixels(el) > 0); i++) await sleep(100);
  result.snapshot = { nodes: Number(status.dataset.nodes), links: Number(status.dataset.links), inked: inkedPixels(el) };
  model.emit("msg:custom", { type: "delta", upsert: [{ id: "new", label: "new one", group: "c", edges: ["n0"] }], remove: [] });
  await sleep(1500);
  result.after_add = { nodes: Number(status.dataset.nodes), links: Number(status.dataset.links), inked: inkedPixels(el),
                       frames: Number(status.dataset.frames || 0) };
  model.emit("msg:custom", { type: "delta", upsert: [], remove: ["n1"] });
  await sleep(300);
  result.after_remove = { nodes: Number(status.dataset.nodes), links: Number(status.dataset.links) };
}

async function roomScenario(mod, el) {
  const now = Date.now() / 1000;
  const model = new Model({ room: "demo", peer_id: "abc123", online: true, relays: [{ url: "ws://127.0.0.1:1/", open: true }],
    stats: { nodes: 3, edges: 1, oplog: 4 }, peers: [], activity: [] });
  mod.default.render({ model, el });
  model.set("peers", [{ peer: "p1", type: "browser", state: "connected", since: now, room: "r" },
                      { peer: "p2", type: "superpeer", state: "seen", since: now, room: "r" }]);
  model.set("activity", [{ t: now, event: "peer:join", text: "p1 connected as browser" }]);
  await sleep(100);
  result.peers = Number(el.querySelector(".gdb-peers").dataset.peers);
  result.rows = el.querySelectorAll(".gdb-peers tr").length - 1;
}

async function queryScenario(mod, el) {
  const rows = [];
  for (let i = 0; i < 10; i++) rows.push({ id: `p${i}`, value: { name: `person ${i}`, age: 20 + i }, edges: [] });
  const model = new Model({ query: { age: { $gt: 1 } }, field: "", order: "asc", page: 0, page_size: 10, total: 42,
    rows, columns: ["name", "age"], error: "" });
  mod.default.render({ model, el });
  el.querySelectorAll("th.gdb-sortable")[1].click(); // sort by age
  result.sorted = { field: model.get("field"), order: model.get("order"), saved: model.saved };
  el.querySelectorAll("button")[2].click(); // next page
  result.page = model.get("page");
  result.rows = Number(el.querySelector(".gdb-table").dataset.rows);
}

const scenarios = { graph: graphScenario, room: roomScenario, query: queryScenario };

(async () => {
  const name = new URLSearchParams(location.search).get("widget") || "graph";
  try {
    const mod = await import(`./${name}.js`);
    await scenarios[name](mod, document.getElementById("app"));
  } catch (e) {
    result.error = String(e && e.stack || e);
  }
  finish();
})();
