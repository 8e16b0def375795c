// End-to-end test of the browser demo: Debian's chromium, headless, driven by playwright-core,
// against web/dist served on localhost (web/test.sh serves it and sets KLP_WEB_URL).
//
// Boot; `cat /proc/cmdline` shows the original; Load on livepatch-sample patches it (the
// terminal shows the insmod and `this has been live patched`, the ftrace view shows the
// func_stack and where the slot points, sysfs shows the patch); Disable brings the original
// back; the whole transcript, dmesg included (timestamps masked), equals what `klp run -c` prints
// for the same commands, and so does the oops of a deliberate kernel bug (trap message and call
// trace from the browser's stack). The module list is `ls /lib/modules/<release>` as the CLI
// prints it. A module uploaded with the file button (and one dropped on the page) lands in the
// kernel's /tmp, where `insmod /tmp/NAME` loads it (and refuses garbage as insmod does); after it
// all, `dmesg | grep livepatch` and `lsmod | wc -l` agree with `klp run -c` replaying the page's
// whole session (the uploaded files mounted at /tmp). "Build patch" on two builds of
// test_klp_mod_target (made by `klp build --diff`, kept with --keep-work) gives `klp build`'s
// report and module, which patches the module when it loads; garbage and unchanged builds write
// nothing; a kernel build with changed statics is refused by name, and accepted when they are
// marked handled. Screenshots go to web/test-output/; the files it uploads and builds are written to
// temp dirs of its own.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const url = process.env.KLP_WEB_URL ?? "http://127.0.0.1:8000/";
const klp = process.env.KLP_BIN ?? path.join(root, "target/release/klp");
const outDir = process.env.KLP_WEB_OUT ?? path.join(root, "web/test-output");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";

const MODDIR = "/lib/modules/6.12.0-klp";
const ORIGINAL = "console=hvc0 root=/dev/ram0 rw\n";
const PATCHED = "this has been live patched\n";
const SYS = "/sys/kernel/livepatch/livepatch_sample/enabled";
// What the page runs, in order (the buttons run the same commands as the shell).
const STEPS = [
  "cat /proc/cmdline",
  "insmod livepatch-sample", // the Load button
  "cat /proc/cmdline",
  `echo 0 > ${SYS}`, // the Disable button
  "cat /proc/cmdline",
  "dmesg",
  // A deliberate kernel bug: a division by zero, a kernel BUG and an oops; the kernel goes on.
  "echo 0 > /proc/sys/kernel/sched_rr_timeslice_ms",
  "cat /proc/schedstat",
  "cat /proc/cmdline",
  "dmesg",
];

const maskTimestamps = (text) => text.replace(/^\[\s*\d+\.\d+\]/gm, "[TIMESTAMP]");
// As the transcripts mask them (host/tests/transcripts.rs): `[    T]` for log timestamps,
// `T:` for the trace's.
const maskStamps = (text) => text.replace(/^\[\s*\d+\.\d+\]/gm, "[    T]")
  .replace(/^(.*\] [.a-zA-Z]{5} +)\d+\.\d+:/gm, "$1T:");

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (err) {
    failed++;
    console.log(`not ok - ${name}\n  ${String(err.stack ?? err).replaceAll("\n", "\n  ")}`);
  }
}

fs.mkdirSync(outDir, { recursive: true });
// The files the test uploads: a livepatch module (the selftest patch of cmdline_proc_show) as
// fix.wasm, and garbage as g.wasm.
const uploadDir = fs.mkdtempSync(path.join(os.tmpdir(), "klp-web-upload-"));
const fixWasm = fs.readFileSync(
  path.join(root, "target/guest/wasm32-unknown-unknown/release/test_klp_livepatch.wasm"));
