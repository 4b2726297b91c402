//! `/console/projects/{id}/tokens`: a project's API tokens (its leads and organisation
//! admins): list, create (the secret is shown once, on the answer to the form, never
//! again), revoke.

use super::members::ROLES;
use super::project::{ProjectHead, project_head};
use crate::WebState;
use crate::chrome::{Chrome, html, see_other};
use crate::error::WebResult;
use crate::format;
use crate::forms::Empty;
use crate::forms::{self, FormErrors};
use crate::session::{FormPost, Session};
use actix_web::{HttpResponse, web};
use aion_services::ids::{ProjectId, TokenId};
use aion_services::pagination::PageRequest;
use aion_services::scope::Scope;
use aion_services::tokens::{self, NewToken};
use askama::Template;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use uuid::Uuid;

/// Tokens per page.
const PER_PAGE: u64 = 50;

/// A token as listed.
pub struct TokenRow {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Last characters of the secret.
    pub hint: String,
    /// Role.
    pub role: String,
    /// Created at.
    pub created: String,
    /// Expires at.
    pub expires: String,
    /// Last used.
    pub last_used: String,
    /// Revoked at, if it was.
    pub revoked: Option<String>,
}

/// What the create form posts.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct TokenForm {
    /// What it is for.
    #[serde(default)]
    pub name: String,
    /// Role it acts with.
    #[serde(default)]
    pub role: String,
    /// Last day (`YYYY-MM-DD`, UTC); empty: the domain's default.
    pub expires_on: Option<String>,
    /// Idempotency key minted with the form.
    pub idem: Option<String>,
}

/// A token just created: its secret when this answer is the first.
pub struct Created {
    /// Name.
    pub name: String,
    /// The bearer secret; `None` when the form was submitted twice.
    pub secret: Option<String>,
    /// Expires at.
    pub expires: String,
}

#[derive(Template)]
#[template(path = "console/tokens.html")]
struct TokensPage {
    c: Chrome,
    p: ProjectHead,
    tokens: Vec<TokenRow>,
    next: Option<String>,
    roles: [&'static str; 3],
    form: TokenForm,
    idem: String,
    errors: FormErrors,
    created: Option<Created>,
}

/// `?cursor=&notice=`.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    /// Next page.
    pub cursor: Option<String>,
    /// Confirmation to show.
    pub notice: Option<String>,
}

const NOTICES: &[&str] = &["console.token_revoked"];

async fn render(
    s: &Session,
    state: &WebState,
    id: Uuid,
    q: &PageQuery,
    form: TokenForm,
    errors: FormErrors,
    created: Option<Created>,
) -> WebResult<TokensPage> {
    let svc = &state.services;
    let head = project_head(svc, &s.caller, id).await?;
    let page = PageRequest::parse(Some(PER_PAGE), q.cursor.as_deref())?;
    let found = tokens::list(svc, &s.caller, Scope::Project(ProjectId(id)), &page).await?;
    let rows = found
        .items
        .into_iter()
        .map(|t| TokenRow {
            id: t.id.to_string(),
            name: t.name,
            hint: t.hint,
            role: t.role,
            created: format::time(t.created_at),
            expires: format::time(t.expires_at),
            last_used: format::maybe_time(t.last_used_at),
            revoked: t.revoked_at.map(format::time),
        })
        .collect();
    let next = found.next_cursor.as_deref().map(|c| {
        forms::link(
            &format!("/console/projects/{id}/tokens"),
            &[("cursor", Some(c))],
        )
    });
    Ok(TokensPage {
        c: Chrome::new(s, "console").with_notice(q.notice.as_deref(), NOTICES),
        p: head,
        tokens: rows,
        next,
        roles: ROLES,
        form,
        idem: forms::new_idempotency_key(),
        errors,
        created,
    })
}

/// `GET /console/projects/{id}/tokens`: those who manage the project (others get the
/// domain's refusal).
pub async fn show(
    s: Session,
    state: web::Data<WebState>,
    id: web::Path<Uuid>,
    q: web::Query<PageQuery>,
) -> WebResult<HttpResponse> {
    let form = TokenForm {
        role: "member".into(),
        ..TokenForm::default()
    };
    let page = render(&s, &state, *id, &q, form, FormErrors::default(), None).await?;
    html(page.render())
}

/// The last day a token is valid (`YYYY-MM-DD`) as the instant it expires: the end of
/// that day, UTC.
pub fn expiry(raw: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    let Some(raw) = forms::optional(raw) else {
        return Ok(None);
    };
    let day = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| "must be a date as YYYY-MM-DD".to_owned())?;
    let next = day
        .succ_opt()
        .ok_or_else(|| "must be a date as YYYY-MM-DD".to_owned())?;
    Ok(Some(next.and_time(chrono::NaiveTime::MIN).and_utc()))
}

const FIELDS: &[(&str, &str)] = &[
    ("name", "name"),
    ("role", "role"),
    ("expires_at", "expires_on"),
];

/// `POST /console/projects/{id}/tokens`: creates a token and shows its secret once.
pub async fn create(
    post: FormPost<TokenForm>,
    state: web::Data<WebState>,
    id: web::Path<Uuid>,
) -> WebResult<HttpResponse> {
    let id = *id;
    let FormPost { session: s, form } = post;
    let mut errors = FormErrors::default();
    let expires = expiry(form.expires_on.as_deref())
        .map_err(|m| errors.add("expires_on", m))
        .ok()
        .flatten();
    if errors.is_empty() {
        let key = forms::idempotency_key(form.idem.as_deref())?;
        let made = match NewToken::parse(&form.name, &form.role, expires) {
            Ok(cmd) => {
                let scope = Scope::Project(ProjectId(id));
                tokens::create(&state.services, &s.caller, scope, cmd, key.as_ref()).await
            }
            Err(e) => Err(e),
        };
        match made {
            Ok(made) => {
                let created = Created {
                    name: made.token.name,
                    secret: made.secret,
                    expires: format::time(made.token.expires_at),
                };
                let fresh = TokenForm {
                    role: "member".into(),
                    ..TokenForm::default()
                };
                let q = PageQuery::default();
                let page = render(&s, &state, id, &q, fresh, errors, Some(created)).await?;
                return html(page.render());
            }
            Err(e) => errors = FormErrors::from_service(e, FIELDS)?,
        }
    }
    let page = render(&s, &state, id, &PageQuery::default(), form, errors, None).await?;
    forms::invalid(page.render())
}

/// `POST /console/projects/{id}/tokens/{token}/revoke`: revokes a token.
pub async fn revoke(
    post: FormPost<Empty>,
    state: web::Data<WebState>,
    path: web::Path<(Uuid, Uuid)>,
) -> WebResult<HttpResponse> {
    let (id, token) = path.into_inner();
    tokens::revoke(
        &state.services,
        &post.session.caller,
        Scope::Project(ProjectId(id)),
        TokenId(token),
    )
    .await?;
    Ok(see_other(&forms::with_notice(
        &format!("/console/projects/{id}/tokens"),
        "console.token_revoked",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_valid_through_its_last_day() {
        let at = expiry(Some("2027-01-31")).unwrap().unwrap();
        assert_eq!(at.to_rfc3339(), "2027-02-01T00:00:00+00:00");
    }

    #[test]
    fn no_date_leaves_the_default_and_a_bad_one_is_refused() {
        assert_eq!(expiry(Some("")), Ok(None));
        assert_eq!(expiry(None), Ok(None));
        assert!(expiry(Some("31/01/2027")).is_err());
    }
}
