//! PostgreSQL array literals (`{a,"b c",NULL}`), each bound as one text parameter and cast
//! in SQL (`$1::uuid[]`, `unnest($1::text[], …)`). A statement built this way has the same
//! text whatever the number of rows, so each connection prepares it once and PostgreSQL
//! plans it generically; a multi-row `VALUES` list is a new statement for every batch size,
//! parsed and planned again each time (planning a 500-row insert cost more than running it).

use crate::error::Result;
use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::sea_query::{ColumnType, Value};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityName, EntityTrait,
    IdenStatic, Iterable, Statement,
};
use std::fmt::{Display, Write};

/// Builds one array literal, element by element.
#[derive(Debug)]
pub(crate) struct ArrayLiteral {
    out: String,
    empty: bool,
}

impl ArrayLiteral {
    /// An empty literal with room for about `elements` short elements.
    pub fn with_capacity(elements: usize) -> Self {
        let mut out = String::with_capacity(2 + elements * 40);
        out.push('{');
        Self { out, empty: true }
    }

    fn next(&mut self) -> &mut String {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        &mut self.out
    }

    /// An element whose text form needs no quoting: uuids and integers only.
    pub fn plain(&mut self, value: impl Display) {
        // Writing into a String cannot fail.
        let _ = write!(self.next(), "{value}");
    }

    /// A text element, quoted, with `"` and `\` escaped.
    pub fn text(&mut self, value: &str) {
        let out = self.next();
        out.push('"');
        for c in value.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }

    /// A timestamp, to the microsecond (what `timestamptz` keeps).
    pub fn time(&mut self, at: DateTime<Utc>) {
        self.text(&at.to_rfc3339_opts(SecondsFormat::Micros, true));
    }

    /// A plain element, or SQL NULL.
    pub fn plain_or_null(&mut self, value: Option<impl Display>) {
        match value {
            Some(v) => self.plain(v),
            None => self.next().push_str("NULL"),
        }
    }

    /// The finished literal.
    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// The literal of a list of uuids (`$n::uuid[]`).
pub(crate) fn uuids(ids: &[uuid::Uuid]) -> String {
    let mut lit = ArrayLiteral::with_capacity(ids.len());
    for id in ids {
        lit.plain(id);
    }
    lit.finish()
}

/// `column IN (ids)` (the column named by its table, so not for aliased tables), written
/// on PostgreSQL as `column IN (SELECT unnest($n::uuid[]))` so
/// that the statement's text does not depend on how many ids there are. Not
/// `= ANY($n::uuid[])`: in a generic plan's sequential scan, the cast literal is parsed
/// again for every row filtered (0.5 ms for 32 ids over 32 rows); the subquery runs once.
pub(crate) fn uuid_in<C: ColumnTrait>(
    backend: DatabaseBackend,
    column: C,
    ids: &[uuid::Uuid],
) -> sea_orm::sea_query::SimpleExpr {
    if backend == DatabaseBackend::Postgres {
        return in_array(column, uuids(ids), "uuid");
    }
    column.is_in(ids.iter().copied())
}

/// `column IN (values)` for a text column, as [`uuid_in`] does for uuids.
pub(crate) fn text_in<C: ColumnTrait>(
    backend: DatabaseBackend,
    column: C,
    values: &[String],
) -> sea_orm::sea_query::SimpleExpr {
    if backend == DatabaseBackend::Postgres {
        let mut lit = ArrayLiteral::with_capacity(values.len());
        for v in values {
            lit.text(v);
        }
        return in_array(column, lit.finish(), "text");
    }
    column.is_in(values.iter().cloned())
}

/// `"table"."column" IN (SELECT unnest($1::element[]))` with `literal` bound as `$1`.
fn in_array<C: ColumnTrait>(
    column: C,
    literal: String,
    element: &str,
) -> sea_orm::sea_query::SimpleExpr {
    let table = <C::EntityName as Default>::default();
    sea_orm::sea_query::Expr::cust_with_values(
        format!(
            "\"{}\".\"{}\" IN (SELECT unnest($1::{element}[]))",
            table.table_name(),
            column.as_str()
        ),
        [literal],
    )
}

/// Rows per statement: arrays have no bind limit, this only bounds one message's size.
const ROWS_PER_STATEMENT: usize = 5_000;
/// Rows per multi-row `VALUES` insert (SQLite, or a row PostgreSQL arrays cannot carry),
/// well under both engines' bind-parameter limits at our widest table.
const ROWS_PER_VALUES: usize = 500;

/// Inserts `rows` (each with the same columns set). On PostgreSQL: one
/// `INSERT … SELECT * FROM unnest($1::t[], …)` per 5,000 rows, whose text depends only on
/// the table and columns; elsewhere, or for a column type arrays here do not carry,
/// multi-row `VALUES` inserts.
pub(crate) async fn insert_many<A>(txn: &impl ConnectionTrait, rows: Vec<A>) -> Result<()>
where
    A: ActiveModelTrait + Send,
{
    if rows.is_empty() {
        return Ok(());
    }
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            if let Some(statement) = unnest_insert(chunk) {
                txn.execute_raw(statement).await?;
                continue;
            }
            values_insert(txn, chunk.to_vec()).await?;
        }
        return Ok(());
    }
    values_insert(txn, rows).await
}

