//! OpenID Connect login for the console (crate `openidconnect`): authorization code flow
//! with PKCE (S256), `state` and `nonce`, ID-token validation (signature against the
//! provider's JWKS, `iss`, `aud`, `exp`, `nonce`), RP-initiated logout where the provider
//! offers it, and claim rules that turn ID-token claims into roles.
//! Each provider's metadata is discovered on first use and kept for [`METADATA_TTL`].

use crate::WebConfig;
use aion_services::Error;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, Scope,
    TokenResponse,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long discovered provider metadata (and its JWKS) is kept.
pub const METADATA_TTL: Duration = Duration::from_secs(600);

/// A client secret; never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientSecretValue(pub String);

impl std::fmt::Debug for ClientSecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// An OpenID provider people sign in with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Short name, in URLs (`/auth/login/{name}`): lowercase letters, digits, `-`.
    pub name: String,
    /// Name shown on the chooser page ("Université Paris-Saclay").
    pub display_name: String,
    /// Issuer URL (discovery at `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// The console's client id at this provider.
    pub client_id: String,
    /// Its secret (confidential client, HTTP Basic at the token endpoint); none for a
    /// public client.
    #[serde(default)]
    pub client_secret: Option<ClientSecretValue>,
    /// Scopes asked besides `openid` (default `email profile`).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
}

fn default_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into()]
}

/// What a claim rule gives: a platform role, or a role in an organisation or project
/// (named by slugs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGrant {
    /// `platform`, `organization` or `project`.
    pub scope: String,
    /// Organisation slug (organisation and project scopes).
    #[serde(default)]
    pub organization: Option<String>,
    /// Project slug (project scope).
    #[serde(default)]
    pub project: Option<String>,
    /// Role at that scope (`platform-admin`, `allocator`, `lead`…).
    pub role: String,
}

/// "Whoever signs in through `provider` with `value` in claim `claim` gets `grant`".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRule {
    /// Provider name; none: every provider.
    #[serde(default)]
    pub provider: Option<String>,
    /// Claim of the ID token (`groups`, `eduPersonEntitlement`…): a string or an array.
    pub claim: String,
    /// Value the claim must be or contain.
    pub value: String,
    /// What the rule gives.
    pub grant: RuleGrant,
}

impl ClaimRule {
    /// Whether the rule applies to a login through `provider` with these claims.
    pub fn matches(&self, provider: &str, claims: &serde_json::Value) -> bool {
        if self.provider.as_deref().is_some_and(|p| p != provider) {
            return false;
        }
        match claims.get(&self.claim) {
            Some(serde_json::Value::String(s)) => *s == self.value,
            Some(serde_json::Value::Array(items)) => {
                items.iter().any(|i| i.as_str() == Some(&self.value))
            }
            _ => false,
        }
    }
}

/// Who signed in, from a validated ID token.
#[derive(Clone, Debug)]
pub struct SignedIn {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `email`.
    pub email: Option<String>,
    /// `name`.
    pub name: Option<String>,
    /// Every claim of the ID token (for claim rules).
    pub claims: serde_json::Value,
    /// The ID token itself (for `id_token_hint` at logout).
    pub id_token: String,
}

/// Where to send the browser to sign in, and what to keep until it comes back.
pub struct LoginStart {
    /// The provider's authorization URL.
    pub url: url::Url,
    /// `state`.
    pub state: String,
    /// `nonce`.
    pub nonce: String,
    /// PKCE verifier.
    pub pkce_verifier: String,
}

struct Discovered {
    metadata: ProviderMetadataWithLogout,
    at: Instant,
}

/// The configured providers and their discovered metadata.
pub struct Providers {
    configs: Vec<ProviderConfig>,
    redirect_url: RedirectUrl,
    post_logout_url: PostLogoutRedirectUrl,
    http: openidconnect::reqwest::Client,
    discovered: Mutex<HashMap<String, Discovered>>,
}

fn unavailable(provider: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!(
        "the identity provider '{provider}' cannot be reached: {e}"
    ))
}

