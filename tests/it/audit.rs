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
        let text = line.to_string();
        for secret_value in [secret.as_str(), at.as_str(), "wrong-secret-value", common::ADMIN] {
            assert!(!text.contains(secret_value), "a secret or token leaked into {text}");
        }
    }
    let issued = mine.iter().find(|l| l["event"] == "token_issued").unwrap();
    assert_eq!(issued["client_id"], c.id.as_str());
    assert_eq!(issued["grant_type"], "client_credentials");
    assert_eq!(issued["jti"].as_str().unwrap().len(), 22);
}
