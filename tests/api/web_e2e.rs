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

    let lease_page = browser.path().await;

    // Its usage, as charts drawn on the server, once the node has reported some.
    browser.click("main a[href^='/console/projects/']").await;
    browser.click("a[href$='/usage']").await;
    browser.wait_for_text("GPU-hours per day", 5, false).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while browser.text().await.contains("No data for this period") {
        assert!(
            std::time::Instant::now() < deadline,
            "no usage reported in a minute"
        );
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        browser.driver.refresh().await.unwrap();
    }
    browser.screenshot("10-usage").await;
    let charts = browser
        .driver
        .find_all(By::Css("figure svg[role=img]"))
        .await
        .unwrap();
    assert!(charts.len() >= 3, "three charts on the usage page");
    let source = browser.driver.source().await.unwrap();
    assert!(
        source.contains("1g.10gb"),
        "the day's bar names its profile"
    );

    browser.open(&lease_page).await;
    browser.click("form[action$='/release'] button").await;
    browser.wait_for_text("released", 60, true).await;
    browser.screenshot("05-lease-released").await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committee_opens_a_call_and_approves_a_request_a_researcher_filed() {
    let provider = Provider::start();
    let app = TestApp::spawn_dev(Backend::Sqlite, 0, with_provider(&provider)).await;
    let committee = Browser::start(&app.base).await;
    committee.sign_in_with_provider("gaspard").await;
    committee.click("a[href='/admin/allocations']").await;
    committee
        .wait_for_text("GENCI AI call (demo)", 5, false)
        .await;
    committee.screenshot("06-committee-calls").await;

    // A new call, as a draft, then opened.
    let today = chrono::Utc::now().date_naive();
    let day = |d: i64| {
        (today + chrono::Duration::days(d))
            .format("%Y-%m-%d")
            .to_string()
    };
    committee.fill("call-title", "Spring AI call").await;
    committee
        .fill("call-description", "GPU-hours for AI research in spring.")
        .await;
    committee.fill("call-pool", "10000").await;
    committee.set_value("call-opens", &day(0)).await;
    committee.set_value("call-closes", &day(30)).await;
    committee.set_value("call-start", &day(1)).await;
    committee.set_value("call-end", &day(365)).await;
    committee
        .click("form[action='/admin/allocations/calls'] button[type=submit]")
        .await;
    committee
        .wait_for_text("Call created as a draft", 5, false)
        .await;
    let call_page = committee.path().await;
    let call_page = call_page.split('?').next().unwrap().to_owned();
    assert!(
        call_page.starts_with("/admin/allocations/calls/"),
        "{call_page}"
    );
    committee.click("form[action$='/open'] button").await;
    committee
        .wait_for_text("The call is open for requests", 5, false)
        .await;

    // The researcher files a request on it from the project's page.
    let researcher = Browser::start(&app.base).await;
    researcher.sign_in_with_provider("alice").await;
    researcher.click("main h2 a").await;
    researcher
        .driver
        .find(By::LinkText("Allocation requests"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    researcher.choose("call", "Spring AI call").await;
    researcher.fill("gpu_hours", "800").await;
    researcher
        .fill(
            "justification",
            "Training a regional climate emulator for the spring campaign.",
        )
        .await;
    researcher
        .click("form[action$='/allocation-requests'] button[type=submit]")
        .await;
    researcher
        .wait_for_text("The request was filed", 5, false)
        .await;
    researcher.screenshot("08-allocation-request-filed").await;

    // The committee reviews it with its justification, and grants fewer hours.
    committee.open(&call_page).await;
    committee
        .wait_for_text("Training a regional climate emulator", 5, false)
        .await;
    committee.screenshot("07-committee-review").await;
    let approve = committee
        .driver
        .find(By::Css("form[action$='/approve'] input[name=gpu_hours]"))
        .await
        .unwrap();
    approve.clear().await.unwrap();
    approve.send_keys("600").await.unwrap();
    committee
        .click("form[action$='/approve'] button[type=submit]")
        .await;
    committee.wait_for_text("Request approved", 5, false).await;
    committee.screenshot("09-committee-approved").await;

    // The project now holds the grant.
    researcher.open("/console").await;
    researcher.wait_for_text("600.0", 5, false).await;
    researcher.quit().await;
    committee.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_the_fleet_and_cordons_a_node() {
    let provider = Provider::start();
    let app = TestApp::spawn_dev(Backend::Sqlite, 2, with_provider(&provider)).await;
    let operator = Browser::start(&app.base).await;
    operator.sign_in_with_provider("olga").await;
    operator.click("a[href='/admin']").await;
    operator.wait_for_text("ready", 20, true).await;
    operator.screenshot("11-admin-overview").await;

    operator.open("/admin/fleet").await;
    operator.wait_for_text("H100-80GB", 20, true).await;
    let picture = operator
        .driver
        .find_all(By::Css("figure svg[role=img]"))
        .await
        .unwrap();
    assert!(!picture.is_empty(), "the occupancy picture");
    operator.screenshot("12-fleet").await;

    operator.open("/admin/nodes").await;
    operator.wait_for_text("dev-node-1", 20, true).await;
    operator.screenshot("13-nodes").await;
    operator
        .driver
        .find(By::LinkText("dev-node-1"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    operator.click("form[action$='/cordon'] button").await;
    operator.wait_for_text("cordoned", 10, false).await;
    operator.screenshot("14-node-cordoned").await;
    let nodes = app.get("/v1/nodes", &app.admin).await.expect(200);
    let node = nodes.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["hostname"] == "dev-node-1")
        .unwrap()
        .clone();
    assert_eq!(node["state"], "cordoned");

    operator.open("/admin/audit?action=node.cordon").await;
    operator.wait_for_text("node.cordon", 5, false).await;
    operator.screenshot("15-audit").await;
    operator.quit().await;
}