impl Providers {
    /// Checks the configuration; nothing is fetched yet.
    pub fn new(config: &WebConfig) -> Result<Self, Error> {
        let mut seen = std::collections::HashSet::new();
        for p in &config.providers {
            let valid_name = !p.name.is_empty()
                && p.name.len() <= 64
                && p.name != "dev"
                && p.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid_name || !seen.insert(p.name.clone()) {
                return Err(Error::invalid(
                    "web_providers.name",
                    format!(
                        "'{}' must be unique, 1-64 of a-z 0-9 - and not 'dev'",
                        p.name
                    ),
                ));
            }
            IssuerUrl::new(p.issuer.clone())
                .map_err(|e| Error::invalid("web_providers.issuer", e.to_string()))?;
        }
        let base = config.public_url.as_str().trim_end_matches('/');
        let redirect_url = RedirectUrl::new(format!("{base}/auth/callback"))
            .map_err(|e| Error::invalid("public_url", e.to_string()))?;
        let post_logout_url = PostLogoutRedirectUrl::new(format!("{base}/"))
            .map_err(|e| Error::invalid("public_url", e.to_string()))?;
        let http = openidconnect::reqwest::ClientBuilder::new()
            // Following redirects would open SSRF holes (openidconnect's advice).
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Internal(format!("HTTP client: {e}")))?;
        Ok(Self {
            configs: config.providers.clone(),
            redirect_url,
            post_logout_url,
            http,
            discovered: Mutex::default(),
        })
    }

    /// The configured providers.
    pub fn configs(&self) -> &[ProviderConfig] {
        &self.configs
    }

    fn config(&self, name: &str) -> Result<&ProviderConfig, Error> {
        self.configs
            .iter()
            .find(|p| p.name == name)
            .ok_or(Error::NotFound("identity provider"))
    }

    async fn metadata(&self, p: &ProviderConfig) -> Result<ProviderMetadataWithLogout, Error> {
        if let Some(d) = self.discovered.lock().await.get(&p.name)
            && d.at.elapsed() < METADATA_TTL
        {
            return Ok(d.metadata.clone());
        }
        // Fetched without the lock: a slow or unreachable provider must not hold up
        // sign-ins through the others.
        let issuer = IssuerUrl::new(p.issuer.clone()).map_err(|e| unavailable(&p.name, e))?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| unavailable(&p.name, e))?;
        self.discovered.lock().await.insert(
            p.name.clone(),
            Discovered {
                metadata: metadata.clone(),
                at: Instant::now(),
            },
        );
        Ok(metadata)
    }

    /// Starts a login at `provider`: the URL to send the browser to, and the secrets
    /// to keep server-side until the callback.
    pub async fn start(&self, provider: &str) -> Result<LoginStart, Error> {
        let p = self.config(provider)?;
        let metadata = self.metadata(p).await?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(p.client_id.clone()),
            p.client_secret.clone().map(|s| ClientSecret::new(s.0)),
        )
        .set_redirect_uri(self.redirect_url.clone());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &p.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(LoginStart {
            url,
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Finishes a login: exchanges the code (with the PKCE verifier) and validates the
    /// ID token against the provider's keys, the client id and the nonce.
    pub async fn finish(
        &self,
        provider: &str,
        code: &str,
        nonce: &str,
        pkce_verifier: &str,
    ) -> Result<SignedIn, Error> {
        let p = self.config(provider)?;
        let metadata = self.metadata(p).await?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(p.client_id.clone()),
            p.client_secret.clone().map(|s| ClientSecret::new(s.0)),
        )
        .set_redirect_uri(self.redirect_url.clone());
        let refused = |what: String| {
            Error::Unauthenticated(format!("sign-in through '{}' failed: {what}", p.name))
        };
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| refused(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| refused(format!("the code was refused: {e}")))?;
        let id_token = response
            .id_token()
            .ok_or_else(|| refused("the provider sent no ID token".into()))?;
        let verifier = client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, &Nonce::new(nonce.to_owned()))
            .map_err(|e| refused(format!("invalid ID token: {e}")))?;
        let raw = id_token.to_string();
        Ok(SignedIn {
            issuer: claims.issuer().as_str().to_owned(),
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|e| e.as_str().to_owned()),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned()),
            claims: payload_of(&raw).unwrap_or(serde_json::Value::Null),
            id_token: raw,
        })
    }

    /// Where to send the browser to end its session at the provider (RP-initiated
    /// logout), if the provider offers it.
    pub async fn logout_url(&self, provider: &str, id_token: Option<&str>) -> Option<url::Url> {
        let p = self.config(provider).ok()?;
        let metadata = self.metadata(p).await.ok()?;
        let end = metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()?;
        let mut url = openidconnect::LogoutRequest::from(end)
            .set_client_id(ClientId::new(p.client_id.clone()))
            .set_post_logout_redirect_uri(self.post_logout_url.clone())
            .http_get_url();
        if let Some(hint) = id_token {
            url.query_pairs_mut().append_pair("id_token_hint", hint);
        }
        Some(url)
    }
}

/// The claims of a JWT already validated by `openidconnect` (only for claim rules).
fn payload_of(jwt: &str) -> Option<serde_json::Value> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(provider: Option<&str>) -> ClaimRule {
        ClaimRule {
            provider: provider.map(Into::into),
            claim: "groups".into(),
            value: "genci-committee".into(),
            grant: RuleGrant {
                scope: "organization".into(),
                organization: Some("genci".into()),
                project: None,
                role: "allocator".into(),
            },
        }
    }

    #[test]
    fn a_rule_matches_a_claim_that_is_or_contains_its_value() {
        let r = rule(None);
        assert!(r.matches("idp", &json!({"groups": ["x", "genci-committee"]})));
        assert!(r.matches("idp", &json!({"groups": "genci-committee"})));
        assert!(!r.matches("idp", &json!({"groups": ["genci"]})));
        assert!(!r.matches("idp", &json!({"other": "genci-committee"})));
    }

    #[test]
    fn a_rule_for_one_provider_ignores_the_others() {
        let r = rule(Some("idp"));
        assert!(r.matches("idp", &json!({"groups": ["genci-committee"]})));
        assert!(!r.matches("other", &json!({"groups": ["genci-committee"]})));
    }

    #[test]
    fn payloads_of_tokens_are_decoded() {
        // {"sub":"a"} in base64url
        assert_eq!(payload_of("x.eyJzdWIiOiJhIn0.y"), Some(json!({"sub": "a"})));
        assert_eq!(payload_of("garbage"), None);
    }
}
