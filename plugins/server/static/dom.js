// Building DOM nodes. Text that came from a target or the API is always set with
// textContent (never innerHTML): a banner holding markup stays text.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

export function status(text) {
  return el("span", { class: `status ${text}`, text });
}

// A table whose rows are keyed, so that a record seen twice (stored, then live) is one row.
export class KeyedTable {
  constructor(id, columns) {
    this.columns = columns;
    this.rows = new Map();
    this.body = el("tbody");
    this.table = el("table", { id },
      el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { text: c.title })))),
      this.body);
  }

  upsert(key, values) {
    let row = this.rows.get(key);
    const merged = Object.assign(row ? row.values : {}, values);
    if (!row) {
      row = { tr: el("tr", { "data-key": key }), values: merged };
      this.rows.set(key, row);
      this.body.append(row.tr);
    }
    row.tr.replaceChildren(...this.columns.map((c) =>
      el("td", { class: c.mono ? "mono" : null, text: merged[c.key] ?? "" })));
  }
}

export function when(iso) {
  return iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "Z") : "";
}
