// The page: boots the kernel with klp-web, runs shell commands, and redraws the module list, the
// ftrace table, the tasks and /sys/kernel/livepatch after every command. The module list is the
// kernel's /lib/modules/<release>; a file chosen with "Upload module" or dropped on the page is
// written into the kernel's /tmp, where `insmod /tmp/NAME` loads it. "Build a patch" compares two
// builds of an object (chosen or dropped on its two slots) with klp-build, as `klp build --orig
// --patched` does, shows the report, and writes the live patch module to /tmp/NAME.wasm.
//
// The kernel's tasks run on JS Promise Integration: anything that may run them (a command, an
// upload, idle time) is a job that `kernel_drive` runs through WebAssembly.promising, one at a
// time (jobs queue); while the page is idle, a timer gives the kernel its time, so kthreads,
// kworkers and a transition's retries go on between commands.
import init, { Kernel, build_patch, is_livepatch } from "./klp_web.js";

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
let driveRaw = null;         // WebAssembly.promising(kernel_drive)
let moduleDir = "";          // /lib/modules/<release>
let modules = [];            // its files, as kernel.module_files() lists them
const uploads = new Map();   // file name in /tmp -> { size, livepatch, built }, as written here
const buildFiles = { orig: null, patched: null }; // the File in each slot of "Build a patch"
let built = null;            // the last patch built here: { name, path }
const history = [];
let historyPos = 0;

// ---- jobs: everything that may run kernel tasks, one at a time ----------------------------

let queue = Promise.resolve();
let pending = 0;

// Runs `begin(kernel)` (it sets the job) and the job; resolves to the job's output (parsed).
function job(begin) {
  pending++;
  const run = queue.then(async () => {
    try {
      begin(kernel);
      await driveRaw(kernel.__wbg_ptr);
      return JSON.parse(kernel.take_output());
    } finally {
      pending--;
    }
  });
  queue = run.catch(() => {});
  return run;
}

// Idle time: every IDLE_MS of the page's time with no job queued, the kernel runs as long.
// `?idle=0` turns it off: the kernel then runs only in commands, as under `klp run -c`.
const IDLE_MS = 250;
const IDLE = new URLSearchParams(location.search).get("idle") !== "0";
setInterval(() => {
  if (!kernel || pending || !IDLE) return;
  job((k) => k.begin_idle(IDLE_MS)).then((r) => {
    if (r.error) note(`idle: ${r.error}`, true);
    if (!pending) drawLive();
  }, (err) => note(`idle: ${err.message ?? err}`, true));
}, IDLE_MS);

// ---- terminal -----------------------------------------------------------------------------

async function run(command) {
  const entry = el("div", { className: "entry" }, el("div", { className: "cmd", textContent: command }));
  const out = el("pre", { className: "out" });
  if (command.trim()) {
    history.push(command);
    historyPos = history.length;
  }
  const result = await job((k) => k.begin_script(command));
  for (const [stream, text] of result.output) {
    out.append(stream === "e" ? el("span", { className: "err", textContent: text }) : text);
  }
  entry.dataset.status = result.status;
  if (out.textContent) entry.append(out);
  $("#screen").append(entry);
  $("#screen").scrollTop = $("#screen").scrollHeight;
  refresh();
  return result;
}

