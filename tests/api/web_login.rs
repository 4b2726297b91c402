//! Signing in to the web console: the real OpenID provider's code + PKCE flow, claim
//! rules, the login bound to its browser, one-time callbacks, the development sign-in
//! only in `aion dev`, CSRF on forms, sign-out (RP-initiated) and session expiry.

use crate::helpers::{Backend, Provider, TestApp};
use crate::on_both_databases;
use crate::web_client::WebClient;
use aion::config::Config;
use aion_web::oidc::{ClaimRule, ClientSecretValue, ProviderConfig, RuleGrant};

/// The test provider as the console's only identity provider, with claim rules giving
/// alice the lead of the demo project, gaspard GENCI's committee and olga the platform.
pub fn with_provider(provider: &Provider) -> impl FnOnce(&mut Config) + use<> {
    let issuer = provider.issuer.clone();
    move |c: &mut Config| {
        c.web_providers = vec![ProviderConfig {
            name: "test".into(),
            display_name: "Test University".into(),
            issuer,
            client_id: "aion-web".into(),
            client_secret: Some(ClientSecretValue("secret".into())),
            scopes: vec!["email".into(), "profile".into()],
        }];
        let rule =
            |login: &str, scope: &str, org: Option<&str>, project: Option<&str>, role: &str| {
                ClaimRule {
                    provider: Some("test".into()),
                    claim: "preferred_username".into(),
                    value: login.into(),
                    grant: RuleGrant {
                        scope: scope.into(),
                        organization: org.map(Into::into),
                        project: project.map(Into::into),
                        role: role.into(),
                    },
                }
            };
        c.web_claim_rules = vec![
            rule(
                "alice",
                "project",
                Some("hyperion-lab"),
                Some("climate-llm"),
                "lead",
            ),
            rule("gaspard", "organization", Some("genci"), None, "allocator"),
            rule("olga", "platform", None, None, "platform-admin"),
        ];
    }
}

async fn a_person_signs_in_through_the_provider_with_roles_from_claims(backend: Backend) {
    let provider = Provider::start();
    let app = TestApp::spawn_dev(backend, 0, with_provider(&provider)).await;
    let browser = WebClient::new(&app.base);

    // A stranger is sent to sign in, then back where they wanted to go.
    let first = browser.get("/console").await;
    assert_eq!(first.redirect(), "/auth/login?return_to=%2Fconsole");
    let callback = browser.oidc_callback_url("test", "alice", "/console").await;
    let res = browser.http.get(&callback).send().await.unwrap();
    assert_eq!(res.headers()["location"], "/console");
    let cookies: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("aion_session="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(!session.contains("Secure"), "plain http here: {session}");
    // The secret is random and only its hash is stored.
    let secret = session
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("aion_session=");
    let stored = aion_services::entities::web_sessions::Entity::find()
        .all(&app.services.db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].token_hash, secret);
    assert_eq!(
        stored[0].token_hash,
        aion_services::secrets::hash_secret(secret)
    );
    let dashboard = browser.get("/console").await.expect(200);
    assert!(
        dashboard.body.contains("Climate downscaling LLM"),
        "{}",
        dashboard.body
    );
    assert!(dashboard.body.contains("alice@lab.example") || dashboard.body.contains("Alice"));

    // The person is the provider's (issuer, subject), not the demo user of the same name.
    let users = app.get("/v1/organizations", &app.admin).await.expect(200);
    assert!(users.body["items"].as_array().unwrap().len() >= 4);
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let user = aion_services::entities::users::Entity::find()
        .filter(aion_services::entities::users::Column::Issuer.eq(provider.issuer.as_str()))
        .filter(aion_services::entities::users::Column::Subject.eq("alice"))
        .one(&app.services.db)
        .await
        .unwrap()
        .expect("the provider's alice was created");
    assert_eq!(user.email.as_deref(), Some("alice@lab.example"));
    let audit = app
        .get("/v1/audit-events?action=session.open", &app.admin)
        .await
        .expect(200);
    assert_eq!(
        audit.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        audit.body
    );

    // Signing in again does not duplicate the role the claim gave.
    let again = WebClient::new(&app.base);
    again.oidc_sign_in("test", "alice", "/console").await;
    let roles = aion_services::entities::memberships::Entity::find()
        .filter(aion_services::entities::memberships::Column::UserId.eq(user.id))
        .all(&app.services.db)
        .await
        .unwrap();
    assert_eq!(roles.len(), 1);

    // Someone with no matching rule signs in but works in no project.
    let dave = WebClient::new(&app.base);
    dave.oidc_sign_in("test", "dave", "/console").await;
    let page = dave.get("/console").await.expect(200);
    assert!(!page.body.contains("Climate downscaling LLM"));
}

