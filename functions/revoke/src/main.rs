//! The `revoke` Lambda function: builds the state once per cold start and serves
//! `gatehouse::endpoints::revoke::router` behind API Gateway (HTTP API, payload v2).
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    gatehouse::telemetry::init();
    let state = gatehouse::AppState::from_env(gatehouse::keys::KeyUse::Verify).await?;
    gatehouse::lifecycle::lambda_started("revoke").await;
    lambda_http::run(gatehouse::endpoints::revoke::router(state)).await
}
