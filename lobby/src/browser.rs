//! Opening the user's browser at a URL: the platform's opener (`xdg-open`, `open`,
//! `start`), started detached with no output, never waited for long.

use std::process::{Command, Stdio};

/// Opens `url` in the user's browser; Err says why not (then the user opens the printed
/// URL). The URL travels as an argument, so only a one-time link may be passed here.
pub fn open(url: &str) -> Result<(), String> {
    let mut c = opener(url);
    c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let child = c.spawn().map_err(|e| format!("no browser opener here ({e})"))?;
    // Reap it in the background: openers return quickly, browsers may stay.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    Ok(())
}

#[cfg(target_os = "macos")]
fn opener(url: &str) -> Command {
    let mut c = Command::new("open");
    c.arg(url);
    c
}

#[cfg(target_os = "windows")]
fn opener(url: &str) -> Command {
    let mut c = Command::new("rundll32");
    c.args(["url.dll,FileProtocolHandler", url]);
    c
}

#[cfg(not(any(target_os = "macos", target_os = "windows")))]
fn opener(url: &str) -> Command {
    let mut c = Command::new("xdg-open");
    c.arg(url);
    c
}
