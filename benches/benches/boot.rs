//! A whole boot (prepare, compile or load from wasmtime's cache, instantiate, kernel init) of
//! the instrumented kernel with tasks, in the default dynamic ftrace mode without a compilation
//! cache, with an empty one and with a warm one; and the kernel as it booted before dynamic
//! ftrace (`--ftrace=always`, every call through its slot) without a cache (`always_uncached`)
//! and with a warm one (`always_warm_cache`). Unlike the other benchmarks, one criterion iteration is one boot, timed from the
//! host until the kernel is up. A dynamic boot compiles the full variant on a worker thread
//! (for the first hook); the bench waits for it and drops the kernel outside the timing, so
//! that the next boot does not share the two cores with it.

use criterion::{Criterion, criterion_group, criterion_main};
use klp_benches::{always, boot_with};
use klp_wasmtime::Options;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The options of a boot with its compilation cache in `dir`, or none.
fn cached(dir: Option<&Path>) -> Options {
    Options {
        cache_dir: dir.map(Path::to_path_buf),
        ..Options::default()
    }
}

/// The time `iters` boots, each with the next `options()`, take until the kernel is up.
fn boots(iters: u64, mut options: impl FnMut() -> Options) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let options = options();
        let start = Instant::now();
        let mut e = boot_with(true, options);
        total += start.elapsed();
        e.wait_for_code();
    }
    total
}

fn boot(c: &mut Criterion) {
    let root: PathBuf =
        std::env::temp_dir().join(format!("klp-bench-cache-{}", std::process::id()));
    let mut g = c.benchmark_group("boot");
    g.sample_size(10);

    g.bench_function("always_uncached", |b| {
        b.iter_custom(|iters| boots(iters, always));
    });
    g.bench_function("uncached", |b| {
        b.iter_custom(|iters| boots(iters, || cached(None)))
    });

    // Every boot on a cache directory of its own: compile, then compress and store (~0.2 MB
    // each, removed at the end).
    let mut fresh = 0u64;
    g.bench_function("cold_cache", |b| {
        b.iter_custom(|iters| {
            boots(iters, || {
                fresh += 1;
                cached(Some(&root.join(format!("cold-{fresh}"))))
            })
        });
    });

    // One boot fills the cache (the full variant too, compiled after it); every timed boot
    // loads the kernel from it.
    let warm = root.join("warm");
    boots(1, || cached(Some(&warm)));
    g.bench_function("warm_cache", |b| {
        b.iter_custom(|iters| boots(iters, || cached(Some(&warm))));
    });
    // The same for the kernel as it booted before dynamic ftrace.
    let warm_always = || Options {
        cache_dir: Some(root.join("warm-always")),
        ..always()
    };
    boots(1, warm_always);
    g.bench_function("always_warm_cache", |b| {
        b.iter_custom(|iters| boots(iters, warm_always));
    });
    g.finish();
    remove(&root);
}

/// Removes the bench's caches. The cache's worker thread outlives the engine that dropped it for
/// a moment (it counts the last boot's use, or cleans up a new cache), so a file may appear
/// while the tree is being removed: try again, for up to a second.
fn remove(root: &Path) {
    for _ in 0..100 {
        if std::fs::remove_dir_all(root).is_ok() || !root.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{} could not be removed", root.display());
}

criterion_group! {
    name = benches;
    config = klp_benches::criterion();
    targets = boot
}
criterion_main!(benches);
