// The page: boots the kernel with klp-web, runs shell commands, and redraws the module list, the
// ftrace table and /sys/kernel/livepatch after every command.
import init, { Kernel, is_livepatch } from "./klp_web.js";

// The same command line `klp run` boots with by default (`?cmdline=...` overrides it).
const CMDLINE = new URLSearchParams(location.search).get("cmdline") ??
  "console=hvc0 root=/dev/ram0 rw";

const $ = (sel) => document.querySelector(sel);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

let kernel = null;
let modules = [];            // from modules.json, plus `livepatch` from each file's .modinfo
const history = [];
let historyPos = 0;

// ---- terminal -----------------------------------------------------------------------------

function run(command) {
  const entry = el("div", { className: "entry" }, el("div", { className: "cmd", textContent: command }));
  const out = el("pre", { className: "out" });
  const result = JSON.parse(kernel.run(command));
  for (const [stream, text] of result.output) {
    out.append(stream === "e" ? el("span", { className: "err", textContent: text }) : text);
  }
  entry.dataset.status = result.status;
  if (out.textContent) entry.append(out);
  $("#screen").append(entry);
  $("#screen").scrollTop = $("#screen").scrollHeight;
  if (command.trim()) {
    history.push(command);
    historyPos = history.length;
  }
  refresh();
  return result;
}

function note(text) {
  $("#screen").append(el("div", { className: "note", textContent: text }));
}

$("#prompt").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = $("#cmd");
  const command = input.value;
  input.value = "";
  if (command.trim()) run(command);
});

$("#cmd").addEventListener("keydown", (ev) => {
  if (ev.key !== "ArrowUp" && ev.key !== "ArrowDown") return;
  ev.preventDefault();
  historyPos = Math.max(0, Math.min(history.length, historyPos + (ev.key === "ArrowUp" ? -1 : 1)));
  ev.target.value = history[historyPos] ?? "";
});

$("#chips").addEventListener("click", (ev) => {
  const cmd = ev.target.closest("button")?.dataset.cmd;
  if (cmd && kernel) run(cmd);
});

$("#screen").addEventListener("click", () => {
  if (!getSelection().toString()) $("#cmd").focus();
});

// ---- module list --------------------------------------------------------------------------

const modName = (stem) => stem.replaceAll("-", "_");

function moduleRow(m, state) {
  const name = modName(m.stem);
  const loaded = state.modules.some((x) => x.name === name);
  const patch = state.patches.find((p) => p.name === name);
  let badge = "not loaded";
  if (patch) badge = patch.enabled ? "enabled" : "disabled";
  else if (loaded) badge = "loaded";
  const buttons = el("div", { className: "actions" });
  const sys = `/sys/kernel/livepatch/${name}/enabled`;
  const defs = [["load", "Load", `insmod ${m.stem}`, !loaded]];
  if (m.livepatch) {
    defs.push(["enable", "Enable", `echo 1 > ${sys}`, !!patch && !patch.enabled]);
    defs.push(["disable", "Disable", `echo 0 > ${sys}`, !!patch && patch.enabled]);
  }
  defs.push(["remove", "Remove", `rmmod ${name}`, loaded]);
  for (const [action, label, cmd, enabled] of defs) {
    const b = el("button", { type: "button", textContent: label, title: cmd, disabled: !enabled });
    b.dataset.action = action;
    b.dataset.cmd = cmd;
    buttons.append(b);
  }
  const row = el("div", { className: "module" },
    el("div", { className: "head" },
      el("code", { textContent: m.stem }),
      el("span", { className: `badge ${badge.replace(" ", "-")}`, textContent: badge }),
      buttons),
    el("p", { textContent: m.description }));
  row.dataset.stem = m.stem;
  return row;
}

function drawModules() {
  const state = JSON.parse(kernel.modules());
  const secondary = (m) => m.stem.startsWith("test_") || m.stem.includes("bench");
  const main = modules.filter((m) => !secondary(m));
  const more = modules.filter(secondary);
  const list = $("#module-list");
  const open = list.querySelector("details")?.open ?? false;
  const details = el("details", { open },
    el("summary", { textContent: `Selftests, benchmarks and broken patches (${more.length})` }),
    ...more.map((m) => moduleRow(m, state)));
  list.replaceChildren(...main.map((m) => moduleRow(m, state)), details);
}

