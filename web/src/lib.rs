//! Aion's web console (`/console`), allocation committee panel (`/admin/allocations`)
//! and operators' panel (`/admin`): server-rendered pages (askama) over the same domain
//! functions and authorisation as the API, with OpenID Connect login, server-side
//! sessions, CSRF-checked forms, English and French, and SVG charts drawn on the server.
//! Pages work without JavaScript; `static/live.js` only refreshes live parts.

pub mod charts;
pub mod chrome;
pub mod error;
pub mod fleet_picture;
pub mod format;
pub mod forms;
pub mod headers;
pub mod i18n;
pub mod login;
pub mod oidc;
pub mod pages;
pub mod session;

use actix_web::{HttpResponse, web};
use aion_services::Services;
use aion_services::web_sessions::SessionPolicy;

pub use oidc::{ClaimRule, ProviderConfig};

/// How the console runs.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// OpenID providers people sign in with (a chooser page when there are several).
    pub providers: Vec<ProviderConfig>,
    /// Rules that turn ID-token claims into memberships and platform roles.
    pub claim_rules: Vec<ClaimRule>,
    /// The site's public URL (`https://aion.example`), origin of the OpenID redirect URI
    /// (`{public_url}/auth/callback`); cookies are `Secure` when it is HTTPS.
    pub public_url: url::Url,
    /// Offers the development sign-in as a demo user (`aion dev` only).
    pub dev_sign_in: bool,
    /// Session lifetimes.
    pub sessions: SessionPolicy,
}

impl WebConfig {
    /// Whether cookies must be `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

/// Shared state of the console's handlers.
pub struct WebState {
    /// The domain layer.
    pub services: Services,
    /// Settings.
    pub config: WebConfig,
    /// The OpenID providers, with their discovered metadata.
    pub providers: oidc::Providers,
    /// The claim rules with the role each gives, parsed once at start.
    pub claim_roles: Vec<(ClaimRule, aion_services::claim_roles::RoleBySlug)>,
}

impl WebState {
    /// Builds the state and checks the claim rules; providers are discovered on first
    /// use, so a provider that is down at start does not keep the control plane from
    /// starting.
    pub fn new(services: Services, config: WebConfig) -> Result<Self, aion_services::Error> {
        let providers = oidc::Providers::new(&config)?;
        let claim_roles = config
            .claim_rules
            .iter()
            .map(|r| {
                let g = &r.grant;
                aion_services::claim_roles::RoleBySlug::parse(
                    &g.scope,
                    g.organization.as_deref(),
                    g.project.as_deref(),
                    &g.role,
                )
                .map(|role| (r.clone(), role))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            services,
            config,
            providers,
            claim_roles,
        })
    }
}

/// Registers the console's routes (call inside an `App` that has `web::Data<WebState>`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(root))
        .service(web::resource("/static/{file}").route(web::get().to(chrome::static_file)))
        .route("/lang/{code}", web::get().to(chrome::set_language));
    login::configure(cfg);
    pages::configure(cfg);
}

async fn root() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, "/console"))
        .finish()
}
