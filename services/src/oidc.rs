//! Validation of OIDC access tokens (JWT) from configured trusted issuers.
//!
//! The issuer's JWKS is found through discovery, cached, and fetched again when a token
//! names an unknown `kid` (key rotation), at most once per [`REFETCH_COOLDOWN_S`].
//! Only asymmetric algorithms are accepted: `alg: none` and HMAC (which an attacker could
//! sign with the public key) are refused before any key is looked at.

use crate::clock::Clock;
use crate::error::{Error, Result};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::RwLock;

/// A fetched key set is used this long before it is fetched again.
pub const JWKS_TTL_S: i64 = 600;
/// Least time between two fetches of one issuer's key set.
pub const REFETCH_COOLDOWN_S: i64 = 10;

const ACCEPTED: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// An identity provider whose access tokens Aion accepts, for one audience.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuer {
    /// The exact `iss` value (also the discovery base URL).
    pub issuer: String,
    /// The `aud` value tokens must carry (Aion's API identifier at that provider).
    pub audience: String,
}

/// What Aion keeps from a valid token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedClaims {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `email`, if present.
    pub email: Option<String>,
    /// `name`, if present.
    pub name: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    exp: i64,
    nbf: Option<i64>,
    email: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct IssuerOnly {
    iss: Option<String>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

struct CachedKeys {
    keys: JwkSet,
    fetched_at: i64,
    /// Last fetch attempt, successful or not (the refetch cooldown counts from it).
    attempted_at: i64,
}

/// Verifies access tokens against the trusted issuers' published keys.
pub struct OidcVerifier {
    issuers: Vec<TrustedIssuer>,
    leeway_s: i64,
    clock: Clock,
    http: reqwest::Client,
    cache: RwLock<HashMap<String, CachedKeys>>,
    fetch_lock: tokio::sync::Mutex<()>,
}

fn unauthenticated(why: &str) -> Error {
    Error::Unauthenticated(format!("invalid access token: {why}"))
}

impl OidcVerifier {
    /// A verifier for these issuers; `leeway_s` tolerates clock skew on `exp`/`nbf`.
    pub fn new(issuers: Vec<TrustedIssuer>, leeway_s: u32, clock: Clock) -> Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| Error::Internal(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            issuers,
            leeway_s: i64::from(leeway_s),
            clock,
            http,
            cache: RwLock::new(HashMap::new()),
            fetch_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The configured issuers.
    pub fn issuers(&self) -> &[TrustedIssuer] {
        &self.issuers
    }

    /// Validates signature, `iss`, `aud`, `exp` and `nbf`; returns the identity claims.
    pub async fn verify(&self, token: &str) -> Result<VerifiedClaims> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| unauthenticated("not a JWT"))?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(unauthenticated("signature algorithm not accepted"));
        }
        let unverified: IssuerOnly = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| unauthenticated("unreadable claims"))?;
        let iss = unverified.iss.ok_or_else(|| unauthenticated("no issuer"))?;
        let trusted = self
            .issuers
            .iter()
            .find(|t| t.issuer == iss)
            .ok_or_else(|| unauthenticated("issuer not trusted"))?;
        let key = self
            .key_for(trusted, header.kid.as_deref(), header.alg)
            .await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&trusted.issuer]);
        validation.set_audience(&[&trusted.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Time is checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidAudience => unauthenticated("wrong audience"),
                ErrorKind::InvalidIssuer => unauthenticated("wrong issuer"),
                ErrorKind::InvalidSignature => unauthenticated("bad signature"),
                ErrorKind::MissingRequiredClaim(c) => {
                    unauthenticated(&format!("missing claim {c}"))
                }
                _ => unauthenticated("rejected"),
            }
        })?;
        let claims = data.claims;
        let now = self.clock.now().timestamp();
        if claims.exp + self.leeway_s <= now {
            return Err(unauthenticated("expired"));
        }
        if claims.nbf.is_some_and(|nbf| nbf - self.leeway_s > now) {
            return Err(unauthenticated("not valid yet"));
        }
        if claims.sub.is_empty() || claims.sub.len() > 255 {
            return Err(unauthenticated("bad subject"));
        }
        Ok(VerifiedClaims {
            issuer: claims.iss,
            subject: claims.sub,
            email: claims.email,
            name: claims.name,
        })
    }

    async fn key_for(
        &self,
        issuer: &TrustedIssuer,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey> {
        let now = self.clock.now().timestamp();
        let fresh = {
            let cache = self.cache.read().await;
            cache.get(&issuer.issuer).and_then(|c| {
                let usable = now - c.fetched_at < JWKS_TTL_S;
                usable.then(|| pick(&c.keys, kid, alg)).flatten()
            })
        };
        if let Some(key) = fresh {
            return key;
        }
        // Unknown kid or stale set: fetch again unless anyone tried lately (successful
        // or not, so an identity provider outage is not hammered by every request). One
        // fetch at a time; the cache stays readable for other issuers meanwhile.
        let _single_flight = self.fetch_lock.lock().await;
        let recent = self
            .cache
            .read()
            .await
            .get(&issuer.issuer)
            .is_some_and(|c| now - c.attempted_at < REFETCH_COOLDOWN_S);
        if !recent {
            let fetched = self.fetch_keys(issuer).await;
            let mut cache = self.cache.write().await;
            match fetched {
                Ok(keys) => {
                    cache.insert(
                        issuer.issuer.clone(),
                        CachedKeys {
                            keys,
                            fetched_at: now,
                            attempted_at: now,
                        },
                    );
                }
                Err(err) => {
                    let entry = cache
                        .entry(issuer.issuer.clone())
                        .or_insert_with(|| CachedKeys {
                            keys: JwkSet { keys: Vec::new() },
                            fetched_at: i64::MIN / 2,
                            attempted_at: now,
                        });
                    entry.attempted_at = now;
                    return Err(err);
                }
            }
        }
        self.cache
            .read()
            .await
            .get(&issuer.issuer)
            .and_then(|c| pick(&c.keys, kid, alg))
            .unwrap_or_else(|| Err(unauthenticated("signing key not found at the issuer")))
    }

    async fn fetch_keys(&self, issuer: &TrustedIssuer) -> Result<JwkSet> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.issuer.trim_end_matches('/')
        );
        let unavailable = |e: reqwest::Error| {
            Error::Unavailable(format!(
                "identity provider {} unreachable: {e}",
                issuer.issuer
            ))
        };
        let discovery: Discovery = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(unavailable)?
            .error_for_status()
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        if discovery.issuer != issuer.issuer {
            return Err(Error::Unavailable(format!(
                "discovery document of {} names another issuer",
                issuer.issuer
            )));
        }
        tracing::info!(issuer = %issuer.issuer, "fetching JWKS");
        self.http
            .get(&discovery.jwks_uri)
            .send()
            .await
            .map_err(unavailable)?
            .error_for_status()
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)
    }
}

