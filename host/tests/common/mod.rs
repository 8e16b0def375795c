//! What the integration tests share: a shell host that records the terminal.

use klp_shell::Host;

/// Collects stdout and stderr in order, like a terminal.
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
}
