//! End-to-end console tests in a real browser (headless chromium): people sign in
//! through the real OpenID provider's login page and use the console as they would.

use crate::browser::Browser;
use crate::helpers::{Backend, Provider, TestApp};
use crate::web_login::with_provider;
use thirtyfour::components::SelectElement;
use thirtyfour::prelude::*;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_researcher_requests_a_slice_watches_it_become_active_and_releases_it() {
    let provider = Provider::start();
    // aion dev with one simulated 8-GPU node running beside the server.
    let app = TestApp::spawn_dev(Backend::Sqlite, 1, with_provider(&provider)).await;
    let browser = Browser::start(&app.base).await;
    browser.sign_in_with_provider("alice").await;
    browser.click("main h2 a").await;
    browser.wait_for_text("Request slices", 5, false).await;
    browser.screenshot("03-project").await;

    // A request the quota cannot take is explained on the form, keeping the input.
    // 40 whole GPUs are more than the demo quota of 32.
    let select = browser.driver.find(By::Id("profile")).await.unwrap();
    SelectElement::new(&select)
        .await
        .unwrap()
        .select_by_value("H100-80GB/7g.80gb")
        .await
        .unwrap();
    browser.fill("count", "40").await;
    browser
        .click("form[action$='/leases'] button[type=submit]")
        .await;
    browser
        .wait_for_text("this lease needs 280", 5, false)
        .await;
    let count = browser.driver.find(By::Id("count")).await.unwrap();
    assert_eq!(count.value().await.unwrap().as_deref(), Some("40"));
    browser.screenshot("03b-project-request-refused").await;

    let select = browser.driver.find(By::Id("profile")).await.unwrap();
    SelectElement::new(&select)
        .await
        .unwrap()
        .select_by_value("H100-80GB/1g.10gb")
        .await
        .unwrap();
    browser.fill("count", "1").await;
    browser.fill("duration_h", "2").await;
    browser
        .click("form[action$='/leases'] button[type=submit]")
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !browser.path().await.starts_with("/console/leases/") {
        assert!(
            std::time::Instant::now() < deadline,
            "no lease page: {}",
            browser.text().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The page refreshes its live part by itself (live.js): no reload needed.
    browser.wait_for_text("State: active", 60, false).await;
    browser
        .wait_for_text("aion agent exec --lease", 5, false)
        .await;
    browser.wait_for_text("aion.eu/mig=", 5, false).await;
    browser.screenshot("04-lease-active").await;

    browser.click("form[action$='/release'] button").await;
    browser.wait_for_text("released", 60, true).await;
    browser.screenshot("05-lease-released").await;
    browser.quit().await;
}
