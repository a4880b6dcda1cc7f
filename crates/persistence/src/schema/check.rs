//! The schema check: the committed `schema/*.rs` must be what `diesel print-schema` would print
//! for a database built from the migrations. Rather than installing diesel_cli in CI, this test
//! builds fresh databases with the embedded migrations, reads their live tables, renders them in
//! print-schema's format (the subset of its type mapping these migrations use; an unknown type
//! fails loudly) and compares the text with the committed file.

// Test-only code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};

use crate::pool::{SqliteConn, parse_url};
use crate::testing::TestDatabase;
use crate::{Database, JoinGuard};

/// One table as print-schema sees it.
#[derive(Debug, Default)]
struct Table {
    primary_key: Vec<String>,
    /// (name, diesel type, max_length attribute)
    columns: Vec<(String, String, Option<i64>)>,
    /// (column, referenced table)
    foreign_keys: Vec<(String, String)>,
}

fn render(tables: &BTreeMap<String, Table>) -> String {
    let mut out = String::from("// @generated automatically by Diesel CLI.\n");
    for (name, table) in tables {
        let _ = write!(
            out,
            "\ndiesel::table! {{\n    {name} ({}) {{\n",
            table.primary_key.join(", ")
        );
        for (column, ty, max_length) in &table.columns {
            if let Some(max) = max_length {
                let _ = writeln!(out, "        #[max_length = {max}]");
            }
            let _ = writeln!(out, "        {column} -> {ty},");
        }
        out.push_str("    }\n}\n");
    }
    let mut joins: Vec<String> = tables
        .iter()
        .flat_map(|(name, table)| {
            table.foreign_keys.iter().map(move |(column, parent)| {
                format!("diesel::joinable!({name} -> {parent} ({column}));\n")
            })
        })
        .collect();
    joins.sort();
    if !joins.is_empty() {
        out.push('\n');
        out.push_str(&joins.concat());
    }
    let names: Vec<&str> = tables.keys().map(String::as_str).collect();
    let _ = write!(
        out,
        "\ndiesel::allow_tables_to_appear_in_same_query!({},);\n",
        names.join(", ")
    );
    out
}

fn nullable(ty: String, is_nullable: bool) -> String {
    if is_nullable {
        format!("Nullable<{ty}>")
    } else {
        ty
    }
}

#[derive(QueryableByName)]
struct MysqlColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Text)]
    column_type: String,
    #[diesel(sql_type = Text)]
    is_nullable: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    max_length: Option<i64>,
}

#[derive(QueryableByName)]
struct MysqlKey {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Nullable<Text>)]
    referenced_table: Option<String>,
    #[diesel(sql_type = Text)]
    constraint_name: String,
}

/// diesel_cli's MySQL type names, for the types these migrations use.
fn mysql_type(column: &MysqlColumn) -> String {
    let unsigned = column.column_type.contains("unsigned");
    let base = match column.data_type.to_lowercase().as_str() {
        "varchar" => "Varchar",
        "text" => "Text",
        "int" => "Integer",
        "bigint" => "Bigint",
        "datetime" => "Datetime",
        "timestamp" => "Timestamp",
        other => panic!(
            "schema check: MySQL type {other} of {}.{} is not mapped yet; extend mysql_type \
             following diesel_cli's print-schema",
            column.table_name, column.column_name
        ),
    };
    let ty = if unsigned {
        format!("Unsigned<{base}>")
    } else {
        base.to_owned()
    };
    nullable(ty, column.is_nullable == "YES")
}

