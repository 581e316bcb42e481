//! `infra/template.yaml` checked against the code: every HTTP API route reaches a function whose
//! router serves that path, every function has its events (and every event is routed to the
//! function whose directory holds it), the DynamoDB table matches the store's schema, each
//! function's environment is a valid `Config` for the DynamoDB store in both signer modes, the key
//! policies name every function role, the introspect role writes nothing but `REPLAY#` items, and
//! `cargo lambda watch`'s router in `Cargo.toml` routes like the stack.
//!
//! The template uses long-form intrinsics only (`Ref`, `Fn::Sub`, ...), so it parses as plain
//! YAML; a small evaluator below resolves the intrinsics the checks need.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use gatehouse::config::{SignerKind, StoreKind};
use gatehouse::{AppState, Config};
use serde_json::{Value, json};

use crate::common;

/// The Lambda functions (`functions/<name>`).
const FUNCTIONS: [&str; 5] = ["authorize", "introspect", "revoke", "token", "token-admin"];

/// Paths under each greedy route that its function must serve.
const GREEDY_SAMPLES: &[(&str, &[&str])] = &[
    (
        "/admin/{proxy+}",
        &[
            "/admin/clients",
            "/admin/resource-servers",
            "/admin/tokens",
            "/admin/tokens/count",
            "/admin/tokens/revoke",
            "/admin/tokens/revoke-all",
            "/admin/users",
            "/admin/groups",
            "/admin/groups/staff/members",
        ],
    ),
    ("/authorize/{proxy+}", &["/authorize/login", "/authorize/consent"]),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The template as JSON (YAML anchors and aliases expanded).
pub(crate) fn template() -> Value {
    let path = root().join("infra/template.yaml");
    serde_norway::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub(crate) fn resources(t: &Value) -> &serde_json::Map<String, Value> {
    t["Resources"].as_object().expect("Resources")
}

/// The resources of one type, by logical id.
fn of_type<'a>(t: &'a Value, ty: &str) -> Vec<(&'a str, &'a Value)> {
    resources(t).iter().filter(|(_, r)| r["Type"] == ty).map(|(id, r)| (id.as_str(), r)).collect()
}

/// The logical id that `Ref`, `Fn::GetAtt` or a one-variable `Fn::Sub` names.
fn referenced(v: &Value) -> Option<&str> {
    if let Some(r) = v["Ref"].as_str() {
        return Some(r);
    }
    if let Some(r) = v["Fn::GetAtt"][0].as_str() {
        return Some(r);
    }
    let sub = v["Fn::Sub"].as_str()?;
    let start = sub.find("${")? + 2;
    let end = start + sub[start..].find('}')?;
    Some(sub[start..end].split('.').next().unwrap_or_default())
}

/// Function logical id → binary name, from `CodeUri: ../target/lambda/deploy/<binary>/bootstrap.zip`.
fn functions(t: &Value) -> BTreeMap<String, String> {
    of_type(t, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, f)| {
            let uri = f["Properties"]["CodeUri"].as_str().unwrap_or_else(|| panic!("{id}: CodeUri"));
            let binary = uri
                .strip_prefix("../target/lambda/deploy/")
                .and_then(|rest| rest.strip_suffix("/bootstrap.zip"))
                .unwrap_or_else(|| panic!("{id}: CodeUri `{uri}` is not a scripts/package.sh zip"));
            (id.to_owned(), binary.to_owned())
        })
        .collect()
}

/// A route of the HTTP API: `ANY` or a method, the path, the function binary it reaches.
#[derive(Debug, Clone)]
struct Route {
    key: String,
    method: String,
    path: String,
    function: String,
}

