//! `shared/openapi.json` kept in step with the code: the document is OpenAPI 3.1 whose every
//! `$ref` resolves; every route the endpoint sources register is documented with exactly its
//! methods, and every documented operation is served; the statuses answered are documented and
//! the JSON bodies match the documented schemas (JSON Schema 2020-12); `GET /admin/openapi.json`
//! serves the file.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::common::{self, ADMIN, Resp, TestClient, send};

const DOCUMENT: &str = include_str!("../../shared/openapi.json");

const HTTP_METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn doc() -> Value {
    serde_json::from_str(DOCUMENT).expect("shared/openapi.json is JSON")
}

/// Documented operations: path → upper-case methods.
fn documented(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .map(|(p, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| HTTP_METHODS.contains(&k.as_str()))
                .map(|k| k.to_uppercase())
                .collect();
            (p.clone(), methods)
        })
        .collect()
}

/// Follows a local `$ref` (`#/a/b`), if `v` is one.
fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let target = r.strip_prefix('#').and_then(|p| doc.pointer(p));
            deref(doc, target.unwrap_or_else(|| panic!("unresolved $ref {r}")))
        }
        None => v,
    }
}

fn operation<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    let op = &doc["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not documented");
    op
}

// ---------------------------------------------------------------- (a) the document itself

fn walk<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
    out.push((at.clone(), v));
    match v {
        Value::Object(m) => m.iter().for_each(|(k, c)| walk(c, format!("{at}/{k}"), out)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| walk(c, format!("{at}/{i}"), out)),
        _ => {}
    }
}

#[test]
fn the_document_is_openapi_3_1_and_every_ref_resolves() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let mut nodes = Vec::new();
    walk(&doc, String::new(), &mut nodes);
    let mut refs = 0;
    for (at, v) in &nodes {
        if let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let target = r.strip_prefix('#').and_then(|p| doc.pointer(p));
            assert!(target.is_some(), "{at}: $ref {r} does not resolve");
            refs += 1;
        }
    }
    assert!(refs > 50, "the document shares its schemas by $ref");

    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    let tags: BTreeSet<&str> = doc["tags"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let declared = |op: &Value| -> BTreeSet<String> {
            [&item["parameters"], &op["parameters"]]
                .into_iter()
                .filter_map(Value::as_array)
                .flatten()
                .map(|p| deref(&doc, p))
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect()
        };
        let in_path: BTreeSet<String> =
            path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).map(str::to_owned).collect();
        for method in HTTP_METHODS {
            let Some(op) = item.get(method) else { continue };
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
            assert_eq!(declared(op), in_path, "{method} {path}: path parameters");
            let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{method} {path}: responses"));
            assert!(!responses.is_empty(), "{method} {path}: no responses");
            for status in responses.keys() {
                assert!(status.len() == 3 && status.parse::<u16>().is_ok(), "{method} {path}: status {status}");
            }
            for t in op["tags"].as_array().unwrap_or_else(|| panic!("{method} {path}: tags")) {
                assert!(tags.contains(t.as_str().unwrap()), "{method} {path}: undeclared tag {t}");
            }
            let security = op.get("security").unwrap_or(&doc["security"]);
            for requirement in security.as_array().unwrap() {
                for name in requirement.as_object().unwrap().keys() {
                    assert!(schemes.contains_key(name), "{method} {path}: unknown security scheme {name}");
                }
            }
            let admin = path.starts_with("/admin/");
            assert_eq!(op.get("security").is_none(), admin, "{method} {path}: admin calls need the admin schemes");
        }
    }
    // Every schema is valid JSON Schema 2020-12 and compiles with the document's references.
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        validator(&doc, &json!({"$ref": format!("#/components/schemas/{name}")}));
    }
}

// ---------------------------------------------------------------- (b) routes in the source

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text from `open` (just after an opening parenthesis) to its matching `)`, skipping
/// string literals and line comments.
fn balanced(src: &str, open: usize) -> &str {
    let bytes = src.as_bytes();
    let (mut depth, mut i) = (0usize, open);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' if depth == 0 => return &src[open..i],
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced parentheses after byte {open}")
}

