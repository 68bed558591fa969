// pentora's web UI: a hash router over four views (scans, new scan, one scan, a diff)
// and a schedules view when the API has one. Every value shown comes from the API and
// is set as text (dom.js), never parsed as HTML.

import { API, ApiError, call, hasRoute, records, whoami } from "./api.js";
import { drawDag, setNodeStatus } from "./dag.js";
import { KeyedTable, clear, el, status, when } from "./dom.js";

const view = document.getElementById("view");
const flash = document.getElementById("flash");
const ENDED = ["completed", "failed", "cancelled", "timeout", "interrupted"];
let leave = () => {}; // stops the current view's polling or event stream

function showError(error) {
  flash.hidden = false;
  flash.replaceChildren(el("span", { text: error.message || String(error) }),
    ...(error.problems || []).map((p) => el("div", { class: "problem",
      text: [p.node, p.key, p.message].filter(Boolean).join(": ") })));
}

function hideError() {
  flash.hidden = true;
  clear(flash);
}

async function route() {
  leave();
  leave = () => {};
  hideError();
  const parts = window.location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  try {
    if (parts[0] === "new") await newScan();
    else if (parts[0] === "scan" && parts[1]) await scanPage(parts[1]);
    else if (parts[0] === "diff" && parts[1] && parts[2]) await diffPage(parts[1], parts[2]);
    else if (parts[0] === "schedules") await schedulesPage();
    else await scanList();
  } catch (e) {
    showError(e);
  }
}

// --- the list of scans, refreshed every few seconds while one is queued or running

async function scanList() {
  const table = el("table", { id: "scans" });
  const compare = el("button", { id: "compare", disabled: true, text: "Compare the two selected" });
  const picked = [];
  compare.addEventListener("click", () => {
    // the older scan first: the diff reads as what changed since then
    const [a, b] = picked.slice().sort((x, y) => (x.started_at || "").localeCompare(y.started_at || ""));
    window.location.hash = `#/diff/${encodeURIComponent(a.id)}/${encodeURIComponent(b.id)}`;
  });
  clear(view).append(el("h2", { text: "Scans" }),
    el("div", { class: "actions" }, el("a", { href: "#/new", text: "Start a scan" }), compare),
    table);
  let timer = null;
  const render = (scans) => {
    const head = el("tr", {}, ...["", "scan", "profile / DAG", "status", "started", "finished",
      "targets", "records", "findings"].map((t) => el("th", { text: t })));
    const rows = scans.map((s) => {
      const box = el("input", { type: "checkbox", class: "pick", "data-id": s.id,
        checked: picked.some((p) => p.id === s.id) });
      box.addEventListener("change", () => {
        const at = picked.findIndex((p) => p.id === s.id);
        if (box.checked && at < 0) picked.push(s);
        if (!box.checked && at >= 0) picked.splice(at, 1);
        while (picked.length > 2) {
          const dropped = picked.shift();
          const other = table.querySelector(`input[data-id="${CSS.escape(dropped.id)}"]`);
          if (other) other.checked = false;
        }
        compare.disabled = picked.length !== 2;
      });
      const targets = Array.isArray(s.targets) ? s.targets.join(", ") : (s.targets ?? "");
      return el("tr", { "data-id": s.id, "data-status": s.status },
        el("td", {}, box),
        el("td", { class: "mono" }, el("a", { href: `#/scan/${encodeURIComponent(s.id)}`, text: s.id })),
        el("td", { text: s.dag }), el("td", {}, status(s.status)),
        el("td", { text: when(s.started_at) }), el("td", { text: when(s.finished_at) }),
        el("td", { class: "mono", text: targets }), el("td", { text: s.records ?? "" }),
        el("td", { text: s.findings ?? "" }));
    });
    table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
    if (!scans.length) table.append(el("caption", { text: "No scans yet." }));
  };
  const refresh = async () => {
    const { scans } = await call("GET", "/scans?limit=100");
    render(scans);
    const live = scans.some((s) => !ENDED.includes(s.status));
    timer = setTimeout(() => refresh().catch(showError), live ? 1500 : 5000);
  };
  leave = () => clearTimeout(timer);
  await refresh();
}

// --- a new scan: a profile, targets and ports, as `pentora scan` takes them

