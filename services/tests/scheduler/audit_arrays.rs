//! Audit events and multi-row inserts travel to PostgreSQL as array literals: text with
//! quotes, backslashes, braces, commas, newlines, `NULL` and non-ASCII letters must come
//! back exactly, and the sealed chain must verify.

use super::*;
use aion_services::audit::{self, Filter, Record};
use aion_services::pagination::PageRequest;

/// Text that an array literal must quote or escape.
const AWKWARD: [&str; 7] = [
    r#"say "hi""#,
    r"back\slash \\ twice",
    "{braces},commas",
    "line\nbreak\ttab",
    "NULL",
    "",
    "Zürich – 東京 🚀",
];

async fn awkward_text_round_trips_through_the_audit_chain(backend: Backend) {
    let w = World::new(backend).await;
    let now = w.svc.clock.now();
    let caller = Caller::system("req-\"quoted\"\\");
    let records: Vec<Record> = AWKWARD
        .iter()
        .enumerate()
        .map(|(i, text)| Record {
            action: "test.awkward",
            target_kind: "note",
            target_id: format!("{i}:{text}").chars().take(64).collect(),
            organization_id: (i % 2 == 0).then_some(w.org),
            project_id: None,
            details: serde_json::json!({"text": text, "n": i}),
        })
        .collect();
    let txn = db::write_txn(&w.svc.db).await.unwrap();
    audit::append_many(&txn, now, &caller, records.clone())
        .await
        .unwrap();
    txn.commit().await.unwrap();

    let filter = Filter {
        action: Some("test.awkward".into()),
        ..Filter::default()
    };
    let page = PageRequest::parse(Some(100), None).unwrap();
    let mut events = audit::list(&w.svc.db, &caller, filter, &page)
        .await
        .unwrap()
        .items;
    events.sort_by_key(|e| e.details["n"].as_u64());
    assert_eq!(events.len(), AWKWARD.len());
    for (event, record) in events.iter().zip(&records) {
        assert_eq!(event.target_id, record.target_id);
        assert_eq!(event.details, record.details);
        assert_eq!(event.organization_id, record.organization_id);
        assert_eq!(event.project_id, None);
        assert_eq!(event.request_id, "req-\"quoted\"\\");
        assert_eq!(event.occurred_at, now);
    }
    let check = audit::verify(&w.svc.db).await.unwrap();
    assert_eq!(check.first_bad_seq, None, "{check:?}");
    assert!(check.events >= AWKWARD.len() as u64);
}

on_both_databases!(awkward_text_round_trips_through_the_audit_chain);
