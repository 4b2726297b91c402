//! Signing in and out: the provider chooser, the OpenID redirect and callback, the
//! development sign-in of `aion dev`, and sign-out (RP-initiated at the provider where it
//! offers it). A login is bound to the browser that started it by a short-lived cookie
//! holding its `state`, so a callback link cannot sign someone else in (login CSRF).

use crate::WebState;
use crate::chrome::{html, see_other};
use crate::error::{WebError, WebResult};
use crate::i18n::{Lang, Tr};
use crate::session::{FormPost, SESSION_COOKIE, constant_time_eq, form_field, request_id};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use aion_services::claim_roles::{self, RoleBySlug};
use aion_services::identity;
use aion_services::oidc::VerifiedClaims;
use aion_services::seed::{DEMO_USERS, DemoUser};
use aion_services::web_sessions::{self, PendingLogin, safe_return_to};
use askama::Template;
use serde::Deserialize;
use std::collections::HashMap;

/// Cookie binding a login in flight to this browser (its `state`).
const LOGIN_COOKIE: &str = "aion_login";
/// Cookie of the double-submit token of the sign-in page's forms (no session yet).
const PRE_COOKIE: &str = "aion_pre";

/// Registers `/auth/...`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/login", web::get().to(chooser))
        .route("/auth/login/{provider}", web::get().to(start))
        .route("/auth/callback", web::get().to(callback))
        .route("/auth/dev", web::post().to(dev_sign_in))
        .route("/auth/logout", web::post().to(logout));
}

fn cookie<'a>(state: &WebState, name: &'a str, value: String, path: &'a str) -> Cookie<'a> {
    Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .secure(state.config.secure_cookies())
        // Lax: the provider's redirect back is a top-level GET, which must carry it.
        .same_site(SameSite::Lax)
        .finish()
}

fn removal(name: &str, path: &str) -> Cookie<'static> {
    let mut c = Cookie::build(name.to_owned(), "")
        .path(path.to_owned())
        .finish();
    c.make_removal();
    c
}

struct ProviderLink {
    name: String,
    display_name: String,
    href: String,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    t: Tr,
    providers: Vec<ProviderLink>,
    dev_users: Vec<DemoUser>,
    pre_token: String,
    return_to: String,
    signed_out: bool,
}

#[derive(Deserialize)]
struct LoginQuery {
    return_to: Option<String>,
    signed_out: Option<String>,
}

/// `GET /auth/login`: the providers to sign in with (and the demo users in `aion dev`);
/// straight to the provider when there is only one and no development sign-in.
async fn chooser(
    req: HttpRequest,
    state: web::Data<WebState>,
    query: web::Query<LoginQuery>,
) -> WebResult<HttpResponse> {
    let return_to = safe_return_to(query.return_to.as_deref());
    let encoded =
        serde_urlencoded::to_string([("return_to", return_to.as_str())]).unwrap_or_default();
    let providers: Vec<ProviderLink> = state
        .providers
        .configs()
        .iter()
        .map(|p| ProviderLink {
            name: p.name.clone(),
            display_name: p.display_name.clone(),
            href: format!("/auth/login/{}?{encoded}", p.name),
        })
        .collect();
    if providers.len() == 1 && !state.config.dev_sign_in && query.signed_out.is_none() {
        return Ok(see_other(&providers[0].href));
    }
    let (pre_token, _) = aion_services::secrets::new_secret("");
    let page = LoginPage {
        t: Tr {
            lang: Lang::of(&req),
        },
        providers,
        dev_users: if state.config.dev_sign_in {
            DEMO_USERS.to_vec()
        } else {
            Vec::new()
        },
        pre_token: pre_token.clone(),
        return_to,
        signed_out: query.signed_out.is_some(),
    };
    let mut response = html(page.render())?;
    let mut c = cookie(&state, PRE_COOKIE, pre_token, "/auth");
    c.set_same_site(SameSite::Strict);
    response
        .add_cookie(&c)
        .map_err(|e| aion_services::Error::Internal(e.to_string()))?;
    Ok(response)
}

