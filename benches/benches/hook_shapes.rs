//! Hook shapes, in hand-written WAT: which kind of indirect call the ftrace hook should be.
//!
//! The same function (`x + 3`) is called in a loop inside one module: directly (`call`),
//! through an untyped `funcref` table with `call_indirect` and a constant index (what the
//! instrumentation pass emits), the same slot holding a function of another instance (a patch
//! module), a typed nullable `(ref null $t)` table, a typed non-null `(ref $t)` table,
//! `table.get` + `call_ref`, `call_ref` through a mutable global, and an entry stub (a direct
//! call to a function that does the `call_indirect`). Each with wasmtime's inliner off and on,
//! and with the inliner off and tables initialised eagerly (`Config::table_lazy_init(false)`:
//! no "initialised" bit to test on every `call_indirect`).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use klp_benches::{chained, guest_loop};
use wasmtime::{Config, Engine, Inlining, Instance, Module, Ref, Store, TypedFunc};

const CALLEE: &str = r#"
(module
  (type $t (func (param i32) (result i32)))
  (func (export "target") (type $t) (i32.add (local.get 0) (i32.const 3))))
"#;

/// `$loop` expands to a function `(n, acc) -> acc` running `acc = CALL(acc)` `n` times.
fn bench_module() -> String {
    let shapes = [
        ("direct", "(call $target (local.get $acc))"),
        (
            "call_indirect",
            "(call_indirect $untyped (type $t) (local.get $acc) (i32.const 0))",
        ),
        (
            "call_indirect_other_instance",
            "(call_indirect $untyped (type $t) (local.get $acc) (i32.const 1))",
        ),
        (
            "typed_table",
            "(call_indirect $typed (type $t) (local.get $acc) (i32.const 0))",
        ),
        (
            "typed_table_non_null",
            "(call_indirect $typed_nn (type $t) (local.get $acc) (i32.const 0))",
        ),
        (
            "table_get_call_ref",
            "(call_ref $t (local.get $acc) (table.get $typed (i32.const 0)))",
        ),
        (
            "call_ref_global",
            "(call_ref $t (local.get $acc) (global.get $g))",
        ),
        ("entry_stub", "(call $stub (local.get $acc))"),
    ];
    let mut wat = String::from(
        r#"(module
  (type $t (func (param i32) (result i32)))
  (table $untyped (export "untyped") 2 funcref)
  (table $typed 1 (ref null $t))
  (table $typed_nn 1 (ref $t) (ref.func $target))
  (global $g (mut (ref null $t)) (ref.func $target))
  (elem (table $untyped) (i32.const 0) func $target)
  (elem (table $typed) (i32.const 0) (ref null $t) (ref.func $target))
  (elem declare func $target)
  (func $target (type $t) (i32.add (local.get 0) (i32.const 3)))
  (func $stub (type $t)
    (call_indirect $untyped (type $t) (local.get 0) (i32.const 0)))
"#,
    );
    for (name, call) in shapes {
        wat.push_str(&format!(
            r#"  (func (export "{name}") (param $n i32) (param $acc i32) (result i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $acc {call})
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $acc))
"#
        ));
    }
    wat.push_str(")\n");
    wat
}

const SHAPES: &[&str] = &[
    "direct",
    "call_indirect",
    "call_indirect_other_instance",
    "typed_table",
    "typed_table_non_null",
    "table_get_call_ref",
    "call_ref_global",
    "entry_stub",
];

fn hook_shapes(c: &mut Criterion) {
    let wasm = wat::parse_str(bench_module()).expect("valid WAT");
    let callee = wat::parse_str(CALLEE).expect("valid WAT");
    let mut g = c.benchmark_group("hook_shapes");
    // (label, Cranelift inliner, wasmtime's lazy table initialisation)
    let configs = [
        ("no_inlining", false, true),
        ("inlining", true, true),
        ("eager_tables", false, false),
    ];
    for (label, inlining, lazy_tables) in configs {
        let mut config = Config::new();
        config.wasm_function_references(true);
        config.table_lazy_init(lazy_tables);
        config.compiler_inlining(if inlining {
            Inlining::Yes
        } else {
            Inlining::No
        });
        let engine = Engine::new(&config).expect("engine");
        let mut store = Store::new(&engine, ());
        let other = Instance::new(&mut store, &Module::new(&engine, &callee).unwrap(), &[])
            .expect("callee instance");
        let target = other.get_func(&mut store, "target").expect("target");
        let module = Module::new(&engine, &wasm).expect("bench module compiles");
        let instance = Instance::new(&mut store, &module, &[]).expect("bench instance");
        let table = instance.get_table(&mut store, "untyped").expect("table");
        table
            .set(&mut store, 1, Ref::Func(Some(target)))
            .expect("slot 1 holds the other instance's function");
        for &shape in SHAPES {
            let f: TypedFunc<(i32, i32), i32> = instance
                .get_typed_func(&mut store, shape)
                .expect("loop export");
            g.bench_with_input(BenchmarkId::new(label, shape), &f, |b, f| {
                b.iter_custom(|iters| {
                    guest_loop(
                        iters,
                        |n, seed| f.call(&mut store, (n, seed)).expect("no trap"),
                        |n, seed| chained(seed, n, 3),
                    )
                });
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = klp_benches::criterion();
    targets = hook_shapes
}
criterion_main!(benches);
