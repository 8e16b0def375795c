// The JS half of the browser engine (src/engine.rs): calls into wasm, the kernel's imports, and
// what an exception says. Kept tiny; everything else is Rust.

// Calls a wasm function with i32 arguments; exceptions reach Rust through `catch`.
export function call_fn(f, args) {
  return f(...args);
}

// `klp.hostcall`: the Rust closure returns the result, or an Error to throw (a trap or host
// error in a nested guest call), which unwinds the guest as a trap does.
export function wrap_hostcall(f) {
  return (op, a, b, c) => {
    const r = f(op, a, b, c);
    if (typeof r === "number") return r;
    throw r;
  };
}

// `klp.clock_ns`: nanoseconds since boot as an i64 (a BigInt on the JS side).
export function make_clock() {
  const t0 = performance.now();
  return () => BigInt(Math.round((performance.now() - t0) * 1e6));
}

// `klp.clock_ns` of a kernel with tasks: the scheduler's virtual nanoseconds, from `now_ns`.
export function make_virtual_clock(now_ns) {
  return () => BigInt(Math.round(now_ns()));
}

// The guest frames of the JS stack at this moment (from a host call: its callers), innermost
// first, as V8 prints them (`at NAME (wasm://wasm/…)`, `at wasm://wasm/…` when unnamed). The
// structured call sites skip V8's formatting of every frame (the most part of a task switch's
// cost in the page) and the page's own frames.
export function stack_now() {
  const prepare = Error.prepareStackTrace;
  Error.prepareStackTrace = (_, sites) => sites;
  const sites = new Error().stack;
  Error.prepareStackTrace = prepare;
  if (!Array.isArray(sites)) return "";
  let out = "";
  for (const site of sites) {
    const file = site.getFileName?.() ?? site.getScriptNameOrSourceURL?.() ?? "";
    if (!String(file).startsWith("wasm://wasm/")) continue;
    const name = site.getFunctionName();
    out += name ? `    at ${name} (${file})\n` : `    at ${file}\n`;
  }
  return out;
}

// "trap" for a WebAssembly.RuntimeError, "stack" for stack exhaustion, "other" otherwise.
export function error_kind(e) {
  if (e instanceof WebAssembly.RuntimeError) return "trap";
  if (e instanceof RangeError && /call stack/i.test(e.message)) return "stack";
  return "other";
}

export function error_message(e) {
  return e instanceof Error ? e.message : String(e);
}

export function error_stack(e) {
  return (e && typeof e.stack === "string") ? e.stack : "";
}

export function make_error(message) {
  return new Error(message);
}

// Function identity: the spec gives one JS function object per wasm function, so two table
// entries hold the same function exactly when `table.get` returns the same object.
export function same(a, b) {
  return a === b;
}