async function newScan() {
  const profiles = await call("GET", "/profiles");
  const select = el("select", { id: "profile", name: "profile" },
    ...profiles.map((p) => el("option", { value: p.name, text: p.description
      ? `${p.name} — ${p.description}` : p.name })));
  const fallback = profiles.find((p) => p.name === "port-scan");
  if (fallback) select.value = fallback.name;
  const targets = el("input", { id: "targets", name: "targets", required: true,
    placeholder: "127.0.0.1, 127.0.0.2/31" });
  const ports = el("input", { id: "ports", name: "ports", placeholder: "22,80,8000-8100 (optional)" });
  const name = el("input", { id: "name", name: "name", placeholder: "(optional)" });
  const form = el("form", { class: "scan-form", id: "scan-form" },
    el("label", { for: "profile", text: "Profile" }), select,
    el("label", { for: "targets", text: "Targets" }), targets,
    el("label", { for: "ports", text: "Ports" }), ports,
    el("label", { for: "name", text: "Name" }), name,
    el("button", { type: "submit", id: "start", text: "Start the scan" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    hideError();
    const body = { targets: targets.value.trim(), profile: select.value };
    if (ports.value.trim()) body.ports = ports.value.trim();
    if (name.value.trim()) body.name = name.value.trim();
    try {
      const created = await call("POST", "/scans", body);
      window.location.hash = `#/scan/${encodeURIComponent(created.id)}`;
    } catch (e) {
      showError(e);
    }
  });
  clear(view).append(el("h2", { text: "New scan" }), form);
}

// --- one scan: its DAG coloured live, progress, ports and findings as they are found

async function scanPage(scanId) {
  const base = `/scans/${encodeURIComponent(scanId)}`;
  const state = el("span", { id: "scan-status" });
  const cancel = el("button", { id: "cancel", text: "Cancel", hidden: true });
  const report = el("a", { id: "report", href: `${API}${base}/results?format=html`,
    target: "_blank", rel: "noopener", text: "HTML report" });
  const dagBox = el("div", { id: "dag-box" }, el("p", { text: "Waiting for the scan to start…" }));
  const bar = el("div", { id: "progress-bar" });
  const nodesText = el("div", { class: "progress-text", id: "progress-nodes" });
  const itemsText = el("div", { class: "progress-text", id: "progress-items" });
  const ports = new KeyedTable("ports", [
    { key: "host", title: "host" }, { key: "port", title: "port" },
    { key: "protocol", title: "protocol" }, { key: "state", title: "state" },
    { key: "service", title: "service" }, { key: "banner", title: "banner", mono: true }]);
  const findings = new KeyedTable("findings", [
    { key: "host", title: "host" }, { key: "port", title: "port" },
    { key: "severity", title: "severity" }, { key: "id", title: "finding" },
    { key: "title", title: "title" }]);
  clear(view).append(
    el("h2", {}, "Scan ", el("span", { class: "mono", text: scanId }), " ", state),
    el("div", { class: "actions" }, report, cancel,
      el("a", { href: "#/scans", text: "All scans" })),
    dagBox, el("div", { class: "bar" }, bar), nodesText, itemsText,
    el("h3", { text: "Ports" }), ports.table, el("h3", { text: "Findings" }), findings.table);

  const statuses = {};
  let svgRoot = null;
  let closed = false;
  let source = null;
  let timer = null;
  let final = null; // the status scan_end gave: the detail may lag behind it a moment
  leave = () => { closed = true; clearTimeout(timer); if (source) source.close(); };

  const setStatus = (text) => {
    state.replaceChildren(status(text));
    state.setAttribute("data-status", text);
    cancel.hidden = ENDED.includes(text);
  };
  cancel.addEventListener("click", async () => {
    try { await call("POST", `${base}/cancel`); } catch (e) { showError(e); }
  });
  const progress = () => {
    const all = Object.values(statuses);
    const done = all.filter((s) => s !== "pending" && s !== "running").length;
    bar.style.width = all.length ? `${Math.round((100 * done) / all.length)}%` : "0";
    nodesText.textContent = `${done} of ${all.length} nodes done`;
  };
  const items = (p) => {
    if (!p) return;
    const parts = [`${p.node}: ${p.done}${p.total != null ? ` of ${p.total}` : ""} items`];
    if (p.rate) parts.push(`${p.rate.toFixed(1)}/s`);
    if (p.eta != null) parts.push(`ETA ${Math.ceil(p.eta)} s`);
    itemsText.textContent = parts.join(", ");
  };
  const nodeStatus = (node, text) => {
    statuses[node] = text;
    if (svgRoot) setNodeStatus(svgRoot, node, text);
    progress();
  };
  const record = (kind, r) => {
    if (!r || typeof r !== "object") return;
    const key = `${r.host}|${r.port}|${r.protocol || "tcp"}`;
    if (kind === "port") ports.upsert(key, { host: r.host, port: r.port, protocol: r.protocol, state: r.state });
    else if (kind === "banner") ports.upsert(key, { host: r.host, port: r.port, protocol: r.protocol, banner: r.data });
    else if (kind === "service") {
      const name = [r.service, r.product, r.version].filter(Boolean).join(" ");
      ports.upsert(key, { host: r.host, port: r.port, protocol: r.protocol, service: name });
    } else if (kind === "vulnerability") {
      findings.upsert(`${r.host}|${r.port}|${r.id}`, { host: r.host, port: r.port ?? "",
        severity: r.severity, id: r.id, title: r.title });
    }
  };

  // the DAG comes from the scan's detail once the store has the scan (a queued scan has none yet)
  const loadDag = async () => {
    const shown = await call("GET", base);
    setStatus(final || shown.scan.status);
    for (const n of shown.nodes || []) if (!(n.node in statuses)) statuses[n.node] = n.status;
    if (shown.scan.dag && shown.scan.dag.nodes) {
      svgRoot = drawDag(shown.scan.dag, statuses);
      dagBox.replaceChildren(svgRoot);
      progress();
      return shown;
    }
    if (!closed) timer = setTimeout(() => loadDag().catch(showError), 1000);
    return shown;
  };
  const shown = await loadDag();
  // what was found before this page opened, from the store; live records are added to
  // the same rows (keyed), so a record read twice is shown once
  if (shown.scan.started_at) {
    try {
      for (const line of await records(scanId)) record(line.kind, line);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 409)) throw e;
    }
  }

  // every event from the first (the server keeps them all): the records found before
  // this page opened come too, and a scan that ended meanwhile still sends its scan_end
  source = new EventSource(`${API}${base}/events?last_event_id=0`);
  source.addEventListener("state", (event) => {
    const data = JSON.parse(event.data);
    setStatus(final || data.status);
    for (const [node, text] of Object.entries(data.nodes || {})) nodeStatus(node, text);
    for (const p of Object.values((data.progress && data.progress.nodes) || {})) items(p);
  });
  source.addEventListener("node_start", (event) => nodeStatus(JSON.parse(event.data).node, "running"));
  for (const type of ["node_complete", "node_failed", "node_skipped", "node_cancelled"]) {
    source.addEventListener(type, (event) => {
      const data = JSON.parse(event.data);
      nodeStatus(data.node, data.status);
    });
  }
  source.addEventListener("node_progress", (event) => items(JSON.parse(event.data)));
  source.addEventListener("record", (event) => {
    const data = JSON.parse(event.data);
    record(data.kind, data.record);
  });
  source.addEventListener("scan_end", (event) => {
    source.close(); // the server ends the stream: no reconnect
    final = JSON.parse(event.data).status;
    setStatus(final);
  });
}