/// The methods of a `MethodRouter` expression such as `get(a).post(b).fallback(..)` or
/// `axum::routing::delete(a)`: each call at the top level, named by its last path segment.
fn chain_methods(chain: &str) -> BTreeSet<String> {
    let bytes = chain.as_bytes();
    let mut methods = BTreeSet::new();
    let (mut depth, mut i) = (0usize, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'(' if depth == 0 => {
                let start = chain[..i]
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .map_or(0, |p| p + 1);
                let name = chain[start..i].rsplit("::").next().unwrap();
                match name {
                    "fallback" => {}
                    "get" | "post" | "put" | "patch" | "delete" | "head" | "options" | "trace" => {
                        methods.insert(name.to_uppercase());
                    }
                    other => panic!("unexpected call `{other}` in the route chain `{chain}`"),
                }
                depth += 1;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    methods
}

/// Every `.route("path", methods)` in `shared/src/endpoints/**/*.rs`: path → methods.
fn source_routes() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("shared/src/endpoints");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut routes = BTreeMap::new();
    for file in files {
        let src = std::fs::read_to_string(&file).unwrap();
        for (at, _) in src.match_indices(".route(") {
            let args = balanced(&src, at + ".route(".len());
            let where_ = format!("{}: `.route({args})`", file.display());
            let args = args.trim_start();
            let rest = args.strip_prefix('"').unwrap_or_else(|| panic!("{where_}: the path is not a string literal"));
            let (path, chain) = rest.split_once('"').unwrap();
            let chain = chain.trim_start().strip_prefix(',').unwrap_or_else(|| panic!("{where_}: no method router"));
            let methods = chain_methods(chain.trim());
            assert!(!methods.is_empty(), "{where_}: no method");
            // The fallback names the allowed methods (the 405's `Allow`): the same set.
            if let Some(at) = chain.find("method_not_allowed(\"") {
                let allow = &chain[at + "method_not_allowed(\"".len()..];
                let allow: BTreeSet<String> =
                    allow[..allow.find('"').unwrap()].split(',').map(|m| m.trim().to_owned()).collect();
                assert_eq!(allow, methods, "{where_}: the Allow of the fallback differs from the routed methods");
            }
            let previous = routes.insert(path.to_owned(), methods);
            assert!(previous.is_none(), "{where_}: the path is routed twice");
        }
    }
    routes
}

#[test]
fn every_route_in_the_source_is_documented_with_exactly_its_methods() {
    let routes = source_routes();
    assert!(routes.len() > 25 && routes.contains_key("/admin/openapi.json"), "{routes:?}");
    let documented = documented(&doc());
    for (path, methods) in &routes {
        assert_eq!(documented.get(path), Some(methods), "{path}: routed with {methods:?}; shared/openapi.json differs");
    }
    for path in documented.keys() {
        assert!(routes.contains_key(path), "{path} is documented but no router serves it");
    }
}

// ---------------------------------------------------------------- request bodies in the source

/// The request types that refuse unknown members (`#[serde(deny_unknown_fields)]`) and the
/// schema documenting each. A new such type must be added here, and so documented.
const BODY_TYPES: &[(&str, &str)] = &[
    ("ClientMetadata", "ClientMetadata"),
    ("RotateRequest", "SecretRotation"),
    ("NewResourceServer", "NewResourceServer"),
    ("ResourceServerPatch", "ResourceServerPatch"),
    ("DescribedScope", "DescribedScope"),
    ("NewGroup", "NewGroup"),
    ("GroupPatch", "GroupPatch"),
    ("NewUser", "NewUser"),
    ("UserPatch", "UserPatch"),
    ("RevokeRequest", "RevokeToken"),
    ("RevokeAllRequest", "RevokeAll"),
    ("Rotate", "KeyRotation"),
    ("Retire", "KeyRetirement"),
];

/// The field names of the struct whose body starts at `open` (just after its `{`).
fn struct_fields(src: &str, open: usize) -> BTreeSet<String> {
    balanced(src, open)
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//") && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("pub(crate) ").or_else(|| l.strip_prefix("pub ")).or(Some(l)))
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim()))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
        .map(str::to_owned)
        .collect()
}