fn routes(t: &Value) -> Vec<Route> {
    let functions = functions(t);
    of_type(t, "AWS::ApiGatewayV2::Route")
        .into_iter()
        .map(|(id, r)| {
            let p = &r["Properties"];
            let key = p["RouteKey"].as_str().unwrap_or_else(|| panic!("{id}: RouteKey")).to_owned();
            let (method, path) = key.split_once(' ').unwrap_or_else(|| panic!("{id}: route key `{key}`"));
            assert!(p["Target"]["Fn::Sub"].as_str().is_some_and(|s| s.starts_with("integrations/${")), "{id}: Target");
            let integration = referenced(&p["Target"]).unwrap();
            let i = &resources(t)[integration]["Properties"];
            assert_eq!(i["IntegrationType"], "AWS_PROXY", "{integration}");
            assert_eq!(i["PayloadFormatVersion"], "2.0", "{integration}: lambda_http expects payload v2.0");
            let function = referenced(&i["IntegrationUri"]).unwrap_or_else(|| panic!("{integration}: IntegrationUri"));
            let function = functions.get(function).unwrap_or_else(|| panic!("{integration} targets `{function}`"));
            Route { key: key.clone(), method: method.to_owned(), path: path.to_owned(), function: function.clone() }
        })
        .collect()
}

/// Whether `route` matches a request (`{proxy+}` takes one or more trailing segments).
fn route_matches(route: &Route, method: &str, path: &str) -> bool {
    if route.method != "ANY" && route.method != method {
        return false;
    }
    match route.path.strip_suffix("{proxy+}") {
        Some(prefix) => path.strip_prefix(prefix).is_some_and(|rest| !rest.is_empty()),
        None => route.path == path,
    }
}

/// The router the Lambda function `binary` serves (see `functions/*/src/main.rs`).
fn function_router(binary: &str, state: &AppState) -> Router {
    let state = state.clone();
    match binary {
        "authorize" => gatehouse::endpoints::authorize::router(state),
        "introspect" => gatehouse::endpoints::introspect::router(state),
        "revoke" => gatehouse::endpoints::revoke::router(state),
        "token" => gatehouse::endpoints::token::router(state),
        "token-admin" => gatehouse::endpoints::token_admin::router(state),
        other => panic!("no Lambda function `{other}`"),
    }
}

/// The status `binary`'s router answers for `method path` (empty body, no credentials).
async fn status(binary: &str, state: &AppState, method: &Method, path: &str) -> StatusCode {
    let req = Request::builder().method(method.clone()).uri(path).body(Body::empty()).unwrap();
    common::send(&function_router(binary, state), req).await.status
}

/// The concrete requests that exercise a route.
fn samples(route: &Route) -> Vec<(Method, String)> {
    let methods: Vec<Method> = match route.method.as_str() {
        "ANY" => vec![Method::GET, Method::POST],
        m => vec![m.parse().unwrap()],
    };
    let paths: Vec<String> = if route.path.ends_with("{proxy+}") {
        let (_, paths) = GREEDY_SAMPLES
            .iter()
            .find(|(p, _)| *p == route.path)
            .unwrap_or_else(|| panic!("{}: add sample paths to GREEDY_SAMPLES", route.key));
        paths.iter().map(|p| p.to_string()).collect()
    } else {
        vec![route.path.clone()]
    };
    paths.iter().flat_map(|p| methods.iter().map(move |m| (m.clone(), p.clone()))).collect()
}

#[tokio::test]
async fn every_route_reaches_a_function_that_serves_it() {
    let t = template();
    let (state, _dir) = common::embedded_state();
    let routes = routes(&t);
    assert!(!routes.is_empty());
    for binary in FUNCTIONS {
        // The check below is only meaningful if an unknown path answers 404.
        assert_eq!(status(binary, &state, &Method::GET, "/no-such-endpoint").await, StatusCode::NOT_FOUND, "{binary}");
    }
    for route in &routes {
        let mut served = Vec::new();
        for (method, path) in samples(route) {
            let s = status(&route.function, &state, &method, &path).await;
            if s != StatusCode::NOT_FOUND {
                served.push(format!("{method} {path} -> {s}"));
            }
        }
        let paths = samples(route).into_iter().map(|(_, p)| p).collect::<BTreeSet<_>>();
        for path in paths {
            assert!(
                served.iter().any(|s| s.split(' ').nth(1) == Some(path.as_str())),
                "route `{}` goes to `{}`, whose router answers 404 for {path}",
                route.key,
                route.function
            );
        }
    }
}

