//! The table schema, for tests (a fresh table per run) and local tooling. `infra/template.yaml`
//! declares the same keys and indexes; a test keeps the two in step.
use aws_sdk_dynamodb::Client as Ddb;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};

use super::{StoreError, StoreResult, classify};

/// The global secondary indexes: (name, partition key attribute). All sort on `issued_sk` and
/// project every attribute; all are sparse (only token items carry their keys, and only tokens
/// of a family carry `family_pk`; client items carry `client_pk` = `CLIENTS` for the client
/// listing).
pub const INDEXES: [(&str, &str); 4] = [
    ("by_client", "client_pk"),
    ("by_end_user", "user_pk"),
    ("by_client_end_user", "client_user_pk"),
    ("by_family", "family_pk"),
];

fn key(name: &str, t: KeyType) -> StoreResult<KeySchemaElement> {
    KeySchemaElement::builder().attribute_name(name).key_type(t).build().map_err(|e| StoreError::Backend(e.to_string()))
}

fn attr(name: &str) -> StoreResult<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| StoreError::Backend(e.to_string()))
}

/// [`create_table`] with a client from the standard AWS chain (`AWS_ENDPOINT_URL_DYNAMODB`
/// points it at DynamoDB Local): `gatehouse create-table`, for local and benchmark set-ups.
pub async fn create_table_from_env(table: &str) -> StoreResult<()> {
    create_table(&Ddb::new(&crate::state::aws_sdk_config().await), table).await
}

/// Creates the table with its indexes (on-demand) and turns TTL on for `ttl`.
pub async fn create_table(ddb: &Ddb, table: &str) -> StoreResult<()> {
    let mut req = ddb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?)
        .attribute_definitions(attr("issued_sk")?);
    for (name, pk) in INDEXES {
        req = req.attribute_definitions(attr(pk)?).global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(pk, KeyType::Hash)?)
                .key_schema(key("issued_sk", KeyType::Range)?)
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
                .map_err(|e| StoreError::Backend(e.to_string()))?,
        );
    }
    req.send().await.map_err(classify)?;
    ddb.update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("ttl")
                .build()
                .map_err(|e| StoreError::Backend(e.to_string()))?,
        )
        .send()
        .await
        .map_err(classify)?;
    Ok(())
}
