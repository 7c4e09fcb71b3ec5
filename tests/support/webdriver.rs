//! Real headless Chromium for browser tests, driven over the W3C WebDriver protocol by
//! Debian's chromedriver (a few JSON commands over HTTP; Chrome DevTools commands through
//! chromedriver's `goog/cdp/execute` for what WebDriver lacks: a script every page gets
//! before its own, as a wallet extension injects its provider, and full-page screenshots).
//! Fails loudly (never skips) when Chromium or chromedriver cannot run.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use super::support::{free_port, temp_path};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The key WebDriver uses for element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running chromedriver.
pub struct Driver {
    child: Child,
    url: String,
    http: reqwest::blocking::Client,
}

impl Driver {
    /// Starts chromedriver on a free loopback port and waits until it is ready.
    pub fn start() -> Driver {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: the browser tests need Debian's chromium and chromium-driver \
                 (scripts/setup-system.sh --tests installs them)"
            );
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: Chromium and its helpers join it, and Drop ends them all.
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
        let d = Driver { child, url, http };
        let start = Instant::now();
        loop {
            let ready = d.http.get(format!("{}/status", d.url)).send().ok().and_then(|r| r.json::<Value>().ok());
            if ready.is_some_and(|v| v["value"]["ready"] == true) {
                return d;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "chromedriver never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A new headless Chromium with a fresh profile; `preload` runs in every page first.
    pub fn browser(&self, preload: Option<&str>) -> Browser {
        let profile = temp_path("chromium-profile");
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            // No crashpad handler: it would detach into its own session and outlive the test.
            "--disable-crash-reporter".into(),
            "--disable-breakpad".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--window-size=1100,1300".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let r: Value = self.http.post(format!("{}/session", self.url)).json(&caps).send().unwrap().json().unwrap();
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("Chromium did not start under chromedriver: {r}"))
            .to_owned();
        let b = Browser { http: self.http.clone(), base: format!("{}/session/{id}", self.url), profile };
        if let Some(source) = preload {
            b.cdp("Page.addScriptToEvaluateOnNewDocument", json!({ "source": source }));
        }
        b
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver, and any Chromium a failed test left running.
        let _ = Command::new("kill").args(["-9", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.wait();
    }
}

/// One Chromium (one WebDriver session).
pub struct Browser {
    http: reqwest::blocking::Client,
    base: String,
    profile: PathBuf,
}

impl Browser {
    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().map_err(|e| e.to_string())?;
        let ok = r.status().is_success();
        let v: Value = r.json().map_err(|e| e.to_string())?;
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(format!("{}: {}", v["value"]["error"], v["value"]["message"]))
        }
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
    }

    /// A Chrome DevTools command.
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.post("/goog/cdp/execute", json!({ "cmd": cmd, "params": params }))
    }

    /// Navigates to `url`.
    pub fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub fn exec(&self, script: &str, args: Vec<Value>) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
    }

    /// Runs `script`, which ends by calling `arguments[arguments.length - 1](result)`.
    pub fn exec_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.post("/execute/async", json!({ "script": script, "args": args }))
    }

    fn element(&self, css: &str) -> Option<String> {
        let v =
            self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).ok()?;
        v[ELEMENT].as_str().map(str::to_owned)
    }

    /// Clicks the element `css` (as a user would: it must be visible and enabled).
    pub fn click(&self, css: &str) {
        let id = self.element(css).unwrap_or_else(|| panic!("no element {css}"));
        self.post(&format!("/element/{id}/click"), json!({}));
    }

    /// The visible text of `css` ("" when absent or hidden).
    pub fn text(&self, css: &str) -> String {
        self.exec(
            "const e = document.querySelector(arguments[0]); return e && !e.closest('[hidden]') ? e.innerText : '';",
            vec![json!(css)],
        )
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Whether `css` is an enabled, visible control.
    pub fn enabled(&self, css: &str) -> bool {
        self.exec(
            "const e = document.querySelector(arguments[0]); return !!e && !e.disabled && !e.closest('[hidden]');",
            vec![json!(css)],
        ) == json!(true)
    }

    /// Waits until `ready` holds (checked every 200 ms), or panics after `limit` with
    /// what the page says.
    pub fn wait(&self, what: &str, limit: Duration, ready: impl Fn(&Browser) -> bool) {
        let start = Instant::now();
        while !ready(self) {
            if start.elapsed() > limit {
                let page = self.text("main");
                panic!("waited {limit:?} for {what}; the page says:\n{page}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the text of `css` contains `needle`; returns that text.
    pub fn wait_text(&self, css: &str, needle: &str, limit: Duration) -> String {
        self.wait(&format!("{needle:?} in {css}"), limit, |b| b.text(css).contains(needle));
        self.text(css)
    }

    /// A PNG of the whole page, written to `path`.
    pub fn screenshot(&self, path: &Path) {
        let v = self.cdp("Page.captureScreenshot", json!({ "format": "png", "captureBeyondViewport": true }));
        let png = base64::engine::general_purpose::STANDARD.decode(v["data"].as_str().expect("png data")).unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.call(reqwest::Method::DELETE, "", None);
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
