//! Table definitions, one file per backend, each the unedited output of `diesel print-schema`
//! against a database built from that backend's migrations. The two differ only in how each
//! backend spells the same types (`Varchar`/`Datetime` on MySQL, `Text`/`Timestamp` on SQLite),
//! which map to the same Rust types, so the repositories' query code is shared between them.
//!
//! A test (`schema::check`) builds fresh databases from the migrations and compares their live
//! columns with these declarations, so a migration without a regenerated schema fails CI.

pub(crate) mod mysql;
pub(crate) mod sqlite;

#[cfg(all(test, feature = "testing"))]
mod check;
