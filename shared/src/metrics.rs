//! Metrics as CloudWatch Embedded Metric Format lines (EMF: one JSON object on stdout with an
//! `_aws` member; CloudWatch Logs turns it into metrics, so dashboards and alarms need no agent
//! and no `PutMetricData` call). Namespace `Gatehouse`, every metric has the `Tenant` dimension:
//!
//! | metric | unit | dimensions | when |
//! |---|---|---|---|
//! | `TokensIssued` | Count | Tenant, GrantType | an access token is issued |
//! | `Errors` | Count | Tenant, Code | an OAuth/admin error response (RFC error code) |
//! | `DependencyLatency` | Milliseconds | Tenant, Service, Operation | every DynamoDB and KMS call (SDK interceptor, retries included) |
//! | `DependencyFailures` | Count | Tenant, Service, Operation | a DynamoDB or KMS call that failed |
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use serde_json::{Map, Value, json};

/// The CloudWatch namespace.
pub const NAMESPACE: &str = "Gatehouse";

static CAPTURE: Mutex<Option<Vec<Value>>> = Mutex::new(None);

/// Whether this process is a Lambda function (the runtime sets `AWS_LAMBDA_FUNCTION_NAME`):
/// only there does anything turn EMF lines into metrics. The local server writes none (a JSON
/// line per token it issues that nothing reads).
fn on_lambda() -> bool {
    static ON_LAMBDA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON_LAMBDA.get_or_init(|| std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some())
}

/// One EMF line: `metric` (with `unit` and `value`) under `dimensions` (name, value pairs; the
/// tenant is added).
pub fn emit(metric: &str, unit: &str, value: f64, dimensions: &[(&str, &str)]) {
    let capturing = CAPTURE.lock().unwrap_or_else(|p| p.into_inner()).is_some();
    if !capturing && !on_lambda() {
        return;
    }
    let mut names: Vec<&str> = vec!["Tenant"];
    names.extend(dimensions.iter().map(|(n, _)| *n));
    let mut line = Map::new();
    line.insert(
        "_aws".into(),
        json!({
            "Timestamp": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [names],
                "Metrics": [{"Name": metric, "Unit": unit}],
            }],
        }),
    );
    line.insert("Tenant".into(), json!(crate::audit::tenant()));
    for (n, v) in dimensions {
        line.insert((*n).into(), json!(v));
    }
    line.insert(metric.into(), json!(value));
    let line = Value::Object(line);
    if let Some(buf) = CAPTURE.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        buf.push(line.clone());
    }
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// An access token was issued by `grant_type`.
pub fn token_issued(grant_type: &str) {
    emit("TokensIssued", "Count", 1.0, &[("GrantType", grant_type)]);
}

/// An error response with RFC error `code`.
pub fn error(code: &str) {
    emit("Errors", "Count", 1.0, &[("Code", code)]);
}

/// Tests: starts keeping every metric line in memory (process-wide).
pub fn start_capture() {
    CAPTURE.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(Vec::new);
}

/// Tests: the lines captured so far.
pub fn captured() -> Vec<Value> {
    CAPTURE.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default()
}

/// When an SDK call started.
#[derive(Debug, Clone)]
struct Started(Instant);

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

/// An AWS SDK interceptor that emits `DependencyLatency` (and `DependencyFailures`) for every
/// DynamoDB and KMS call; added to the clients in `state.rs`.
#[derive(Debug, Default)]
pub struct LatencyInterceptor;