/// `GET /auth/login/{provider}`: sends the browser to the provider.
async fn start(
    state: web::Data<WebState>,
    provider: web::Path<String>,
    query: web::Query<LoginQuery>,
) -> WebResult<HttpResponse> {
    let login = state.providers.start(&provider).await?;
    web_sessions::begin_login(
        &state.services,
        &login.state,
        PendingLogin {
            provider: provider.into_inner(),
            nonce: login.nonce,
            pkce_verifier: login.pkce_verifier,
            return_to: safe_return_to(query.return_to.as_deref()),
        },
    )
    .await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, login.url.to_string()))
        .cookie(cookie(&state, LOGIN_COOKIE, login.state, "/auth"))
        .finish())
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/callback`: the provider sends the browser back with a code.
async fn callback(
    req: HttpRequest,
    state: web::Data<WebState>,
    query: web::Query<CallbackQuery>,
) -> WebResult<HttpResponse> {
    if let Some(error) = &query.error {
        return Err(WebError::Login(format!(
            "the identity provider refused the sign-in: {}",
            query.error_description.as_deref().unwrap_or(error)
        )));
    }
    let (Some(code), Some(login_state)) = (&query.code, &query.state) else {
        return Err(WebError::BadRequest(
            "the callback lacks code or state".into(),
        ));
    };
    let bound = req.cookie(LOGIN_COOKIE);
    if !bound.is_some_and(|c| constant_time_eq(c.value(), login_state)) {
        return Err(WebError::Login(
            "this sign-in was not started in this browser: please sign in again".into(),
        ));
    }
    let svc = &state.services;
    let pending = web_sessions::finish_login(svc, login_state).await?;
    let signed_in = state
        .providers
        .finish(
            &pending.provider,
            code,
            &pending.nonce,
            &pending.pkce_verifier,
        )
        .await?;
    let rid = request_id(&req);
    let claims = VerifiedClaims {
        issuer: signed_in.issuer.clone(),
        subject: signed_in.subject.clone(),
        email: signed_in.email.clone(),
        name: signed_in.name.clone(),
    };
    let user = identity::upsert_oidc_user(svc, &claims, &rid).await?;
    let roles = rule_roles(&state, &pending.provider, &signed_in.claims);
    if !roles.is_empty() {
        claim_roles::grant_missing(svc, user, &roles, &rid).await?;
    }
    let opened = web_sessions::open(
        svc,
        state.config.sessions,
        user,
        &pending.provider,
        Some(signed_in.id_token),
        &rid,
    )
    .await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, pending.return_to))
        .cookie(cookie(&state, SESSION_COOKIE, opened.secret, "/"))
        .cookie(removal(LOGIN_COOKIE, "/auth"))
        .finish())
}

fn rule_roles(state: &WebState, provider: &str, claims: &serde_json::Value) -> Vec<RoleBySlug> {
    state
        .claim_roles
        .iter()
        .filter(|(rule, _)| rule.matches(provider, claims))
        .map(|(_, role)| role.clone())
        .collect()
}

/// `POST /auth/dev` (`aion dev` only): signs in as a demo user.
async fn dev_sign_in(
    req: HttpRequest,
    state: web::Data<WebState>,
    body: web::Bytes,
) -> WebResult<HttpResponse> {
    if !state.config.dev_sign_in {
        return Err(aion_services::Error::NotFound("development sign-in").into());
    }
    let token = form_field(&body, "pre").unwrap_or_default();
    let bound = req.cookie(PRE_COOKIE);
    if token.is_empty() || !bound.is_some_and(|c| constant_time_eq(c.value(), &token)) {
        return Err(WebError::Csrf);
    }
    let subject = form_field(&body, "user").unwrap_or_default();
    let return_to = safe_return_to(form_field(&body, "return_to").as_deref());
    let rid = request_id(&req);
    let user = aion_services::seed::demo_user(&state.services, &subject, &rid).await?;
    let opened = web_sessions::open(
        &state.services,
        state.config.sessions,
        user,
        "dev",
        None,
        &rid,
    )
    .await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, return_to))
        .cookie(cookie(&state, SESSION_COOKIE, opened.secret, "/"))
        .cookie(removal(PRE_COOKIE, "/auth"))
        .finish())
}

/// `POST /auth/logout`: ends the session here, then at the provider when it supports
/// RP-initiated logout.
async fn logout(
    req: HttpRequest,
    state: web::Data<WebState>,
    post: FormPost<HashMap<String, String>>,
) -> WebResult<HttpResponse> {
    let session = &post.session.web;
    web_sessions::close(&state.services, session, &request_id(&req)).await?;
    let target = match state
        .providers
        .logout_url(&session.provider, session.id_token.as_deref())
        .await
    {
        Some(url) => url.to_string(),
        None => "/auth/login?signed_out=1".to_owned(),
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, target))
        .cookie(removal(SESSION_COOKIE, "/"))
        .finish())
}