fs.writeFileSync(path.join(uploadDir, "fix.wasm"), fixWasm);
const GARBAGE = "this is not a wasm module\n";
fs.writeFileSync(path.join(uploadDir, "g.wasm"), GARBAGE);
// The objects "Build patch" compares, and the CLI's module from them.
const buildDir = fs.mkdtempSync(path.join(os.tmpdir(), "klp-web-build-"));
const profile = fs.mkdtempSync(path.join(os.tmpdir(), "klp-web-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: chromiumPath,
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const page = context.pages()[0] ?? (await context.newPage());
const problems = [];
page.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
page.on("console", (msg) => {
  if (msg.type() === "error") problems.push(`console.error: ${msg.text()}`);
});

// Every command the page's shell ran, in order, for `klp run -c` to replay.
const session = [];

// Types a command at the prompt and returns what it printed: { out, err } (stdout, stderr).
async function type(command) {
  session.push(command);
  const before = await page.locator("#screen .entry").count();
  await page.fill("#cmd", command);
  await page.press("#cmd", "Enter");
  return lastEntry(before, command);
}

// Clicks a module's button and returns what the command it ran printed: { out, err }.
async function click(stem, action, command, list = "#module-list") {
  session.push(command);
  const before = await page.locator("#screen .entry").count();
  await page.click(`${list} .module[data-stem="${stem}"] button[data-action="${action}"]`);
  return lastEntry(before, command);
}

async function lastEntry(before, command) {
  await page.waitForFunction((n) => document.querySelectorAll("#screen .entry").length > n, before);
  const entry = page.locator("#screen .entry").last();
  assert.equal(await entry.locator(".cmd").textContent(), command, "the command shows in the terminal");
  return entry.evaluate((node) => {
    let out = "";
    let err = "";
    for (const part of node.querySelector(".out")?.childNodes ?? []) {
      if (part.nodeType === Node.ELEMENT_NODE && part.classList.contains("err")) err += part.textContent;
      else out += part.textContent;
    }
    return { out, err };
  });
}

// Uploads files with the file button; returns, per file, the note and what the `ls -l` the page
// runs after it printed.
async function upload(files) {
  const results = [];
  let before = await page.locator("#screen .entry").count();
  const notes = await page.locator("#screen .note").count();
  await page.setInputFiles("#upload", files.map((f) => path.join(uploadDir, f)));
  for (const f of files) {
    const command = `ls -l /tmp/${f}`;
    session.push(command);
    results.push(await lastEntry(before, command));
    before++;
  }
  const texts = await page.locator("#screen .note").allTextContents();
  return results.map((r, i) => ({ ...r, note: texts[notes + i] }));
}

// Runs a step and records its output for the comparison with the CLI.
const transcript = { out: "", err: "" };
function record(result) {
  transcript.out += result.out;
  transcript.err += result.err;
  return result.out;
}

try {
  await check("the page boots the kernel", async () => {
    await page.goto(url);
    await page.waitForFunction(() => document.body.dataset.state !== "booting", null, { timeout: 60000 });
    assert.equal(await page.evaluate(() => document.body.dataset.state), "ready",
      await page.textContent("#status"));
  });

  await check(`the module list is ${MODDIR}, as \`ls\` prints it`, async () => {
    const cli = spawnSync(klp, ["run", "--no-cache", "-c", `ls ${MODDIR}`], { encoding: "utf8" });
    assert.equal(cli.error, undefined, `running ${klp}`);
    assert.equal(cli.status, 0, cli.stderr);
    const files = cli.stdout.split("\n").filter(Boolean);
    assert.ok(files.includes("livepatch-sample.wasm"), cli.stdout);
    const shown = await page.locator("#module-list .module")
      .evaluateAll((rows) => rows.map((r) => r.dataset.file));
    assert.deepEqual([...shown].sort(), [...files].sort());
    assert.equal(await page.textContent("#modules-dir"), MODDIR);
    assert.equal(await page.locator("#upload-list .module").count(), 0);
  });

  await check("cat /proc/cmdline shows the original", async () => {
    assert.equal(record(await type(STEPS[0])), ORIGINAL);
  });

  await check("Load on livepatch-sample runs insmod and patches cmdline_proc_show", async () => {
    record(await click("livepatch-sample", "load", STEPS[1]));
    assert.equal(record(await type(STEPS[2])), PATCHED);
  });

  await check("the ftrace view shows the func_stack and where the slot points", async () => {
    const row = page.locator('#ftrace .frow[data-func="cmdline_proc_show"]');
    assert.equal(await row.count(), 1);
    assert.deepEqual(await row.locator(".stack li").allTextContents(), ["livepatch_sample"]);
    assert.match(await row.locator(".fnow").textContent(),
      /livepatch_cmdline_proc_show \[livepatch_sample\] \(slot \d+\)/);
  });

  await check("/sys/kernel/livepatch shows the enabled patch", async () => {
    const tree = await page.textContent("#sysfs-tree");
    assert.match(tree, /livepatch_sample\//);
    assert.match(tree, /enabled = 1/);
    assert.match(tree, /cmdline_proc_show,1\//);
    assert.match(await page.textContent('#module-list .module[data-stem="livepatch-sample"] .badge'), /enabled/);
  });

  await page.mouse.move(0, 0); // no hover highlight in the pictures
  await page.screenshot({ path: path.join(outDir, "patched-1280x800.png") });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: path.join(outDir, "patched-390x844.png"), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });

  await check("Disable brings the original back", async () => {
    record(await click("livepatch-sample", "disable", STEPS[3]));
    assert.equal(await page.locator("#ftrace .frow").count(), 0);
    assert.match(await page.textContent("#ftrace-rows"), /No function is patched/);
    assert.equal(record(await type(STEPS[4])), ORIGINAL);
    record(await type(STEPS[5])); // dmesg
  });

  await check("an oops in the browser: kernel BUG, trap, call trace; the kernel goes on", async () => {
    record(await type(STEPS[6]));
    const { out, err } = await type(STEPS[7]);
    transcript.out += out;
    transcript.err += err;
    assert.match(err, /^Oops: invalid opcode: 0000 \[#1\]$/m);
    assert.match(err, /^RIP: rust_begin_unwind \(wasm trap: wasm `unreachable` instruction executed\)$/m);
    assert.match(err, /^ panic_const_div_by_zero\n show_schedstat\n seq_show$/m);
    assert.equal(record(await type(STEPS[8])), ORIGINAL);
    assert.match(record(await type(STEPS[9])), /\] Oops: invalid opcode: .*\n(.*\n){4}\[ *[\d.]+\]  rust_begin_unwind\n/);
  });

  await check("the transcript, dmesg and oops match `klp run -c` (timestamps masked)", async () => {
    // The page calls through every slot all the time, as `klp run --ftrace=always` does.
    const cli = spawnSync(klp, ["run", "--no-cache", "--ftrace=always", "-c", STEPS.join("; ")], { encoding: "utf8" });
    assert.equal(cli.error, undefined, `running ${klp}`);
    for (const [name, text] of [["web", transcript.out + transcript.err], ["cli", cli.stdout + cli.stderr]]) {
      fs.writeFileSync(path.join(outDir, `${name}-transcript.txt`), text);
    }
    assert.match(transcript.out, /livepatch: 'livepatch_sample': unpatching complete/);
    assert.match(transcript.out, /kernel BUG at guest-kernel\/src\/sched.rs/);
    assert.match(transcript.out, /Oops: invalid opcode/);
    assert.equal(maskTimestamps(transcript.out), maskTimestamps(cli.stdout));
    assert.equal(transcript.err, cli.stderr);
  });

  await check("the function tracer and a kprobe work in the page's shell", async () => {
    await type("echo cmdline_proc_show > /sys/kernel/tracing/set_ftrace_filter");
    await type("echo function > /sys/kernel/tracing/current_tracer");
    await type("echo 'p:cmdprobe cmdline_proc_show' > /sys/kernel/tracing/kprobe_events");
    await type("echo 1 > /sys/kernel/tracing/events/kprobes/cmdprobe/enable");
    assert.equal((await type("cat /proc/cmdline")).out, ORIGINAL);
    const trace = (await type("cat /sys/kernel/tracing/trace")).out;
    assert.match(trace, /^ +cat-\d+ +\[000\] \.\.\.\.\. +[\d.]+: cmdline_proc_show <-seq_show$/m);
    assert.match(trace, /^ +cat-\d+ +\[000\] \.\.\.\.\. +[\d.]+: cmdprobe: \(cmdline_proc_show\+0x0\/0x0\)$/m);
    assert.match((await type("cat /sys/kernel/tracing/enabled_functions")).out,
      /^cmdline_proc_show \(2\) R {5}\ttramp: __klp_tramp_cmdline_proc_show$/m);
    await type("echo 0 > /sys/kernel/tracing/events/kprobes/cmdprobe/enable");
    await type("echo nop > /sys/kernel/tracing/current_tracer");
    assert.equal((await type("cat /sys/kernel/tracing/enabled_functions")).out, "");
  });

  await check("a module uploaded with the file button lands in /tmp and insmod loads it", async () => {
    const [fix] = await upload(["fix.wasm"]);
    assert.equal(fix.note, `wrote /tmp/fix.wasm (${fixWasm.length} bytes); insmod /tmp/fix.wasm to load it`);
    assert.equal(fix.out, `-rw-r--r-- 1 root root ${fixWasm.length} /tmp/fix.wasm\n`);
    assert.equal(fix.err, "");
    const row = page.locator('#upload-list .module[data-file="fix.wasm"]');
    assert.equal(await row.locator(".badge").textContent(), "not loaded");
    assert.equal(await row.locator('button[data-action="load"]').getAttribute("data-cmd"),
      "insmod /tmp/fix.wasm");
    assert.deepEqual(await type("insmod /tmp/fix.wasm"), { out: "", err: "" });
    // test_klp_livepatch's cmdline_proc_show says so, its module name first.
    assert.equal((await type("cat /proc/cmdline")).out, `test_klp_livepatch: ${PATCHED}`);
    assert.equal(await row.locator(".badge").textContent(), "enabled");
    assert.deepEqual(
      await page.locator('#ftrace .frow[data-func="cmdline_proc_show"] .stack li').allTextContents(),
      ["fix"]); // livepatch_sample, disabled, left the func_stack
    assert.match(await page.textContent("#sysfs-tree"), /drwxr-xr-xfix\/-rw-r--r--  enabled = 1/);
  });

  await page.mouse.move(0, 0);
  await page.evaluate(() => { // the uploaded module's row, at the module list's end, in view
    document.querySelector("aside").scrollTop = document.querySelector("aside").scrollHeight;
  });
  await page.screenshot({ path: path.join(outDir, "uploaded-1280x800.png") });
  await page.evaluate(() => { document.querySelector("aside").scrollTop = 0; });

  await check("garbage uploaded to /tmp is refused by insmod as an invalid module", async () => {
    const [g] = await upload(["g.wasm"]);
    assert.equal(g.note, `wrote /tmp/g.wasm (${GARBAGE.length} bytes); insmod /tmp/g.wasm to load it`);
    assert.deepEqual(await type("insmod /tmp/g.wasm"), {
      out: "",
      err: "insmod: ERROR: could not insert module /tmp/g.wasm: Invalid module format\n",
    });
    assert.equal(await page.locator('#upload-list .module[data-file="g.wasm"] .badge').textContent(),
      "not loaded");
  });

  await check("a file dropped on the page lands in /tmp (its name made safe)", async () => {
    const before = await page.locator("#screen .entry").count();
    const dataTransfer = await page.evaluateHandle((text) => {
      const dt = new DataTransfer();
      dt.items.add(new File([text], "dropped mod.wasm"));
      return dt;
    }, GARBAGE);
    await page.dispatchEvent("#sysfs", "drop", { dataTransfer });
    const command = "ls -l /tmp/dropped_mod.wasm";
    session.push(command);
    const listed = await lastEntry(before, command);
    assert.equal(listed.out, `-rw-r--r-- 1 root root ${GARBAGE.length} /tmp/dropped_mod.wasm\n`);
    assert.equal(await page.locator("#screen .note").last().textContent(),
      `wrote /tmp/dropped_mod.wasm (${GARBAGE.length} bytes); insmod /tmp/dropped_mod.wasm to load it`);
    assert.equal(await page.locator("#upload-list .module").count(), 3);
  });

  await check("`dmesg | grep livepatch` and `lsmod | wc -l` match `klp run -c` replaying the session", async () => {
    const grep = await type("dmesg | grep livepatch");
    const count = await type("lsmod | wc -l");
    assert.match(grep.out, /livepatch: enabling patch 'fix'/);
    assert.equal(grep.err + count.err, "");
    // The CLI replays every command the page ran, with the uploaded files mounted at /tmp.
    fs.writeFileSync(path.join(uploadDir, "dropped_mod.wasm"), GARBAGE);
    const MARK = "=====klp-web-e2e=====";
    const script = [...session.slice(0, -2), `echo ${MARK}`, session.at(-2), `echo ${MARK}`,
      session.at(-1)].join("; ");
    const cli = spawnSync(klp,
      ["run", "--no-cache", "--ftrace=always", "--mount", `${uploadDir}:/tmp:ro`, "-c", script],
      { encoding: "utf8" });
    assert.equal(cli.error, undefined, `running ${klp}`);
    const [, cliGrep, cliCount] = cli.stdout.split(`${MARK}\n`);
    fs.writeFileSync(path.join(outDir, "web-dmesg-grep.txt"), grep.out);
    fs.writeFileSync(path.join(outDir, "cli-dmesg-grep.txt"), cliGrep ?? cli.stdout + cli.stderr);
    assert.equal(maskTimestamps(grep.out), maskTimestamps(cliGrep));
    assert.equal(count.out, cliCount);
    assert.match(count.out, /^\d+\n$/);
  });

  // A transition blocked by a sleeping kworker: the tasks panel shows who is behind and where;
  // the page's idle time runs the kernel (the transition's retries happen with nobody typing).
  const transition = "/sys/kernel/livepatch/test_klp_callbacks_demo/transition";
  const summary = () => page.textContent("#tasks-summary");
  const idleUntil = (text) => page.waitForFunction(
    (t) => document.querySelector("#tasks-summary").textContent.includes(t), text, { timeout: 30000 });

  await check("the tasks panel shows a blocked transition: the kworker behind, in busymod_work_func", async () => {
    await type("insmod test_klp_callbacks_busy block_transition=Y");
    await type("insmod test_klp_callbacks_demo");
    assert.equal((await type(`cat ${transition}`)).out, "1\n");
    assert.match(await summary(), /test_klp_callbacks_demo: patching transition in progress/);
    const kworker = page.locator('#tasks-rows tr[data-pid="3"]');
    assert.equal(await kworker.getAttribute("class"), "behind");
    assert.equal(await kworker.getAttribute("data-patch-state"), "0");
    assert.equal(await kworker.locator("code.changed").textContent(), "busymod_work_func");
    assert.match(await kworker.locator("td").nth(1).textContent(), /^kworker\/0:0$/);
    // Every other task has switched.
    const others = await page.locator('#tasks-rows tr:not([data-pid="3"])')
      .evaluateAll((rows) => rows.map((r) => r.dataset.patchState));
    assert.ok(others.length >= 3 && others.every((s) => s === "1"), others.join());
    assert.equal(await page.locator("#tasks-actions button:disabled").count(), 0);
    // During the transition the function's slot holds the dispatcher.
    assert.match(await page.locator("#ftrace .frow", { hasText: "busymod_work_func" })
      .locator(".fnow").textContent(), /klp_ftrace_handler: per task/);
    await page.screenshot({ path: path.join(outDir, "transition-1280x800.png") });
  });

  await check("Reverse turns the transition around; idle time completes it once the work returns", async () => {
    await page.click('#tasks-actions button[data-action="reverse"]');
    await idleUntil("unpatching transition in progress");
    // The kworker never ran the new function: it is already where the reversal goes.
    await type("echo 0 > /sys/module/test_klp_callbacks_busy/parameters/block_transition");
    await idleUntil("no transition");
    assert.equal(await page.locator("#tasks-actions button:enabled").count(), 0);
    const log = (await type("dmesg | grep livepatch")).out;
    assert.match(log, /'test_klp_callbacks_demo': reversing transition from patching to unpatching/);
    assert.match(log, /'test_klp_callbacks_demo': unpatching complete/);
    await type("rmmod test_klp_callbacks_demo");
    await type("rmmod test_klp_callbacks_busy");
  });

  await check("Force completes a blocked transition, and the page says which tasks it forced", async () => {
    await type("insmod test_klp_callbacks_busy block_transition=Y");
    await type("insmod test_klp_callbacks_demo");
    await idleUntil("patching transition in progress");
    await page.click('#tasks-actions button[data-action="force"]');
    await idleUntil("no transition");
    const log = (await type("dmesg | grep livepatch")).out;
    assert.match(log, /livepatch: forcing remaining tasks to the patched state/);
    assert.match(log, /'test_klp_callbacks_demo': patching complete/);
    assert.equal(await page.locator('#tasks-rows tr[data-pid="3"]').getAttribute("data-patch-state"), "-1");
  });

  // Build a patch in the page (klp-build compiled into klp-web): the two builds of
  // test_klp_mod_target that `klp build --diff` of examples/klp-build/module-target.patch makes
  // (its --keep-work directory keeps them), on a fresh kernel.
  const MOD = "test_klp_mod_target";
  const BUILT = `livepatch_${MOD}`; // the default name: livepatch_ and the patched file's stem
  const MOD_PATCHED = `${MOD}: patched by klp build\n`;
  const work = path.join(buildDir, "work");
  const origObj = path.join(work, "orig", `${MOD}.wasm`);
  const patchedObj = path.join(work, "patched", `${MOD}.wasm`);
  const cliModule = path.join(buildDir, "out", `${BUILT}.wasm`);
  const buildReport = () => page.textContent("#build-report");
  // Clicks Build patch and waits until the report shows the outcome `done` waits for.
  async function buildPatch(done) {
    await page.click("#build-run");
    await page.waitForFunction((t) => document.querySelector("#build-report").textContent.includes(t), done);
  }

  await check("Build patch: two builds of test_klp_mod_target give `klp build`'s report and module, in /tmp", async () => {
    const made = spawnSync(klp, ["build", "--diff", path.join(root, "examples/klp-build/module-target.patch"),
      "--keep-work", work, "--dry-run"], { encoding: "utf8" });
    assert.equal(made.error, undefined, `running ${klp}`);
    assert.equal(made.status, 0, made.stderr);
    fs.mkdirSync(path.dirname(cliModule));
    const cli = spawnSync(klp, ["build", "--orig", origObj, "--patched", patchedObj, "--object", MOD,
      "-o", cliModule], { encoding: "utf8" });
    assert.equal(cli.status, 0, cli.stderr);
    const cliReport = cli.stdout.replace(/^klp build: wrote .*\n$/m, "");
    assert.match(cliReport, new RegExp(`^${MOD}: changed function: ${MOD}_proc_show$`, "m"));
    const size = fs.statSync(cliModule).size;

    await page.goto(url);
    await page.waitForFunction(() => document.body.dataset.state === "ready", null, { timeout: 60000 });
    // The original with the file button, the patched build dropped on its slot.
    await page.setInputFiles("#build-orig", origObj);
    const dataTransfer = await page.evaluateHandle(([bytes, name]) => {
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array(bytes)], name));
      return dt;
    }, [[...fs.readFileSync(patchedObj)], `${MOD}.wasm`]);
    await page.dispatchEvent('.slot[data-slot="patched"]', "drop", { dataTransfer });
    assert.equal(await page.textContent('.slot[data-slot="patched"] .file'),
      `${MOD}.wasm (${fs.statSync(patchedObj).size} bytes)`);
    await page.fill("#build-object", MOD);
    const before = await page.locator("#screen .entry").count();
    await buildPatch("wrote /tmp/");
    assert.equal(await buildReport(), `${cliReport}wrote /tmp/${BUILT}.wasm (${size} bytes)`);
    // The page then lists the file, as after an upload; the drop on the slot uploaded nothing.
    const listed = await lastEntry(before, `ls -l /tmp/${BUILT}.wasm`);
    assert.equal(listed.out, `-rw-r--r-- 1 root root ${size} /tmp/${BUILT}.wasm\n`);
    assert.equal((await type("ls /tmp")).out, `${BUILT}.wasm\n`);
    assert.equal(await page.locator(`#upload-list .module[data-file="${BUILT}.wasm"] .badge`).textContent(),
      "not loaded");
    await page.mouse.move(0, 0);
    await page.locator("#build").scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(outDir, "built-1280x800.png") });
  });

  await check("Load inserts the built patch; test_klp_mod_target, loaded after it, is patched as with the CLI's module", async () => {
    const before = await page.locator("#screen .entry").count();
    await page.click("#build-load");
    assert.deepEqual(await lastEntry(before, `insmod /tmp/${BUILT}.wasm`), { out: "", err: "" });
    assert.equal(await page.locator("#build-load").isDisabled(), true);
    assert.deepEqual(await type(`insmod ${MOD}`), { out: "", err: "" });
    const shown = (await type(`cat /proc/${MOD}`)).out;
    assert.equal(shown, MOD_PATCHED);
    assert.deepEqual(await page.locator("#ftrace .frow", { hasText: `${MOD}_proc_show` })
      .locator(".stack li").allTextContents(), [BUILT]);
    assert.match(await page.textContent("#sysfs-tree"), new RegExp(`${BUILT}/.*enabled = 1.*${MOD}/`, "s"));
    const cli = spawnSync(klp, ["run", "--no-cache", "--mount", `${path.dirname(cliModule)}:/tmp:ro`, "-c",
      `insmod /tmp/${BUILT}.wasm; insmod ${MOD}; cat /proc/${MOD}`], { encoding: "utf8" });
    assert.equal(cli.stderr, "");
    assert.equal(cli.stdout, shown);
  });

  await check("Build patch on garbage, or on two equal builds, shows why and writes nothing", async () => {
    await page.setInputFiles("#build-orig", path.join(uploadDir, "g.wasm"));
    await page.fill("#build-name", "bad");
    const before = await page.locator("#screen .entry").count();
    await buildPatch("klp build: ");
    assert.equal(await buildReport(), `klp build: ${MOD}: original build: not a wasm module`);
    assert.equal(await page.getAttribute("#build-report", "data-state"), "error");
    assert.equal(await page.locator("#build-load").isHidden(), true);
    await page.setInputFiles("#build-orig", patchedObj);
    await buildPatch("no functional changes found\nklp build: ");
    assert.equal(await buildReport(),
      "bad: no patch: no functional changes found\nklp build: no functional changes found");
    assert.equal(await page.locator("#screen .entry").count(), before, "no command ran");
    assert.equal((await type("ls /tmp")).out, `${BUILT}.wasm\n`);
  });

  await check("Build patch refuses a kernel's changed static by name; marked handled, the patch loads and fixes the handler", async () => {
    // examples/klp-build/static-initializer.patch changes two statics and sched_rr_handler:
    // `klp build --diff` refuses it (exit 1) but keeps the two kernel builds.
    const vmWork = path.join(buildDir, "vmlinux-work");
    const made = spawnSync(klp, ["build", "--diff", path.join(root, "examples/klp-build/static-initializer.patch"),
      "--keep-work", vmWork, "--dry-run"], { encoding: "utf8" });
    assert.equal(made.error, undefined, `running ${klp}`);
    assert.equal(made.status, 1, made.stdout + made.stderr);
    const orig = path.join(vmWork, "orig/vmlinux.wasm");
    const patched = path.join(vmWork, "patched/vmlinux.wasm");
    const HANDLED = ["SYSCTL_SCHED_RR_TIMESLICE", "SCHED_RR_TIMESLICE"];
    const refused = spawnSync(klp, ["build", "--orig", orig, "--patched", patched, "--dry-run"], { encoding: "utf8" });
    assert.equal(refused.status, 1, refused.stdout + refused.stderr);
    const out = path.join(buildDir, "vmlinux-out", "livepatch_vmlinux.wasm");
    fs.mkdirSync(path.dirname(out));
    const cli = spawnSync(klp, ["build", "--orig", orig, "--patched", patched, "-o", out,
      ...HANDLED.flatMap((h) => ["--handled", h])], { encoding: "utf8" });
    assert.equal(cli.status, 0, cli.stderr);
    const size = fs.statSync(out).size;

    await page.setInputFiles("#build-orig", orig);
    await page.setInputFiles("#build-patched", patched);
    await page.fill("#build-object", "vmlinux");
    await page.fill("#build-name", ""); // the default, livepatch_vmlinux, as the CLI's
    await buildPatch("klp build: data `");
    assert.equal(await buildReport(), refused.stdout + refused.stderr.trimEnd());
    assert.match(await buildReport(), /^vmlinux: refused: data `SCHED_RR_TIMESLICE` changed \(its initial value\)/m);
    assert.equal((await type("ls /tmp")).out, `${BUILT}.wasm\n`);

    await page.fill("#build-handled", HANDLED.join(" "));
    const before = await page.locator("#screen .entry").count();
    await buildPatch("wrote /tmp/");
    assert.equal(await buildReport(),
      cli.stdout.replace(/^klp build: wrote .*\n$/m, "") + `wrote /tmp/livepatch_vmlinux.wasm (${size} bytes)`);
    assert.match(await buildReport(), /^vmlinux: changed data, handled: SYSCTL_SCHED_RR_TIMESLICE$/m);
    await lastEntry(before, "ls -l /tmp/livepatch_vmlinux.wasm");
    const loading = await page.locator("#screen .entry").count();
    await page.click("#build-load");
    assert.deepEqual(await lastEntry(loading, "insmod /tmp/livepatch_vmlinux.wasm"), { out: "", err: "" });
    // The patched handler: a value <= 0 resets the new default, 50.
    const sysctl = "/proc/sys/kernel/sched_rr_timeslice_ms";
    assert.deepEqual(await type(`echo 0 > ${sysctl}; cat ${sysctl}`), { out: "50\n", err: "" });
  });

  // Transcripts, each on a fresh kernel (the page reloaded), typed at
  // the prompt line by line: the page prints what `klp run` printed when they were blessed.
  // The page's idle time is off (`?idle=0`): the transcripts were blessed by the library's
  // line-by-line run, which gives the kernel no time between commands.
  // Every transcript of tasks/ (the consistency model) and selftests/ (Linux's livepatch
  // selftests, case by case), and the shadow-variable fix.
  const transcripts = (dir) => fs.readdirSync(path.join(root, "host/tests/transcripts", dir))
    .filter((f) => f.endsWith(".sh")).sort().map((f) => `${dir}/${f.slice(0, -3)}`);
  const TRANSCRIPTS = [...transcripts("tasks"), ...transcripts("selftests"), "livepatch/fix_kmsg"];
  for (const name of TRANSCRIPTS) {
    await check(`the ${name} transcript runs in the page's shell as in \`klp run\``, async () => {
      const dir = path.join(root, "host/tests/transcripts");
      const script = fs.readFileSync(path.join(dir, `${name}.sh`), "utf8");
      // Blessed with dynamic ftrace: the page has one code, so it logs no code swaps.
      const expected = fs.readFileSync(path.join(dir, `${name}.out`), "utf8")
        .split("\n").filter((l) => !/\] ftrace: (hooks in use|no hook in use): /.test(l)).join("\n");
      await page.goto(`${url}?idle=0`);
      await page.waitForFunction(() => document.body.dataset.state === "ready", null, { timeout: 60000 });
      let text = "";
      for (const line of script.split("\n")) {
        if (!line.trim() || line.trim().startsWith("#")) continue;
        const before = await page.locator("#screen .entry").count();
        await page.fill("#cmd", line);
        await page.press("#cmd", "Enter");
        await page.waitForFunction((n) => document.querySelectorAll("#screen .entry").length > n, before);
        const entry = page.locator("#screen .entry").last();
        text += `# ${line}\n` + await entry.evaluate((node) => node.querySelector(".out")?.textContent ?? "");
        const status = await entry.getAttribute("data-status");
        if (status !== "0") text += `[exit ${status}]\n`;
      }
      fs.writeFileSync(path.join(outDir, `${name.replace("/", "-")}.page.out`), maskStamps(text));
      assert.equal(maskStamps(text), expected);
    });
  }

  await check("no page errors", async () => {
    assert.deepEqual(problems, []);
  });
} finally {
  await page.screenshot({ path: path.join(outDir, "final-1280x800.png") }).catch(() => {});
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
  fs.rmSync(uploadDir, { recursive: true, force: true });
  fs.rmSync(buildDir, { recursive: true, force: true });
}

console.log(`screenshots in ${path.relative(process.cwd(), outDir) || "."}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
