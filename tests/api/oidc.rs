//! OIDC bearer authentication against the real OpenID provider (`testing/oidc-provider`):
//! valid tokens create users and carry their roles; forged, expired, wrong-audience,
//! wrong-issuer, `alg: none` and HMAC tokens are refused with 401.

use crate::helpers::{Backend, Provider, Resp, TestApp};
use crate::on_both_databases;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

/// An RSA key that belongs to no provider (test use only), to forge RS256 signatures.
const FOREIGN_RSA_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC0PVuzXLD3sUIq
Nb9JUrOR86Au/RrFrPAwVQcE7c95JcwSeQvi15P18BDXY+fkqg/gtYqGgDRbXofd
z72rzzXNjBs/dtycbxhMCfpHh2tvmZ2ALv3JmlaKGyiJ3Ls983QEMW1KDGH82vTn
M8GNjgGPrQLQUxlgorBU3cLJMjzKMfZcXQZgAoVLn+br3Db4E2Rmm9+Pe9RWtqoz
8NwjgA/eazMH124hLDMXparXgw1Bpsfc7COmITboUv8a51WuUAgxjQKwrdFbs4LP
HjTvLJc7cLzbMD1dnj+QAwD9wRuQDr+x0gUL1Ww5ClpXmmvoGbBWEJxKHfpVzkbD
ZW7G54x3AgMBAAECggEAARM3eW03TQIoFruB6NHQjvSLMnsHhtnXjd8zM2AWa9A8
C2zsvgjUYpQPR/E7nG7WrO4dnIEBc4Nmf8czY4RXIA2k+wKL9vyepujizVTNNnDE
1wQVT1kORjr9ntzkI+ETiJnqrolK8Xl+MwnjLpE0y7/Ik5u4O++QS3/FBzwAknDt
FvzlWCQAVlA12cdxSg2XIKMyRKXBYO8tUXIYVmALaRlKsjXDptgZzZvm5b7uv3PZ
N93fJXDklng68bJxZQORKs5GCrAqb7ZISBNK8ny3HCdZ6gnQYdztA68wobeAXYr6
X81bIKGrXSwwidg6M+gAAGQXpP6aZrjonF1dgqu6kQKBgQDngcu3/xXNd3Y32vJg
P44DWhEUge35WwxQ3s8EhqAuQMF6JaHuIKpWKfCOP4PmQL0gT9wUPMCFQRQL4q2X
DC5C7lUvmR0tOf8n7OW4tLmxB8k/4kdhkJgOenbeUokpWoOPNjolYUnQJWMA8chY
3HNPscUfGg/aFrysXnL6/yhuTwKBgQDHTwXYqVQwlyYdaBJFwkRtN81nhKqfT4B1
Lblbj8arApYdwFIoAQsnPvt6IXqqcmEvXMKeYOadrPJ+Uoq8NqlO04EdxlDxDV5p
nkwWBbedYFpClnrPmcWn9+GQMLKrM9Jokrjp7zFE1IvgiEcc5/dFKTUbHY5ZoekH
/M3MOrHdWQKBgE4e04LEVjQeYssYW/+0kpR4+RiFe6tQWQiVFyB82WKiQWeZeVok
tbYbsuwdbMHvCKL1r9s4YPLWchBMrq0w1A+L4z0LmvffAUYUv7QjcCHX8cZX8iRv
KZCBLMl66oQE4i4aa2afvMu7QfxYmnW59kNnRpBnOAAs+f/kY0JlhdwrAoGAV7Q/
Z1sD8CnjHNeaCtZ00/bVTXNEvbv3VBkd0tvO2ZvWwRrLTE1BQjDl6pVm7DBO8c+I
2LbdZI8hWlMqN656DHToAVkubxSp8iI1aw9zAC7RKTIcstQA9WwP9ypmxQ2Vzmya
MF8QODCrqM9vM5oj5mw+sULtTCYCbIBjczZ05GkCgYEAjx10AT6ItAxiFB4uLAgL
xZ7FF0nX+3J2vbbP2YszQZehutZuAU3gskbmOLp5F/HQmkLIMBv4d9PEAP2hRUd6
+nB0zEKaDwj3A8Sw3OT1qDtQ52HpBecRlnajD2HRRWBlVWfKZeXgo8EjNyJO8rRj
9oI61LvYsIAEGYNGYrkTBuc=
-----END PRIVATE KEY-----
";