impl Intercept for LatencyInterceptor {
    fn name(&self) -> &'static str {
        "GatehouseLatencyMetrics"
    }

    fn read_before_execution(
        &self,
        _: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(Started(Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (Some(started), Some(meta)) = (cfg.load::<Started>(), cfg.load::<Metadata>()) else {
            return Ok(());
        };
        let ms = started.0.elapsed().as_secs_f64() * 1000.0;
        let dims = [("Service", meta.service()), ("Operation", meta.name())];
        emit("DependencyLatency", "Milliseconds", (ms * 1000.0).round() / 1000.0, &dims);
        if context.output_or_error().is_none_or(|r| r.is_err()) {
            emit("DependencyFailures", "Count", 1.0, &dims);
        }
        Ok(())
    }
}

/// Tests and measurements: an AWS SDK interceptor that records every call (service and
/// operation, e.g. `("DynamoDB", "PutItem")`) made through the clients it is added to
/// (`state::AwsClients::new`), so round trips per request can be counted exactly.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<Mutex<Vec<(String, String)>>>);

impl CallCounter {
    /// The calls recorded since the last `take`, in order.
    pub fn take(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// This counter as an interceptor to add to SDK clients.
    pub fn interceptor(&self) -> aws_smithy_runtime_api::client::interceptors::SharedInterceptor {
        aws_smithy_runtime_api::client::interceptors::SharedInterceptor::new(self.clone())
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "GatehouseCallCounter"
    }

    fn read_after_execution(
        &self,
        _: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(meta) = cfg.load::<Metadata>() {
            let call = (meta.service().to_owned(), meta.name().to_owned());
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(call);
        }
        Ok(())
    }
}

/// Tests: an AWS SDK interceptor that records the items each DynamoDB write reaches, as IAM
/// authorizes them: the per-item action (`PutItem`, `UpdateItem`, `DeleteItem`,
/// `ConditionCheckItem`; a `TransactWriteItems` is authorized per item by these) and the item's
/// partition key (IAM's `dynamodb:LeadingKeys`). `tests/it` checks every recorded write against
/// the role the template gives the function that made it.
#[derive(Debug, Clone, Default)]
pub struct WriteRecorder(Arc<Mutex<Vec<(String, String)>>>);

impl WriteRecorder {
    /// The writes recorded since the last `take`: (IAM action, partition key).
    pub fn take(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// This recorder as an interceptor to add to SDK clients.
    pub fn interceptor(&self) -> aws_smithy_runtime_api::client::interceptors::SharedInterceptor {
        aws_smithy_runtime_api::client::interceptors::SharedInterceptor::new(self.clone())
    }
}

impl Intercept for WriteRecorder {
    fn name(&self) -> &'static str {
        "GatehouseWriteRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(meta) = cfg.load::<Metadata>() else { return Ok(()) };
        if meta.service() != "DynamoDB" {
            return Ok(());
        }
        let Some(body) = context.request().body().bytes() else { return Ok(()) };
        let v: Value = serde_json::from_slice(body)?;
        let pk = |item: &Value| item["pk"]["S"].as_str().unwrap_or("?").to_owned();
        let mut writes = Vec::new();
        match meta.name() {
            "PutItem" => writes.push(("PutItem".to_owned(), pk(&v["Item"]))),
            op @ ("UpdateItem" | "DeleteItem") => writes.push((op.to_owned(), pk(&v["Key"]))),
            "TransactWriteItems" => {
                for item in v["TransactItems"].as_array().into_iter().flatten() {
                    for (kind, action, at) in [
                        ("Put", "PutItem", "Item"),
                        ("Update", "UpdateItem", "Key"),
                        ("Delete", "DeleteItem", "Key"),
                        ("ConditionCheck", "ConditionCheckItem", "Key"),
                    ] {
                        if let Some(x) = item.get(kind) {
                            writes.push((action.to_owned(), pk(&x[at])));
                        }
                    }
                }
            }
            _ => {}
        }
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend(writes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_embedded_metric_format() {
        start_capture();
        token_issued("client_credentials");
        let line = captured().into_iter().rev().find(|l| l.get("TokensIssued").is_some()).unwrap();
        let m = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(m["Namespace"], "Gatehouse");
        assert_eq!(m["Dimensions"], json!([["Tenant", "GrantType"]]));
        assert_eq!(m["Metrics"], json!([{"Name": "TokensIssued", "Unit": "Count"}]));
        assert_eq!(
            (line["GrantType"].as_str(), line["TokensIssued"].as_f64()),
            (Some("client_credentials"), Some(1.0))
        );
        assert!(line["Tenant"].is_string() && line["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    }
}