#[test]
fn every_function_has_its_crate_its_routes_and_its_events() {
    let t = template();
    let binaries: BTreeSet<String> = functions(&t).into_values().collect();
    assert_eq!(binaries, FUNCTIONS.iter().map(|f| f.to_string()).collect(), "one function per Lambda crate");
    let routed: BTreeSet<String> = routes(&t).into_iter().map(|r| r.function).collect();
    assert_eq!(routed, binaries, "every function is reachable through the API");
    for f in FUNCTIONS {
        assert!(root().join("functions").join(f).join("Cargo.toml").is_file(), "functions/{f}");
        let events: Vec<_> = std::fs::read_dir(root().join("events").join(f))
            .unwrap_or_else(|e| panic!("events/{f}: {e}"))
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .collect();
        assert!(!events.is_empty(), "events/{f} has no event");
    }
}

#[test]
fn every_event_is_routed_to_the_function_whose_directory_holds_it() {
    let routes = routes(&template());
    for f in FUNCTIONS {
        for entry in std::fs::read_dir(root().join("events").join(f)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let event: Value = serde_json::from_str(&read(&path)).unwrap();
            let method = event["requestContext"]["http"]["method"].as_str().expect("requestContext.http.method");
            let raw_path = event["rawPath"].as_str().expect("rawPath");
            let hits: Vec<&Route> = routes.iter().filter(|r| route_matches(r, method, raw_path)).collect();
            // API Gateway picks the most specific route: an exact path before a greedy one.
            let best = hits
                .iter()
                .find(|r| !r.path.ends_with("{proxy+}"))
                .or_else(|| hits.first())
                .unwrap_or_else(|| panic!("{}: no route in the template for {method} {raw_path}", path.display()));
            assert_eq!(best.function, f, "{}: {method} {raw_path} goes to `{}`", path.display(), best.function);
        }
    }
}

