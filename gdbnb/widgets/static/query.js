// QueryView front end: the query editor (JSON), the table of the current page, sorting, paging.
// The Python side runs the query; this only renders `rows` and sets query/field/order/page.

function h(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function cell(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") { const s = JSON.stringify(v); return s.length > 80 ? s.slice(0, 77) + "…" : s; }
  return String(v);
}

function render({ model, el }) {
  const root = h("div", "gdb-widget gdb-query");
  const editor = h("div", "gdb-bar");
  const input = h("textarea", "gdb-query-input");
  input.rows = 2;
  input.spellcheck = false;
  const run = h("button", "gdb-button", "Run");
  const error = h("div", "gdb-error");
  editor.append(input, run);
  const table = h("table", "gdb-table");
  const pager = h("div", "gdb-bar");
  const prev = h("button", "gdb-button", "‹ prev");
  const next = h("button", "gdb-button", "next ›");
  const info = h("span", "gdb-muted");
  pager.append(prev, info, next);
  root.append(editor, error, table, pager);
  el.append(root);

  const showQuery = () => { input.value = JSON.stringify(model.get("query") || {}); };

  function submit() {
    let q;
    try { q = input.value.trim() ? JSON.parse(input.value) : null; }
    catch (e) { error.textContent = `invalid JSON: ${e.message}`; return; }
    if (q !== null && (typeof q !== "object" || Array.isArray(q))) { error.textContent = "the query must be a JSON object"; return; }
    error.textContent = "";
    model.set("query", q);
    model.set("page", 0);
    model.save_changes();
  }
  run.addEventListener("click", submit);
  input.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey || e.shiftKey)) { e.preventDefault(); submit(); } });

  function go(delta) {
    model.set("page", Math.max(0, model.get("page") + delta));
    model.save_changes();
  }
  prev.addEventListener("click", () => go(-1));
  next.addEventListener("click", () => go(1));

  function sortBy(col) {
    if (model.get("field") === col) model.set("order", model.get("order") === "asc" ? "desc" : "asc");
    else { model.set("field", col); model.set("order", "asc"); }
    model.set("page", 0);
    model.save_changes();
  }

  function draw() {
    const rows = model.get("rows") || [];
    const cols = model.get("columns") || [];
    const field = model.get("field");
    const arrow = model.get("order") === "asc" ? " ▲" : " ▼";
    table.replaceChildren();
    table.dataset.rows = String(rows.length);
    const hr = h("tr");
    hr.append(h("th", null, "id"));
    for (const c of cols) {
      const th = h("th", "gdb-sortable", c + (c === field ? arrow : ""));
      th.title = "sort by value." + c;
      th.addEventListener("click", () => sortBy(c));
      hr.append(th);
    }
    hr.append(h("th", null, "edges"));
    table.append(hr);
    for (const r of rows) {
      const tr = h("tr");
      tr.append(h("td", "gdb-mono", r.id));
      const v = r.value;
      if (cols.length) for (const c of cols) tr.append(h("td", null, v && typeof v === "object" ? cell(v[c]) : ""));
      else tr.append(h("td", null, cell(v)));
      tr.append(h("td", "gdb-muted", String((r.edges || []).length)));
      table.append(tr);
    }
    const total = model.get("total");
    const size = Math.max(1, model.get("page_size"));
    const page = model.get("page");
    const first = total ? page * size + 1 : 0;
    info.textContent = `${first}–${Math.min(total, (page + 1) * size)} of ${total}` + (field ? ` · sorted by ${field}` : "");
    prev.disabled = page <= 0;
    next.disabled = (page + 1) * size >= total;
    const err = model.get("error");
    if (err) error.textContent = err; else if (!error.textContent.startsWith("invalid")) error.textContent = "";
  }

  const names = ["rows", "columns", "total", "page", "field", "order", "error"];
  names.forEach((n) => model.on(`change:${n}`, draw));
  model.on("change:query", showQuery);
  showQuery();
  draw();
  return () => { names.forEach((n) => model.off(`change:${n}`, draw)); model.off("change:query", showQuery); };
}

export default { render };
