// gdbnb status page. Plain JS, no dependency, no CDN. Every value from the server is shown
// with textContent (never innerHTML), so node values such as "<script>" stay text.
(function () {
  "use strict";

  var params = new URLSearchParams(window.location.search);
  var room = params.get("room");
  // The token may come in the URL (printed at start, like Jupyter's). Keep it for this tab,
  // then take it out of the address bar so it is not bookmarked or shared by accident.
  var token = params.get("token") || sessionStorage.getItem("gdbnb-token") || "";
  if (params.get("token")) {
    sessionStorage.setItem("gdbnb-token", token);
    params.delete("token");
    var q = params.toString();
    history.replaceState(null, "", window.location.pathname + (q ? "?" + q : "") + window.location.hash);
  }
  var api = room ? "api/rooms/" + encodeURIComponent(room) + "/" : "api/";
  var MAX_ACTIVITY = 200;
  var peers = new Map();
  var statusTimer = null;

  function $(id) { return document.getElementById(id); }
  function text(id, value) { $(id).textContent = value == null || value === "" ? "–" : String(value); }
  function el(tag, cls, content) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (content != null) e.textContent = String(content);
    return e;
  }
  function cookie(name) {
    var m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : null;
  }
  function short(value, n) {
    var s = typeof value === "string" ? JSON.stringify(value) : JSON.stringify(value);
    if (s === undefined) s = String(value);
    return s.length > n ? s.slice(0, n - 1) + "…" : s;
  }
  function clock(d) { return (d || new Date()).toLocaleTimeString(); }

  function request(path, options) {
    options = options || {};
    var headers = { "Accept": "application/json" };
    if (token) headers["Authorization"] = "token " + token;
    var xsrf = cookie("_xsrf");  // Jupyter mount: its XSRF check wants this on POST/PUT/DELETE
    if (xsrf) headers["X-XSRFToken"] = xsrf;
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(path, {
      method: options.method || "GET", headers: headers, credentials: "same-origin",
      body: options.body === undefined ? undefined : JSON.stringify(options.body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) throw new Error((data && data.error) || (r.status + " " + r.statusText));
        return data;
      });
    });
  }

  // ------------------------------------------------------------------ status

  function refreshStatus() {
    statusTimer = null;
    return request(api + "status").then(function (s) {
      text("room", s.room);
      document.title = "gdbnb " + s.room;
      text("peer-id", s.peer_id);
      text("relay-url", s.relay_url);
      text("network", s.network ? "on" : "off (no network)");
      text("nodes-count", s.stats && s.stats.nodes);
      text("edges-count", s.stats && s.stats.edges);
      text("oplog-count", s.stats ? s.stats.oplog + " / " + s.stats.oplog_capacity : null);
      text("sync-counts", s.sync ? s.sync.served + " / " + s.sync.applied : null);
      text("store", s.stats && s.stats.store ? s.stats.store : "memory");
      peers.clear();
      (s.peers || []).forEach(function (p) { upsertPeer(p, p.state || "connected"); });
      renderPeers();
    }).catch(function (e) { $("lookup-error").textContent = "status: " + e.message; });
  }
  function scheduleStatus() { if (!statusTimer) statusTimer = setTimeout(refreshStatus, 400); }

  // ------------------------------------------------------------------ peers

  function peerId(p) { return p.peer || p.peer_id || p.id || "?"; }
  function upsertPeer(p, state) {
    var id = peerId(p);
    var old = peers.get(id) || { since: new Date() };
    peers.set(id, { id: id, type: p.type || old.type || "", room: p.room || old.room || "", state: state, since: old.since });
  }
  function renderPeers() {
    var body = $("peers").querySelector("tbody");
    body.replaceChildren();
    peers.forEach(function (p) {
      var tr = el("tr");
      tr.dataset.peer = p.id;
      tr.appendChild(el("td", "mono", p.id));
      tr.appendChild(el("td", null, p.type || "–"));
      tr.appendChild(el("td", "mono", p.room || "–"));
      tr.appendChild(el("td", null, p.state));
      tr.appendChild(el("td", null, clock(p.since)));
      body.appendChild(tr);
    });
    $("peers-count").textContent = String(peers.size);
    $("peers-empty").hidden = peers.size > 0;
  }

  // ------------------------------------------------------------------ activity

  function addActivity(name, what, detail, extra) {
    var li = el("li", "ev-" + name.replace(/[^a-z]+/g, "-"));
    li.appendChild(el("span", "time", clock()));
    li.appendChild(el("span", "what", what));
    li.appendChild(el("span", "id", detail));
    li.appendChild(el("span", "value", extra == null ? "" : extra));
    var list = $("activity");
    list.insertBefore(li, list.firstChild);
    while (list.children.length > MAX_ACTIVITY) list.removeChild(list.lastChild);
  }

  function onNode(name, d) {
    var value = d.node ? short(d.node.value, 300) : "";
    var origin = d.origin && d.origin !== "local" ? " ← " + d.origin.slice(0, 8) : "";
    addActivity(name, name.replace("node:", "node ") + origin, d.id, value);
    scheduleStatus();
  }
  function onPeer(name, d, replayed) {
    var id = peerId(d);
    if (!replayed) {  // replayed history: the status call already gave the current peers
      if (name === "peer:join") upsertPeer(d, "connected");
      else if (name === "peer:leave") peers.delete(id);
      else if (name === "peer:seen" && !peers.has(id)) upsertPeer(d, "seen");
      else if (name === "peer:lost" && peers.has(id) && peers.get(id).state === "seen") peers.delete(id);
      renderPeers();
    }
    addActivity(name, name.replace(":", " "), id, (d.type || "") + (d.room ? " · " + d.room : ""));
  }

  // Recent history first, then the live stream from where it ended (no gap, no duplicate).
  function loadRecent() {
    return request(api + "recent?limit=50").then(function (r) {
      r.events.forEach(function (ev) {
        if (ev.event.indexOf("node:") === 0) onNode(ev.event, ev.data);
        else if (ev.event.indexOf("peer:") === 0) onPeer(ev.event, ev.data, true);
        else addActivity(ev.event, ev.event.replace(":", " "), ev.data.peer || ev.data.url || "", "");
      });
      return r.last_event_id;
    }).catch(function () { return null; });
  }

  function connect(lastId) {
    var url = "events?" + (room ? "room=" + encodeURIComponent(room) + "&" : "") + (token ? "token=" + encodeURIComponent(token) + "&" : "") +
      (lastId ? "lastEventId=" + encodeURIComponent(lastId) : "");
    var es = new EventSource(url, { withCredentials: true });
    var live = $("live");
    es.onopen = function () { live.textContent = "live"; live.className = "badge on"; };
    es.onerror = function () { live.textContent = "reconnecting"; live.className = "badge off"; };
    ["node:added", "node:updated", "node:removed"].forEach(function (n) {
      es.addEventListener(n, function (m) { onNode(n, JSON.parse(m.data)); });
    });
    ["peer:join", "peer:leave", "peer:seen", "peer:lost"].forEach(function (n) {
      es.addEventListener(n, function (m) { onPeer(n, JSON.parse(m.data)); });
    });
    ["sync:served", "sync:applied"].forEach(function (n) {
      es.addEventListener(n, function (m) {
        var d = JSON.parse(m.data);
        var counts = Object.keys(d).filter(function (k) { return k !== "room" && k !== "peer" && typeof d[k] !== "object"; })
          .map(function (k) { return k + "=" + d[k]; }).join(" ");
        addActivity(n, n.replace(":", " "), d.peer || "", counts);
        scheduleStatus();
      });
    });
    es.addEventListener("nodes:bulk", function (m) {
      var d = JSON.parse(m.data);
      addActivity("nodes:bulk", d.kind + " batch", d.origin, JSON.stringify(d.counts));
      scheduleStatus();
    });
    ["relay:up", "relay:down"].forEach(function (n) {
      es.addEventListener(n, function (m) { var d = JSON.parse(m.data); addActivity(n, n.replace(":", " "), d.url || d.relay || "", ""); });
    });
    es.addEventListener("reset", function () { refreshStatus(); });
  }

  // ------------------------------------------------------------------ look up

  function showNodes(nodes, title) {
    var out = $("lookup-results");
    out.replaceChildren();
    out.appendChild(el("p", "muted", title));
    var table = el("table");
    var head = el("tr");
    ["id", "value", "edges", "timestamp"].forEach(function (h) { head.appendChild(el("th", null, h)); });
    table.appendChild(head);
    nodes.forEach(function (n) {
      var tr = el("tr");
      tr.appendChild(el("td", "mono", n.id));
      var td = el("td");
      td.appendChild(el("pre", "value", JSON.stringify(n.value, null, 2)));
      tr.appendChild(td);
      tr.appendChild(el("td", "mono", (n.edges || []).join(", ")));
      tr.appendChild(el("td", "mono", n.timestamp ? n.timestamp.physical + "." + n.timestamp.logical : ""));
      table.appendChild(tr);
    });
    out.appendChild(table);
  }

  $("get-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    $("lookup-error").textContent = "";
    var id = $("get-id").value;
    request(api + "nodes/" + encodeURIComponent(id)).then(function (n) { showNodes([n], "node " + id); })
      .catch(function (e) { $("lookup-error").textContent = e.message; });
  });
  $("map-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    $("lookup-error").textContent = "";
    var query;
    try { query = JSON.parse($("map-query").value || "{}"); } catch (e) { $("lookup-error").textContent = "query: " + e.message; return; }
    var body = { query: query, order: $("map-order").value };
    if ($("map-field").value) body.field = $("map-field").value;
    if ($("map-limit").value !== "") body.limit = parseInt($("map-limit").value, 10);
    request(api + "map", { method: "POST", body: body }).then(function (r) {
      showNodes(r.results, r.count + " result(s)" + (r.truncated ? " (truncated)" : ""));
    }).catch(function (e) { $("lookup-error").textContent = e.message; });
  });

  refreshStatus().then(loadRecent).then(connect);
  setInterval(refreshStatus, 15000);
})();