async fn spawn(provider: &Provider, backend: Backend) -> TestApp {
    let trusted = provider.trusted();
    TestApp::spawn_with(backend, |c| c.oidc_issuers = vec![trusted]).await
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The (header, payload) of a JWT as JSON.
fn decode_parts(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS compact token: {token}");
    let part = |s: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
    (part(parts[0]), part(parts[1]))
}

/// Asserts the 401 problem every refused credential gets.
#[track_caller]
fn assert_unauthenticated(res: Resp, what: &str) {
    assert_eq!(
        res.status, 401,
        "{what}: expected 401, got {} {}",
        res.status, res.body
    );
    assert_eq!(
        res.header("www-authenticate").as_deref(),
        Some("Bearer"),
        "{what}"
    );
    let res = res.expect_problem(401, "unauthenticated");
    assert!(res.body.get("user").is_none(), "{what}");
}

async fn me_with_raw_authorization(app: &TestApp, value: Option<&str>) -> Resp {
    match value {
        Some(v) => {
            app.request(Method::GET, "/v1/me", None, None, &[("authorization", v)])
                .await
        }
        None => app.request(Method::GET, "/v1/me", None, None, &[]).await,
    }
}

async fn user_creations(app: &TestApp) -> Vec<Value> {
    let res = app
        .get("/v1/audit-events?action=user.create", &app.admin)
        .await
        .expect(200);
    res.body["items"].as_array().unwrap().clone()
}

async fn a_valid_access_token_from_the_trusted_provider_is_accepted(backend: Backend) {
    let provider = Provider::start();
    let app = spawn(&provider, backend).await;
    assert!(
        user_creations(&app).await.is_empty(),
        "no user before the first token"
    );

    let token = provider.token("aion-test-alice", None).await;
    let me = app.get("/v1/me", &token).await.expect(200);
    assert_eq!(me.body["kind"], "user", "{}", me.body);
    let user = &me.body["user"];
    assert_eq!(user["issuer"], provider.issuer.as_str());
    assert_eq!(user["subject"], "aion-test-alice");
    assert_eq!(user["email"], "alice@lab.example");
    assert_eq!(user["display_name"], "Alice");
    assert!(me.body["token"].is_null(), "{}", me.body);
    assert_eq!(me.body["grants"], json!([]), "a new user holds no role");
    let user_id = user["id"].as_str().unwrap().to_owned();

    // The first token created the user, with an audit event.
    let created = user_creations(&app).await;
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["target_kind"], "user");
    assert_eq!(created[0]["target_id"], user_id.as_str());
    assert_eq!(created[0]["actor"], format!("user:{user_id}"));
    assert_eq!(created[0]["details"]["issuer"], provider.issuer.as_str());
    assert_eq!(created[0]["details"]["subject"], "aion-test-alice");

    // The same token again, and a fresh token of the same client: the same user.
    let again = app.get("/v1/me", &token).await.expect(200);
    assert_eq!(again.body["user"]["id"], user_id.as_str());
    let fresh = provider.token("aion-test-alice", None).await;
    assert_ne!(fresh, token);
    let again = app.get("/v1/me", &fresh).await.expect(200);
    assert_eq!(again.body["user"]["id"], user_id.as_str());
    assert_eq!(user_creations(&app).await.len(), 1, "no second user.create");

    // Another subject is another user.
    let bob = app
        .get("/v1/me", &provider.token("aion-test-bob", None).await)
        .await
        .expect(200);
    assert_eq!(bob.body["user"]["subject"], "aion-test-bob");
    assert_eq!(bob.body["user"]["email"], "bob@lab.example");
    assert_ne!(bob.body["user"]["id"], user_id.as_str());
    assert_eq!(user_creations(&app).await.len(), 2);

    // A user without roles sees no organisation and may not read the audit log.
    let orgs = app.get("/v1/organizations", &fresh).await.expect(200);
    assert_eq!(orgs.body["items"], json!([]));
    app.get("/v1/audit-events", &fresh)
        .await
        .expect_problem(403, "forbidden");
}

