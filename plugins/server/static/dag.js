// A scan's DAG drawn as SVG: nodes in layers by topological depth (left to right), edges
// from depends_on (solid) and from config values naming another node (dashed: data
// read from that node, e.g. `input: targets`). Each node's colour is its status class.

const SVG = "http://www.w3.org/2000/svg";
const BOX_W = 170, BOX_H = 30, GAP_X = 60, GAP_Y = 16, PAD = 12;

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

// Every string anywhere in a config value (nested lists and mappings too).
function strings(value, out = []) {
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) value.forEach((v) => strings(v, out));
  else if (value && typeof value === "object") Object.values(value).forEach((v) => strings(v, out));
  return out;
}

// A data edge: a config value naming another node (`input: targets`) or a key another
// node writes (its `output`, e.g. the merger's `inputs: [icmp_hosts, …]`).
export function edges(nodes) {
  const ids = new Set(nodes.map((n) => n.instance_id));
  const writers = new Map();
  for (const node of nodes) {
    const output = (node.config || {}).output;
    if (typeof output === "string") writers.set(output, node.instance_id);
  }
  const out = [];
  for (const node of nodes) {
    const deps = new Set(node.depends_on || []);
    for (const dep of deps) if (ids.has(dep)) out.push({ from: dep, to: node.instance_id, data: false });
    const { output, ...read } = node.config || {};
    const sources = new Set();
    for (const text of strings(read)) {
      const from = ids.has(text) ? text : writers.get(text);
      if (from && from !== node.instance_id && !deps.has(from)) sources.add(from);
    }
    for (const from of sources) out.push({ from, to: node.instance_id, data: true });
  }
  return out;
}

// depth(n) = 0 without upstream nodes, else 1 + the deepest upstream node's depth.
export function layers(nodes, links) {
  const upstream = new Map(nodes.map((n) => [n.instance_id, []]));
  for (const e of links) upstream.get(e.to).push(e.from);
  const depth = new Map();
  const visiting = new Set();
  const visit = (id) => {
    if (depth.has(id)) return depth.get(id);
    if (visiting.has(id)) return 0; // a cycle cannot be stored, but never loop on one
    visiting.add(id);
    const d = upstream.get(id).reduce((m, up) => Math.max(m, visit(up) + 1), 0);
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  const result = [];
  for (const n of nodes) {
    const d = visit(n.instance_id);
    (result[d] = result[d] || []).push(n);
  }
  return result.filter(Boolean);
}

export function drawDag(dag, statuses) {
  const nodes = dag.nodes || [];
  const links = edges(nodes);
  const columns = layers(nodes, links);
  const height = Math.max(...columns.map((c) => c.length), 1) * (BOX_H + GAP_Y) + 2 * PAD;
  const width = columns.length * (BOX_W + GAP_X) - GAP_X + 2 * PAD;
  const root = svg("svg", { class: "dag", id: "dag", width, height,
                            viewBox: `0 0 ${width} ${height}`, role: "img" });
  const where = new Map();
  columns.forEach((column, x) => {
    const top = (height - column.length * (BOX_H + GAP_Y) + GAP_Y) / 2;
    column.forEach((node, y) => {
      where.set(node.instance_id, { x: PAD + x * (BOX_W + GAP_X), y: top + y * (BOX_H + GAP_Y) });
    });
  });
  for (const e of links) {
    const a = where.get(e.from), b = where.get(e.to);
    const x1 = a.x + BOX_W, y1 = a.y + BOX_H / 2, x2 = b.x, y2 = b.y + BOX_H / 2;
    const mid = (x1 + x2) / 2;
    root.append(svg("path", { class: e.data ? "data" : "dep",
                              d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}` }));
  }
  for (const node of nodes) {
    const { x, y } = where.get(node.instance_id);
    const state = statuses[node.instance_id] || "pending";
    const g = svg("g", { class: `node node-${state}`, "data-node": node.instance_id,
                         "data-status": state, transform: `translate(${x},${y})` });
    const title = svg("title");
    title.textContent = `${node.instance_id} (${node.module_type}): ${state}`;
    const label = svg("text", { x: 8, y: BOX_H / 2 + 4 });
    const name = node.instance_id;
    label.textContent = name.length > 24 ? `${name.slice(0, 23)}…` : name;
    g.append(title, svg("rect", { width: BOX_W, height: BOX_H }), label);
    root.append(g);
  }
  return root;
}

export function setNodeStatus(root, nodeId, state) {
  for (const g of root.querySelectorAll("g.node")) {
    if (g.getAttribute("data-node") !== nodeId) continue;
    g.setAttribute("class", `node node-${state}`);
    g.setAttribute("data-status", state);
    const title = g.querySelector("title");
    title.textContent = title.textContent.replace(/: [a-z]+$/, `: ${state}`);
  }
}
