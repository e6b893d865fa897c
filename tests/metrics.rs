//! Metrics, parsed the way their consumers read them, after known
//! sequences of decisions: the Lambda front's CloudWatch Embedded Metric
//! Format (validated against the EMF specification, counts checked; also
//! through the real binary on a Runtime API double) and `certbound
//! serve`'s Prometheus text on its own listener.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use certbound::fronts::lambda::handle_event;
use certbound::telemetry::emf::EmfRecorder;
use certbound::StandardAuthorizer;
use common::signing::*;
use common::*;
use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Checks one document against the EMF specification (root node, metadata
/// object, MetricDirective, DimensionSet, MetricDefinition, target members)
/// and certbound's own names; returns the namespace.
fn validate_emf(doc: &Value) -> String {
    let root = doc.as_object().expect("EMF root is an object");
    let aws = root["_aws"].as_object().expect("_aws is an object");
    assert!(aws["Timestamp"].is_u64(), "Timestamp: integer ms: {doc}");
    let ts = aws["Timestamp"].as_u64().unwrap();
    assert!(
        ts > 1_600_000_000_000,
        "Timestamp in ms since the epoch: {ts}"
    );
    let directives = aws["CloudWatchMetrics"].as_array().expect("array");
    assert!(!directives.is_empty());
    let mut namespace = String::new();
    for d in directives {
        let d = d.as_object().unwrap();
        let keys: Vec<&str> = d.keys().map(String::as_str).collect();
        assert_eq!(
            keys.len(),
            3,
            "only Namespace, Dimensions, Metrics: {keys:?}"
        );
        let ns = d["Namespace"].as_str().expect("Namespace");
        assert!((1..=255).contains(&ns.len()));
        namespace = ns.to_owned();
        let sets = d["Dimensions"].as_array().expect("Dimensions");
        assert!(!sets.is_empty(), "at least one DimensionSet");
        for set in sets {
            let set = set.as_array().expect("DimensionSet is an array");
            assert!(set.len() <= 9);
            for dim in set {
                let name = dim.as_str().expect("dimension key is a string");
                assert!(
                    root.get(name).is_some_and(Value::is_string),
                    "dimension {name} is a top-level string member: {doc}"
                );
                assert!(["Verdict", "Reason", "Kind"].contains(&name), "{name}");
            }
        }
        let metrics = d["Metrics"].as_array().expect("Metrics");
        assert!(!metrics.is_empty() && metrics.len() <= 100);
        for m in metrics {
            let name = m["Name"].as_str().expect("Name");
            assert!(
                [
                    "Decisions",
                    "AsRequests",
                    "AsFailures",
                    "AsLatency",
                    "CacheHits",
                    "CacheMisses",
                    "CacheBypasses",
                    "JwksFetches"
                ]
                .contains(&name),
                "{name}"
            );
            let unit = m["Unit"].as_str().expect("Unit");
            assert!(UNITS.contains(&unit), "{unit}");
            let expected_unit = if name == "AsLatency" {
                "Milliseconds"
            } else {
                "Count"
            };
            assert_eq!(unit, expected_unit, "{name}");
            match &root[name] {
                Value::Number(_) => {}
                Value::Array(values) => {
                    assert!(!values.is_empty() && values.len() <= 100);
                    assert!(values.iter().all(Value::is_number));
                }
                other => panic!("metric target {name} is {other}"),
            }
        }
    }
    namespace
}

/// Sums of the metrics of many documents: `Decisions` by
/// `Verdict/Reason`, `AsFailures` by `Kind`, the others by name;
/// `AsLatency` by number of values.
fn totals(docs: &[Value]) -> BTreeMap<String, f64> {
    let mut t = BTreeMap::new();
    for doc in docs {
        for d in doc["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            for m in d["Metrics"].as_array().unwrap() {
                let name = m["Name"].as_str().unwrap();
                let key = match name {
                    "Decisions" => format!(
                        "Decisions/{}/{}",
                        doc["Verdict"].as_str().unwrap(),
                        doc["Reason"].as_str().unwrap()
                    ),
                    "AsFailures" => format!("AsFailures/{}", doc["Kind"].as_str().unwrap()),
                    _ => name.to_owned(),
                };
                let value = match &doc[name] {
                    Value::Array(a) => a.len() as f64,
                    v => v.as_f64().unwrap(),
                };
                *t.entry(key).or_insert(0.0) += value;
            }
        }
    }
    t
}

