//! A real browser for tests: Debian's headless Chromium driven over
//! WebDriver by `chromedriver`, through [`fantoccini`] (re-exported).
//!
//! WebDriver rather than the DevTools protocol (`chromiumoxide`): it is a
//! W3C standard that Debian packages with the browser (`chromium-driver`),
//! fantoccini is a small client of it, and browser tests here ask only what
//! a person sees (elements, clicks, screenshots), which is what WebDriver
//! is for. `cargo xtask test` installs `chromium-driver` when it is missing.
//!
//! Screenshots go to `target/artifacts/<group>/` (CI keeps them).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use fantoccini;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// `chromedriver` on a free loopback port; stopped when dropped.
#[derive(Debug)]
pub struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    /// Starts `chromedriver` and waits (up to 20 s) until it answers.
    pub async fn start() -> ChromeDriver {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian: apt-get install chromium chromium-driver; `cargo xtask test` installs it)");
        let driver = ChromeDriver { child, url: format!("http://127.0.0.1:{port}") };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(reply) = http.get(format!("{}/status", driver.url)).send().await
                && reply.status().is_success()
            {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not answer on {}", driver.url);
    }

    /// A new headless Chromium session, 1400×1000, with a fresh profile.
    pub async fn browser(&self) -> Client {
        let profile = std::env::temp_dir().join(format!(
            "bff-testkit-chromium-{}-{}",
            std::process::id(),
            fastrand_suffix()
        ));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                // Debian's; `CHROME_BIN` names another.
                "binary": std::env::var("CHROME_BIN").unwrap_or_else(|_| "/usr/bin/chromium".to_owned()),
                // As root on a CI machine with no network beyond loopback: no
                // sandbox, and nothing that calls home (the closed network
                // refuses it, many times a second).
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else { unreachable!("a JSON object") };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A profile directory name of its own per session in this process.
fn fastrand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Saves what `browser` shows as `target/artifacts/<group>/<name>.png`.
pub async fn screenshot(browser: &Client, group: &str, name: &str) {
    let png = browser.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/artifacts").join(group);
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot written");
}

/// The text of the first element matching `css`, or empty.
pub async fn text_of(browser: &Client, css: &str) -> String {
    match browser.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}
