//! The `authorize` Lambda function: builds the state once per cold start and serves
//! `gatehouse::endpoints::authorize::router` behind API Gateway (HTTP API, payload v2).
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    gatehouse::telemetry::init();
    let state = gatehouse::AppState::from_env(gatehouse::keys::KeyUse::Verify).await?;
    gatehouse::lifecycle::lambda_started("authorize").await;
    lambda_http::run(gatehouse::endpoints::authorize::router(state)).await
}