async fn a_callback_only_works_once_and_only_in_the_browser_that_started_it(backend: Backend) {
    let provider = Provider::start();
    let app = TestApp::spawn_dev(backend, 0, with_provider(&provider)).await;
    let victim = WebClient::new(&app.base);
    let attacker = WebClient::new(&app.base);

    // The attacker's callback link, opened in the victim's browser, signs nobody in.
    let link = attacker.oidc_callback_url("test", "dave", "/console").await;
    let refused = victim.get(&link).await;
    assert_eq!(refused.status.as_u16(), 401, "{}", refused.body);
    assert!(
        refused.body.contains("not started in this browser"),
        "{}",
        refused.body
    );
    assert!(victim.get("/console").await.location.is_some());

    // In its own browser it works once; replayed, it is refused.
    assert_eq!(attacker.get(&link).await.redirect(), "/console");
    let replay = attacker.get(&link).await;
    assert_eq!(replay.status.as_u16(), 401, "{}", replay.body);

    // A tampered state is refused too.
    let tampered = WebClient::new(&app.base);
    let link = tampered.oidc_callback_url("test", "dave", "/console").await;
    let bad = link.replace("state=", "state=x");
    assert_eq!(tampered.get(&bad).await.status.as_u16(), 401);

    // The provider's refusal is shown as a readable page.
    let denied = tampered
        .get("/auth/callback?error=access_denied&error_description=no+thanks")
        .await;
    assert_eq!(denied.status.as_u16(), 401);
    assert!(denied.body.contains("no thanks"), "{}", denied.body);
    assert!(denied.body.contains("<!doctype html>"));
}

