//! Who may open which console page, page by page: the console's authorisation is the
//! API's (another tenant's object is a 404, a panel one may not use a 403), signed-out
//! visitors are sent to sign in, refusals are readable HTML pages, and no form acts
//! without the session's CSRF token or for someone who may not act.

use crate::helpers::{Backend, TestApp};
use crate::web_client::WebClient;
use serde_json::{Value, json};

/// What a person gets on a page.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Sees {
    Page,
    Refused,
}
use Sees::{Page, Refused};

/// A form post: path, fields, and someone signed in who may not do it.
type Form<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);

struct Ids {
    alice_project: String,
    bob_project: String,
    hyperion: String,
    genci_call: String,
    alice_lease: String,
    node: String,
    price_list: String,
}

fn item<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i[key] == value)
        .unwrap_or_else(|| panic!("no {key}={value} in {list}"))
}

async fn ids(app: &TestApp) -> Ids {
    let orgs = app
        .get("/v1/organizations", &app.admin)
        .await
        .expect(200)
        .body;
    let org = |slug: &str| item(&orgs, "slug", slug)["id"].as_str().unwrap().to_owned();
    let project_of = |org: String| async move {
        app.get(&format!("/v1/organizations/{org}/projects"), &app.admin)
            .await
            .expect(200)
            .body["items"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let hyperion = org("hyperion-lab");
    let alice_project = project_of(hyperion.clone()).await;
    let bob_project = project_of(org("helios-ai")).await;
    let calls = app.get("/v1/calls", &app.admin).await.expect(200).body;
    let genci_call = calls["items"][0]["id"].as_str().unwrap().to_owned();
    let alice_lease = app
        .post(
            &format!("/v1/projects/{alice_project}/leases"),
            &app.admin,
            json!({"profile": "1g.10gb"}),
        )
        .await
        .expect(201)
        .id();
    let mut node = String::new();
    for _ in 0..100 {
        let nodes = app.get("/v1/nodes", &app.admin).await.expect(200).body;
        if let Some(n) = nodes["items"].as_array().unwrap().first() {
            node = n["id"].as_str().unwrap().to_owned();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!node.is_empty(), "the simulated node registered");
    let lists = app
        .get("/v1/price-lists", &app.admin)
        .await
        .expect(200)
        .body;
    let price_list = lists["items"][0]["id"].as_str().unwrap().to_owned();
    Ids {
        alice_project,
        bob_project,
        hyperion,
        genci_call,
        alice_lease,
        node,
        price_list,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_shows_only_to_those_who_may_see_it() {
    let app = TestApp::spawn_dev(Backend::Sqlite, 1, |_| {}).await;
    let ids = ids(&app).await;
    let (p, l, o, call, node, list) = (
        &ids.alice_project,
        &ids.alice_lease,
        &ids.hyperion,
        &ids.genci_call,
        &ids.node,
        &ids.price_list,
    );
    let unknown = uuid::Uuid::now_v7();
    // (path, alice: lead of the project, bob: lead elsewhere, gaspard: GENCI committee,
    //  olga: operator)
    let pages: Vec<(String, [Sees; 4])> = vec![
        ("/console".into(), [Page, Page, Page, Page]),
        (
            format!("/console/projects/{p}"),
            [Page, Refused, Refused, Page],
        ),
        (
            format!("/console/projects/{p}?state=active"),
            [Page, Refused, Refused, Page],
        ),
        (
            format!("/console/projects/{p}/usage"),
            [Page, Refused, Refused, Page],
        ),
        (
            format!("/console/projects/{p}/usage?days=90"),
            [Page, Refused, Refused, Page],
        ),
        (
            format!("/console/projects/{p}/allocation-requests"),
            [Page, Refused, Refused, Page],
        ),
        (
            format!("/console/projects/{p}/members"),
            [Page, Refused, Refused, Page],
        ),
        (
            format!("/console/projects/{p}/tokens"),
            [Page, Refused, Refused, Page],
        ),
        (
            format!("/console/leases/{l}"),
            [Page, Refused, Refused, Page],
        ),
        (
            format!("/console/organizations/{o}/billing"),
            [Refused, Refused, Refused, Page],
        ),
        (
            format!("/console/billing/documents/{unknown}"),
            [Refused; 4],
        ),
        (
            format!("/console/billing/documents/{unknown}/csv"),
            [Refused; 4],
        ),
        (
            format!("/console/billing/documents/{unknown}/print"),
            [Refused; 4],
        ),
        (format!("/console/projects/{unknown}"), [Refused; 4]),
        ("/admin/allocations".into(), [Refused, Refused, Page, Page]),
        (
            format!("/admin/allocations/calls/{call}"),
            [Refused, Refused, Page, Page],
        ),
        ("/admin".into(), [Refused, Refused, Refused, Page]),
        (
            "/admin/organizations".into(),
            [Refused, Refused, Refused, Page],
        ),
        (
            "/admin/organizations/new".into(),
            [Refused, Refused, Refused, Page],
        ),
        (
            format!("/admin/organizations/{o}"),
            [Refused, Refused, Refused, Page],
        ),
        (
            format!("/admin/organizations/{o}/invoices"),
            [Refused, Refused, Refused, Page],
        ),
        ("/admin/users".into(), [Refused, Refused, Refused, Page]),
        (
            "/admin/price-lists".into(),
            [Refused, Refused, Refused, Page],
        ),
        (
            "/admin/price-lists/new".into(),
            [Refused, Refused, Refused, Page],
        ),
        (
            format!("/admin/price-lists/{list}"),
            [Refused, Refused, Refused, Page],
        ),
        ("/admin/nodes".into(), [Refused, Refused, Refused, Page]),
        (
            format!("/admin/nodes/{node}"),
            [Refused, Refused, Refused, Page],
        ),
        ("/admin/fleet".into(), [Refused, Refused, Refused, Page]),
        ("/admin/audit".into(), [Refused, Refused, Refused, Page]),
        (format!("/admin/invoices/{unknown}"), [Refused; 4]),
    ];
    let stranger = WebClient::new(&app.base);
    let people = ["alice", "bob", "gaspard", "olga"];
    let mut browsers = Vec::new();
    for who in people {
        let b = WebClient::new(&app.base);
        b.dev_sign_in(who).await;
        browsers.push(b);
    }
    for (path, expected) in &pages {
        let anonymous = stranger.get(path).await;
        assert!(
            anonymous.redirect().starts_with("/auth/login?return_to="),
            "{path}: a stranger is sent to sign in"
        );
        for (i, who) in people.iter().enumerate() {
            let page = browsers[i].get(path).await;
            let status = page.status.as_u16();
            match expected[i] {
                Page => assert_eq!(status, 200, "{who} must see {path}: {}", page.body),
                Refused => assert!(
                    status == 403 || status == 404,
                    "{who} must not see {path}, got {status}: {}",
                    page.body
                ),
            }
            assert!(
                page.body.starts_with("<!doctype html>") || path.ends_with("/csv") && status == 200,
                "{who} on {path}: an HTML page, never JSON: {}",
                page.body
            );
            if expected[i] == Page && status == 200 && !path.ends_with("/csv") {
                assert_labelled(&page.body, path);
            }
            if expected[i] == Refused {
                assert!(!page.body.contains(&ids.alice_lease) || path.contains(&ids.alice_lease));
            }
        }
    }
    // Malformed addresses and unknown pages are pages too, never problem+json.
    for path in [
        "/console/projects/not-a-uuid",
        "/console/leases/1",
        "/no-such-page",
    ] {
        let page = browsers[0].get(path).await;
        assert!(page.status.is_client_error(), "{path}: {}", page.status);
        assert!(
            page.body.starts_with("<!doctype html>"),
            "{path}: {}",
            page.body
        );
    }
    // The API keeps answering problems.
    let api = browsers[0].get("/v1/projects/not-a-uuid").await;
    assert!(api.body.starts_with('{'), "{}", api.body);
    // Bob's project is as closed to alice as hers is to him.
    let theirs = browsers[0]
        .get(&format!("/console/projects/{}", ids.bob_project))
        .await;
    assert_eq!(theirs.status.as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_form_acts_without_its_token_or_for_someone_who_may_not_act() {
    let app = TestApp::spawn_dev(Backend::Sqlite, 1, |_| {}).await;
    let ids = ids(&app).await;
    let (p, l, call, node) = (
        &ids.alice_project,
        &ids.alice_lease,
        &ids.genci_call,
        &ids.node,
    );
    let requests = app
        .get(&format!("/v1/calls/{call}/requests"), &app.admin)
        .await
        .expect(200)
        .body;
    let request = requests["items"][0]["id"].as_str().unwrap().to_owned();
    // (path, fields, someone signed in who may not do it)
    let forms: Vec<Form> = vec![
        (
            format!("/console/projects/{p}/leases"),
            vec![
                ("profile", "H100-80GB/1g.10gb"),
                ("count", "1"),
                ("duration_h", "1"),
            ],
            "bob",
        ),
        (format!("/console/leases/{l}/release"), vec![], "bob"),
        (
            format!("/console/projects/{p}/tokens"),
            vec![("name", "ci"), ("role", "member")],
            "bob",
        ),
        (
            format!("/admin/allocations/calls/{call}/close"),
            vec![],
            "alice",
        ),
        (
            format!("/admin/allocations/requests/{request}/approve"),
            vec![("gpu_hours", "10")],
            "alice",
        ),
        (
            format!("/admin/allocations/requests/{request}/reject"),
            vec![("reason", "no")],
            "bob",
        ),
        (format!("/admin/nodes/{node}/cordon"), vec![], "gaspard"),
        (format!("/admin/nodes/{node}/drain"), vec![], "alice"),
        (
            "/admin/organizations".into(),
            vec![("slug", "evil-corp"), ("name", "Evil"), ("kind", "startup")],
            "gaspard",
        ),
    ];
    let olga = WebClient::new(&app.base);
    olga.dev_sign_in("olga").await;
    for (path, fields, intruder) in &forms {
        // Without the session's token, even the operator is refused.
        let page = olga.post_raw(path, fields).await;
        assert_eq!(
            page.status.as_u16(),
            403,
            "{path} without a CSRF token: {}",
            page.body
        );
        assert!(
            page.body.contains("did not come from this site"),
            "{}",
            page.body
        );
        // With a valid token, someone who may not act is refused.
        let who = WebClient::new(&app.base);
        who.dev_sign_in(intruder).await;
        let refused = who.post("/console", path, fields).await;
        let status = refused.status.as_u16();
        assert!(
            status == 403 || status == 404,
            "{intruder} on {path}: {status} {}",
            refused.body
        );
    }
    // Nothing happened.
    let lease = app
        .get(&format!("/v1/leases/{l}"), &app.admin)
        .await
        .expect(200);
    assert!(matches!(
        lease.body["state"].as_str(),
        Some("pending" | "scheduled" | "active")
    ));
    let node = app
        .get(&format!("/v1/nodes/{node}"), &app.admin)
        .await
        .expect(200);
    assert_eq!(node.body["state"], "ready");
    let req = app
        .get(&format!("/v1/allocation-requests/{request}"), &app.admin)
        .await
        .expect(200);
    assert_eq!(req.body["state"], "submitted");
    let leases = app
        .get(&format!("/v1/projects/{p}/leases"), &app.admin)
        .await
        .expect(200);
    assert_eq!(leases.body["items"].as_array().unwrap().len(), 1);
    let orgs = app.get("/v1/organizations", &app.admin).await.expect(200);
    assert!(!orgs.body.to_string().contains("evil-corp"));
}

/// Every visible form control of a page has a label: a `<label for>` naming its id, or
/// an `aria-label`.
fn assert_labelled(html: &str, path: &str) {
    for tag in ["<input", "<select", "<textarea"] {
        for piece in html.split(tag).skip(1) {
            let element = &piece[..piece.find('>').unwrap_or(piece.len())];
            if element.contains("type=\"hidden\"") || element.contains("type=\"submit\"") {
                continue;
            }
            if element.contains("aria-label=") {
                continue;
            }
            let id = element
                .split("id=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("{path}: a {tag}> without id or aria-label: {element}"));
            assert!(
                html.contains(&format!("for=\"{id}\"")),
                "{path}: no <label for=\"{id}\">"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_submitted_twice_acts_once() {
    let app = TestApp::spawn_dev(Backend::Sqlite, 0, |_| {}).await;
    let olga = WebClient::new(&app.base);
    olga.dev_sign_in("olga").await;
    let form = olga.get("/admin/organizations/new").await.expect(200);
    let (csrf, idem) = (form.csrf(), form.field("idem").expect("an idempotency key"));
    let fields = [
        ("csrf", csrf.as_str()),
        ("idem", idem.as_str()),
        ("name", "Orion Robotics"),
        ("slug", "orion"),
        ("kind", "industry"),
        ("country", "DE"),
    ];
    // A double click: both answers lead to the same organisation.
    let first = olga
        .post_raw("/admin/organizations", &fields)
        .await
        .redirect();
    let second = olga
        .post_raw("/admin/organizations", &fields)
        .await
        .redirect();
    assert_eq!(first, second);
    let orgs = app.get("/v1/organizations", &app.admin).await.expect(200);
    let orion = orgs.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["slug"] == "orion")
        .count();
    assert_eq!(orion, 1);
    // A new form gets a new key.
    let again = olga.get("/admin/organizations/new").await.expect(200);
    assert_ne!(again.field("idem").unwrap(), idem);
}
