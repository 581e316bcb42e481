//! Integration tests of the assembled server: one test binary (it links the AWS SDKs once).
//!
//! Suites that need AWS's DynamoDB Local or moto's KMS read `GATEHOUSE_TEST_DYNAMODB_URL` and
//! `GATEHOUSE_TEST_KMS_URL` (set by `scripts/test.sh`). Without them those suites skip, unless
//! `GATEHOUSE_TEST_REQUIRE_SERVICES=1`, where a missing service fails the run.
mod admin;
mod admin_clients;
mod admin_groups;
mod audit;
mod authorize_edges;
mod browser;
mod cli;
mod code_flow;
mod common;
mod concurrency;
mod custom_claims;
mod dpop;
mod dynamo_listing;
mod entity_tags;
mod events;
mod fault_proxy;
mod faults;
mod flows;
mod grant_lifecycle;
mod hooked_store;
mod hostile_input;
mod infra;
mod introspect_revoke;
mod jwt_bearer;
mod key_rotation;
mod openapi;
mod private_key_jwt;
mod refresh_password;
mod round_trips;
mod settings_admin;
mod signer_conformance;
mod store_conformance;
mod token;
mod users_admin;
mod validation;
