//! End-to-end console tests in a real browser (headless chromium): people sign in
//! through the real OpenID provider's login page and use the console as they would.

use crate::browser::Browser;
use crate::helpers::{Backend, Provider, TestApp};
use crate::web_login::with_provider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_researcher_signs_in_in_a_browser_and_sees_their_projects() {
    let provider = Provider::start();
    let app = TestApp::spawn_dev(Backend::Sqlite, 0, with_provider(&provider)).await;
    let browser = Browser::start(&app.base).await;

    browser.open("/console").await;
    assert!(browser.path().await.starts_with("/auth/login"));
    browser.wait_for_text("Test University", 5, false).await;
    browser.wait_for_text("Development sign-in", 5, false).await;
    browser.screenshot("01-sign-in").await;

    browser.sign_in_with_provider("alice").await;
    browser.wait_for_text("My projects", 5, false).await;
    browser
        .wait_for_text("Climate downscaling LLM", 5, false)
        .await;
    browser.screenshot("02-dashboard").await;

    // French, remembered by the language switch.
    browser.click("a[hreflang=fr]").await;
    browser.wait_for_text("Mes projets", 5, false).await;
    browser.click("a[hreflang=en]").await;

    browser.sign_out().await;
    // RP-initiated logout: the provider's confirmation page, then back here.
    browser.open("/console").await;
    assert!(
        browser.path().await.starts_with("/auth/login"),
        "{}",
        browser.path().await
    );
    browser.quit().await;
}