function note(text, error = false) {
  $("#screen").append(el("div", { className: error ? "note err" : "note", textContent: text }));
  $("#screen").scrollTop = $("#screen").scrollHeight;
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

// What insmod calls a module loaded from a file: its stem with `-` as `_`.
const modName = (stem) => stem.replaceAll("-", "_");

// A module file: `file` its name, `load` what insmod is given (a stem for /lib/modules, a path
// for /tmp), `stem` and `name` (the module's name once loaded).
function moduleRow(m, state) {
  const loaded = state.modules.some((x) => x.name === m.name);
  const patch = state.patches.find((p) => p.name === m.name);
  let badge = "not loaded";
  if (patch) badge = patch.enabled ? "enabled" : "disabled";
  else if (loaded) badge = "loaded";
  const buttons = el("div", { className: "actions" });
  const sys = `/sys/kernel/livepatch/${m.name}/enabled`;
  const defs = [["load", "Load", `insmod ${m.load}`, !loaded]];
  if (m.livepatch) {
    defs.push(["enable", "Enable", `echo 1 > ${sys}`, !!patch && !patch.enabled]);
    defs.push(["disable", "Disable", `echo 0 > ${sys}`, !!patch && patch.enabled]);
  }
  defs.push(["remove", "Remove", `rmmod ${m.name}`, loaded]);
  for (const [action, label, cmd, enabled] of defs) {
    const b = el("button", { type: "button", textContent: label, title: cmd, disabled: !enabled });
    b.dataset.action = action;
    b.dataset.cmd = cmd;
    buttons.append(b);
  }
  const row = el("div", { className: "module" },
    el("div", { className: "head" },
      el("code", { textContent: m.stem, title: m.path }),
      el("span", { className: `badge ${badge.replace(" ", "-")}`, textContent: badge }),
      buttons),
    el("p", { textContent: m.description }));
  row.dataset.stem = m.stem;
  row.dataset.file = m.file;
  return row;
}

const stemOf = (file) => file.replace(/\.wasm$/, "");

function drawModules() {
  const state = JSON.parse(kernel.modules());
  const secondary = (m) => m.stem.startsWith("test_") || m.stem.startsWith("test-") ||
    m.stem.includes("bench");
  const main = modules.filter((m) => !secondary(m));
  const more = modules.filter(secondary);
  const list = $("#module-list");
  const open = list.querySelector("details")?.open ?? false;
  const details = el("details", { open },
    el("summary", { textContent: `Selftests, benchmarks and broken patches (${more.length})` }),
    ...more.map((m) => moduleRow(m, state)));
  list.replaceChildren(...main.map((m) => moduleRow(m, state)), details);

  const uploaded = [...uploads].map(([file, u]) => ({
    file,
    stem: stemOf(file),
    name: modName(stemOf(file)),
    path: `/tmp/${file}`,
    load: `/tmp/${file}`,
    livepatch: u.livepatch,
    description: `${u.size} bytes, ${u.built ? "built" : "uploaded"}` +
      `${u.livepatch ? " · a livepatch module" : ""}`,
  }));
  $("#uploads").hidden = !uploaded.length;
  $("#upload-list").replaceChildren(...uploaded.map((m) => moduleRow(m, state)));
  if (built) $("#build-load").disabled = state.modules.some((m) => m.name === built.name);
}

$("#modules").addEventListener("click", (ev) => {
  const cmd = ev.target.closest(".module button")?.dataset.cmd;
  if (cmd) run(cmd);
});

// ---- uploads: the file button and drag and drop -------------------------------------------

// A file name as it goes into /tmp: its last component, with anything but letters, digits,
// `.`, `_` and `-` made `_` (no `/`, nothing the shell would split or expand).
function safeName(name) {
  const base = name.split(/[\\/]/).pop().replace(/[^A-Za-z0-9._-]/g, "_");
  return /^\.*$/.test(base) ? "upload.wasm" : base;
}

async function upload(files) {
  if (!kernel) return;
  for (const file of files) {
    const name = safeName(file.name);
    const path = `/tmp/${name}`;
    let data;
    try {
      data = new Uint8Array(await file.arrayBuffer());
      const r = await job((k) => k.begin_put_file(path, data));
      if (r.error) throw new Error(r.error);
    } catch (err) {
      note(`could not write ${path}: ${err.message ?? err}`, true);
      continue;
    }
    uploads.set(name, { size: data.length, livepatch: is_livepatch(data), built: false });
    note(`wrote ${path} (${data.length} bytes); insmod ${path} to load it`);
    await run(`ls -l ${path}`);
  }
}

$("#upload").addEventListener("change", async (ev) => {
  await upload([...ev.target.files]);
  ev.target.value = ""; // the same file again is a change too
  $("#cmd").focus();
});

// Dropping a file anywhere on the page uploads it.
const carriesFiles = (ev) => ev.dataTransfer?.types?.includes("Files");
let dragDepth = 0;
document.addEventListener("dragenter", (ev) => {
  if (!carriesFiles(ev) || !kernel) return;
  ev.preventDefault();
  dragDepth++;
  document.body.classList.add("dropping");
});
document.addEventListener("dragover", (ev) => {
  if (!carriesFiles(ev) || !kernel) return;
  ev.preventDefault();
  ev.dataTransfer.dropEffect = "copy";
});
document.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) document.body.classList.remove("dropping");
});
function dragEnded() {
  dragDepth = 0;
  document.body.classList.remove("dropping", "on-slot");
  for (const slot of document.querySelectorAll(".slot.over")) slot.classList.remove("over");
}
document.addEventListener("drop", (ev) => {
  dragEnded();
  if (!carriesFiles(ev)) return;
  ev.preventDefault();
  upload([...ev.dataTransfer.files]);
});

