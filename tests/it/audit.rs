//! Audit lines: one per outcome with the documented ids and fields, and never a secret or token.
use serde_json::Value;

use crate::common::{self, admin, form, send};

#[tokio::test]
async fn audit_lines_name_outcomes_and_never_carry_secrets() {
    gatehouse::audit::start_capture();
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = common::cc_client(&app).await;
    let secret = c.secret.clone().unwrap();
    let at = common::cc_token(&app, &c, "").await;
    send(&app, form("/introspect", Some(&c.basic()), &format!("token={at}"))).await;
    send(&app, form("/revoke", Some(&c.basic()), &format!("token={at}"))).await;
    send(&app, form("/token", Some(&common::basic(&c.id, "wrong-secret-value")), "grant_type=client_credentials"))
        .await;
    let mut no_admin = admin("GET", "/admin/tokens/count?type=access&client_id=x", None);
    no_admin.headers_mut().remove("authorization");
    send(&app, no_admin).await;

    let mine: Vec<Value> = gatehouse::audit::captured()
        .into_iter()
        .filter(|l| l.to_string().contains(&c.id) || l["event"] == "admin_refused")
        .collect();
    let events: Vec<(u64, &str)> =
        mine.iter().map(|l| (l["event_id"].as_u64().unwrap(), l["event"].as_str().unwrap())).collect();
    for expected in [
        (21003, "admin_change"),
        (20004, "token_issued"),
        (20006, "token_introspected"),
        (21001, "token_revoked"),
        (21002, "invalid_client"),
        (21004, "admin_refused"),
    ] {
        assert!(events.contains(&expected), "{expected:?} missing from {events:?}");
    }
    for line in &mine {
        assert_eq!(line["audit"], true);
        assert_eq!(line["tenant"], "test");
        assert!(line["time"].as_u64().unwrap() > 0);
        for field in ["actor", "subject", "client", "outcome"] {
            assert!(line.get(field).is_some(), "every line has {field}: {line}");
        }
        let text = line.to_string();
        for secret_value in [secret.as_str(), at.as_str(), "wrong-secret-value", common::ADMIN] {
            assert!(!text.contains(secret_value), "a secret or token leaked into {text}");
        }
    }
    let outcome = |e: &str| mine.iter().find(|l| l["event"] == e).unwrap()["outcome"].as_str().unwrap().to_owned();
    assert_eq!(outcome("token_issued"), "success");
    assert_eq!(outcome("invalid_client"), "failure");
    assert_eq!(outcome("admin_refused"), "failure");
    let issued = mine.iter().find(|l| l["event"] == "token_issued").unwrap();
    assert_eq!(
        (&issued["actor"], &issued["client"], &issued["subject"]),
        (&issued["client_id"], &issued["client_id"], &issued["client_id"])
    );
    assert_eq!(issued["client_id"], c.id.as_str());
    assert_eq!(issued["grant_type"], "client_credentials");
    assert_eq!(issued["jti"].as_str().unwrap().len(), 22);
}

/// EMF metrics: tokens issued by grant, errors by code, and DynamoDB/KMS latency through the
/// SDK interceptor the state's clients carry.
#[tokio::test]
async fn embedded_metric_format_lines() {
    gatehouse::metrics::start_capture();
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let c = common::cc_client(&app).await;
    common::cc_token(&app, &c, "").await;
    send(&app, form("/token", Some(&c.basic()), "grant_type=password&username=x&password=y")).await;
    let lines = gatehouse::metrics::captured();
    let find = |metric: &str, dim: &str, value: &str| {
        lines.iter().any(|l| l.get(metric).is_some() && l[dim] == value && l["Tenant"] == "test")
    };
    assert!(find("TokensIssued", "GrantType", "client_credentials"));
    assert!(find("Errors", "Code", "unauthorized_client"), "{lines:?}");

    let Some(url) = std::env::var("GATEHOUSE_TEST_DYNAMODB_URL").ok().filter(|u| !u.is_empty()) else { return };
    let conf = aws_sdk_dynamodb::config::Builder::from(&common::sdk_config(&url).await)
        .interceptor(gatehouse::metrics::LatencyInterceptor)
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf).list_tables().send().await.unwrap();
    let latency = gatehouse::metrics::captured()
        .into_iter()
        .find(|l| l["Operation"] == "ListTables")
        .expect("a latency line for the call");
    assert_eq!(latency["Service"], "DynamoDB");
    assert_eq!(
        latency["_aws"]["CloudWatchMetrics"][0]["Metrics"][0],
        serde_json::json!({"Name": "DependencyLatency", "Unit": "Milliseconds"})
    );
    assert!(latency["DependencyLatency"].as_f64().unwrap() > 0.0);
}