/// The string literals of `const name ... = ...;` in `src`.
fn const_strings(src: &str, name: &str) -> BTreeSet<String> {
    let at = src.find(&format!("const {name}")).unwrap_or_else(|| panic!("no const {name}"));
    let init = &src[at..];
    let init = &init[init.find('=').unwrap()..];
    let init = &init[..init.find(';').unwrap()];
    init.split('"').skip(1).step_by(2).map(str::to_owned).collect()
}

fn schema_properties(doc: &Value, schema: &str) -> BTreeSet<String> {
    let s = &doc["components"]["schemas"][schema];
    assert_eq!(s["additionalProperties"], false, "{schema}: the server refuses unknown members");
    s["properties"].as_object().unwrap_or_else(|| panic!("{schema}: no properties")).keys().cloned().collect()
}

#[test]
fn every_json_body_the_server_parses_is_documented_member_for_member() {
    let doc = doc();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("shared/src");
    let mut files = Vec::new();
    rust_files(&root.join("endpoints"), &mut files);
    let mut seen = BTreeSet::new();
    for file in &files {
        let src = std::fs::read_to_string(file).unwrap();
        for (at, _) in src.match_indices("#[serde(deny_unknown_fields)]") {
            let rest = &src[at..];
            let decl = rest
                .find("struct ")
                .unwrap_or_else(|| panic!("{}: deny_unknown_fields on a non-struct", file.display()));
            let name: String =
                rest[decl + "struct ".len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let (_, schema) = BODY_TYPES.iter().find(|(s, _)| *s == name).unwrap_or_else(|| {
                panic!("{}: `{name}` refuses unknown fields: document it and add it to BODY_TYPES", file.display())
            });
            let open = at + decl + rest[decl..].find('{').unwrap() + 1;
            assert_eq!(
                struct_fields(&src, open),
                schema_properties(&doc, schema),
                "{name} ({}) vs schema {schema}",
                file.display()
            );
            seen.insert(name);
        }
    }
    let listed: BTreeSet<String> = BODY_TYPES.iter().map(|(s, _)| s.to_string()).collect();
    assert_eq!(seen, listed, "BODY_TYPES names a type that no longer exists");

    // The members a client patch may change, and the identity-domain settings.
    let patchable = const_strings(
        &std::fs::read_to_string(root.join("endpoints/token_admin/client_update.rs")).unwrap(),
        "PATCHABLE",
    );
    assert_eq!(patchable, schema_properties(&doc, "ClientMetadataPatch"));
    let settings = const_strings(&std::fs::read_to_string(root.join("settings.rs")).unwrap(), "FIELDS");
    assert_eq!(settings, schema_properties(&doc, "SettingsPatch"));
    assert_eq!(settings, schema_properties(&doc, "SettingsOverrides"));
}

// ---------------------------------------------------------------- response checking

/// A validator for `schema`, whose references resolve in the document (the document is the
/// root resource; its OpenAPI members are not JSON Schema keywords and are ignored).
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = doc.clone();
    root.as_object_mut().unwrap().insert("allOf".into(), json!([schema]));
    jsonschema::draft202012::new(&root).unwrap_or_else(|e| panic!("schema {schema} does not compile: {e}"))
}

fn assert_valid(doc: &Value, schema: &Value, instance: &Value, what: &str) {
    let errors: Vec<String> = validator(doc, schema).iter_errors(instance).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{what}: {instance} does not match the documented schema:\n{}", errors.join("\n"));
}

/// Checks a response against its operation: the status is documented, and the body matches
/// the documented media type and (JSON) schema.
fn check_response(doc: &Value, path: &str, method: &str, r: &Resp) {
    let op = operation(doc, path, method);
    let what = format!("{method} {path} → {}", r.status.as_u16());
    let documented = op["responses"].get(r.status.as_str()).unwrap_or_else(|| {
        panic!(
            "{what}: status not documented (documented: {:?}); body {}",
            op["responses"].as_object().unwrap().keys(),
            r.text
        )
    });
    let documented = deref(doc, documented);
    let content_type = r.header("content-type").unwrap_or("");
    match documented.get("content").and_then(Value::as_object) {
        None => assert!(r.text.is_empty(), "{what}: documented without a body, got {}", r.text),
        Some(content) => {
            let media = content_type.split(';').next().unwrap().trim();
            let entry = content.get(media).unwrap_or_else(|| {
                panic!("{what}: content type `{content_type}` not documented ({:?})", content.keys())
            });
            if media == "application/json" {
                assert_valid(doc, &entry["schema"], &r.body, &what);
            }
        }
    }
    for (name, h) in documented.get("headers").and_then(Value::as_object).into_iter().flatten() {
        let schema = &deref(doc, h)["schema"];
        if let Some(expected) = schema.get("const") {
            assert_eq!(r.header(name), expected.as_str(), "{what}: header {name}");
        }
    }
}

