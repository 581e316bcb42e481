//! The `revoke` Lambda function: builds the state once per cold start and serves
//! `gatehouse::endpoints::revoke::router` behind API Gateway (HTTP API, payload v2).
// One event at a time (Lambda): one thread, no cross-thread wake-ups (docs/performance.md, §3).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    gatehouse::telemetry::init();
    let state = gatehouse::lifecycle::start_function("revoke", gatehouse::keys::KeyUse::Verify).await?;
    lambda_http::run(gatehouse::endpoints::revoke::router(state)).await
}