// ---- build a patch: two builds of an object in, a live patch module in /tmp out -------------

// The CLI's default patch name: `livepatch_` and the patched build's file stem, anything but
// letters and digits as `_`.
function defaultPatchName(file) {
  const stem = file.replace(/(.)\.[^.]*$/, "$1");
  return `livepatch_${stem.replace(/[^A-Za-z0-9]/g, "_")}`;
}

function setBuildFile(which, file) {
  buildFiles[which] = file;
  const slot = document.querySelector(`.slot[data-slot="${which}"]`);
  slot.querySelector(".file").textContent = `${file.name} (${file.size} bytes)`;
  slot.classList.add("chosen");
}

for (const which of ["orig", "patched"]) {
  const slot = document.querySelector(`.slot[data-slot="${which}"]`);
  slot.querySelector("input").addEventListener("change", (ev) => {
    if (ev.target.files.length) setBuildFile(which, ev.target.files[0]);
    ev.target.value = "";
  });
  // A file dropped on a slot is that build, not an upload to /tmp.
  slot.addEventListener("dragover", (ev) => {
    if (!carriesFiles(ev) || !kernel) return;
    ev.preventDefault();
    ev.stopPropagation();
    ev.dataTransfer.dropEffect = "copy";
    slot.classList.add("over");
    document.body.classList.add("on-slot");
  });
  slot.addEventListener("dragleave", () => {
    slot.classList.remove("over");
    document.body.classList.remove("on-slot");
  });
  slot.addEventListener("drop", (ev) => {
    if (!carriesFiles(ev)) return;
    ev.preventDefault();
    ev.stopPropagation();
    dragEnded();
    if (kernel && ev.dataTransfer.files.length) setBuildFile(which, ev.dataTransfer.files[0]);
  });
}

// Shows what the build said: the report, then the outcome (an error in red).
function showBuild(report, outcome, error) {
  const pre = $("#build-report");
  pre.hidden = false;
  pre.dataset.state = error ? "error" : "ok";
  pre.replaceChildren(report, el("span", { className: error ? "err" : "ok", textContent: outcome }));
}

async function buildPatch() {
  const { orig, patched } = buildFiles;
  if (!orig || !patched) {
    showBuild("", "choose the original and the patched build first", true);
    return;
  }
  $("#build-load").hidden = true;
  built = null;
  const object = $("#build-object").value.trim();
  const name = $("#build-name").value.trim() || defaultPatchName(patched.name);
  const [a, b] = await Promise.all([orig.arrayBuffer(), patched.arrayBuffer()]);
  const result = build_patch(object, name, $("#build-replace").checked, $("#build-handled").value,
    new Uint8Array(a), new Uint8Array(b));
  const { report, error, wasm } = result;
  result.free();
  if (!wasm) {
    showBuild(report, `klp build: ${error}`, true);
    return;
  }
  const path = `/tmp/${name}.wasm`;
  const written = await job((k) => k.begin_put_file(path, wasm));
  if (written.error) {
    showBuild(report, `could not write ${written.error}`, true);
    return;
  }
  showBuild(report, `wrote ${path} (${wasm.length} bytes)`, false);
  uploads.set(`${name}.wasm`, { size: wasm.length, livepatch: true, built: true });
  built = { name, path };
  const load = $("#build-load");
  load.dataset.cmd = `insmod ${path}`;
  load.title = load.dataset.cmd;
  load.hidden = false;
  note(`built ${path} (${wasm.length} bytes); insmod ${path} to load it`);
  await run(`ls -l ${path}`);
}

$("#build-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const button = $("#build-run");
  button.disabled = true;
  try {
    await buildPatch();
  } catch (err) {
    showBuild("", `klp build: ${err.message ?? err}`, true);
  } finally {
    button.disabled = false;
  }
});