async fn live_mysql(url: &str) -> BTreeMap<String, Table> {
    let mut conn = AsyncMysqlConnection::establish(url).await.unwrap();
    let columns: Vec<MysqlColumn> = diesel::sql_query(
        "SELECT TABLE_NAME AS table_name, COLUMN_NAME AS column_name, DATA_TYPE AS data_type, \
                COLUMN_TYPE AS column_type, IS_NULLABLE AS is_nullable, \
                CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED) AS max_length \
         FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME <> '__diesel_schema_migrations' \
         ORDER BY TABLE_NAME, ORDINAL_POSITION",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let keys: Vec<MysqlKey> = diesel::sql_query(
        "SELECT TABLE_NAME AS table_name, COLUMN_NAME AS column_name, \
                REFERENCED_TABLE_NAME AS referenced_table, CONSTRAINT_NAME AS constraint_name \
         FROM information_schema.KEY_COLUMN_USAGE \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME <> '__diesel_schema_migrations' \
         ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION",
    )
    .load(&mut conn)
    .await
    .unwrap();

    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    for column in columns {
        let ty = mysql_type(&column);
        // print-schema writes `max_length` for character types only.
        let max_length = column
            .max_length
            .filter(|_| column.data_type.eq_ignore_ascii_case("varchar"));
        tables
            .entry(column.table_name.clone())
            .or_default()
            .columns
            .push((column.column_name, ty, max_length));
    }
    for key in keys {
        let table = tables.entry(key.table_name).or_default();
        if key.constraint_name == "PRIMARY" {
            table.primary_key.push(key.column_name);
        } else if let Some(parent) = key.referenced_table {
            table.foreign_keys.push((key.column_name, parent));
        }
    }
    tables
}

#[derive(QueryableByName)]
struct SqliteName {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct SqliteColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    r#type: String,
    #[diesel(sql_type = BigInt)]
    notnull: i64,
    #[diesel(sql_type = BigInt)]
    pk: i64,
}

#[derive(QueryableByName)]
struct SqliteForeignKey {
    #[diesel(sql_type = Text)]
    parent: String,
    #[diesel(sql_type = Text)]
    column: String,
}

/// diesel_cli's SQLite type names (with `--sqlite-integer-primary-key-is-bigint`), for the
/// types these migrations use.
fn sqlite_type(table: &str, column: &SqliteColumn, rowid_alias: bool) -> String {
    let declared = column.r#type.to_lowercase();
    let base = if declared == "bigint" {
        "BigInt"
    } else if declared.contains("int") {
        if rowid_alias { "BigInt" } else { "Integer" }
    } else if declared == "text" {
        "Text"
    } else if declared == "timestamp" {
        "Timestamp"
    } else {
        panic!(
            "schema check: SQLite type {declared} of {table}.{} is not mapped yet; extend \
             sqlite_type following diesel_cli's print-schema",
            column.name
        )
    };
    nullable(base.to_owned(), column.notnull == 0 && column.pk == 0)
}

async fn live_sqlite(path: &str) -> BTreeMap<String, Table> {
    let mut conn = SqliteConn::establish(path).await.unwrap();
    let names: Vec<SqliteName> = diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '__diesel_schema_migrations' ORDER BY name",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let mut tables = BTreeMap::new();
    for SqliteName { name } in names {
        let columns: Vec<SqliteColumn> = diesel::sql_query(format!(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info('{name}') ORDER BY cid"
        ))
        .load(&mut conn)
        .await
        .unwrap();
        let foreign_keys: Vec<SqliteForeignKey> = diesel::sql_query(format!(
            "SELECT \"table\" AS parent, \"from\" AS column FROM pragma_foreign_key_list('{name}')"
        ))
        .load(&mut conn)
        .await
        .unwrap();
        let mut primary: Vec<&SqliteColumn> = columns.iter().filter(|c| c.pk > 0).collect();
        primary.sort_by_key(|c| c.pk);
        // A single-column `INTEGER PRIMARY KEY` is an alias of the 64-bit rowid.
        let rowid_alias = |c: &SqliteColumn| {
            primary.len() == 1 && c.pk == 1 && c.r#type.eq_ignore_ascii_case("integer")
        };
        let table = Table {
            primary_key: primary.iter().map(|c| c.name.clone()).collect(),
            columns: columns
                .iter()
                .map(|c| (c.name.clone(), sqlite_type(&name, c, rowid_alias(c)), None))
                .collect(),
            foreign_keys: foreign_keys
                .into_iter()
                .map(|fk| (fk.column, fk.parent))
                .collect(),
        };
        tables.insert(name, table);
    }
    tables
}

fn assert_matches(backend: &str, committed: &str, live: &str) {
    assert!(
        committed == live,
        "src/schema/{backend}.rs does not match the migrations in migrations/{backend}.\n\
         Regenerate it with `diesel print-schema` (see crates/persistence/README.md).\n\
         --- committed\n{committed}\n--- from the migrations\n{live}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_schema_matches_the_migrations() {
    let test_db = TestDatabase::mysql().await;
    drop(
        Database::connect(&test_db.settings(JoinGuard::Conditional))
            .await
            .unwrap(),
    );
    let live = render(&live_mysql(test_db.url()).await);
    assert_matches("mysql", include_str!("mysql.rs"), &live);
    test_db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_schema_matches_the_migrations() {
    let test_db = TestDatabase::sqlite();
    drop(
        Database::connect(&test_db.settings(JoinGuard::Conditional))
            .await
            .unwrap(),
    );
    let (_, path) = parse_url(test_db.url()).unwrap();
    let live = render(&live_sqlite(path).await);
    assert_matches("sqlite", include_str!("sqlite.rs"), &live);
}