// --- the changes between two stored scans

async function diffPage(oldId, newId) {
  const changes = await call("GET", `/scans/${encodeURIComponent(oldId)}/diff/${encodeURIComponent(newId)}`);
  clear(view).append(el("h2", {}, "Changes from ", el("span", { class: "mono", text: oldId }),
    " to ", el("span", { class: "mono", text: newId })));
  let any = false;
  for (const [aspect, parts] of Object.entries(changes)) {
    if (aspect === "old" || aspect === "new" || !parts || typeof parts !== "object") continue;
    const rows = [];
    for (const [what, cls] of [["added", "added"], ["removed", "removed"], ["changed", "changed"]]) {
      for (const item of parts[what] || []) {
        rows.push(el("tr", { class: cls }, el("td", { text: what }),
          el("td", { class: "mono", text: item.map((v) => (typeof v === "object" && v !== null
            ? JSON.stringify(v) : String(v))).join("  ") })));
      }
    }
    if (!rows.length) continue;
    any = true;
    view.append(el("h3", { text: aspect }),
      el("table", { class: "diff", "data-aspect": aspect }, el("tbody", {}, ...rows)));
  }
  if (!any) view.append(el("p", { id: "no-changes", text: "No changes." }));
}

// --- schedules, when the API serves them

async function schedulesPage() {
  const answer = await call("GET", "/schedules");
  const list = Array.isArray(answer) ? answer : answer.schedules || [];
  const rows = list.map((s) => {
    const toggle = el("button", { text: s.enabled ? "Disable" : "Enable" });
    toggle.addEventListener("click", async () => {
      try {
        await call("PATCH", `/schedules/${encodeURIComponent(s.id)}`, { enabled: !s.enabled });
        route();
      } catch (e) { showError(e); }
    });
    return el("tr", {}, el("td", { class: "mono", text: s.id }), el("td", { class: "mono", text: s.cron }),
      el("td", { text: s.enabled ? "yes" : "no" }), el("td", { text: when(s.next_run) }),
      el("td", {}, s.last_scan ? el("a", { href: `#/scan/${encodeURIComponent(s.last_scan)}`,
        text: s.last_scan }) : ""), el("td", {}, toggle));
  });
  clear(view).append(el("h2", { text: "Schedules" }), el("table", { id: "schedules" },
    el("thead", {}, el("tr", {}, ...["schedule", "cron", "enabled", "next run", "last scan", ""]
      .map((t) => el("th", { text: t })))), el("tbody", {}, ...rows)));
}

async function start() {
  const me = await whoami();
  document.getElementById("who").textContent = `${me.name} (${me.scope})`;
  document.getElementById("logout-csrf").value = me.csrf_token;
  if (await hasRoute("/schedules")) {
    document.querySelector("header nav").append(el("a", { href: "#/schedules", id: "nav-schedules",
      text: "Schedules" }));
  }
  window.addEventListener("hashchange", route);
  await route();
}

start().catch(showError);