$("#build-load").addEventListener("click", (ev) => {
  if (ev.target.dataset.cmd) run(ev.target.dataset.cmd);
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
    const target = r.points_to.slot === null
      ? r.points_to.func
      : r.points_to.original
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

// ---- tasks: each task, its state, its patch_state and where it sleeps ----------------------

// patch_state as /proc/<pid>/patch_state reads it: -1 KLP_UNDEFINED (no transition), 0
// unpatched, 1 patched.
const PATCH_STATE = { "-1": "—", 0: "unpatched", 1: "patched" };
// Scheduler and sleep functions: a task "is blocked in" the first frame below them.
const SLEEP_FUNCS = /^(__)?(schedule|schedule_timeout\w*|msleep\w*|cond_resched|wait_\w+|do_wait\w*|worker_thread|kthread|klp_\w+|__klp_\w+)$/;

function drawTasks() {
  const t = JSON.parse(kernel.tasks());
  const patched = new Set(JSON.parse(kernel.ftrace()).rows.map((r) => r.name.split(" ")[0]));
  const tr = t.transition;
  const target = tr ? (tr.target === "patched" ? 1 : 0) : null;
  $("#tasks-summary").textContent = tr
    ? `${tr.patch}: ${tr.target === "patched" ? "patching" : "unpatching"} transition in progress`
    : `${t.tasks.length} tasks · no transition`;
  $("#tasks").dataset.transition = tr ? tr.patch : "";
  for (const b of $("#tasks-actions").querySelectorAll("button")) {
    b.disabled = !tr;
    if (tr) b.dataset.cmd = b.dataset.action === "force"
      ? `echo 1 > /sys/kernel/livepatch/${tr.patch}/force`
      : `echo ${target === 1 ? 0 : 1} > /sys/kernel/livepatch/${tr.patch}/enabled`;
  }
  const rows = t.tasks.map((task) => {
    const behind = tr !== null && task.patch_state !== target;
    const changed = task.stack.find((f) => patched.has(f));
    const blockedIn = changed ?? task.stack.find((f) => !SLEEP_FUNCS.test(f)) ?? task.stack[0] ?? "";
    const row = el("tr", { className: behind ? "behind" : "" },
      el("td", { textContent: task.pid }),
      el("td", {}, el("code", { textContent: task.comm })),
      el("td", { textContent: task.state }),
      el("td", { className: "pstate", textContent: PATCH_STATE[task.patch_state] ?? task.patch_state }),
      el("td", {}, el("code", { className: changed ? "changed" : "", textContent: blockedIn,
        title: task.stack.join("\n") })));
    row.dataset.pid = task.pid;
    row.dataset.patchState = task.patch_state;
    return row;
  });
  $("#tasks-rows").replaceChildren(...rows);
}

$("#tasks-actions").addEventListener("click", (ev) => {
  const cmd = ev.target.closest("button")?.dataset.cmd;
  if (cmd && kernel) run(cmd);
});

// What idle time changes: the tasks, the transition, the func_stacks, sysfs.
function drawLive() {
  drawTasks();
  drawFtrace();
  drawSysfs();
}

function refresh() {
  drawModules();
  drawLive();
}

// ---- boot ---------------------------------------------------------------------------------

async function bytes(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: ${res.status} ${res.statusText}`);
  return new Uint8Array(await res.arrayBuffer());
}

async function boot() {
  Error.stackTraceLimit = 64; // trap backtraces for oops reports
  const wasm = await init();
  driveRaw = WebAssembly.promising(wasm.kernel_drive);
  // modules.json: the kernel's file and each module's description (the modules themselves are
  // in the core, at /lib/modules/<release>).
  const manifest = await (await fetch("modules.json")).json();
  const image = await bytes(manifest.kernel);
  const t0 = performance.now();
  kernel = new Kernel(image, CMDLINE);
  const ms = performance.now() - t0;
  const described = new Map(manifest.modules.map((m) => [m.stem, m.description]));
  const listing = JSON.parse(kernel.module_files());
  moduleDir = listing.dir;
  modules = listing.files.map((f) => ({
    file: f.name,
    stem: stemOf(f.name),
    name: modName(stemOf(f.name)),
    path: `${moduleDir}/${f.name}`,
    load: stemOf(f.name),
    livepatch: f.livepatch,
    description: described.get(stemOf(f.name)) ?? `${f.size} bytes`,
  }));
  $("#modules-dir").textContent = moduleDir;
  const ft = JSON.parse(kernel.ftrace());
  $("#status").textContent =
    `running · booted in ${ms.toFixed(0)} ms · ${ft.slots} ftrace slots · ${CMDLINE}`;
  note("The klp kernel booted on this browser's WebAssembly engine. Load livepatch-sample, " +
    "then cat /proc/cmdline again; drop a module's .wasm on the page to put it in /tmp; " +
    "or type help.");
  refresh();
  $("#cmd").disabled = false;
  $("#upload").disabled = false;
  for (const id of ["#build-orig", "#build-patched", "#build-run"]) $(id).disabled = false;
  $("#cmd").focus();
  document.body.dataset.state = "ready";
}

boot().catch((err) => {
  console.error(err);
  $("#status").textContent = `boot failed: ${err.message ?? err}`;
  document.body.dataset.state = "error";
});