async fn values_insert<A>(txn: &impl ConnectionTrait, rows: Vec<A>) -> Result<()>
where
    A: ActiveModelTrait + Send,
{
    for chunk in rows.chunks(ROWS_PER_VALUES) {
        A::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// The unnest insert of `rows`, or `None` when a column's type or value has no array
/// form here, or the rows do not all set the same columns, or set none.
fn unnest_insert<A: ActiveModelTrait>(rows: &[A]) -> Option<Statement> {
    let first = rows.first()?;
    // Every column, and whether the first row sets it: the others must set the same.
    let all: Vec<_> = <A::Entity as EntityTrait>::Column::iter()
        .map(|c| (c, !first.get(c).is_not_set()))
        .collect();
    let columns: Vec<_> = all
        .iter()
        .filter(|(_, set)| *set)
        .map(|(c, _)| *c)
        .collect();
    if columns.is_empty() {
        return None;
    }
    let mut names = Vec::with_capacity(columns.len());
    let mut casts = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        names.push(format!("\"{}\"", column.as_str()));
        casts.push(format!(
            "${}::{}[]",
            i + 1,
            pg_type(column.def().get_column_type())?
        ));
    }
    let mut arrays: Vec<ArrayLiteral> = columns
        .iter()
        .map(|_| ArrayLiteral::with_capacity(rows.len()))
        .collect();
    for row in rows {
        let mut array = arrays.iter_mut();
        for (column, set) in &all {
            let value = row.get(*column).into_value();
            match (set, value) {
                (true, Some(value)) => array.next()?.value(&value)?,
                (false, None) => {}
                _ => return None,
            }
        }
    }
    let sql = format!(
        "INSERT INTO \"{}\" ({}) SELECT * FROM unnest({})",
        A::Entity::default().table_name(),
        names.join(", "),
        casts.join(", ")
    );
    let values: Vec<Value> = arrays.into_iter().map(|a| a.finish().into()).collect();
    Some(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        sql,
        values,
    ))
}

/// The PostgreSQL element type an entity column's values are cast to.
fn pg_type(column: &ColumnType) -> Option<&'static str> {
    Some(match column {
        ColumnType::Char(_) | ColumnType::String(_) | ColumnType::Text => "text",
        ColumnType::SmallInteger => "int2",
        ColumnType::Integer => "int4",
        ColumnType::BigInteger => "int8",
        ColumnType::Boolean => "bool",
        ColumnType::Uuid => "uuid",
        ColumnType::TimestampWithTimeZone => "timestamptz",
        ColumnType::Json => "json",
        ColumnType::JsonBinary => "jsonb",
        _ => return None,
    })
}

impl ArrayLiteral {
    /// One value of the kinds `pg_type` names; `None` for any other kind.
    fn value(&mut self, value: &Value) -> Option<()> {
        match value {
            Value::Bool(v) => self.plain_or_null(v.map(|b| if b { "t" } else { "f" })),
            Value::SmallInt(v) => self.plain_or_null(*v),
            Value::Int(v) => self.plain_or_null(*v),
            Value::BigInt(v) => self.plain_or_null(*v),
            Value::Uuid(v) => self.plain_or_null(*v),
            Value::String(Some(s)) => self.text(s),
            Value::ChronoDateTimeUtc(Some(at)) => self.time(*at),
            Value::Json(Some(json)) => self.text(&json.to_string()),
            Value::String(None) | Value::ChronoDateTimeUtc(None) | Value::Json(None) => {
                self.plain_or_null(None::<i64>)
            }
            _ => return None,
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_elements_are_quoted_and_escaped() {
        let mut lit = ArrayLiteral::with_capacity(4);
        lit.text(r#"say "hi" \ {x,y}"#);
        lit.text("");
        lit.text("NULL");
        lit.plain_or_null(None::<i64>);
        assert_eq!(lit.finish(), r#"{"say \"hi\" \\ {x,y}","","NULL",NULL}"#);
    }

    #[test]
    fn the_hot_tables_take_the_unnest_path() {
        use crate::entities::{audit_events, audit_inbox, gpu_slot_claims, leases};
        use sea_orm::{ActiveValue::NotSet, Set};
        let now = Utc::now();
        let id = uuid::Uuid::now_v7();
        let event = audit_events::Model {
            seq: 1,
            id,
            occurred_at: now,
            actor: "system".into(),
            action: "a".into(),
            target_kind: "k".into(),
            target_id: "t".into(),
            organization_id: None,
            project_id: Some(id),
            request_id: "r".into(),
            details: "{}".into(),
            prev_hash: "p".into(),
            hash: "h".into(),
        };
        let sql = unnest_insert(&[audit_events::ActiveModel::from(event)])
            .expect("audit events take the unnest path")
            .sql;
        assert!(sql.contains("unnest("), "{sql}");
        let claim = gpu_slot_claims::ActiveModel {
            gpu_id: Set(id),
            slot: Set(3),
            lease_id: Set(id),
        };
        assert!(unnest_insert(&[claim.clone(), claim]).is_some());
        let inbox = audit_inbox::ActiveModel {
            id: Set(id),
            occurred_at: Set(now),
            actor: Set("a".into()),
            action: Set("b".into()),
            target_kind: Set("c".into()),
            target_id: Set("d".into()),
            organization_id: Set(None),
            project_id: Set(None),
            request_id: Set("e".into()),
            details: Set("{}".into()),
        };
        assert!(unnest_insert(std::slice::from_ref(&inbox)).is_some());
        // Rows that set different columns, or none, go the VALUES way.
        let mut partial = inbox.clone();
        partial.details = NotSet;
        assert!(unnest_insert(&[inbox, partial]).is_none());
        assert!(unnest_insert(&[<leases::ActiveModel as Default>::default()]).is_none());
    }

    #[test]
    fn plain_elements_and_empty_lists() {
        let id = uuid::Uuid::nil();
        assert_eq!(uuids(&[id, id]), format!("{{{id},{id}}}"));
        assert_eq!(uuids(&[]), "{}");
        let mut lit = ArrayLiteral::with_capacity(2);
        lit.plain(-5i64);
        lit.plain_or_null(Some(7i64));
        assert_eq!(lit.finish(), "{-5,7}");
    }
}