async fn a_user_added_as_project_member_by_identity_sees_that_project_only(backend: Backend) {
    let provider = Provider::start();
    let app = spawn(&provider, backend).await;
    let org = app.create_org("lab-one", "academic").await;
    let mine = app.create_project(&org, "mine").await;
    let sibling = app.create_project(&org, "sibling").await;
    let other_org = app.create_org("lab-two", "startup").await;
    let foreign = app.create_project(&other_org, "foreign").await;

    // Added before the user ever signed in: by issuer and subject.
    let added = app
        .post(
            &format!("/v1/projects/{mine}/members"),
            &app.admin,
            json!({"issuer": provider.issuer, "subject": "aion-test-carol", "role": "member"}),
        )
        .await
        .expect(201);
    assert_eq!(added.body["role"], "member");
    assert_eq!(added.body["user"]["subject"], "aion-test-carol");
    let user_id = added.body["user"]["id"].as_str().unwrap().to_owned();

    let token = provider.token("aion-test-carol", None).await;
    let me = app.get("/v1/me", &token).await.expect(200);
    assert_eq!(
        me.body["user"]["id"],
        user_id.as_str(),
        "the token found the provisioned user"
    );
    assert_eq!(
        me.body["user"]["email"], "carol@partner.example",
        "profile filled from the token"
    );
    let grants = me.body["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0]["project_id"], mine.as_str());
    assert_eq!(grants[0]["role"], "member");

    let seen = app
        .get(&format!("/v1/projects/{mine}"), &token)
        .await
        .expect(200);
    assert_eq!(seen.body["slug"], "mine");
    let listed = app
        .get(&format!("/v1/organizations/{org}/projects"), &token)
        .await
        .expect(200);
    let slugs: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["mine"], "only the project it belongs to");
    let orgs = app.get("/v1/organizations", &token).await.expect(200);
    let ids: Vec<&str> = orgs.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [org.as_str()]);

    for other in [&sibling, &foreign] {
        let res = app
            .get(&format!("/v1/projects/{other}"), &token)
            .await
            .expect_problem(404, "not_found");
        assert!(
            !res.body.to_string().contains("sibling") && !res.body.to_string().contains("foreign"),
            "{}",
            res.body
        );
    }
    app.get(&format!("/v1/organizations/{other_org}"), &token)
        .await
        .expect_problem(404, "not_found");
    // A member sees the project but may not change it.
    app.patch(
        &format!("/v1/projects/{mine}"),
        &token,
        json!({"name": "Renamed"}),
    )
    .await
    .expect_problem(403, "forbidden");

    // Another user of the same provider gets nothing of it.
    let alice = provider.token("aion-test-alice", None).await;
    app.get(&format!("/v1/projects/{mine}"), &alice)
        .await
        .expect_problem(404, "not_found");

    // Removing the membership takes effect on the next request with the same token.
    app.delete(
        &format!("/v1/projects/{mine}/members/{user_id}"),
        &app.admin,
    )
    .await
    .expect(204);
    app.get(&format!("/v1/projects/{mine}"), &token)
        .await
        .expect_problem(404, "not_found");
}

async fn a_token_for_another_audience_is_refused(backend: Backend) {
    let provider = Provider::start();
    let app = spawn(&provider, backend).await;
    let token = provider
        .token("aion-test-alice", Some("https://other.example"))
        .await;
    assert_eq!(decode_parts(&token).1["aud"], "https://other.example");
    assert_unauthenticated(app.get("/v1/me", &token).await, "wrong audience");
    assert!(
        user_creations(&app).await.is_empty(),
        "a refused token creates no user"
    );
}

async fn a_token_from_an_untrusted_issuer_is_refused(backend: Backend) {
    let trusted = Provider::start();
    let untrusted = Provider::start();
    let app = spawn(&trusted, backend).await;
    // Sanity: the trusted provider's token works on this app.
    app.get("/v1/me", &trusted.token("aion-test-alice", None).await)
        .await
        .expect(200);
    let token = untrusted.token("aion-test-alice", None).await;
    assert_eq!(decode_parts(&token).1["iss"], untrusted.issuer.as_str());
    assert_unauthenticated(app.get("/v1/me", &token).await, "untrusted issuer");

    // The untrusted provider's token relabelled with the trusted `iss` (signature kept).
    let parts: Vec<&str> = token.split('.').collect();
    let (_, mut claims) = decode_parts(&token);
    claims["iss"] = json!(trusted.issuer);
    let relabelled = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    assert_unauthenticated(app.get("/v1/me", &relabelled).await, "relabelled issuer");
    assert_eq!(
        user_creations(&app).await.len(),
        1,
        "only the trusted user exists"
    );
}

async fn a_token_with_a_tampered_payload_is_refused(backend: Backend) {
    let provider = Provider::start();
    let app = spawn(&provider, backend).await;
    let token = provider.token("aion-test-alice", None).await;
    let parts: Vec<&str> = token.split('.').collect();
    let (_, mut claims) = decode_parts(&token);
    claims["sub"] = json!("aion-test-bob");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    assert_unauthenticated(app.get("/v1/me", &tampered).await, "tampered sub");
    // Same with a changed expiry and with a flipped signature byte.
    let (_, mut claims) = decode_parts(&token);
    claims["exp"] = json!(claims["exp"].as_i64().unwrap() + 86_400);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    assert_unauthenticated(app.get("/v1/me", &tampered).await, "tampered exp");
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[10] ^= 0x01;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
    assert_unauthenticated(app.get("/v1/me", &flipped).await, "flipped signature bit");
    // No signature at all.
    let unsigned = format!("{}.{}.", parts[0], parts[1]);
    assert_unauthenticated(
        app.get("/v1/me", &unsigned).await,
        "RS256 without signature",
    );
    // The untouched token still works: the refusals above were about the changes.
    app.get("/v1/me", &token).await.expect(200);
}