/// Checks a request body the server accepted against the operation's documented request schema.
fn check_request(doc: &Value, path: &str, method: &str, media: &str, body: &Value) {
    let op = operation(doc, path, method);
    let schema = &op["requestBody"]["content"][media]["schema"];
    assert!(schema.is_object(), "{method} {path}: no {media} request body documented");
    assert_valid(doc, schema, body, &format!("{method} {path} request"));
}

/// The app and the document, sending requests and checking them and their answers.
struct Checked {
    doc: Value,
    app: Router,
}

impl Checked {
    /// An admin JSON call: `template` is the documented path, `uri` the concrete one.
    async fn admin(&self, method: &str, template: &str, uri: &str, body: Option<Value>) -> Resp {
        let r = send(&self.app, common::admin(method, uri, body.clone())).await;
        check_response(&self.doc, template, method, &r);
        if let (true, Some(b)) = (r.status.is_success(), &body) {
            check_request(&self.doc, template, method, "application/json", b);
        }
        r
    }

    /// A form POST to an OAuth endpoint.
    async fn form(&self, path: &str, auth: Option<&str>, body: &str) -> Resp {
        let fields: Map<String, Value> = form_urlencoded::parse(body.as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        let r = send(&self.app, common::form(path, auth, body)).await;
        check_response(&self.doc, path, "POST", &r);
        if r.status.is_success() || r.status.is_redirection() {
            check_request(&self.doc, path, "POST", "application/x-www-form-urlencoded", &Value::Object(fields));
        }
        r
    }

    /// A GET without credentials.
    async fn get(&self, template: &str, uri: &str) -> Resp {
        let r = send(&self.app, Request::get(uri).body(Body::empty()).unwrap()).await;
        check_response(&self.doc, template, "GET", &r);
        r
    }
}

// ---------------------------------------------------------------- (c) documented → served

/// A concrete path for a documented one: each `{param}` becomes `sample`.
fn concrete(path: &str) -> String {
    path.split('/').map(|s| if s.starts_with('{') { "sample" } else { s }).collect::<Vec<_>>().join("/")
}

#[tokio::test]
async fn every_documented_operation_is_served_and_answers_as_documented() {
    let (state, _dir) = common::embedded_state();
    let doc = doc();
    let app = common::app(&state);
    for (path, methods) in documented(&doc) {
        for method in methods {
            let op = operation(&doc, &path, &method);
            let uri = concrete(&path);
            let mut b = Request::builder().method(method.as_str()).uri(&uri);
            let admin = path.starts_with("/admin/");
            if admin {
                b = b.header(header::AUTHORIZATION, format!("Bearer {ADMIN}"));
            }
            let content = &op["requestBody"]["content"];
            let req = if content.get("application/json").is_some() {
                b.header(header::CONTENT_TYPE, "application/json").body(Body::from("{}")).unwrap()
            } else if content.get("application/x-www-form-urlencoded").is_some() {
                b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(Body::empty()).unwrap()
            } else {
                b.body(Body::empty()).unwrap()
            };
            let r = send(&app, req).await;
            let what = format!("{method} {uri}");
            assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{what}: {}", r.text);
            let unknown_path = r.status == StatusCode::NOT_FOUND && r.body["error_description"] == "no such endpoint";
            assert!(!unknown_path, "{what}: no router serves this path");
            check_response(&doc, &path, &method, &r);

            // Without a credential, every admin call is refused as documented.
            if admin {
                let req = Request::builder().method(method.as_str()).uri(&uri).body(Body::empty()).unwrap();
                let r = send(&app, req).await;
                assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.text);
                check_response(&doc, &path, &method, &r);
            }
        }
    }
}

