//! `/admin/price-lists`: the published price list versions (paginated, filterable by
//! kind or organisation), one version's prices, and the form that publishes a version.

use super::price_forms::PriceForm;
use super::{FormErrors, require_operator, unprocessable};
use crate::WebState;
use crate::chrome::{Chrome, html, see_other};
use crate::error::WebResult;
use crate::format;
use crate::forms::{self, Empty};
use crate::session::{FormPost, Session};
use actix_web::{HttpResponse, web};
use aion_services::organizations::{self as orgs, Organization};
use aion_services::pagination::PageRequest;
use aion_services::price_lists::{self, ListFilter};
use aion_services::pricing::{PriceList, PriceScope};
use aion_services::values::OrganizationKind;
use askama::Template;
use serde::Deserialize;
use std::collections::HashMap;
use uuid::Uuid;

/// A version as the pages show it.
struct Row {
    id: String,
    name: String,
    /// Organisation kind, or `None` for a contract list.
    kind: Option<&'static str>,
    /// The organisation of a contract list.
    organization_id: Option<String>,
    effective_from: String,
    discount: String,
    /// (GPU model, EUR per GPU-hour, profile overrides as text).
    entries: Vec<(String, String, String)>,
    created_by: String,
    created_at: String,
}

/// `POST /admin/price-lists/{id}/withdraw`: withdraws a version that has not taken
/// effect yet (platform admins); the domain refuses one already in effect (409 page).
pub async fn withdraw(
    post: FormPost<Empty>,
    state: web::Data<WebState>,
    id: web::Path<String>,
) -> WebResult<HttpResponse> {
    let s = post.session;
    require_operator(&s)?;
    let id = super::path_id(&id)?;
    price_lists::withdraw(&state.services, &s.caller, id.into()).await?;
    Ok(see_other("/admin/price-lists?notice=admin.price.withdrawn"))
}

/// A price with at least two decimals (`4.10`), and more only when it has them.
pub(super) fn price_text(d: rust_decimal::Decimal) -> String {
    let mut d = d.normalize();
    if d.scale() < 2 {
        d.rescale(2);
    }
    d.to_string()
}

fn row(l: PriceList) -> Row {
    let (kind, organization_id) = match l.scope {
        PriceScope::OrganizationKind(k) => (Some(k.as_str()), None),
        PriceScope::Organization(o) => (None, Some(o.to_string())),
    };
    Row {
        id: l.id.to_string(),
        name: l.name,
        kind,
        organization_id,
        effective_from: format::time(l.effective_from),
        discount: l.preemptible_discount_percent.get().normalize().to_string(),
        entries: l
            .entries
            .into_iter()
            .map(|e| {
                let overrides = e
                    .profile_prices
                    .iter()
                    .map(|(p, price)| format!("{p}: {}", price_text(price.get())))
                    .collect::<Vec<_>>()
                    .join(", ");
                (
                    e.gpu_model.name().to_owned(),
                    price_text(e.gpu_hour_price.get()),
                    overrides,
                )
            })
            .collect(),
        created_by: l.created_by,
        created_at: format::time(l.created_at),
    }
}

/// `?organization_kind=&organization_id=&cursor=&notice=`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    organization_kind: Option<String>,
    organization_id: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/price_lists.html")]
struct ListPage {
    c: Chrome,
    can_act: bool,
    lists: Vec<Row>,
    kinds: Vec<&'static str>,
    kind: String,
    organization_id: String,
    next: Option<String>,
}

/// `GET /admin/price-lists`.
pub async fn list(
    s: Session,
    state: web::Data<WebState>,
    q: web::Query<ListQuery>,
) -> WebResult<HttpResponse> {
    require_operator(&s)?;
    let kind = super::non_blank(&q.organization_kind);
    let org = super::non_blank(&q.organization_id);
    let filter = ListFilter {
        organization_kind: kind
            .map(|k| OrganizationKind::parse("organization_kind", k))
            .transpose()?,
        organization_id: org
            .map(|o| {
                Uuid::parse_str(o)
                    .map(Into::into)
                    .map_err(|_| aion_services::Error::invalid("organization_id", "not an id"))
            })
            .transpose()?,
    };
    let page = PageRequest::parse(Some(50), q.cursor.as_deref())?;
    let page = price_lists::list(&state.services, &s.caller, filter, &page).await?;
    let next = page.next_cursor.map(|cursor| {
        super::query_string(&[
            ("organization_kind", kind),
            ("organization_id", org),
            ("cursor", Some(&cursor)),
        ])
    });
    html(
        ListPage {
            c: Chrome::new(&s, "admin").with_notice(
                q.notice.as_deref(),
                &["admin.price.created", "admin.price.withdrawn"],
            ),
            can_act: s.caller.is_platform_admin(),
            lists: page.items.into_iter().map(row).collect(),
            kinds: OrganizationKind::ALL.iter().map(|k| k.as_str()).collect(),
            kind: kind.unwrap_or_default().to_owned(),
            organization_id: org.unwrap_or_default().to_owned(),
            next,
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "admin/price_list_new.html")]
struct NewPage {
    c: Chrome,
    can_act: bool,
    form: PriceForm,
    kinds: Vec<&'static str>,
    organizations: Vec<Organization>,
    /// Idempotency key of the form, minted with the page.
    idem: String,
    problems: FormErrors,
    shown: &'static [&'static str],
}