async fn an_alg_none_token_is_refused(backend: Backend) {
    let provider = Provider::start();
    let app = spawn(&provider, backend).await;
    let token = provider.token("aion-test-alice", None).await;
    let (header, _) = decode_parts(&token);
    let payload = token.split('.').nth(1).unwrap();
    for h in [
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "none", "typ": "at+jwt", "kid": header["kid"]}),
        json!({"alg": "None", "typ": "JWT"}),
        json!({"alg": "NONE", "typ": "JWT"}),
    ] {
        let forged = format!("{}.{payload}.", b64(h.to_string().as_bytes()));
        assert_unauthenticated(app.get("/v1/me", &forged).await, &format!("alg none: {h}"));
        // With the real signature appended.
        let forged = format!(
            "{}.{payload}.{}",
            b64(h.to_string().as_bytes()),
            token.split('.').nth(2).unwrap()
        );
        assert_unauthenticated(
            app.get("/v1/me", &forged).await,
            &format!("alg none + sig: {h}"),
        );
    }
    assert!(user_creations(&app).await.is_empty());
}

async fn an_hs256_token_signed_with_the_public_key_is_refused(backend: Backend) {
    let provider = Provider::start();
    let app = spawn(&provider, backend).await;
    let token = provider.token("aion-test-alice", None).await;
    let (real_header, claims) = decode_parts(&token);
    let jwks_text = reqwest::get(format!("{}/jwks", provider.issuer))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let jwks: Value = serde_json::from_str(&jwks_text).unwrap();
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["kid"], real_header["kid"]);
    let n = jwk["n"].as_str().unwrap();
    let n_raw = URL_SAFE_NO_PAD.decode(n).unwrap();
    let jwk_text = jwk.to_string();
    let secrets: [(&str, &[u8]); 4] = [
        ("n", n.as_bytes()),
        ("n decoded", &n_raw),
        ("jwks text", jwks_text.as_bytes()),
        ("jwk text", jwk_text.as_bytes()),
    ];
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        for (what, secret) in secrets {
            let mut header = Header::new(alg);
            header.typ = Some("at+jwt".into());
            header.kid = real_header["kid"].as_str().map(str::to_owned);
            let forged =
                jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap();
            assert_unauthenticated(
                app.get("/v1/me", &forged).await,
                &format!("{alg:?} with {what}"),
            );
        }
    }
    assert!(user_creations(&app).await.is_empty());
}

async fn a_token_signed_by_a_foreign_key_under_the_trusted_kid_is_refused(backend: Backend) {
    // Not "another provider's key" literally (its private key is out of reach), but the
    // same attack: the trusted issuer's claims and `kid`, signed by a key it never had.
    let provider = Provider::start();
    let other = Provider::start();
    let app = spawn(&provider, backend).await;
    let token = provider.token("aion-test-alice", None).await;
    let (real_header, claims) = decode_parts(&token);
    let key = EncodingKey::from_rsa_pem(FOREIGN_RSA_KEY.as_bytes()).unwrap();
    let other_kid = decode_parts(&other.token("aion-test-alice", None).await).0["kid"].clone();
    for kid in [
        real_header["kid"].clone(),
        other_kid,
        json!("no-such-kid"),
        Value::Null,
    ] {
        for alg in [Algorithm::RS256, Algorithm::PS256] {
            let mut header = Header::new(alg);
            header.typ = Some("at+jwt".into());
            header.kid = kid.as_str().map(str::to_owned);
            let forged = jsonwebtoken::encode(&header, &claims, &key).unwrap();
            assert_unauthenticated(
                app.get("/v1/me", &forged).await,
                &format!("{alg:?}, kid {kid}"),
            );
        }
    }
    assert!(user_creations(&app).await.is_empty());
}

