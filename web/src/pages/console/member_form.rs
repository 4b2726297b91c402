//! The form that adds someone to a project: a member of the organisation chosen by
//! name, found by e-mail, or an identity (issuer and subject) as the API takes it.

use crate::forms;
use aion_services::Error;
use aion_services::members::{Member, MemberRef};
use serde::Deserialize;
use uuid::Uuid;

/// What the add form posts.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AddForm {
    /// A user of the organisation (its id), or empty.
    pub user: Option<String>,
    /// OIDC issuer URL.
    pub issuer: Option<String>,
    /// Subject at the issuer.
    pub subject: Option<String>,
    /// E-mail to show until they sign in.
    pub email: Option<String>,
    /// Role.
    #[serde(default)]
    pub role: String,
    /// Idempotency key minted with the form.
    pub idem: Option<String>,
}

/// Reads who to add: an organisation member chosen in the list; else an identity
/// (issuer and subject); else, with only an e-mail, the member of the organisation
/// (`people`) who has it.
pub fn parse_who(form: &AddForm, people: &[Member]) -> Result<MemberRef, Error> {
    let issuer = forms::optional(form.issuer.as_deref());
    let subject = forms::optional(form.subject.as_deref());
    let email = forms::optional(form.email.as_deref());
    if let Some(raw) = forms::optional(form.user.as_deref()) {
        let id = Uuid::parse_str(raw).map_err(|_| Error::invalid("user", "unknown person"))?;
        return MemberRef::parse(Some(id), None, None, None);
    }
    if let (None, Some(email)) = (subject, email) {
        let found = people.iter().find(|m| {
            m.user
                .email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        });
        return match found {
            Some(m) => MemberRef::parse(Some(m.user.id.0), None, None, None),
            None => Err(Error::invalid(
                "email",
                "no one in your organisation has this e-mail; give their issuer and subject",
            )),
        };
    }
    MemberRef::parse(
        None,
        Some(issuer.unwrap_or("")),
        Some(subject.unwrap_or("")),
        email,
    )
}

/// The domain's field names → this form's.
pub const FIELDS: &[(&str, &str)] = &[
    ("user", "user"),
    ("user_id", "user"),
    ("issuer", "issuer"),
    ("subject", "subject"),
    ("email", "email"),
    ("role", "role"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use aion_services::identity::User;
    use aion_services::ids::UserId;

    #[test]
    fn a_chosen_organisation_member_wins_over_the_identity_fields() {
        let id = Uuid::now_v7();
        let form = AddForm {
            user: Some(id.to_string()),
            issuer: Some("https://idp.example".into()),
            ..AddForm::default()
        };
        assert!(matches!(parse_who(&form, &[]), Ok(MemberRef::User(u)) if u.0 == id));
    }

    #[test]
    fn an_identity_needs_an_http_issuer_and_a_subject() {
        let form = AddForm {
            issuer: Some("https://idp.example".into()),
            subject: Some("u-42".into()),
            email: Some(" ".into()),
            ..AddForm::default()
        };
        assert!(matches!(
            parse_who(&form, &[]),
            Ok(MemberRef::Identity { email: None, .. })
        ));
        let form = AddForm {
            issuer: Some("urn:demo".into()),
            subject: Some("u-42".into()),
            ..AddForm::default()
        };
        assert!(parse_who(&form, &[]).is_err());
    }

    fn someone(email: &str) -> Member {
        Member {
            user: User {
                id: UserId::new(),
                issuer: "urn:aion:dev".into(),
                subject: "bea".into(),
                email: Some(email.into()),
                display_name: None,
                created_at: chrono::Utc::now(),
            },
            role: "member".into(),
            since: chrono::Utc::now(),
        }
    }

    #[test]
    fn an_email_alone_finds_the_organisation_member_who_has_it() {
        let bea = someone("Bea@Lab.example");
        let form = AddForm {
            email: Some("bea@lab.example".into()),
            ..AddForm::default()
        };
        let people = [bea.clone()];
        assert!(matches!(parse_who(&form, &people), Ok(MemberRef::User(u)) if u == bea.user.id));
        let form = AddForm {
            email: Some("nobody@lab.example".into()),
            ..AddForm::default()
        };
        assert!(parse_who(&form, &people).is_err());
    }
}