#[test]
fn table_keys_indexes_and_ttl_match_the_store() {
    let t = template();
    let tables = of_type(&t, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 1, "one table per tenant stack");
    let p = &tables[0].1["Properties"];
    assert_eq!(p["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        p["KeySchema"],
        json!([{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    );
    assert_eq!(p["TimeToLiveSpecification"], json!({"AttributeName": "ttl", "Enabled": true}));
    assert_eq!(p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true);
    assert_eq!(p["SSESpecification"]["SSEEnabled"], true);
    assert_eq!(p["DeletionProtectionEnabled"], true);
    let indexes: BTreeMap<&str, (&str, &str)> = p["GlobalSecondaryIndexes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i["Projection"]["ProjectionType"], "ALL", "{i}");
            assert_eq!(i["KeySchema"][0]["KeyType"], "HASH", "{i}");
            assert_eq!(i["KeySchema"][1]["KeyType"], "RANGE", "{i}");
            let key = |n: usize| i["KeySchema"][n]["AttributeName"].as_str().unwrap();
            (i["IndexName"].as_str().unwrap(), (key(0), key(1)))
        })
        .collect();
    // The store's indexes (`shared/src/store/dynamo/schema.rs` `INDEXES`), all sorted on `issued_sk`.
    let expected = BTreeMap::from([
        ("by_client", ("client_pk", "issued_sk")),
        ("by_end_user", ("user_pk", "issued_sk")),
        ("by_client_end_user", ("client_user_pk", "issued_sk")),
        ("by_family", ("family_pk", "issued_sk")),
    ]);
    assert_eq!(indexes, expected);
    let defined: BTreeMap<&str, &str> = p["AttributeDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["AttributeName"].as_str().unwrap(), a["AttributeType"].as_str().unwrap()))
        .collect();
    let keys: BTreeSet<&str> = ["pk", "sk"].into_iter().chain(expected.values().flat_map(|(h, r)| [*h, *r])).collect();
    assert_eq!(defined.keys().copied().collect::<BTreeSet<_>>(), keys, "exactly the key attributes");
    assert!(defined.values().all(|t| *t == "S"), "{defined:?}");
}

/// The same comparison against the table the code itself creates
/// (`gatehouse::store::dynamo::create_table`) in DynamoDB Local.
#[tokio::test]
async fn table_matches_the_one_the_code_creates() {
    let Some((_, ddb, table)) = common::dynamo().await else { return };
    let t = template();
    let p = &of_type(&t, "AWS::DynamoDB::Table")[0].1["Properties"];
    let d = ddb.describe_table().table_name(&table).send().await.unwrap().table.unwrap();
    let schema = |ks: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<Value> {
        ks.iter().map(|k| json!({"AttributeName": k.attribute_name(), "KeyType": k.key_type().as_str()})).collect()
    };
    assert_eq!(json!(schema(d.key_schema())), p["KeySchema"]);
    let mut attrs: Vec<Value> = d
        .attribute_definitions()
        .iter()
        .map(|a| json!({"AttributeName": a.attribute_name(), "AttributeType": a.attribute_type().as_str()}))
        .collect();
    let mut declared = p["AttributeDefinitions"].as_array().unwrap().clone();
    let by_name = |v: &Value| v["AttributeName"].as_str().unwrap().to_owned();
    attrs.sort_by_key(by_name);
    declared.sort_by_key(by_name);
    assert_eq!(attrs, declared);
    let mut code: Vec<Value> = d
        .global_secondary_indexes()
        .iter()
        .map(|g| {
            json!({
                "IndexName": g.index_name(),
                "KeySchema": schema(g.key_schema()),
                "Projection": {"ProjectionType": g.projection().and_then(|p| p.projection_type()).map(|p| p.as_str())},
            })
        })
        .collect();
    let mut declared = p["GlobalSecondaryIndexes"].as_array().unwrap().clone();
    let by_index = |v: &Value| v["IndexName"].as_str().unwrap().to_owned();
    code.sort_by_key(by_index);
    declared.sort_by_key(by_index);
    assert_eq!(code, declared);
    let ttl = ddb.describe_time_to_live().table_name(&table).send().await.unwrap();
    let ttl = ttl.time_to_live_description().and_then(|d| d.attribute_name()).expect("TTL on");
    assert_eq!(p["TimeToLiveSpecification"]["AttributeName"], ttl);
}

// ---------------------------------------------------------------------------------------------
// A small evaluator of the intrinsics the template uses, with given parameter values.

struct Stack<'a> {
    t: &'a Value,
    params: BTreeMap<String, String>,
}

impl<'a> Stack<'a> {
    /// The template with its parameter defaults, overridden by `overrides`.
    fn new(t: &'a Value, overrides: &[(&str, &str)]) -> Self {
        let mut params: BTreeMap<String, String> = t["Parameters"]
            .as_object()
            .unwrap()
            .iter()
            .filter_map(|(k, p)| Some((k.clone(), scalar(&p["Default"])?)))
            .collect();
        params.extend(overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Self { t, params }
    }

    fn condition(&self, name: &str) -> bool {
        self.truth(&self.t["Conditions"][name])
    }

    fn truth(&self, c: &Value) -> bool {
        let o = c.as_object().unwrap_or_else(|| panic!("condition {c}"));
        let (f, args) = o.iter().next().unwrap();
        match f.as_str() {
            "Fn::Equals" => self.resolve(&args[0]) == self.resolve(&args[1]),
            "Fn::Not" => !self.truth(&args[0]),
            "Fn::And" => args.as_array().unwrap().iter().all(|a| self.truth(a)),
            "Fn::Or" => args.as_array().unwrap().iter().any(|a| self.truth(a)),
            "Condition" => self.condition(args.as_str().unwrap()),
            other => panic!("condition function {other}"),
        }
    }

    /// The value of a name in `Ref` / `${...}`: a parameter, a pseudo parameter, or a stand-in
    /// physical id for a resource.
    fn name(&self, name: &str) -> String {
        match name {
            "AWS::Region" => "us-east-1".into(),
            "AWS::AccountId" => "123456789012".into(),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            n if self.params.contains_key(n) => self.params[n].clone(),
            n if n.contains('.') => format!("{}-{}", n.replace('.', "-").to_lowercase(), "attr"),
            n => {
                assert!(self.t["Resources"].get(n).is_some(), "unknown name `{n}`");
                n.to_lowercase()
            }
        }
    }

    /// Resolves intrinsics; `None` is `AWS::NoValue`.
    fn resolve(&self, v: &Value) -> Option<Value> {
        match v {
            Value::Array(items) => Some(Value::Array(items.iter().filter_map(|i| self.resolve(i)).collect())),
            Value::Object(o)
                if o.len() == 1 && o.keys().next().is_some_and(|k| k == "Ref" || k.starts_with("Fn::")) =>
            {
                let (f, args) = o.iter().next().unwrap();
                match f.as_str() {
                    "Ref" if args == "AWS::NoValue" => None,
                    "Ref" => Some(json!(self.name(args.as_str().unwrap()))),
                    "Fn::If" => {
                        let branch = if self.condition(args[0].as_str().unwrap()) { &args[1] } else { &args[2] };
                        self.resolve(branch)
                    }
                    "Fn::Sub" => Some(json!(self.sub(args.as_str().expect("one-argument Fn::Sub")))),
                    "Fn::GetAtt" => Some(json!(self.name(&format!("{}.{}", args[0].as_str()?, args[1].as_str()?)))),
                    "Fn::Join" => {
                        let parts = self.resolve(&args[1])?;
                        let parts: Vec<String> = parts.as_array()?.iter().filter_map(scalar).collect();
                        Some(json!(parts.join(args[0].as_str()?)))
                    }
                    other => panic!("intrinsic {other} is not evaluated here"),
                }
            }
            Value::Object(o) => {
                Some(Value::Object(o.iter().filter_map(|(k, v)| Some((k.clone(), self.resolve(v)?))).collect()))
            }
            other => Some(other.clone()),
        }
    }

    fn sub(&self, s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').expect("closing brace") + start;
            out.push_str(&self.name(&rest[start + 2..end]));
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// A function's environment: the Globals' variables, then its own.
    fn environment(&self, function_id: &str) -> BTreeMap<String, String> {
        let global = &self.t["Globals"]["Function"]["Environment"]["Variables"];
        let own = &self.t["Resources"][function_id]["Properties"]["Environment"]["Variables"];
        [global, own]
            .into_iter()
            .filter_map(|vars| self.resolve(vars))
            .filter_map(|vars| vars.as_object().cloned())
            .flatten()
            .map(|(k, v)| (k.clone(), scalar(&v).unwrap_or_else(|| panic!("{function_id}: {k} = {v}"))))
            .collect()
    }
}

/// Every `.rs` file under `dir`, concatenated.
fn rust_sources(dir: &Path) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.is_dir() {
            all.push_str(&rust_sources(&path));
        } else if path.extension().is_some_and(|x| x == "rs") {
            all.push_str(&read(&path));
        }
    }
    all
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[test]
fn every_function_environment_is_a_valid_dynamodb_config_in_both_signer_modes() {
    let t = template();
    let sources = rust_sources(&root().join("shared/src"));
    for mode in ["sealed", "kms"] {
        let stack = Stack::new(&t, &[("TenantId", "acme"), ("SignerMode", mode)]);
        for (id, binary) in functions(&t) {
            let env = stack.environment(&id);
            assert_eq!(env.get("GATEHOUSE_STORE").map(String::as_str), Some("dynamodb"), "{id}");
            let table = &t["Globals"]["Function"]["Environment"]["Variables"]["GATEHOUSE_TABLE_NAME"];
            assert_eq!(referenced(table), Some("Table"), "GATEHOUSE_TABLE_NAME names the stack's table");
            for var in env.keys().filter(|k| k.starts_with("GATEHOUSE_")) {
                assert!(sources.contains(&format!("\"{var}\"")), "{id}: {var} is not read anywhere in shared/src");
            }
            let config = Config::from_lookup(|k| env.get(k).cloned())
                .unwrap_or_else(|e| panic!("{id} ({mode}): the template's environment is not a valid config: {e}"));
            assert_eq!(config.store, StoreKind::Dynamodb);
            assert_eq!(config.table_name.as_deref(), Some("table"));
            assert_eq!(config.tenant, "acme");
            assert_eq!(config.issuer, "https://httpapi.execute-api.us-east-1.amazonaws.com");
            let (signer, alias) = match mode {
                "kms" => (SignerKind::Kms, "alias/gatehouse-acme-signing"),
                _ => (SignerKind::Sealed, "alias/gatehouse-acme-seal"),
            };
            assert_eq!(config.signer, signer, "{id}");
            assert_eq!(config.kms_key_id.as_deref(), Some(alias), "{id}");
            // With the $default stage no prefix is stripped; the variable guards a named stage.
            assert_eq!(env.get("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH").map(String::as_str), Some("true"));
            assert_eq!(config.admin_iam, binary == "token-admin", "{id}: only token-admin trusts the IAM identity");
        }
    }
    let stage = &of_type(&t, "AWS::ApiGatewayV2::Stage")[0].1["Properties"];
    assert_eq!(stage["StageName"], "$default", "paths must reach lambda_http without a stage prefix");
}

/// Every `GATEHOUSE_*` setting the configuration reads reaches the functions from the stack,
/// except the local server's own.
#[test]
fn every_setting_is_configurable_through_the_stack() {
    const LOCAL_ONLY: [&str; 2] = ["GATEHOUSE_ADDR", "GATEHOUSE_DATA_DIR"];
    let t = template();
    let config_rs = read(&root().join("shared/src/config.rs"));
    let read_by_config: BTreeSet<&str> = config_rs
        .split('"')
        .filter(|w| w.starts_with("GATEHOUSE_") && w.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .filter(|w| !LOCAL_ONLY.contains(w))
        .collect();
    let optional =
        [("TenantId", "acme"), ("DefaultAudience", "https://api.example.com"), ("AdminToken", &"x".repeat(32))];
    let stack = Stack::new(&t, &optional);
    let set: BTreeSet<String> = functions(&t).keys().flat_map(|id| stack.environment(id).into_keys()).collect();
    for var in read_by_config {
        assert!(set.contains(var), "{var} (shared/src/config.rs) is not set by infra/template.yaml: add a parameter");
    }
}

#[test]
fn issuer_follows_the_custom_domain_and_the_override() {
    let t = template();
    let issuer = |overrides: &[(&str, &str)]| {
        let stack = Stack::new(&t, overrides);
        Config::from_lookup(|k| stack.environment("TokenFunction").get(k).cloned()).unwrap().issuer
    };
    let cert = "arn:aws:acm:us-east-1:123456789012:certificate/abc";
    assert_eq!(
        issuer(&[("TenantId", "a"), ("DomainName", "auth.example.com"), ("CertificateArn", cert)]),
        "https://auth.example.com"
    );
    assert_eq!(
        issuer(&[("TenantId", "a"), ("IssuerUrl", "https://id.example.com/acme")]),
        "https://id.example.com/acme"
    );
}

#[test]
fn each_function_has_its_own_role_and_the_key_policies_name_every_role() {
    let t = template();
    let mut roles = BTreeSet::new();
    for (id, f) in of_type(&t, "AWS::Serverless::Function") {
        let role = referenced(&f["Properties"]["Role"]).unwrap_or_else(|| panic!("{id}: Role"));
        assert_eq!(resources(&t)[role]["Type"], "AWS::IAM::Role", "{id}");
        assert!(roles.insert(role.to_owned()), "{id} shares {role}");
    }
    // Only the token function signs (and unseals); the admin API joins keys on rotation. The
    // verify-only functions read the ring's public keys from the table (keys::KeyUse::Verify).
    let key_users: BTreeSet<String> = ["TokenRole", "TokenAdminRole"].map(String::from).into();
    for key in ["SigningKey", "SealKey"] {
        let statements = resources(&t)[key]["Properties"]["KeyPolicy"]["Statement"].as_array().unwrap();
        let named: BTreeSet<String> = statements
            .iter()
            .flat_map(|s| match &s["Principal"]["AWS"] {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            })
            .filter_map(|p| referenced(&p).map(str::to_owned))
            .filter(|r| roles.contains(r))
            .collect();
        assert_eq!(named, key_users, "{key}'s policy names the roles that use the key");
        let decrypt: Vec<&Value> = statements
            .iter()
            .filter(|s| s["Action"].to_string().contains("kms:Decrypt"))
            .flat_map(|s| match &s["Principal"]["AWS"] {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            })
            .collect();
        assert!(decrypt.iter().all(|p| referenced(p) != Some("TokenAdminRole")), "{key}: the admin API never unseals");
    }
    for role in roles.difference(&key_users) {
        let policies = resources(&t)[role.as_str()]["Properties"]["Policies"].to_string();
        assert!(!policies.contains("kms:"), "{role} verifies without KMS permissions");
        assert!(policies.contains("SIGNING_KEYS"), "{role} reads the key ring");
    }
    // The signing role follows the tenant tag, so the previous key signs on after an alias switch.
    let token = resources(&t)["TokenRole"]["Properties"]["Policies"].to_string();
    assert!(token.contains("aws:ResourceTag/gatehouse:tenant"));
}

#[test]
fn cargo_lambda_watch_routes_like_the_stack() {
    let manifest = read(&root().join("Cargo.toml"));
    let section = manifest
        .split("[workspace.metadata.lambda.watch.router]")
        .nth(1)
        .expect("Cargo.toml has [workspace.metadata.lambda.watch.router]");
    let watch: BTreeSet<(String, String)> = section
        .lines()
        .take_while(|l| !l.trim_start().starts_with('['))
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| {
            let (path, function) = l.split_once('=').unwrap_or_else(|| panic!("router line `{l}`"));
            (path.trim().trim_matches('"').to_owned(), function.trim().trim_matches('"').to_owned())
        })
        .collect();
    let stack: BTreeSet<(String, String)> =
        routes(&template()).into_iter().map(|r| (r.path.replace("{proxy+}", "{*proxy}"), r.function)).collect();
    assert_eq!(watch, stack);
}

/// The functions on the OAuth request path (token, introspect, revoke, authorize; the sign-in
/// pages face the internet) write only the items they own: every DynamoDB write statement of
/// their roles is limited by partition key (`dynamodb:LeadingKeys`), none of them may write a
/// client, the settings or a resource server, and only the token function the signing keys.
/// `round_trips::every_write_is_allowed_by_the_role_of_the_function_that_makes_it` checks the
/// other direction: each write the flows make is allowed.
#[test]
fn request_path_roles_write_only_their_own_items() {
    let t = template();
    for role in ["TokenRole", "IntrospectRole", "RevokeRole", "AuthorizeRole"] {
        let policies = &resources(&t)[role]["Properties"]["Policies"];
        let writes: Vec<&Value> = policies
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap())
            .filter(|s| {
                ["Put", "Update", "Delete", "BatchWrite", "PartiQL", "ConditionCheck"]
                    .iter()
                    .any(|w| s["Action"].to_string().contains(&format!("dynamodb:{w}")))
            })
            .collect();
        assert!(!writes.is_empty(), "{role}");
        for s in writes {
            let keys = &s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
            let keys: Vec<&str> =
                keys.as_array().unwrap_or_else(|| panic!("{role}: {s}")).iter().map(|k| k.as_str().unwrap()).collect();
            assert!(!keys.is_empty() && keys.iter().all(|k| *k != "*"), "{role}: {s}");
            for forbidden in ["CLIENT#", "SETTINGS", "RESOURCE_SERVERS", "GROUP"] {
                assert!(keys.iter().all(|k| !k.starts_with(forbidden)), "{role} may write {forbidden}: {s}");
            }
            if role != "TokenRole" {
                assert!(keys.iter().all(|k| !k.starts_with("SIGNING")), "{role} may write signing keys: {s}");
            }
        }
    }
}

/// The introspect function (which serves `GET /validate`) writes only single-use records, the
/// `jti`s of DPoP proofs (RFC 9449 §11.1): PutItem limited to `REPLAY#` partition keys, which
/// is how the DynamoDB store keys them, and no other write action.
#[test]
fn the_introspect_role_writes_only_single_use_records() {
    let t = template();
    let policies = &resources(&t)["IntrospectRole"]["Properties"]["Policies"];
    let statements: Vec<&Value> = policies
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap())
        .collect();
    let writes: Vec<&&Value> = statements
        .iter()
        .filter(|s| {
            ["Put", "Update", "Delete", "BatchWrite", "PartiQL"]
                .iter()
                .any(|w| s["Action"].to_string().contains(&format!("dynamodb:{w}")))
        })
        .collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0]["Action"], "dynamodb:PutItem");
    assert_eq!(writes[0]["Condition"], json!({"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["REPLAY#*"]}}));
    let replay = read(&root().join("shared/src/store/dynamo/replay.rs"));
    assert!(replay.contains(r#"("pk".into(), s(format!("REPLAY#{key}")))"#), "the store keys replay items REPLAY#");
}