async fn sign_out_ends_the_session_here_and_at_the_provider(backend: Backend) {
    let provider = Provider::start();
    let app = TestApp::spawn_dev(backend, 0, with_provider(&provider)).await;
    let browser = WebClient::new(&app.base);
    browser.oidc_sign_in("test", "alice", "/console").await;

    // Without the form's token, or from another site, sign-out is refused.
    let no_token = browser.post_raw("/auth/logout", &[]).await;
    assert_eq!(no_token.status.as_u16(), 403);
    let page = browser.get("/console").await.expect(200);
    let csrf = page.csrf();
    let foreign = browser
        .http
        .post(format!("{}/auth/logout", app.base))
        .header("Origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status().as_u16(), 403);
    browser.get("/console").await.expect(200);

    let out = browser.post_raw("/auth/logout", &[("csrf", &csrf)]).await;
    let target = out.redirect();
    assert!(
        target.starts_with(&format!("{}/session/end", provider.issuer)),
        "{target}"
    );
    assert!(target.contains("id_token_hint="), "{target}");
    assert!(target.contains("client_id=aion-web"), "{target}");
    assert!(
        browser.get("/console").await.location.is_some(),
        "signed out"
    );
    let audit = app
        .get("/v1/audit-events?action=session.close", &app.admin)
        .await
        .expect(200);
    assert_eq!(audit.body["items"].as_array().unwrap().len(), 1);
}

on_both_databases!(
    a_person_signs_in_through_the_provider_with_roles_from_claims,
    a_callback_only_works_once_and_only_in_the_browser_that_started_it,
    sign_out_ends_the_session_here_and_at_the_provider,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_development_sign_in_exists_only_in_aion_dev() {
    let provider = Provider::start();
    let serve = TestApp::spawn_with(Backend::Sqlite, with_provider(&provider)).await;
    let browser = WebClient::new(&serve.base);
    // One provider and no development sign-in: straight to the provider.
    let login = browser.get("/auth/login").await;
    assert!(login.redirect().starts_with("/auth/login/test"));
    let signed_out = browser.get("/auth/login?signed_out=1").await.expect(200);
    assert!(!signed_out.body.contains("/auth/dev"));
    assert_eq!(
        browser
            .post_raw("/auth/dev", &[("user", "olga")])
            .await
            .status
            .as_u16(),
        404
    );

    // Several providers: a chooser page lists them.
    let issuer = provider.issuer.clone();
    let two = TestApp::spawn_with(Backend::Sqlite, move |c| {
        let p = |name: &str, display: &str| ProviderConfig {
            name: name.into(),
            display_name: display.into(),
            issuer: issuer.clone(),
            client_id: "aion-web".into(),
            client_secret: Some(ClientSecretValue("secret".into())),
            scopes: vec!["email".into()],
        };
        c.web_providers = vec![
            p("saclay", "Université Paris-Saclay"),
            p("cnrs", "CNRS Janus"),
        ];
    })
    .await;
    let chooser = WebClient::new(&two.base)
        .get("/auth/login?return_to=/console/x")
        .await
        .expect(200);
    assert!(
        chooser.body.contains("Université Paris-Saclay") && chooser.body.contains("CNRS Janus")
    );
    assert!(
        chooser
            .body
            .contains("/auth/login/cnrs?return_to=%2Fconsole%2Fx"),
        "{}",
        chooser.body
    );
    assert!(!chooser.body.contains("/auth/dev"));
    let back = WebClient::new(&two.base)
        .oidc_sign_in("cnrs", "carol", "/console/x")
        .await;
    assert_eq!(back, "/console/x", "back where the person wanted to go");

    let dev = TestApp::spawn_dev(Backend::Sqlite, 0, |_| {}).await;
    let browser = WebClient::new(&dev.base);
    let login = browser.get("/auth/login").await.expect(200);
    assert!(login.body.contains("Development sign-in"));
    // Without the page's token (login CSRF), or as someone who is not a demo user: no.
    assert_eq!(
        browser
            .post_raw("/auth/dev", &[("user", "olga")])
            .await
            .status
            .as_u16(),
        403
    );
    let pre = login.field("pre").unwrap();
    let stranger = browser
        .post_raw("/auth/dev", &[("pre", &pre), ("user", "mallory")])
        .await;
    assert_eq!(stranger.status.as_u16(), 422, "{}", stranger.body);
    browser.dev_sign_in("olga").await;
    let page = browser.get("/console").await.expect(200);
    assert!(page.body.contains("Olga"));
    assert!(
        page.body.contains("href=\"/admin\""),
        "an operator sees the operators' panel link"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_when_idle_and_pages_speak_french() {
    let provider = Provider::start();
    let app = TestApp::spawn_with(Backend::Sqlite, with_provider(&provider)).await;
    aion_services::seed::demo_if_empty(&app.services)
        .await
        .unwrap();
    let browser = WebClient::new(&app.base);
    browser.oidc_sign_in("test", "alice", "/console").await;
    let fr = browser
        .http
        .get(format!("{}/console", app.base))
        .header("Accept-Language", "fr-FR,fr;q=0.9,en;q=0.5")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        fr.contains("Mes projets") && fr.contains("<html lang=\"fr\">"),
        "{fr}"
    );
    // The language switch is remembered over Accept-Language.
    let switch = browser.get("/lang/en?return_to=/console").await;
    assert_eq!(switch.redirect(), "/console");
    // An open redirect through the switch is not possible.
    assert_eq!(
        browser
            .get("/lang/en?return_to=//evil.example")
            .await
            .redirect(),
        "/console"
    );

    app.clock.advance(chrono::Duration::hours(7));
    browser.get("/console").await.expect(200);
    app.clock.advance(chrono::Duration::hours(7));
    browser.get("/console").await.expect(200);
    // Used every 7 hours it lives on; unused for more than 8 hours it ends.
    app.clock.advance(chrono::Duration::hours(9));
    assert!(
        browser
            .get("/console")
            .await
            .location
            .unwrap()
            .starts_with("/auth/login")
    );
}