/// One invocation as the Lambda front runs it: the answer, then the flush.
async fn invoke(
    recorder: &EmfRecorder,
    authorizer: &StandardAuthorizer,
    event: Value,
) -> Vec<Value> {
    let _ = handle_event(
        authorizer,
        certbound::config::HttpApiResponse::Policy,
        event,
        None,
    )
    .await;
    let docs = recorder.take_documents(1_764_000_000_000);
    assert!(
        docs.len() <= 1,
        "at most one EMF document per invocation: {docs:?}"
    );
    docs
}

#[tokio::test(flavor = "current_thread")]
async fn lambda_emf_after_a_known_sequence() {
    let recorder = EmfRecorder::new("certbound-test");
    let _guard = metrics::set_default_local_recorder(&recorder);
    let cert = gen_cert("ec-p256", "client-a");
    let bearer = format!("Bearer {TOKEN}");
    let ok = bound_double("OK", &cert).await;
    let (_, allow) = authorizer(&authlete_env(&ok.uri(), true, &[]));
    let failing = MockServer::start().await;
    mount_authlete(&failing, ResponseTemplate::new(503)).await;
    let (_, as_error) = authorizer(&authlete_env(&failing.uri(), true, &[]));
    let (_, unreachable) = authorizer(&authlete_env("http://127.0.0.1:9", true, &[]));
    let (_, cached) = authorizer(&authlete_env(
        &ok.uri(),
        true,
        &[("CERTBOUND_CACHE_TTL_S", "60")],
    ));

    let mut docs = Vec::new();
    // 3 Allow, one AS call each.
    for _ in 0..3 {
        docs.extend(
            invoke(
                &recorder,
                &allow,
                rest_event(Some(&bearer), Some(&cert.pem)),
            )
            .await,
        );
    }
    // 2 Deny without a certificate, 1 without a token: answered locally.
    for _ in 0..2 {
        docs.extend(invoke(&recorder, &allow, rest_event(Some(&bearer), None)).await);
    }
    docs.extend(invoke(&recorder, &allow, rest_event(None, Some(&cert.pem))).await);
    // AS failures: a 503 (as_error) and a refused connection (as_unavailable).
    docs.extend(
        invoke(
            &recorder,
            &as_error,
            rest_event(Some(&bearer), Some(&cert.pem)),
        )
        .await,
    );
    docs.extend(
        invoke(
            &recorder,
            &unreachable,
            rest_event(Some(&bearer), Some(&cert.pem)),
        )
        .await,
    );
    // The cache: a miss (AS called), then a hit (not called).
    for _ in 0..2 {
        docs.extend(
            invoke(
                &recorder,
                &cached,
                rest_event(Some(&bearer), Some(&cert.pem)),
            )
            .await,
        );
    }
    // An event that is not understood.
    docs.extend(invoke(&recorder, &allow, json!({"type": "REQUEST"})).await);

    assert_eq!(
        docs.len(),
        11,
        "one document for each of the 11 invocations"
    );
    for doc in &docs {
        assert_eq!(validate_emf(doc), "certbound-test");
        assert_eq!(doc["Backend"], "authlete");
        assert_eq!(doc["CertboundVersion"], env!("CARGO_PKG_VERSION"));
        for secret in [TOKEN, API_SECRET, SERVICE_TOKEN, "client-a"] {
            assert!(!doc.to_string().contains(secret), "{doc}");
        }
    }
    let t = totals(&docs);
    let expected: BTreeMap<String, f64> = [
        ("Decisions/Allow/none", 5.0),
        ("Decisions/Deny/cert_missing", 2.0),
        ("Decisions/Deny/token_missing", 1.0),
        ("Decisions/Deny/as_error", 1.0),
        ("Decisions/Deny/as_unavailable", 1.0),
        ("Decisions/InternalServerError/event_invalid", 1.0),
        ("AsRequests", 6.0),
        ("AsLatency", 6.0),
        ("AsFailures/as_error", 1.0),
        ("AsFailures/as_unavailable", 1.0),
        ("CacheMisses", 1.0),
        ("CacheHits", 1.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(t, expected);
    // Dimension sets as the dashboard reads them.
    let allow_doc = docs.iter().find(|d| d["Verdict"] == "Allow").unwrap();
    let decisions = &allow_doc["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(
        decisions["Dimensions"],
        json!([["Verdict"], ["Verdict", "Reason"]])
    );
    let failure_doc = docs.iter().find(|d| d["Kind"] == "as_error").unwrap();
    let failures = failure_doc["_aws"]["CloudWatchMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["Metrics"][0]["Name"] == "AsFailures")
        .unwrap();
    assert_eq!(failures["Dimensions"], json!([[], ["Kind"]]));
    // Latency values are milliseconds of real calls (a loopback double).
    for doc in &docs {
        for ms in doc["AsLatency"].as_array().into_iter().flatten() {
            let ms = ms.as_f64().unwrap();
            assert!(ms > 0.0 && ms < 3_000.0, "{ms}");
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn lambda_emf_counts_jwks_fetches() {
    let recorder = EmfRecorder::new("certbound");
    let _guard = metrics::set_default_local_recorder(&recorder);
    let cert = gen_cert("ec-p256", "client-a");
    let key = signing_key("ec", "ec-1");
    let server = MockServer::start().await;
    let uri = server.uri();
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": [key.jwk]})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"issuer": uri, "jwks_uri": format!("{uri}/jwks")})),
        )
        .mount(&server)
        .await;
    let env: HashMap<String, String> = [
        ("CERTBOUND_BACKEND", "jwt"),
        ("CERTBOUND_JWT_ISSUER", uri.as_str()),
        ("CERTBOUND_JWT_AUDIENCE", "https://api.bank.example"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (_, jwt) = authorizer(&env);
    let claims = json!({"iss": uri, "sub": "alice", "client_id": "tpp-app",
        "aud": "https://api.bank.example", "iat": now(), "exp": now() + 300, "jti": "j",
        "cnf": {"x5t#S256": cert.openssl_thumbprint}});
    let token = sign(&key, Some("at+jwt"), &claims);
    let event = rest_event(Some(&format!("Bearer {token}")), Some(&cert.pem));
    let mut docs = Vec::new();
    for _ in 0..3 {
        docs.extend(invoke(&recorder, &jwt, event.clone()).await);
    }
    docs.iter().for_each(|d| {
        validate_emf(d);
    });
    let t = totals(&docs);
    assert_eq!(t["Decisions/Allow/none"], 3.0);
    assert_eq!(t["JwksFetches"], 1.0, "keys fetched once, then cached");
    assert_eq!(
        t["AsRequests"], 1.0,
        "the JWT backend's AS request is the fetch"
    );
    assert!(
        !t.keys().any(|k| k.starts_with("AsFailures")),
        "no failure: {t:?}"
    );
}

/// Kills the child when the test ends, whatever happens.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Lambda Runtime API double that hands out `invocations` events, then
/// holds the next poll; counts the answers.
async fn runtime_api(event: &Value, invocations: u64) -> MockServer {
    let server = MockServer::start().await;
    let deadline = (std::time::SystemTime::now() + Duration::from_secs(600))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    Mock::given(method("GET"))
        .and(path("/2018-06-01/runtime/invocation/next"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(event)
                .insert_header("lambda-runtime-aws-request-id", "req-1")
                .insert_header("lambda-runtime-deadline-ms", deadline.as_str())
                .insert_header(
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:eu-west-2:123456789012:function:certbound",
                ),
        )
        .up_to_n_times(invocations)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/2018-06-01/runtime/invocation/next"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(
            "^/2018-06-01/runtime/invocation/.*/(response|error)$",
        ))
        .respond_with(ResponseTemplate::new(202))
        .mount(&server)
        .await;
    server
}

async fn answers(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r: &&Request| r.method.as_str() == "POST")
        .count()
}

/// Runs the binary as a Lambda function for `invocations` events; returns
/// its stdout lines.
async fn lambda_stdout(
    env: &HashMap<String, String>,
    event: &Value,
    invocations: u64,
) -> Vec<String> {
    let api = runtime_api(event, invocations).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_certbound"));
    child
        .env_clear()
        .envs(env)
        .env("AWS_LAMBDA_RUNTIME_API", api.address().to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "certbound")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut running = Running(child.spawn().unwrap());
    let started = Instant::now();
    while answers(&api).await < invocations as usize {
        assert!(started.elapsed() < Duration::from_secs(20), "no answers");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the last invocation's stdout line (written before its answer) land.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = running.0.kill();
    let output = running.0.stdout.take().unwrap();
    let _ = running.0.wait();
    std::io::read_to_string(output)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn lambda_binary_prints_one_emf_line_per_invocation_and_none_when_off() {
    let cert = gen_cert("ec-p256", "client-a");
    let double = bound_double("OK", &cert).await;
    let event = rest_event(Some(&format!("Bearer {TOKEN}")), Some(&cert.pem));
    let env = authlete_env(
        &double.uri(),
        true,
        &[("CERTBOUND_METRICS_NAMESPACE", "bank-authz")],
    );
    let lines = lambda_stdout(&env, &event, 3).await;
    assert_eq!(lines.len(), 3, "one line per invocation: {lines:?}");
    let docs: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("each stdout line is one JSON document"))
        .collect();
    for doc in &docs {
        assert_eq!(validate_emf(doc), "bank-authz");
        assert!(!doc.to_string().contains(TOKEN));
    }
    let t = totals(&docs);
    assert_eq!(t["Decisions/Allow/none"], 3.0);
    assert_eq!(t["AsRequests"], 3.0);
    assert_eq!(t["AsLatency"], 3.0);

    let mut off = env.clone();
    off.insert("CERTBOUND_METRICS".into(), "off".into());
    let lines = lambda_stdout(&off, &event, 2).await;
    assert!(lines.is_empty(), "CERTBOUND_METRICS=off: no EMF: {lines:?}");
}

/// `name{labels}` → value, from the Prometheus text format (comments and
/// `# TYPE` lines checked for the names that must be there).
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let value: f64 = value.parse().expect("sample value");
        let series = match series.split_once('{') {
            None => series.to_owned(),
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').expect("closing brace");
                let mut pairs: Vec<(String, String)> = labels
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once("=\"").expect("label=\"value\"");
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                pairs.sort();
                let labels: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{name}{{{}}}", labels.join(","))
            }
        };
        samples.insert(series, value);
    }
    samples
}

async fn wait_healthy(client: &reqwest::Client, port: u16) {
    let started = Instant::now();
    loop {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            if r.status() == 200 {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "serve did not start"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn serve(env: &HashMap<String, String>, port: u16) -> Running {
    Running(
        Command::new(env!("CARGO_BIN_EXE_certbound"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env_clear()
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[tokio::test]
async fn serve_exports_prometheus_text_on_its_own_listener() {
    let cert = gen_cert("ec-p256", "client-a");
    let thumbprint = cert.openssl_thumbprint.clone();
    let as_server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/introspect"))
        .respond_with(move |r: &Request| {
            let body = String::from_utf8_lossy(&r.body);
            if body.contains("token=tok-ok") {
                ResponseTemplate::new(200).set_body_json(json!({"active": true,
                    "client_id": "tpp-app", "sub": "alice", "scope": "accounts",
                    "exp": now() + 300, "cnf": {"x5t#S256": thumbprint}}))
            } else if body.contains("token=tok-broken") {
                ResponseTemplate::new(500)
            } else {
                ResponseTemplate::new(200).set_body_json(json!({"active": false}))
            }
        })
        .mount(&as_server)
        .await;
    let (port, metrics_port) = (free_port(), free_port());
    let mut env: HashMap<String, String> = [
        ("CERTBOUND_BACKEND", "rfc7662"),
        ("CERTBOUND_INTROSPECTION_CLIENT_ID", "certbound-rs"),
        ("CERTBOUND_INTROSPECTION_CLIENT_SECRET", "rs-secret-value"),
        ("CERTBOUND_WORKER_THREADS", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.insert(
        "CERTBOUND_INTROSPECTION_ENDPOINT".into(),
        format!("{}/introspect", as_server.uri()),
    );
    env.insert(
        "CERTBOUND_METRICS_LISTEN".into(),
        format!("127.0.0.1:{metrics_port}"),
    );
    let _serve = serve(&env, port);
    let client = reqwest::Client::new();
    wait_healthy(&client, port).await;

    let escaped =
        percent_encoding::utf8_percent_encode(&cert.pem, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let ask = |token: Option<&str>, uri: Option<&str>| {
        let mut r = client
            .get(format!("http://127.0.0.1:{port}/authorize"))
            .header("X-Original-Method", "GET")
            .header("X-Ssl-Cert", escaped.as_str());
        if let Some(uri) = uri {
            r = r.header("X-Original-URI", uri);
        }
        if let Some(t) = token {
            r = r.header("Authorization", format!("Bearer {t}"));
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    for _ in 0..3 {
        assert_eq!(ask(Some("tok-ok"), Some("/accounts")).await, 200);
    }
    for _ in 0..2 {
        assert_eq!(ask(Some("tok-revoked"), Some("/accounts")).await, 401);
    }
    assert_eq!(ask(Some("tok-broken"), Some("/accounts")).await, 500);
    assert_eq!(ask(None, Some("/accounts")).await, 401);
    assert_eq!(ask(Some("tok-ok"), None).await, 500, "no X-Original-URI");
    // `/metrics` on the protected listener is an authorization request like
    // any other (here: not understood), never the metrics.
    let protected = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(protected.status(), 500);
    assert!(!protected.text().await.unwrap().contains("certbound_"));

    let not_metrics = client
        .get(format!("http://127.0.0.1:{metrics_port}/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(not_metrics.status(), 404);
    let scrape = client
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
    assert!(scrape.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = scrape.text().await.unwrap();
    assert!(
        text.contains("# HELP certbound_decisions_total Authorization decisions"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE certbound_decisions_total counter"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE certbound_as_request_duration_seconds histogram"),
        "{text}"
    );
    for secret in ["tok-ok", "rs-secret-value", "tpp-app", "alice", "/accounts"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let s = parse_prometheus(&text);
    let v = |series: &str| {
        s.get(series)
            .copied()
            .unwrap_or_else(|| panic!("{series} missing in\n{text}"))
    };
    assert_eq!(
        v("certbound_decisions_total{reason=none,verdict=Allow}"),
        3.0
    );
    assert_eq!(
        v("certbound_decisions_total{reason=token_inactive,verdict=Deny}"),
        2.0
    );
    assert_eq!(
        v("certbound_decisions_total{reason=as_error,verdict=Deny}"),
        1.0
    );
    assert_eq!(
        v("certbound_decisions_total{reason=token_missing,verdict=Deny}"),
        1.0
    );
    assert_eq!(
        v("certbound_decisions_total{reason=event_invalid,verdict=InternalServerError}"),
        2.0
    );
    assert_eq!(v("certbound_as_requests_total{backend=rfc7662}"), 6.0);
    assert_eq!(
        v("certbound_as_failures_total{backend=rfc7662,kind=as_error}"),
        1.0
    );
    assert_eq!(
        v("certbound_as_request_duration_seconds_count{backend=rfc7662}"),
        6.0
    );
    assert_eq!(
        v("certbound_as_request_duration_seconds_bucket{backend=rfc7662,le=+Inf}"),
        6.0
    );
    let sum = v("certbound_as_request_duration_seconds_sum{backend=rfc7662}");
    assert!(sum > 0.0 && sum < 18.0, "{sum}");
    assert!(
        s.contains_key("certbound_as_request_duration_seconds_bucket{backend=rfc7662,le=0.001}")
    );
    assert!(s.contains_key("certbound_as_request_duration_seconds_bucket{backend=rfc7662,le=5}"));
    assert_eq!(
        v(&format!(
            "certbound_build_info{{backend=rfc7662,version={}}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );

    // CERTBOUND_METRICS=off: no metrics listener at all.
    let (port2, metrics_port2) = (free_port(), free_port());
    env.insert("CERTBOUND_METRICS".into(), "off".into());
    env.insert(
        "CERTBOUND_METRICS_LISTEN".into(),
        format!("127.0.0.1:{metrics_port2}"),
    );
    let _off = serve(&env, port2);
    wait_healthy(&client, port2).await;
    assert!(client
        .get(format!("http://127.0.0.1:{metrics_port2}/metrics"))
        .send()
        .await
        .is_err());
}

#[test]
fn metrics_listener_on_the_protected_address_is_refused() {
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_certbound"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_clear()
        .env("CERTBOUND_BACKEND", "rfc7662")
        .env(
            "CERTBOUND_INTROSPECTION_ENDPOINT",
            "https://as.example/introspect",
        )
        .env("CERTBOUND_INTROSPECTION_CLIENT_ID", "rs")
        .env("CERTBOUND_INTROSPECTION_CLIENT_SECRET", "s3cret-value")
        .env("CERTBOUND_METRICS_LISTEN", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CERTBOUND_METRICS_LISTEN"), "{stderr}");
    assert!(!stderr.contains("s3cret-value"));
}