async fn an_expired_token_is_refused(backend: Backend) {
    let provider = Provider::start();
    let app = spawn(&provider, backend).await;
    let token = provider.token("aion-test-short", None).await;
    let (_, claims) = decode_parts(&token);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        1
    );
    // Valid while the app's clock is before `exp` ...
    app.get("/v1/me", &token).await.expect(200);
    // ... refused after it, with no sleeping: the verifier reads the injected clock.
    app.clock.advance(chrono::Duration::seconds(5));
    assert_unauthenticated(app.get("/v1/me", &token).await, "expired");
    // A long-lived token of the same provider still works at that time.
    app.get("/v1/me", &provider.token("aion-test-alice", None).await)
        .await
        .expect(200);
    // And past its own hour it does not.
    let hour = provider.token("aion-test-bob", None).await;
    app.get("/v1/me", &hour).await.expect(200);
    app.clock.advance(chrono::Duration::seconds(3700));
    assert_unauthenticated(app.get("/v1/me", &hour).await, "expired after an hour");
}

async fn garbage_and_non_bearer_credentials_are_refused(backend: Backend) {
    let provider = Provider::start();
    let app = spawn(&provider, backend).await;
    let long = "a".repeat(20 * 1024);
    let long_jwtish = format!(
        "{}.{}.{}",
        "e".repeat(7000),
        "e".repeat(7000),
        "e".repeat(6000)
    );
    let bearers: Vec<String> = vec![
        "abc".into(),
        "a.b.c".into(),
        "..".into(),
        "a.b".into(),
        "eyJhbGciOiJSUzI1NiJ9.e30.".into(),
        "aion_".into(),
        "aion_not-a-real-token".into(),
        long.clone(),
        long_jwtish,
    ];
    for bearer in &bearers {
        let shown = &bearer[..bearer.len().min(40)];
        assert_unauthenticated(app.get("/v1/me", bearer).await, &format!("bearer {shown}"));
    }
    let raw = [
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer    ".to_owned(),
        "Basic YWxpY2U6c2VjcmV0".to_owned(),
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("aion:{}", app.admin))
        ),
        format!("Token {}", app.admin),
        format!("Bearer{}", app.admin),
        "".to_owned(),
    ];
    for value in &raw {
        let shown = &value[..value.len().min(40)];
        assert_unauthenticated(
            me_with_raw_authorization(&app, Some(value)).await,
            &format!("authorization {shown:?}"),
        );
    }
    assert_unauthenticated(
        me_with_raw_authorization(&app, None).await,
        "no authorization header",
    );
    // A valid JWT under the wrong scheme is still refused.
    let jwt = provider.token("aion-test-alice", None).await;
    assert_unauthenticated(
        me_with_raw_authorization(&app, Some(&format!("Basic {jwt}"))).await,
        "JWT under Basic",
    );
    // Every authenticated route refuses, not only /v1/me.
    for path in ["/v1/organizations", "/v1/audit-events"] {
        assert_unauthenticated(app.get(path, "abc").await, path);
        assert_unauthenticated(app.request(Method::GET, path, None, None, &[]).await, path);
    }
    // The scheme is case-insensitive, and the admin token still works after all this.
    me_with_raw_authorization(&app, Some(&format!("bearer {}", app.admin)))
        .await
        .expect(200);
    me_with_raw_authorization(&app, Some(&format!("Bearer {jwt}")))
        .await
        .expect(200);
}

on_both_databases!(
    a_valid_access_token_from_the_trusted_provider_is_accepted,
    a_user_added_as_project_member_by_identity_sees_that_project_only,
    a_token_for_another_audience_is_refused,
    a_token_from_an_untrusted_issuer_is_refused,
    a_token_with_a_tampered_payload_is_refused,
    an_alg_none_token_is_refused,
    an_hs256_token_signed_with_the_public_key_is_refused,
    a_token_signed_by_a_foreign_key_under_the_trusted_kid_is_refused,
    an_expired_token_is_refused,
    garbage_and_non_bearer_credentials_are_refused,
);

on_both_databases!(concurrent_first_requests_of_a_new_user_create_it_once);

async fn concurrent_first_requests_of_a_new_user_create_it_once(backend: Backend) {
    let provider = Provider::start();
    let app = spawn(&provider, backend).await;
    let token = provider.token("aion-test-carol", None).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, url, token) = (
            app.client.clone(),
            format!("{}/v1/me", app.base),
            token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let res = client.get(url).bearer_auth(token).send().await.unwrap();
            let status = res.status().as_u16();
            let body: serde_json::Value = res.json().await.unwrap();
            (status, body["user"]["id"].as_str().map(str::to_owned))
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for task in tasks {
        let (status, id) = task.await.unwrap();
        assert_eq!(status, 200, "no request of a racing first login fails");
        ids.insert(id.unwrap());
    }
    assert_eq!(ids.len(), 1, "one user");
    assert_eq!(user_creations(&app).await.len(), 1);
}
