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
}

/// Verifies access tokens against the trusted issuers' published keys.
pub struct OidcVerifier {
    issuers: Vec<TrustedIssuer>,
    leeway_s: i64,
    clock: Clock,
    http: reqwest::Client,
    cache: RwLock<HashMap<String, CachedKeys>>,
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
        // Unknown kid or stale set: fetch again unless we just did.
        let mut cache = self.cache.write().await;
        let recent = cache
            .get(&issuer.issuer)
            .is_some_and(|c| now - c.fetched_at < REFETCH_COOLDOWN_S);
        if !recent {
            let keys = self.fetch_keys(issuer).await?;
            cache.insert(
                issuer.issuer.clone(),
                CachedKeys {
                    keys,
                    fetched_at: now,
                },
            );
        }
        cache
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