/// Fields shown next to an input (prices are matched by name in the template).
const SHOWN_FIELDS: &[&str] = &[
    "organization_kind",
    "organization_id",
    "name",
    "effective_from",
    "discount",
    "prices",
    "price.",
];

async fn new_page(
    s: &Session,
    state: &WebState,
    form: PriceForm,
    problems: FormErrors,
) -> WebResult<Result<String, askama::Error>> {
    // Contract lists name one organisation; the first 200 are offered.
    let page = PageRequest::parse(Some(200), None)?;
    let organizations = orgs::list(&state.services, &s.caller, &page).await?.items;
    Ok(NewPage {
        c: Chrome::new(s, "admin"),
        can_act: s.caller.is_platform_admin(),
        form,
        kinds: OrganizationKind::ALL.iter().map(|k| k.as_str()).collect(),
        organizations,
        // A fresh key on every render: a refused form published nothing.
        idem: forms::new_idempotency_key(),
        problems,
        shown: SHOWN_FIELDS,
    }
    .render())
}

/// `GET /admin/price-lists/new`.
pub async fn new(s: Session, state: web::Data<WebState>) -> WebResult<HttpResponse> {
    require_operator(&s)?;
    let mut form = PriceForm::blank();
    form.organization_kind = "academic".into();
    html(new_page(&s, &state, form, FormErrors::default()).await?)
}

/// `POST /admin/price-lists`: publishes a version (platform admins).
pub async fn create(
    post: FormPost<HashMap<String, String>>,
    state: web::Data<WebState>,
) -> WebResult<HttpResponse> {
    let FormPost { session: s, form } = post;
    require_operator(&s)?;
    let form = PriceForm::from_fields(&form);
    let key = forms::idempotency_key(form.idem.as_deref())?;
    let created = match form.command() {
        Ok(cmd) => price_lists::create(&state.services, &s.caller, cmd, key.as_ref()).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(list) => Ok(see_other(&format!(
            "/admin/price-lists/{}?notice=admin.price.created",
            list.id
        ))),
        Err(e) => {
            let problems = FormErrors::from_error(e)?;
            unprocessable(new_page(&s, &state, form, problems).await?)
        }
    }
}

#[derive(Template)]
#[template(path = "admin/price_list.html")]
struct ShowPage {
    c: Chrome,
    can_act: bool,
    /// Not in effect yet, so a platform admin may still withdraw it.
    can_withdraw: bool,
    l: Row,
    organization: Option<Organization>,
}

/// `?notice=`.
#[derive(Debug, Default, Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

/// `GET /admin/price-lists/{id}`.
pub async fn show(
    s: Session,
    state: web::Data<WebState>,
    id: web::Path<String>,
    q: web::Query<NoticeQuery>,
) -> WebResult<HttpResponse> {
    require_operator(&s)?;
    let list = price_lists::get(&state.services, &s.caller, super::path_id(&id)?.into()).await?;
    let organization = match list.scope {
        PriceScope::Organization(o) => Some(orgs::get(&state.services, &s.caller, o).await?),
        PriceScope::OrganizationKind(_) => None,
    };
    let can_withdraw =
        s.caller.is_platform_admin() && list.effective_from > state.services.clock.now();
    html(
        ShowPage {
            c: Chrome::new(&s, "admin").with_notice(q.notice.as_deref(), &["admin.price.created"]),
            can_act: s.caller.is_platform_admin(),
            can_withdraw,
            l: row(list),
            organization,
        }
        .render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_show_cents_and_any_finer_digits() {
        assert_eq!(price_text(rust_decimal::Decimal::new(4_100_000, 6)), "4.10");
        assert_eq!(
            price_text(rust_decimal::Decimal::new(2_412_500, 6)),
            "2.4125"
        );
        assert_eq!(price_text(rust_decimal::Decimal::new(3, 0)), "3.00");
    }
}