/// The key for `kid` (or the only key when the token names none), if its algorithm fits.
fn pick(keys: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<Result<DecodingKey>> {
    let jwk = match kid {
        Some(kid) => keys.find(kid)?,
        None if keys.keys.len() == 1 => keys.keys.first()?,
        None => return None,
    };
    if let Some(key_alg) = jwk.common.key_algorithm
        && format!("{key_alg:?}") != format!("{alg:?}")
    {
        return Some(Err(unauthenticated("algorithm does not match the key")));
    }
    Some(DecodingKey::from_jwk(jwk).map_err(|_| unauthenticated("unusable signing key")))
}

#[cfg(test)]
mod tests {
    //! The verifier without the real provider: keys made here, a preloaded cache, and a
    //! tiny HTTP server standing in for an issuer's discovery and JWKS endpoints.

    use super::*;
    use chrono::DateTime;
    use jsonwebtoken::jwk::{Jwk, KeyAlgorithm};
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    /// Two P-256 keys (PKCS#8), generated once with `openssl genpkey`; test use only.
    const KEY_A: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgf2ZgL/VThEMBgUwG
pc+Pp7EMJDgqZtw0PiT8llrfgE2hRANCAAR0x/viSlJcoFjnzGf0ORAQrvz8tjKq
o8kb0OyHcdxHWe4xQcaT/Wgxb5qh4lc0TuhhipGQ8/VoDt+QYbFQ6Sih
-----END PRIVATE KEY-----
";
    const KEY_B: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgB0Kis3uGfTZMiqVE
eK/V+YXQBQNRqp/6x1VKzY97oWuhRANCAASyDC7KOsX9C4mwzUHVwi0TLmYsNiIh
Nh31Yi1wTJQ7TsWmG9U0iQ1QSBxb3IvkUwnrh55tnIXCviTNr0wQWG+L
-----END PRIVATE KEY-----
";
    const ISS: &str = "https://idp.example";
    const AUD: &str = "https://api.aion.test";
    const NOW: i64 = 1_800_000_000;

    fn encoding(pem: &str) -> EncodingKey {
        EncodingKey::from_ec_pem(pem.as_bytes()).unwrap()
    }

    /// The public JWK of `pem` with this `kid`, advertising `ES256`.
    fn jwk(pem: &str, kid: &str) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&encoding(pem), Algorithm::ES256).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        jwk
    }

    fn set(keys: Vec<Jwk>) -> JwkSet {
        JwkSet { keys }
    }

    fn claims() -> Value {
        json!({"iss": ISS, "aud": AUD, "sub": "alice", "exp": NOW + 300, "iat": NOW,
               "email": "alice@lab.example", "name": "Alice"})
    }

    fn sign(pem: &str, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &encoding(pem)).unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A verifier trusting `ISS` for `AUD`, whose cache already holds `keys` (fetched
    /// now), so nothing is fetched unless a key is missing.
    fn verifier(keys: JwkSet, leeway_s: u32) -> (OidcVerifier, Clock) {
        let clock = Clock::manual(DateTime::from_timestamp(NOW, 0).unwrap());
        let trusted = TrustedIssuer {
            issuer: ISS.into(),
            audience: AUD.into(),
        };
        let mut v = OidcVerifier::new(vec![trusted], leeway_s, clock.clone()).unwrap();
        v.cache.get_mut().insert(
            ISS.into(),
            CachedKeys {
                keys,
                fetched_at: NOW,
                attempted_at: NOW,
            },
        );
        (v, clock)
    }

    #[track_caller]
    fn assert_refused(result: Result<VerifiedClaims>, why: &str) {
        match result {
            Err(Error::Unauthenticated(msg)) => {
                assert!(msg.contains(why), "refused for {msg:?}, expected {why:?}")
            }
            other => panic!("expected a refusal ({why}), got {other:?}"),
        }
    }

    #[test]
    fn pick_finds_a_key_by_kid_and_the_only_key_without_kid() {
        let keys = set(vec![jwk(KEY_A, "a"), jwk(KEY_B, "b")]);
        assert!(matches!(
            pick(&keys, Some("a"), Algorithm::ES256),
            Some(Ok(_))
        ));
        assert!(matches!(
            pick(&keys, Some("b"), Algorithm::ES256),
            Some(Ok(_))
        ));
        assert!(pick(&keys, Some("c"), Algorithm::ES256).is_none());
        // Two keys and no kid: ambiguous, so no key.
        assert!(pick(&keys, None, Algorithm::ES256).is_none());
        let one = set(vec![jwk(KEY_A, "a")]);
        assert!(matches!(pick(&one, None, Algorithm::ES256), Some(Ok(_))));
        assert!(pick(&set(vec![]), None, Algorithm::ES256).is_none());
    }

    #[test]
    fn pick_refuses_a_key_whose_alg_differs_from_the_header() {
        let keys = set(vec![jwk(KEY_A, "a")]);
        match pick(&keys, Some("a"), Algorithm::ES384) {
            Some(Err(Error::Unauthenticated(msg))) => assert!(msg.contains("does not match")),
            other => panic!("expected a mismatch, got {:?}", other.map(|r| r.is_ok())),
        }
        match pick(&keys, Some("a"), Algorithm::RS256) {
            Some(Err(Error::Unauthenticated(_))) => {}
            other => panic!("expected a mismatch, got {:?}", other.map(|r| r.is_ok())),
        }
        // A key without `alg` is usable with the header's algorithm.
        let mut bare = jwk(KEY_A, "a");
        bare.common.key_algorithm = None;
        assert!(matches!(
            pick(&set(vec![bare]), Some("a"), Algorithm::ES256),
            Some(Ok(_))
        ));
    }

    #[tokio::test]
    async fn a_well_signed_token_is_accepted_with_its_identity_claims() {
        let (v, _) = verifier(set(vec![jwk(KEY_A, "a"), jwk(KEY_B, "b")]), 0);
        let got = v.verify(&sign(KEY_B, Some("b"), &claims())).await.unwrap();
        assert_eq!(
            got,
            VerifiedClaims {
                issuer: ISS.into(),
                subject: "alice".into(),
                email: Some("alice@lab.example".into()),
                name: Some("Alice".into()),
            }
        );
        // No kid, one key: that key.
        let (v, _) = verifier(set(vec![jwk(KEY_A, "a")]), 0);
        assert!(v.verify(&sign(KEY_A, None, &claims())).await.is_ok());
        // `aud` as an array holding ours.
        let mut c = claims();
        c["aud"] = json!(["https://other.example", AUD]);
        assert!(v.verify(&sign(KEY_A, Some("a"), &c)).await.is_ok());
    }

    #[tokio::test]
    async fn exp_in_the_past_or_now_is_refused() {
        let (v, clock) = verifier(set(vec![jwk(KEY_A, "a")]), 0);
        for exp in [NOW - 3600, NOW - 1, NOW] {
            let mut c = claims();
            c["exp"] = json!(exp);
            assert_refused(v.verify(&sign(KEY_A, Some("a"), &c)).await, "expired");
        }
        let mut c = claims();
        c["exp"] = json!(NOW + 1);
        let token = sign(KEY_A, Some("a"), &c);
        assert!(v.verify(&token).await.is_ok());
        // The injected clock decides, not the system clock.
        clock.advance(chrono::Duration::seconds(1));
        assert_refused(v.verify(&token).await, "expired");
    }

    #[tokio::test]
    async fn nbf_in_the_future_is_refused() {
        let (v, clock) = verifier(set(vec![jwk(KEY_A, "a")]), 0);
        let mut c = claims();
        c["nbf"] = json!(NOW + 60);
        let token = sign(KEY_A, Some("a"), &c);
        assert_refused(v.verify(&token).await, "not valid yet");
        clock.advance(chrono::Duration::seconds(59));
        assert_refused(v.verify(&token).await, "not valid yet");
        clock.advance(chrono::Duration::seconds(1));
        assert!(v.verify(&token).await.is_ok(), "nbf == now is valid");
    }

    #[tokio::test]
    async fn the_leeway_is_honoured_on_exp_and_nbf_and_no_further() {
        let (v, _) = verifier(set(vec![jwk(KEY_A, "a")]), 30);
        let with = |field: &str, value: i64| {
            let mut c = claims();
            c[field] = json!(value);
            sign(KEY_A, Some("a"), &c)
        };
        assert!(v.verify(&with("exp", NOW - 29)).await.is_ok());
        assert_refused(v.verify(&with("exp", NOW - 30)).await, "expired");
        assert_refused(v.verify(&with("exp", NOW - 31)).await, "expired");
        assert!(v.verify(&with("nbf", NOW + 30)).await.is_ok());
        assert_refused(v.verify(&with("nbf", NOW + 31)).await, "not valid yet");
    }

    #[tokio::test]
    async fn wrong_audience_untrusted_issuer_and_missing_claims_are_refused() {
        let (v, _) = verifier(set(vec![jwk(KEY_A, "a")]), 0);
        let mut c = claims();
        c["aud"] = json!("https://other.example");
        assert_refused(
            v.verify(&sign(KEY_A, Some("a"), &c)).await,
            "wrong audience",
        );
        let mut c = claims();
        c["iss"] = json!("https://evil.example");
        assert_refused(
            v.verify(&sign(KEY_A, Some("a"), &c)).await,
            "issuer not trusted",
        );
        // A trailing slash is another issuer.
        c["iss"] = json!(format!("{ISS}/"));
        assert_refused(
            v.verify(&sign(KEY_A, Some("a"), &c)).await,
            "issuer not trusted",
        );
        for field in ["iss", "aud", "exp", "sub"] {
            let mut c = claims();
            c.as_object_mut().unwrap().remove(field);
            assert_refused(v.verify(&sign(KEY_A, Some("a"), &c)).await, "");
        }
        let mut c = claims();
        c["sub"] = json!("");
        assert_refused(v.verify(&sign(KEY_A, Some("a"), &c)).await, "bad subject");
        c["sub"] = json!("x".repeat(256));
        assert_refused(v.verify(&sign(KEY_A, Some("a"), &c)).await, "bad subject");
        c["sub"] = json!("x".repeat(255));
        assert!(v.verify(&sign(KEY_A, Some("a"), &c)).await.is_ok());
    }

    #[tokio::test]
    async fn a_token_signed_by_another_key_under_a_known_kid_is_refused() {
        let (v, _) = verifier(set(vec![jwk(KEY_A, "a")]), 0);
        assert_refused(
            v.verify(&sign(KEY_B, Some("a"), &claims())).await,
            "bad signature",
        );
        // A payload changed after signing.
        let token = sign(KEY_A, Some("a"), &claims());
        let parts: Vec<&str> = token.split('.').collect();
        let mut c = claims();
        c["sub"] = json!("mallory");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64(c.to_string().as_bytes()),
            parts[2]
        );
        assert_refused(v.verify(&forged).await, "bad signature");
    }

    #[tokio::test]
    async fn alg_none_hmac_and_a_jwk_alg_mismatch_are_refused() {
        let (v, _) = verifier(set(vec![jwk(KEY_A, "a")]), 0);
        let payload = b64(claims().to_string().as_bytes());
        for header in [
            json!({"alg": "none", "typ": "JWT"}),
            json!({"alg": "none", "typ": "JWT", "kid": "a"}),
        ] {
            let token = format!("{}.{payload}.", b64(header.to_string().as_bytes()));
            // Either unreadable as a JWT or an algorithm not accepted: never valid.
            assert_refused(v.verify(&token).await, "");
        }
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some("a".into());
            let token = jsonwebtoken::encode(
                &header,
                &claims(),
                &EncodingKey::from_secret(KEY_A.as_bytes()),
            )
            .unwrap();
            assert_refused(v.verify(&token).await, "algorithm not accepted");
        }
        // EdDSA is not on the list either.
        let header = json!({"alg": "EdDSA", "kid": "a"});
        let token = format!("{}.{payload}.AAAA", b64(header.to_string().as_bytes()));
        assert_refused(v.verify(&token).await, "algorithm not accepted");
        // The JWK says ES384, the header ES256.
        let mut k = jwk(KEY_A, "a");
        k.common.key_algorithm = Some(KeyAlgorithm::ES384);
        let (v, _) = verifier(set(vec![k]), 0);
        assert_refused(
            v.verify(&sign(KEY_A, Some("a"), &claims())).await,
            "does not match",
        );
    }

    #[tokio::test]
    async fn garbage_is_refused_without_panicking() {
        let (v, _) = verifier(set(vec![jwk(KEY_A, "a")]), 0);
        let long = "a".repeat(20_000);
        for token in ["", "abc", "a.b.c", "..", "a.b", "....", &long] {
            assert_refused(v.verify(token).await, "");
        }
    }

    /// A stand-in issuer: serves discovery and a JWKS that tests can change, counting
    /// JWKS fetches. Plain blocking sockets on a thread; one request per connection.
    struct FakeIssuer {
        base: String,
        keys: Arc<Mutex<JwkSet>>,
        fetches: Arc<AtomicUsize>,
    }

    impl FakeIssuer {
        fn start(keys: JwkSet, claimed_issuer: Option<&str>) -> Self {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let keys = Arc::new(Mutex::new(keys));
            let fetches = Arc::new(AtomicUsize::new(0));
            let (k, f, b) = (keys.clone(), fetches.clone(), base.clone());
            let claimed = claimed_issuer.map_or_else(|| base.clone(), str::to_owned);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { continue };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let request = String::from_utf8_lossy(&buf);
                    let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let (status, body) = match path.as_str() {
                        "/.well-known/openid-configuration" => (
                            "200 OK",
                            json!({"issuer": claimed, "jwks_uri": format!("{b}/jwks")}).to_string(),
                        ),
                        "/jwks" => {
                            f.fetch_add(1, Ordering::SeqCst);
                            (
                                "200 OK",
                                serde_json::to_string(&*k.lock().unwrap()).unwrap(),
                            )
                        }
                        _ => ("404 Not Found", "{}".to_owned()),
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            });
            Self {
                base,
                keys,
                fetches,
            }
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }

        fn verifier(&self) -> (OidcVerifier, Clock) {
            let clock = Clock::manual(DateTime::from_timestamp(NOW, 0).unwrap());
            let trusted = TrustedIssuer {
                issuer: self.base.clone(),
                audience: AUD.into(),
            };
            (
                OidcVerifier::new(vec![trusted], 0, clock.clone()).unwrap(),
                clock,
            )
        }

        fn token(&self, pem: &str, kid: &str) -> String {
            let mut c = claims();
            c["iss"] = json!(self.base);
            c["exp"] = json!(NOW + 100_000);
            sign(pem, Some(kid), &c)
        }
    }

    #[tokio::test]
    async fn keys_are_fetched_once_then_refetched_on_unknown_kid_after_the_cooldown() {
        let idp = FakeIssuer::start(set(vec![jwk(KEY_A, "a")]), None);
        let (v, clock) = idp.verifier();
        assert_eq!(idp.fetches(), 0);
        v.verify(&idp.token(KEY_A, "a")).await.unwrap();
        assert_eq!(idp.fetches(), 1);
        v.verify(&idp.token(KEY_A, "a")).await.unwrap();
        assert_eq!(idp.fetches(), 1, "a known kid is served from the cache");

        // The issuer rotates to key b. Within the cooldown an unknown kid fetches nothing.
        *idp.keys.lock().unwrap() = set(vec![jwk(KEY_A, "a"), jwk(KEY_B, "b")]);
        clock.advance(chrono::Duration::seconds(REFETCH_COOLDOWN_S - 1));
        assert_refused(
            v.verify(&idp.token(KEY_B, "b")).await,
            "signing key not found",
        );
        assert_eq!(idp.fetches(), 1, "no refetch within the cooldown");

        // After the cooldown the unknown kid triggers one refetch, which finds it.
        clock.advance(chrono::Duration::seconds(1));
        v.verify(&idp.token(KEY_B, "b")).await.unwrap();
        assert_eq!(idp.fetches(), 2);
        v.verify(&idp.token(KEY_A, "a")).await.unwrap();
        assert_eq!(idp.fetches(), 2);

        // A kid the issuer never had: refused, and a burst of them fetches nothing more.
        for _ in 0..5 {
            assert_refused(
                v.verify(&idp.token(KEY_B, "nope")).await,
                "signing key not found",
            );
        }
        assert_eq!(idp.fetches(), 2);

        // Once the set is older than its TTL it is fetched again even for a known kid;
        // a key the issuer dropped stops working.
        *idp.keys.lock().unwrap() = set(vec![jwk(KEY_B, "b")]);
        clock.advance(chrono::Duration::seconds(JWKS_TTL_S));
        v.verify(&idp.token(KEY_B, "b")).await.unwrap();
        assert_eq!(idp.fetches(), 3);
        assert_refused(
            v.verify(&idp.token(KEY_A, "a")).await,
            "signing key not found",
        );
    }

    #[tokio::test]
    async fn a_discovery_document_naming_another_issuer_is_not_trusted() {
        let idp = FakeIssuer::start(set(vec![jwk(KEY_A, "a")]), Some("https://evil.example"));
        let (v, _) = idp.verifier();
        match v.verify(&idp.token(KEY_A, "a")).await {
            Err(Error::Unavailable(msg)) => assert!(msg.contains("another issuer"), "{msg}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert_eq!(
            idp.fetches(),
            0,
            "the JWKS of a mismatching issuer is never read"
        );
    }

    #[tokio::test]
    async fn an_unreachable_issuer_is_unavailable_not_a_valid_token() {
        // Port 9 (discard) on loopback: nothing listens there in the test environment.
        let clock = Clock::manual(DateTime::from_timestamp(NOW, 0).unwrap());
        let trusted = TrustedIssuer {
            issuer: "http://127.0.0.1:9".into(),
            audience: AUD.into(),
        };
        let v = OidcVerifier::new(vec![trusted], 0, clock.clone()).unwrap();
        let mut c = claims();
        c["iss"] = json!("http://127.0.0.1:9");
        let token = sign(KEY_A, Some("a"), &c);
        match v.verify(&token).await {
            Err(Error::Unavailable(_)) => {}
            other => panic!("expected Unavailable, got {other:?}"),
        }
        // The failed attempt counts for the cooldown: no new fetch until it has passed.
        match v.verify(&token).await {
            Err(Error::Unauthenticated(why)) => {
                assert!(why.contains("signing key not found"), "{why}")
            }
            other => panic!("expected a refusal without fetching, got {other:?}"),
        }
        clock.advance(chrono::Duration::seconds(REFETCH_COOLDOWN_S));
        assert!(
            matches!(v.verify(&token).await, Err(Error::Unavailable(_))),
            "fetched again after the cooldown"
        );
    }
}
