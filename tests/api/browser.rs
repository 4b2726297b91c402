//! A real browser for end-to-end console tests: Debian's chromium, headless, driven
//! through Debian's chromedriver with thirtyfour. `scripts/test.sh` installs both and
//! exports `AION_TEST_CHROMIUM` / `AION_TEST_CHROMEDRIVER`. Screenshots of the pages
//! go to `target/e2e/` for review.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use thirtyfour::prelude::*;

/// One browser session and the chromedriver it talks to (killed when dropped).
pub struct Browser {
    pub driver: WebDriver,
    chromedriver: Child,
    pub base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where screenshots go: `target/e2e/` of the repository.
pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/e2e");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    /// Starts chromedriver and a headless chromium on the console at `base`.
    pub async fn start(base: &str) -> Self {
        let chromium =
            std::env::var("AION_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let driver_bin = std::env::var("AION_TEST_CHROMEDRIVER")
            .unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        assert!(
            std::path::Path::new(&chromium).exists() && std::path::Path::new(&driver_bin).exists(),
            "browser tests need Debian's chromium and chromium-driver ({chromium}, {driver_bin}); scripts/test.sh installs them"
        );
        let port = free_port();
        // Its own process group, which the chromium it starts joins: dropping the
        // browser kills them all, even when a failed test never reached `quit`.
        let chromedriver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(&chromium).unwrap();
        for arg in [
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=1280,1000",
            "--lang=en-GB",
        ] {
            caps.add_arg(arg).unwrap();
        }
        let driver = WebDriver::new(&url, caps)
            .await
            .expect("a chromium session");
        driver
            .set_implicit_wait_timeout(Duration::from_secs(5))
            .await
            .unwrap();
        Self {
            driver,
            chromedriver,
            base: base.to_owned(),
        }
    }

    /// Opens a path of the console.
    pub async fn open(&self, path: &str) {
        self.driver
            .goto(format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// The current path (and query).
    pub async fn path(&self) -> String {
        let url = self.driver.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The visible text of the page (empty while a navigation replaces it).
    pub async fn text(&self) -> String {
        match self.driver.find(By::Tag("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits (up to `secs`) until the page's text contains `needle`, reloading the page
    /// between looks when `reload` is set.
    pub async fn wait_for_text(&self, needle: &str, secs: u64, reload: bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if self.text().await.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "'{needle}' never appeared on {}: {}",
                self.path().await,
                self.text().await
            );
            if reload {
                self.driver.refresh().await.unwrap();
            } else {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }

    /// Types into the input labelled by id.
    pub async fn fill(&self, id: &str, text: &str) {
        let input = self.driver.find(By::Id(id)).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    /// Sets an input's value directly (date inputs take keys in the browser's locale).
    pub async fn set_value(&self, id: &str, value: &str) {
        self.driver
            .execute(
                "document.getElementById(arguments[0]).value = arguments[1];",
                vec![serde_json::json!(id), serde_json::json!(value)],
            )
            .await
            .unwrap();
    }

    /// Chooses the option with this visible text in the select `id`.
    pub async fn choose(&self, id: &str, text: &str) {
        let select = self.driver.find(By::Id(id)).await.unwrap();
        thirtyfour::components::SelectElement::new(&select)
            .await
            .unwrap()
            .select_by_partial_text(text)
            .await
            .unwrap();
    }

    /// Clicks the element matched by a CSS selector.
    pub async fn click(&self, css: &str) {
        self.driver
            .find(By::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Saves a screenshot as `target/e2e/{name}.png`.
    pub async fn screenshot(&self, name: &str) {
        let path = screenshot_dir().join(format!("{name}.png"));
        self.driver.screenshot(&path).await.unwrap();
    }

    /// Signs in through the test OpenID provider's login page as `login`, from the
    /// console's sign-in page.
    pub async fn sign_in_with_provider(&self, login: &str) {
        self.open("/console").await;
        if self.path().await.starts_with("/auth/login") {
            self.click("#provider-test").await;
        }
        self.driver
            .find(By::Css("input[name=login]"))
            .await
            .unwrap()
            .send_keys(login)
            .await
            .unwrap();
        self.driver
            .find(By::Css("input[name=password]"))
            .await
            .unwrap()
            .send_keys("any password")
            .await
            .unwrap();
        self.click("button[type=submit]").await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.path().await.starts_with("/console") {
            assert!(
                Instant::now() < deadline,
                "never came back to the console: {}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Signs out with the header's button, and waits until the browser has left the
    /// console (for the provider's logout page, or the sign-in page).
    pub async fn sign_out(&self) {
        self.click("form[action='/auth/logout'] button").await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = self.driver.current_url().await.unwrap();
            if !url.as_str().starts_with(&self.base) || url.path().starts_with("/auth/login") {
                return;
            }
            assert!(Instant::now() < deadline, "sign-out never left {url}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn quit(self) {
        let driver = self.driver.clone();
        let _ = driver.quit().await;
        // Drop kills what is left of chromedriver's process group.
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.chromedriver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.chromedriver.kill();
        let _ = self.chromedriver.wait();
    }
}
