//! A whole boot (prepare, compile or load from wasmtime's cache, instantiate, kernel init, drop)
//! without a compilation cache, with an empty one and with a warm one. Unlike the other
//! benchmarks, one criterion iteration is one boot, timed from the host.

use criterion::{Criterion, criterion_group, criterion_main};
use klp_benches::boot_with;
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

fn boot(c: &mut Criterion) {
    let root: PathBuf =
        std::env::temp_dir().join(format!("klp-bench-cache-{}", std::process::id()));
    let mut g = c.benchmark_group("boot");
    g.sample_size(10);

    g.bench_function("uncached", |b| b.iter(|| boot_with(true, cached(None))));

    // Every boot on a cache directory of its own: compile, then compress and store (~0.2 MB
    // each, removed at the end).
    let mut fresh = 0u64;
    g.bench_function("cold_cache", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                fresh += 1;
                let dir = root.join(format!("cold-{fresh}"));
                let start = Instant::now();
                drop(boot_with(true, cached(Some(&dir))));
                total += start.elapsed();
            }
            total
        });
    });

    // One boot fills the cache; every timed boot loads the kernel from it.
    let warm = root.join("warm");
    drop(boot_with(true, cached(Some(&warm))));
    g.bench_function("warm_cache", |b| {
        b.iter(|| boot_with(true, cached(Some(&warm))));
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
