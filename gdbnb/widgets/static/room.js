// RoomView front end: renders the traits (room, peer_id, online, peers, activity, stats, relays).

function h(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function ago(t) {
  const s = Math.max(0, Math.round(Date.now() / 1000 - t));
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

function render({ model, el }) {
  const root = h("div", "gdb-widget gdb-room");
  el.append(root);

  function draw() {
    root.replaceChildren();
    const head = h("div", "gdb-bar");
    const online = model.get("online");
    const badge = h("span", "gdb-badge " + (online ? "gdb-on" : "gdb-off"), online ? "online" : "offline");
    head.append(h("strong", null, `room ${model.get("room")}`), badge);
    const pid = model.get("peer_id");
    if (pid) head.append(h("span", "gdb-muted", `our peer id ${pid}`));
    root.append(head);

    const stats = model.get("stats") || {};
    const line = ["nodes", "edges", "oplog", "local_writes", "remote_batches", "full_served", "delta_served"]
      .filter((k) => stats[k] !== undefined).map((k) => `${k.replace("_", " ")}: ${stats[k]}`).join(" · ");
    root.append(h("div", "gdb-muted gdb-stats", line));

    const relays = model.get("relays") || [];
    if (relays.length) {
      const r = h("div", "gdb-muted");
      r.textContent = "relays: " + relays.map((x) => `${x.url} ${x.open ? "✓" : "✗"}`).join(", ");
      root.append(r);
    }

    const peers = model.get("peers") || [];
    const table = h("table", "gdb-table gdb-peers");
    table.dataset.peers = String(peers.filter((p) => p.state === "connected").length);
    const hr = h("tr");
    ["peer", "type", "state", "since"].forEach((c) => hr.append(h("th", null, c)));
    table.append(hr);
    if (!peers.length) {
      const tr = h("tr");
      const td = h("td", "gdb-muted", online ? "no peer yet" : "not connected to the room (rtc=False)");
      td.colSpan = 4;
      tr.append(td);
      table.append(tr);
    }
    for (const p of peers) {
      const tr = h("tr", "gdb-state-" + p.state);
      tr.append(h("td", "gdb-mono", p.peer), h("td", null, p.type || "browser"),
        h("td", null, p.state), h("td", "gdb-muted", ago(p.since)));
      table.append(tr);
    }
    root.append(table);

    const act = model.get("activity") || [];
    const list = h("ol", "gdb-activity");
    for (const a of act.slice(0, 30)) {
      const li = h("li");
      li.append(h("span", "gdb-muted", new Date(a.t * 1000).toLocaleTimeString() + " "), h("span", null, a.text));
      list.append(li);
    }
    if (act.length) root.append(h("div", "gdb-sub", "activity"), list);
  }

  const names = ["room", "peer_id", "online", "peers", "activity", "stats", "relays"];
  names.forEach((n) => model.on(`change:${n}`, draw));
  draw();
  return () => names.forEach((n) => model.off(`change:${n}`, draw));
}

export default { render };
