//! A test's own directory on the host, under the system's temp directory, removed when dropped.

use std::path::PathBuf;

/// The directory; `.0` is its path. Test files add the helpers they need in their own `impl`.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// Creates `klp-<tag>-<pid>-<now>`, a name no other test or run uses.
    pub fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "klp-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