// ---------------------------------------------------------------- (d) real responses

#[tokio::test]
async fn real_responses_match_the_documented_schemas() {
    let (state, _dir) = common::embedded_state();
    let c = Checked { doc: doc(), app: common::app(&state) };

    // Resource servers and clients.
    let rs = json!({"identifier": "https://api.example.com", "name": "API",
                    "scopes": [{"name": "read", "description": "Read things"}, "write"]});
    c.admin("POST", "/admin/resource-servers", "/admin/resource-servers", Some(rs.clone())).await;
    let r = c.admin("POST", "/admin/resource-servers", "/admin/resource-servers", Some(rs)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let rs_path = "/admin/resource-servers/https%3A%2F%2Fapi.example.com";
    c.admin("GET", "/admin/resource-servers", "/admin/resource-servers?limit=1", None).await;
    c.admin("GET", "/admin/resource-servers/{identifier}", rs_path, None).await;
    let patch = json!({"name": null, "scopes": ["read", "write", {"name": "admin"}]});
    let r = c.admin("PATCH", "/admin/resource-servers/{identifier}", rs_path, Some(patch)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.header("etag").is_some_and(|t| t.len() == 24), "{:?}", r.headers);
    let mut stale = common::admin("PATCH", rs_path, Some(json!({"name": "x"})));
    stale.headers_mut().insert(header::IF_MATCH, axum::http::HeaderValue::from_static("\"0\""));
    let r = send(&c.app, stale).await;
    check_response(&c.doc, "/admin/resource-servers/{identifier}", "PATCH", &r);
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{}", r.text);

    let metadata = json!({"client_name": "billing", "grant_types": ["client_credentials", "password", "refresh_token"],
                          "scope": "read write", "access_token_lifetime": 600});
    let r = c.admin("POST", "/admin/clients", "/admin/clients", Some(metadata)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let cc = TestClient {
        id: r.body["client_id"].as_str().unwrap().to_owned(),
        secret: r.body["client_secret"].as_str().map(str::to_owned),
    };
    let public = json!({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"],
                        "redirect_uris": ["https://app.example.com/cb"], "scope": "read", "pre_approved_scopes": "read"});
    let r = c.admin("POST", "/admin/clients", "/admin/clients", Some(public)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(r.body.get("client_secret").is_none());
    let app_id = r.body["client_id"].as_str().unwrap().to_owned();
    let r = c
        .admin(
            "POST",
            "/admin/clients",
            "/admin/clients",
            Some(json!({"grant_types": ["client_credentials"], "colour": 1})),
        )
        .await;
    assert_eq!(r.body["error"], "invalid_client_metadata");
    c.admin("GET", "/admin/clients", "/admin/clients?limit=1", None).await;
    let client_path = format!("/admin/clients/{}", cc.id);
    c.admin("GET", "/admin/clients/{client_id}", &client_path, None).await;
    let r = c.admin("GET", "/admin/clients/{client_id}", "/admin/clients/nobody", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = c.admin("PATCH", "/admin/clients/{client_id}", &client_path, Some(json!({"client_name": null}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let secret_path = format!("{client_path}/secret");
    let r =
        c.admin("POST", "/admin/clients/{client_id}/secret", &secret_path, Some(json!({"overlap_seconds": 60}))).await;
    assert!(r.body["previous_secret_expires_at"].is_i64(), "{}", r.text);
    let cc = TestClient { secret: r.body["client_secret"].as_str().map(str::to_owned), ..cc };
    let r =
        c.admin("POST", "/admin/clients/{client_id}/secret", &format!("/admin/clients/{app_id}/secret"), None).await;
    assert_eq!(r.body["error"], "invalid_client_metadata");

    // Users and groups.
    let user = json!({"username": "alice", "password": "correct horse battery",
                      "attributes": {"email": "alice@example.com"}, "enabled": true});
    let r = c.admin("POST", "/admin/users", "/admin/users", Some(user)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    c.admin("GET", "/admin/users", "/admin/users", None).await;
    c.admin("GET", "/admin/users/{username}", "/admin/users/alice", None).await;
    c.admin("GET", "/admin/users/{username}/consents", "/admin/users/alice/consents", None).await;
    let r =
        c.admin("POST", "/admin/groups", "/admin/groups", Some(json!({"name": "staff", "description": "Staff"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = c.admin("PATCH", "/admin/users/{username}", "/admin/users/alice", Some(json!({"groups": ["staff"]}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    c.admin("GET", "/admin/users", "/admin/users", None).await;
    c.admin("GET", "/admin/groups", "/admin/groups", None).await;
    c.admin("PATCH", "/admin/groups/{name}", "/admin/groups/staff", Some(json!({"description": null}))).await;
    let r = c.admin("PUT", "/admin/groups/{name}/members/{username}", "/admin/groups/staff/members/alice", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = c.admin("GET", "/admin/groups/{name}/members", "/admin/groups/staff/members?limit=10", None).await;
    assert_eq!(r.body["members"], json!(["alice"]));
    let r = c.admin("GET", "/admin/users/{username}/groups", "/admin/users/alice/groups", None).await;
    assert_eq!(r.body["groups"], json!(["staff"]));

    // Tokens: the OAuth endpoints, then the admin listings.
    let auth = cc.basic();
    let r = c
        .form("/token", Some(&auth), "grant_type=client_credentials&scope=read&resource=https%3A%2F%2Fapi.example.com")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let at = r.body["access_token"].as_str().unwrap().to_owned();
    let r = c.form("/token", Some(&auth), "grant_type=password&username=alice&password=correct+horse+battery").await;
    assert!(r.body["refresh_token"].is_string(), "{}", r.text);
    let rt = r.body["refresh_token"].as_str().unwrap().to_owned();
    let r = c.form("/token", Some(&auth), "grant_type=password&username=alice&password=wrong-password").await;
    assert_eq!(r.body["error"], "invalid_grant", "{}", r.text);
    let r = c.form("/token", None, &format!("grant_type=client_credentials&client_id={}", cc.id)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "body credentials: 400 invalid_client");
    let r = c.form("/token", Some(&common::basic(&cc.id, "wrong")), "grant_type=client_credentials").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = c.form("/introspect", Some(&auth), &format!("token={at}")).await;
    assert_eq!(r.body["active"], true);
    let r = c.form("/introspect", Some(&auth), &format!("token={rt}")).await;
    assert_eq!(r.body["active"], true);
    let r = c.form("/introspect", Some(&auth), "token=nonsense").await;
    assert_eq!(r.body, json!({"active": false}));
    let r =
        c.form("/introspect", Some(&auth), &format!("token={at}&expected_end_user=alice&include_reason=true")).await;
    assert_eq!(r.body, json!({"active": false, "reason": "user_mismatch"}));
    // GET /validate with the bearer token: 200, 401 (none, not valid), 403 (a scope missing), 400.
    for (token, query, status) in [
        (Some(at.as_str()), "?required_scope=read", StatusCode::OK),
        (None, "", StatusCode::UNAUTHORIZED),
        (Some("nonsense"), "", StatusCode::UNAUTHORIZED),
        (Some(at.as_str()), "?required_scope=write", StatusCode::FORBIDDEN),
        (Some(at.as_str()), "?required_scope=a%20%20b", StatusCode::BAD_REQUEST),
    ] {
        let mut b = Request::get(format!("/validate{query}"));
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let r = send(&c.app, b.body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, status, "{query}: {}", r.text);
        check_response(&c.doc, "/validate", "GET", &r);
    }

    let r =
        c.admin("GET", "/admin/tokens", &format!("/admin/tokens?type=access&client_id={}&limit=1", cc.id), None).await;
    let next = r.body["next"].as_str().expect("a full page has a cursor").to_owned();
    let uri = format!("/admin/tokens?type=access&client_id={}&cursor={next}", cc.id);
    c.admin("GET", "/admin/tokens", &uri, None).await;
    let r = c.admin("GET", "/admin/tokens", "/admin/tokens?type=refresh&end_user=alice", None).await;
    assert_eq!(r.body["tokens"][0]["end_user"], "alice", "{}", r.text);
    let r = c
        .admin("GET", "/admin/tokens/count", &format!("/admin/tokens/count?type=access&client_id={}", cc.id), None)
        .await;
    assert_eq!(r.body["count"], 2);
    let r = c.admin("GET", "/admin/tokens", "/admin/tokens?type=bearer&client_id=x", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // A token for Gatehouse without the admin scope is refused with 403; one for another
    // audience with 401.
    let r = c.form("/token", Some(&auth), "grant_type=client_credentials&scope=read").await;
    let own = r.body["access_token"].as_str().unwrap().to_owned();
    for (token, status) in [(&own, StatusCode::FORBIDDEN), (&at, StatusCode::UNAUTHORIZED)] {
        let req =
            Request::get("/admin/clients").header(header::AUTHORIZATION, format!("Bearer {token}")).body(Body::empty());
        let r = send(&c.app, req.unwrap()).await;
        assert_eq!(r.status, status, "{}", r.text);
        check_response(&c.doc, "/admin/clients", "GET", &r);
    }
    let r = c.admin("POST", "/admin/tokens/revoke", "/admin/tokens/revoke", Some(json!({"token": at}))).await;
    assert_eq!(r.body, json!({"revoked": true}));
    let r = c.form("/revoke", Some(&auth), &format!("token={rt}&token_type_hint=refresh_token")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let body = json!({"client_id": cc.id, "end_user": "alice"});
    let r = c.admin("POST", "/admin/tokens/revoke-all", "/admin/tokens/revoke-all", Some(body)).await;
    assert!(r.body["revoked"].is_u64(), "{}", r.text);

    // Settings, keys, consents, deletions.
    c.admin("GET", "/admin/settings", "/admin/settings", None).await;
    let r = c
        .admin("PATCH", "/admin/settings", "/admin/settings", Some(json!({"consent_enabled": false, "code_ttl": 30})))
        .await;
    assert_eq!(r.body["overrides"]["code_ttl"], 30, "{}", r.text);
    c.admin("GET", "/admin/keys", "/admin/keys", None).await;
    let r = c.admin("POST", "/admin/keys/rotate", "/admin/keys/rotate", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "the local signer keeps one key");
    let r =
        c.admin("DELETE", "/admin/users/{username}/consents/{client_id}", "/admin/users/alice/consents/x", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r =
        c.admin("DELETE", "/admin/groups/{name}/members/{username}", "/admin/groups/staff/members/alice", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    c.admin("DELETE", "/admin/groups/{name}", "/admin/groups/staff", None).await;
    c.admin("DELETE", "/admin/users/{username}", "/admin/users/alice", None).await;
    c.admin("DELETE", "/admin/resource-servers/{identifier}", rs_path, None).await;
    let r = c.admin("DELETE", "/admin/clients/{client_id}", &client_path, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    // The browser endpoints and the metadata documents.
    let q = "response_type=code&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&state=xyz\
             &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";
    let r = c.get("/authorize", &format!("/authorize?client_id={app_id}&{q}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.header("set-cookie").is_some());
    let r = c.get("/authorize", &format!("/authorize?client_id={app_id}&{}", q.replace("=code", "=token"))).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert!(r.header("location").unwrap().contains("error=unsupported_response_type"));
    let r = c.form("/authorize/login", None, "csrf=x&username=alice&password=y").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "no pending request");
    c.get("/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server").await;
    let r = c.get("/.well-known/jwks.json", "/.well-known/jwks.json").await;
    assert!(!r.body["keys"].as_array().unwrap().is_empty());
}

// ---------------------------------------------------------------- (e) the served document

#[tokio::test]
async fn the_served_document_is_the_file() {
    let (state, _dir) = common::embedded_state();
    let app = common::app(&state);
    let r = send(&app, common::admin("GET", "/admin/openapi.json", None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.text, DOCUMENT);
    assert_eq!(r.body, doc());
    // Like every admin call, it needs the admin credential.
    let r = send(&app, Request::get("/admin/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // The token-admin function serves it on its own too.
    let r = send(
        &gatehouse::endpoints::token_admin::router(state.clone()),
        common::admin("GET", "/admin/openapi.json", None),
    )
    .await;
    assert_eq!(r.text, DOCUMENT);
}

/// DPoP (RFC 9449): bound tokens, refusals and nonces at `/token`, `cnf` at `/introspect`, the
/// DPoP scheme at `GET /validate`, the client and settings members, as documented.
#[tokio::test]
async fn dpop_responses_match_the_documented_schemas() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::{Digest, Sha256};

    use crate::dpop::{DpopKey, TOKEN_URL, token_request};
    let (state, _dir) = common::embedded_state();
    let c = Checked { doc: doc(), app: common::app(&state) };
    let metadata = json!({"grant_types": ["client_credentials"], "scope": "read", "dpop_bound_access_tokens": true});
    let r = c.admin("POST", "/admin/clients", "/admin/clients", Some(metadata)).await;
    let cc = TestClient {
        id: r.body["client_id"].as_str().unwrap().to_owned(),
        secret: r.body["client_secret"].as_str().map(str::to_owned),
    };
    let path = format!("/admin/clients/{}", cc.id);
    c.admin("PATCH", "/admin/clients/{client_id}", &path, Some(json!({"dpop_bound_access_tokens": true}))).await;
    let key = DpopKey::new();
    let token = |proofs: &[&str]| token_request(Some(&cc.basic()), "grant_type=client_credentials", proofs);
    let checked = |r: Resp| {
        check_response(&c.doc, "/token", "POST", &r);
        r
    };
    let r = checked(send(&c.app, token(&[&key.token_proof(&state)])).await);
    assert_eq!(r.body["token_type"], "DPoP", "{}", r.text);
    let at = r.body["access_token"].as_str().unwrap().to_owned();
    let r = checked(send(&c.app, token(&["not-a-proof"])).await);
    assert_eq!(r.body["error"], "invalid_dpop_proof");
    let r = checked(send(&c.app, token(&[])).await);
    assert_eq!(r.body["error"], "invalid_request");
    let r = c.form("/introspect", Some(&cc.basic()), &format!("token={at}")).await;
    assert_eq!(r.body["cnf"]["jkt"], key.jkt);

    let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(at.as_bytes()));
    let rs_url = "https://api.example.com/photos";
    let query = format!("?htm=GET&htu={}", form_urlencoded::byte_serialize(rs_url.as_bytes()).collect::<String>());
    let validate = |scheme: &str, proof: Option<String>, query: &str| {
        let mut b = Request::get(format!("/validate{query}")).header(header::AUTHORIZATION, format!("{scheme} {at}"));
        if let Some(p) = proof {
            b = b.header("DPoP", p);
        }
        b.body(Body::empty()).unwrap()
    };
    let now = state.clock.now();
    for (scheme, proof, query, status) in [
        ("DPoP", Some(key.proof_at("GET", rs_url, now, json!({"ath": ath}))), query.as_str(), StatusCode::OK),
        ("Bearer", None, "", StatusCode::UNAUTHORIZED),
        ("DPoP", None, query.as_str(), StatusCode::UNAUTHORIZED),
        ("DPoP", Some(key.proof_at("GET", rs_url, now, json!({"ath": ath}))), "", StatusCode::BAD_REQUEST),
    ] {
        let r = send(&c.app, validate(scheme, proof, query)).await;
        assert_eq!(r.status, status, "{scheme} {query}: {}", r.text);
        check_response(&c.doc, "/validate", "GET", &r);
    }

    let r = c.admin("PATCH", "/admin/settings", "/admin/settings", Some(json!({"dpop_nonce_required": true}))).await;
    assert_eq!(r.body["settings"]["dpop_nonce_required"], true);
    let r = checked(send(&c.app, token(&[&key.token_proof(&state)])).await);
    assert_eq!(r.body["error"], "use_dpop_nonce");
    let nonce = r.header("dpop-nonce").unwrap().to_owned();
    let p = key.proof_at("POST", TOKEN_URL, now, json!({"nonce": nonce}));
    let r = checked(send(&c.app, token(&[&p])).await);
    assert_eq!((r.status, r.header("dpop-nonce")), (StatusCode::OK, Some(nonce.as_str())));
    let r = send(&c.app, validate("DPoP", Some(key.proof_at("GET", rs_url, now, json!({"ath": ath}))), &query)).await;
    assert_eq!(r.body["error"], "use_dpop_nonce");
    check_response(&c.doc, "/validate", "GET", &r);
    c.admin("GET", "/admin/clients/{client_id}", &path, None).await;
}
