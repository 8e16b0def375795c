//! What the integration tests share: a shell host that records the terminal.

use klp::artifacts;
use klp::shell::Host;

/// Collects stdout and stderr in order, like a terminal; finds modules among the built ones, or
/// on disk for a path.
#[derive(Default)]
pub struct Recorder {
    /// Everything written so far.
    pub text: String,
}

impl Host for Recorder {
    fn out(&mut self, text: &str) {
        self.text.push_str(text);
    }
    fn err(&mut self, text: &str) {
        self.text.push_str(text);
    }
    fn sleep(&mut self, seconds: f64) {
        std::thread::sleep(std::time::Duration::from_secs_f64(seconds.min(1.0)));
    }
    fn module(&mut self, name: &str) -> Result<Vec<u8>, String> {
        if name.contains('/') {
            return std::fs::read(name).map_err(|_| "No such file or directory".to_string());
        }
        artifacts::module(name)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| "No such file or directory".into())
    }
    fn module_names(&self) -> Vec<String> {
        artifacts::names()
    }
}
