// End-to-end test of the browser demo: Debian's chromium, headless, driven by playwright-core,
// against web/dist served on localhost (web/test.sh serves it and sets KLP_WEB_URL).
//
// Boot; `cat /proc/cmdline` shows the original; Load on livepatch-sample patches it (the
// terminal shows the insmod and `this has been live patched`, the ftrace view shows the
// func_stack and where the slot points, sysfs shows the patch); Disable brings the original
// back; the whole transcript, dmesg included (timestamps masked), equals what `klp run -c` prints
// for the same commands, and so does the oops of a deliberate kernel bug (trap message and call
// trace from the browser's stack). Screenshots go to web/test-output/.
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

// Types a command at the prompt and returns what it printed: { out, err } (stdout, stderr).
async function type(command) {
  const before = await page.locator("#screen .entry").count();
  await page.fill("#cmd", command);
  await page.press("#cmd", "Enter");
  return lastEntry(before, command);
}

// Clicks a module's button and returns what the command it ran printed: { out, err }.
async function click(stem, action, command) {
  const before = await page.locator("#screen .entry").count();
  await page.click(`.module[data-stem="${stem}"] button[data-action="${action}"]`);
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
    assert.match(await page.textContent('.module[data-stem="livepatch-sample"] .badge'), /enabled/);
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
    assert.match(err, /^Oops: wasm trap: wasm `unreachable` instruction executed \[#1\]$/m);
    assert.match(err, /^ panic_const_div_by_zero\n show_schedstat\n seq_show$/m);
    assert.equal(record(await type(STEPS[8])), ORIGINAL);
    assert.match(record(await type(STEPS[9])), /\] Oops: wasm trap: .*\n(.*\n){3}\[ *[\d.]+\]  panic\n/);
  });

  await check("the transcript, dmesg and oops match `klp run -c` (timestamps masked)", async () => {
    const cli = spawnSync(klp, ["run", "-c", STEPS.join("; ")], { encoding: "utf8" });
    assert.equal(cli.error, undefined, `running ${klp}`);
    for (const [name, text] of [["web", transcript.out + transcript.err], ["cli", cli.stdout + cli.stderr]]) {
      fs.writeFileSync(path.join(outDir, `${name}-transcript.txt`), text);
    }
    assert.match(transcript.out, /livepatch: 'livepatch_sample': unpatching complete/);
    assert.match(transcript.out, /kernel BUG at guest-kernel\/src\/sched.rs/);
    assert.match(transcript.out, /Oops: wasm trap/);
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
    assert.match(trace, /^ +cat-1 +\[000\] \.\.\.\.\. +[\d.]+: cmdline_proc_show <-seq_show$/m);
    assert.match(trace, /^ +cat-1 +\[000\] \.\.\.\.\. +[\d.]+: cmdprobe: \(cmdline_proc_show\+0x0\/0x0\)$/m);
    assert.match((await type("cat /sys/kernel/tracing/enabled_functions")).out,
      /^cmdline_proc_show \(2\) R {5}\ttramp: __klp_tramp_cmdline_proc_show$/m);
    await type("echo 0 > /sys/kernel/tracing/events/kprobes/cmdprobe/enable");
    await type("echo nop > /sys/kernel/tracing/current_tracer");
    assert.equal((await type("cat /sys/kernel/tracing/enabled_functions")).out, "");
  });

  await check("no page errors", async () => {
    assert.deepEqual(problems, []);
  });
} finally {
  await page.screenshot({ path: path.join(outDir, "final-1280x800.png") }).catch(() => {});
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}

console.log(`screenshots in ${path.relative(process.cwd(), outDir) || "."}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
