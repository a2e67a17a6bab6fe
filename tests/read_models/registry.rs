//! The read-model registry against the migrated schema: a read model added
//! in one place and forgotten in another fails here. A migration that
//! makes a table nobody registered, a registered read model without its
//! table, a primary key that differs from the registry's (rebuilds compare
//! by it) or a read model missing from ARCHITECTURE.md are each named.

use std::collections::BTreeSet;

use command_side::database::{LOG_TABLES, SIDE_TABLES};
use integration_tests::TestApp;
use projections::read_models::READ_MODELS;

#[tokio::test]
async fn every_table_is_the_log_a_side_table_or_a_registered_read_model() {
    let app = TestApp::spawn().await;
    let tables: BTreeSet<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
          WHERE table_schema = 'public' AND table_type = 'BASE TABLE' \
            AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("list the tables")
    .into_iter()
    .collect();
    let known: BTreeSet<String> = LOG_TABLES
        .iter()
        .chain(SIDE_TABLES.iter())
        .map(|name| name.to_string())
        .chain(READ_MODELS.iter().map(|model| model.name.to_string()))
        .collect();
    let unregistered: Vec<&String> = tables.difference(&known).collect();
    assert!(
        unregistered.is_empty(),
        "tables in no registry (projections::read_models::READ_MODELS, or \
         command_side::database::{{LOG_TABLES, SIDE_TABLES}}): {unregistered:?}"
    );
    let missing: Vec<&String> = known.difference(&tables).collect();
    assert!(
        missing.is_empty(),
        "registered tables the migrations do not make: {missing:?}"
    );
}

#[tokio::test]
async fn every_read_model_has_its_registered_primary_key() {
    let app = TestApp::spawn().await;
    for model in &READ_MODELS {
        let key: Vec<String> = sqlx::query_scalar(
            "SELECT a.attname::text FROM pg_index i \
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
              WHERE i.indrelid = ('public.' || $1)::regclass AND i.indisprimary \
              ORDER BY array_position(i.indkey, a.attnum)",
        )
        .bind(model.name)
        .fetch_all(&app.pool)
        .await
        .expect("read a primary key");
        assert_eq!(
            key, model.primary_key,
            "the primary key of {} differs from its registry entry",
            model.name
        );
    }
}

#[test]
fn every_read_model_is_in_the_architecture_document() {
    let document =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../ARCHITECTURE.md"))
            .expect("read ARCHITECTURE.md");
    for model in &READ_MODELS {
        assert!(
            document.contains(&format!("| `{}` |", model.name)),
            "ARCHITECTURE.md's table of read models has no row for `{}`",
            model.name
        );
    }
}