$("#module-list").addEventListener("click", (ev) => {
  const cmd = ev.target.closest("button")?.dataset.cmd;
  if (cmd) run(cmd);
});

// ---- ftrace table and sysfs ---------------------------------------------------------------

function drawFtrace() {
  const ft = JSON.parse(kernel.ftrace());
  $("#ftrace-summary").textContent =
    `${ft.rows.length} patched · ${ft.slots} slots (kernel and modules)`;
  if (!ft.rows.length) {
    $("#ftrace-rows").replaceChildren(el("p", { className: "empty",
      textContent: "No function is patched: every slot calls its original." }));
    return;
  }
  $("#ftrace-rows").replaceChildren(...ft.rows.map((r) => {
    const stack = el("ol", { className: "stack" },
      ...r.stack.map((s, i) => el("li", { className: i === 0 ? "top" : "" },
        el("code", { textContent: s.patch }))));
    const target = r.points_to.original
      ? `${r.points_to.func} (original, entry ${r.points_to.slot})`
      : `${r.points_to.func} (slot ${r.points_to.slot})`;
    const row = el("div", { className: "frow" },
      el("div", { className: "fname" },
        el("code", { textContent: r.name }),
        el("small", { textContent: ` ${r.owner} · slot ${r.slot}` })),
      el("div", { className: "fstack" }, el("span", { className: "label", textContent: "func_stack" }), stack),
      el("div", { className: "fnow" }, el("span", { className: "label", textContent: "slot →" }),
        el("code", { textContent: target })));
    row.dataset.func = r.name;
    return row;
  }));
}

function drawSysfs() {
  const nodes = JSON.parse(kernel.sysfs());
  if (!nodes.length) {
    $("#sysfs-tree").textContent = "(empty: no patch is registered)";
    return;
  }
  const root = "/sys/kernel/livepatch/";
  $("#sysfs-tree").replaceChildren(...nodes.map((n) => {
    const rel = n.path.slice(root.length);
    const depth = rel.split("/").length - 1;
    const base = rel.split("/").pop();
    const line = el("div", { className: n.mode.startsWith("d") ? "dir" : "file" },
      el("span", { className: "mode", textContent: n.mode }),
      "  ".repeat(depth) + base + (n.mode.startsWith("d") ? "/" : ""));
    if (n.value !== null) line.append(el("span", { className: "val", textContent: ` = ${n.value}` }));
    return line;
  }));
}

function refresh() {
  drawModules();
  drawFtrace();
  drawSysfs();
}

// ---- boot ---------------------------------------------------------------------------------

async function bytes(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: ${res.status} ${res.statusText}`);
  return new Uint8Array(await res.arrayBuffer());
}

async function boot() {
  Error.stackTraceLimit = 64; // trap backtraces for oops reports
  await init();
  const manifest = await (await fetch("modules.json")).json();
  const [image, ...files] = await Promise.all(
    [manifest.kernel, ...manifest.modules.map((m) => m.file)].map(bytes));
  const t0 = performance.now();
  kernel = new Kernel(image, CMDLINE);
  const ms = performance.now() - t0;
  modules = manifest.modules.map((m, i) => {
    kernel.add_module(m.stem, files[i]);
    return { ...m, livepatch: is_livepatch(files[i]) };
  });
  const ft = JSON.parse(kernel.ftrace());
  $("#status").textContent =
    `running · booted in ${ms.toFixed(0)} ms · ${ft.slots} ftrace slots · ${CMDLINE}`;
  note("The klp kernel booted on this browser's WebAssembly engine. Load livepatch-sample, " +
    "then cat /proc/cmdline again; or type help.");
  refresh();
  $("#cmd").disabled = false;
  $("#cmd").focus();
  document.body.dataset.state = "ready";
}

boot().catch((err) => {
  console.error(err);
  $("#status").textContent = `boot failed: ${err.message ?? err}`;
  document.body.dataset.state = "error";
});
