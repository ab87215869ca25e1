// GraphView front end. `ForceGraph` is the vendored force-graph bundle, inlined before this
// module by gdbnb/widgets/_bundle.py. Protocol (custom messages over the widget comm):
//   -> {type: "ready"}                       we ask for a snapshot (on every render)
//   <- {type: "snapshot", nodes: [{id, label, group, edges}]}
//   <- {type: "delta", upsert: [...], remove: [id]}   coalesced, at most every ~100 ms
//   -> {type: "details", id}  <- {type: "details", node: {id, value, edges, timestamp}}

function h(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function render({ model, el }) {
  const root = h("div", "gdb-widget gdb-graph");
  const bar = h("div", "gdb-bar");
  const status = h("span", "gdb-status gdb-graph-status", "waiting for data…");
  status.dataset.nodes = "0";
  status.dataset.links = "0";
  const error = h("span", "gdb-error");
  bar.append(h("strong", null, "GenosDB graph"), status, error);
  const body = h("div", "gdb-graph-body");
  const canvasBox = h("div", "gdb-graph-canvas");
  const details = h("pre", "gdb-details");
  details.hidden = true;
  body.append(canvasBox, details);
  root.append(bar, body);
  el.append(root);

  const nodes = new Map(); // id -> node object (force-graph keeps x/y/vx/vy on it)
  let frames = 0;
  const graph = ForceGraph()(canvasBox)
    .height(model.get("height"))
    .width(el.clientWidth || 800)
    .nodeId("id")
    .nodeLabel((n) => `${n.label}${n.group ? " · " + n.group : ""}\n${n.id}`)
    .nodeAutoColorBy("group")
    .nodeRelSize(4)
    .linkColor(() => "rgba(128,128,128,0.45)")
    .linkDirectionalArrowRelPos(1)
    .cooldownTicks(300) // the layout settles, then redraws stop (autoPauseRedraw) until something changes
    .cooldownTime(15000)
    .onRenderFramePost(() => { frames += 1; status.dataset.frames = String(frames); })
    .onNodeClick((n) => {
      model.send({ type: "details", id: n.id });
      details.hidden = false;
      details.textContent = `${n.id}\nloading…`;
    })
    .onBackgroundClick(() => { details.hidden = true; });

  function upsert(s) {
    const cur = nodes.get(s.id);
    if (cur) { cur.label = s.label; cur.group = s.group; cur.edges = s.edges; }
    else nodes.set(s.id, { id: s.id, label: s.label, group: s.group, edges: s.edges });
  }

  function redraw() {
    const links = [];
    for (const n of nodes.values()) {
      for (const t of n.edges) if (nodes.has(t)) links.push({ source: n.id, target: t });
    }
    const big = nodes.size > 2000;
    graph.linkDirectionalArrowLength(links.length > 3000 ? 0 : 3)
      .nodeRelSize(big ? 2 : 4)
      .graphData({ nodes: Array.from(nodes.values()), links });
    status.dataset.nodes = String(nodes.size);
    status.dataset.links = String(links.length);
    status.textContent = `${nodes.size} nodes · ${links.length} links`;
  }

  function onMessage(msg) {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "snapshot") {
      const keep = new Set(msg.nodes.map((s) => s.id));
      for (const id of [...nodes.keys()]) if (!keep.has(id)) nodes.delete(id);
      msg.nodes.forEach(upsert);
      redraw();
    } else if (msg.type === "delta") {
      msg.remove.forEach((id) => nodes.delete(id));
      msg.upsert.forEach(upsert);
      redraw();
    } else if (msg.type === "details") {
      details.hidden = false;
      details.textContent = JSON.stringify(msg.node, null, 2);
    }
  }

  const showError = () => { error.textContent = model.get("error") || ""; };
  const resize = () => graph.height(model.get("height"));
  model.on("msg:custom", onMessage);
  model.on("change:error", showError);
  model.on("change:height", resize);
  showError();

  let ro = null;
  if (typeof ResizeObserver !== "undefined") {
    ro = new ResizeObserver(() => { if (canvasBox.clientWidth) graph.width(canvasBox.clientWidth); });
    ro.observe(canvasBox);
  }
  model.send({ type: "ready" });

  return () => {
    model.off("msg:custom", onMessage);
    model.off("change:error", showError);
    model.off("change:height", resize);
    if (ro) ro.disconnect();
    graph.pauseAnimation();
    if (graph._destructor) graph._destructor();
  };
}

export default { render };
