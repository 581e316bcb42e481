//! The `token-admin` Lambda function: builds the state once per cold start and serves
//! `gatehouse::endpoints::token_admin::router` behind API Gateway (HTTP API, payload v2).
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    gatehouse::telemetry::init();
    let state = gatehouse::AppState::from_env(gatehouse::keys::KeyUse::Verify).await?;
    gatehouse::lifecycle::lambda_started("token-admin").await;
    lambda_http::run(gatehouse::endpoints::token_admin::router(state)).await
}
