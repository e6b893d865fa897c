//! API Gateway Lambda authorizer front: event → [`AuthRequest`] →
//! [`authorize`] → IAM policy / simple response / `Unauthorized` error.
//!
//! The event kind is recognised from the event itself: `type: TOKEN`,
//! `type: REQUEST` with `version: "2.0"` (HTTP API payload 2.0), or any
//! other `REQUEST` (REST API; HTTP API payload 1.0 with `version: "1.0"`).
//! An event whose fields have the wrong JSON types is refused as invalid,
//! never decided on leniently.

use std::sync::Arc;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequest, ApiGatewayV2CustomAuthorizerV2Request,
};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::authorizer::{authorize, Authorizer};
use crate::cert::CertFormat;
use crate::config::HttpApiResponse;
use crate::request::{
    credentials_from_headers as credentials, credentials_from_values, htu, parse_authorization,
    single_header, ArnError, AuthRequest, CredentialsError, Headers, MethodArn, PresentedCert,
    RawEvent, Source,
};
use crate::verdict::{Context, Decision, Verdict};

/// Why an event could not be understood. Messages name fields, never
/// their values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The payload is not a JSON object.
    #[error("event is not a JSON object")]
    NotAnObject,
    /// `type` is neither `TOKEN` nor `REQUEST`.
    #[error("unknown authorizer event type (expected TOKEN or REQUEST)")]
    UnknownType,
    /// A Cognito trigger event sent to the authorizer.
    #[error("a Cognito trigger event: this function is the authorizer (set CERTBOUND_HANDLER=cognito-pre-token for the trigger)")]
    WrongHandler,
    /// The event does not have the shape of its kind.
    #[error("malformed {kind} event: {reason}")]
    Shape {
        /// Which kind we tried.
        kind: &'static str,
        /// Where and what (field path, kind of problem).
        reason: String,
    },
    /// No `methodArn` / `routeArn`.
    #[error("{0} event has no {1}")]
    NoResource(&'static str, &'static str),
    /// Both `methodArn` and `routeArn`: no event API Gateway sends has
    /// both, and which resource the answer is about would be a guess.
    #[error("event has both methodArn and routeArn (refused as ambiguous)")]
    AmbiguousResource,
    /// The ARN is not an execute-api ARN with a path part.
    #[error(transparent)]
    Arn(#[from] ArnError),
    /// The HTTP method in the event contradicts the one in the ARN.
    #[error("httpMethod does not match the method of the methodArn")]
    MethodMismatch,
    /// A header that must appear once is repeated or not text.
    #[error(transparent)]
    Header(#[from] crate::request::HeaderError),
}

/// A recognised authorizer event, borrowing from the JSON it was read
/// from. `Debug` shows the kind only (events hold tokens).
#[derive(Clone)]
pub enum Event<'a> {
    /// REST API (or HTTP API 1.0) `REQUEST` authorizer: the fields
    /// certbound reads, borrowed (no copy of a large event).
    Rest(Box<RestRequest<'a>>),
    /// REST API `TOKEN` authorizer.
    Token(ApiGatewayCustomAuthorizerRequest),
    /// HTTP API payload 2.0 authorizer.
    HttpV2(Box<ApiGatewayV2CustomAuthorizerV2Request>),
}

impl std::fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Event({})", self.kind())
    }
}

/// The fields of a REST-shaped `REQUEST` event (REST API, HTTP API payload
/// 1.0) that certbound reads, as `aws_lambda_events` names them, borrowed
/// from the event: the typed struct copies every header twice (`headers` and
/// `multiValueHeaders`) and was most of the cost of a cached decision.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestRequest<'a> {
    /// `version: "1.0"` on HTTP API payload 1.0 events.
    #[serde(borrow, default)]
    pub version: Option<Cow<'a, str>>,
    /// `arn:aws:execute-api:…/STAGE/METHOD/PATH`.
    #[serde(borrow, default)]
    pub method_arn: Option<Cow<'a, str>>,
    /// The route template (`/accounts/{id}/balances`).
    #[serde(borrow, default)]
    pub resource: Option<Cow<'a, str>>,
    /// The concrete path (REST: without the stage).
    #[serde(borrow, default)]
    pub path: Option<Cow<'a, str>>,
    /// The HTTP method.
    #[serde(borrow, default)]
    pub http_method: Option<Cow<'a, str>>,
    /// Headers, one value each.
    #[serde(borrow, default)]
    pub headers: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
    /// Headers, every value.
    #[serde(borrow, default)]
    pub multi_value_headers: Option<BTreeMap<Cow<'a, str>, Vec<Cow<'a, str>>>>,
    /// The path parameters API Gateway extracted.
    #[serde(default)]
    pub path_parameters: Option<HashMap<String, String>>,
    /// The request context.
    #[serde(borrow)]
    pub request_context: RestContext<'a>,
}

/// `requestContext` of a REST-shaped event (what certbound reads).
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestContext<'a> {
    /// The path as called (with the stage).
    #[serde(borrow, default)]
    pub path: Option<Cow<'a, str>>,
    /// API Gateway's request id.
    #[serde(borrow, default)]
    pub request_id: Option<Cow<'a, str>>,
    /// REST APIs: `identity.clientCert.clientCertPem`.
    #[serde(borrow, default)]
    pub identity: Option<CertHolder<'a>>,
    /// HTTP API 1.0: `authentication.clientCert.clientCertPem`.
    #[serde(borrow, default)]
    pub authentication: Option<CertHolder<'a>>,
}

/// An object holding `clientCert`.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertHolder<'a> {
    /// The client certificate, when one was presented.
    #[serde(borrow, default)]
    pub client_cert: Option<ClientCertField<'a>>,
}

/// `clientCert` (only the PEM is read: the rest is API Gateway's parse of it).
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientCertField<'a> {
    /// The certificate.
    #[serde(borrow, default)]
    pub client_cert_pem: Option<Cow<'a, str>>,
}

impl RestRequest<'_> {
    /// The PEM: `authentication` first, then `identity` (as the reference).
    fn cert_pem(&self) -> Option<&str> {
        let ctx = &self.request_context;
        [&ctx.authentication, &ctx.identity]
            .into_iter()
            .flatten()
            .find_map(|h| h.client_cert.as_ref()?.client_cert_pem.as_deref())
    }

    /// Every value of a header, from both maps, names in any case.
    fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        let single = self
            .headers
            .iter()
            .flatten()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref());
        let multi = self
            .multi_value_headers
            .iter()
            .flatten()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.iter().map(AsRef::as_ref));
        single.chain(multi)
    }

    /// A header of the single-value map that must appear at most once.
    fn single(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .flatten()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// The single-value headers as a header map, for hooks.
    fn header_map(&self) -> Result<http::HeaderMap, EventError> {
        let mut map =
            http::HeaderMap::with_capacity(self.headers.as_ref().map_or(0, BTreeMap::len));
        for (k, v) in self.headers.iter().flatten() {
            let name = http::HeaderName::from_bytes(k.as_bytes());
            let value = http::HeaderValue::from_str(v);
            match (name, value) {
                (Ok(n), Ok(v)) => {
                    map.append(n, v);
                }
                _ => {
                    return Err(EventError::Shape {
                        kind: "REQUEST",
                        reason: format!("header {} is not a valid header", k.to_ascii_lowercase()),
                    })
                }
            }
        }
        Ok(map)
    }
}

impl<'a> Event<'a> {
    /// Recognises, type-checks and deserializes an event. `clientCert`
    /// objects without `validity` (which `aws_lambda_events` requires but
    /// real and test events sometimes lack) are accepted.
    pub fn parse(raw: &'a Value) -> Result<Self, EventError> {
        let obj = raw.as_object().ok_or(EventError::NotAnObject)?;
        if obj.contains_key("triggerSource") && obj.contains_key("userPoolId") {
            return Err(EventError::WrongHandler);
        }
        if obj.contains_key("methodArn") && obj.contains_key("routeArn") {
            return Err(EventError::AmbiguousResource);
        }
        let kind = match obj.get("type") {
            None | Some(Value::Null) => "",
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(EventError::UnknownType),
        };
        let version = obj.get("version").and_then(Value::as_str);
        if kind.eq_ignore_ascii_case("TOKEN") {
            check_types("TOKEN", raw, TOKEN_FIELDS)?;
            return typed("TOKEN", raw, None).map(Event::Token);
        }
        if !(kind.eq_ignore_ascii_case("REQUEST") || (kind.is_empty() && version == Some("2.0"))) {
            return Err(EventError::UnknownType);
        }
        if version == Some("2.0") {
            check_types("HTTP API 2.0", raw, V2_FIELDS)?;
            return typed("HTTP API 2.0", raw, Some("authentication"))
                .map(|e| Event::HttpV2(Box::new(e)));
        }
        check_types("REQUEST", raw, REST_FIELDS)?;
        RestRequest::deserialize(raw)
            .map(|e| Event::Rest(Box::new(e)))
            .map_err(|_| EventError::Shape {
                kind: "REQUEST",
                reason: match serde_path_to_error::deserialize::<_, RestRequest<'_>>(raw) {
                    Err(e) => crate::transport::describe_json_error(&e),
                    Ok(_) => "wrong types".into(),
                },
            })
    }

    /// Short name of the kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Rest(e) if e.version.as_deref() == Some("1.0") => "HTTP API 1.0",
            Event::Rest(_) => "REQUEST",
            Event::Token(_) => "TOKEN",
            Event::HttpV2(_) => "HTTP API 2.0",
        }
    }

    /// Extracts token, certificate, method, route, path and resource.
    pub fn to_auth_request(&self) -> Result<AuthRequest, EventError> {
        self.clone().into_auth_request()
    }

    /// [`Event::to_auth_request`], moving the headers instead of copying them.
    pub fn into_auth_request(self) -> Result<AuthRequest, EventError> {
        match self {
            Event::Token(e) => {
                let arn = e
                    .method_arn
                    .as_deref()
                    .ok_or(EventError::NoResource("TOKEN", "methodArn"))?;
                let parsed = MethodArn::parse(arn)?;
                let mut r = AuthRequest::new(Source::RestToken, &parsed.method, &parsed.path, arn);
                r.credentials = match e.authorization_token.as_deref() {
                    None | Some("") => Err(CredentialsError::Missing),
                    Some(v) => parse_authorization(v),
                };
                Ok(r)
            }
            Event::Rest(e) => {
                let arn = e
                    .method_arn
                    .as_deref()
                    .ok_or(EventError::NoResource("REQUEST", "methodArn"))?;
                let parsed = MethodArn::parse(arn)?;
                let method = match e.http_method.as_deref() {
                    Some(m) if !arn_method_agrees(&parsed.method, m) => {
                        return Err(EventError::MethodMismatch)
                    }
                    Some(m) => m,
                    None => parsed.method.as_str(),
                };
                let http_api_v1 = e.version.as_deref() == Some("1.0");
                let source = if http_api_v1 {
                    Source::HttpApiV1
                } else {
                    Source::RestRequest
                };
                let mut r = AuthRequest::new(source, method, "/", arn);
                // REST `path` has no stage; the ARN path never has one.
                let concrete = match (e.path.as_deref(), http_api_v1) {
                    (Some(p), false) => p,
                    _ => parsed.path.as_str(),
                };
                r.set_path(
                    concrete,
                    e.resource.as_deref(),
                    e.path_parameters.clone().unwrap_or_default(),
                );
                r.credentials = credentials_from_values(e.values("authorization"));
                r.dpop_proof = e.single("dpop").map(str::to_owned);
                r.client_cert = PresentedCert::from_format(CertFormat::Pem, e.cert_pem());
                let called = e.request_context.path.as_deref().or(e.path.as_deref());
                r.htu = htu(e.single("host"), called.unwrap_or(&r.path));
                r.request_id = e.request_context.request_id.as_deref().map(str::to_owned);
                r.headers = Headers::new(e.header_map()?);
                Ok(r)
            }
            Event::HttpV2(e) => {
                let arn = e
                    .route_arn
                    .as_deref()
                    .ok_or(EventError::NoResource("HTTP API 2.0", "routeArn"))?;
                MethodArn::parse(arn)?;
                let ctx = &e.request_context;
                let method = ctx.http.method.as_str();
                let raw_path = e.raw_path.as_deref().or(ctx.http.path.as_deref()).ok_or(
                    EventError::Shape {
                        kind: "HTTP API 2.0",
                        reason: "no rawPath".into(),
                    },
                )?;
                let path = strip_stage(raw_path, ctx.stage.as_deref());
                let template = e
                    .route_key
                    .as_deref()
                    .and_then(|k| k.split_once(' '))
                    .map(|(_, t)| t);
                let mut r = AuthRequest::new(Source::HttpApiV2, method, "/", arn);
                r.set_path(path, template, e.path_parameters.clone());
                r.credentials = credentials(&[&e.headers]);
                r.dpop_proof = single_header(&e.headers, "dpop")?;
                let pem = ctx
                    .authentication
                    .as_ref()
                    .and_then(|a| a.client_cert.as_ref())
                    .and_then(|c| c.client_cert_pem.as_deref());
                r.client_cert = PresentedCert::from_format(CertFormat::Pem, pem);
                let host = match ctx.domain_name.clone() {
                    Some(d) => Some(d),
                    None => single_header(&e.headers, "host")?,
                };
                r.htu = htu(host.as_deref(), raw_path);
                r.request_id = ctx.request_id.clone();
                r.headers = Headers::new(e.headers);
                Ok(r)
            }
        }
    }
}

/// `*` / `ANY` in an ARN stand for every method.
fn arn_method_agrees(arn_method: &str, method: &str) -> bool {
    arn_method == "*"
        || arn_method.eq_ignore_ascii_case("ANY")
        || arn_method.eq_ignore_ascii_case(method)
}

/// HTTP API `rawPath` starts with `/{stage}` on a named stage.
fn strip_stage<'a>(path: &'a str, stage: Option<&str>) -> &'a str {
    match stage {
        Some(stage) if stage != "$default" && !stage.is_empty() => {
            match path.strip_prefix('/').and_then(|p| p.strip_prefix(stage)) {
                Some("") => "/",
                Some(rest) if rest.starts_with('/') => rest,
                _ => path,
            }
        }
        _ => path,
    }
}

/// The JSON types a kind's fields must have (path, type).
#[derive(Clone, Copy)]
enum Ty {
    Str,
    Obj,
    StrMap,
    StrListMap,
}

type Fields = &'static [(&'static [&'static str], Ty)];

const TOKEN_FIELDS: Fields = &[
    (&["methodArn"], Ty::Str),
    (&["authorizationToken"], Ty::Str),
];

const REST_FIELDS: Fields = &[
    (&["methodArn"], Ty::Str),
    (&["resource"], Ty::Str),
    (&["path"], Ty::Str),
    (&["httpMethod"], Ty::Str),
    (&["version"], Ty::Str),
    (&["headers"], Ty::StrMap),
    (&["multiValueHeaders"], Ty::StrListMap),
    (&["pathParameters"], Ty::StrMap),
    (&["requestContext"], Ty::Obj),
    (&["requestContext", "path"], Ty::Str),
    (&["requestContext", "identity"], Ty::Obj),
    (&["requestContext", "identity", "clientCert"], Ty::Obj),
    (
        &["requestContext", "identity", "clientCert", "clientCertPem"],
        Ty::Str,
    ),
    (&["requestContext", "authentication"], Ty::Obj),
    (&["requestContext", "authentication", "clientCert"], Ty::Obj),
    (
        &[
            "requestContext",
            "authentication",
            "clientCert",
            "clientCertPem",
        ],
        Ty::Str,
    ),
];

const V2_FIELDS: Fields = &[
    (&["routeArn"], Ty::Str),
    (&["routeKey"], Ty::Str),
    (&["rawPath"], Ty::Str),
    (&["headers"], Ty::StrMap),
    (&["pathParameters"], Ty::StrMap),
    (&["requestContext"], Ty::Obj),
    (&["requestContext", "stage"], Ty::Str),
    (&["requestContext", "http"], Ty::Obj),
    (&["requestContext", "authentication"], Ty::Obj),
    (&["requestContext", "authentication", "clientCert"], Ty::Obj),
    (
        &[
            "requestContext",
            "authentication",
            "clientCert",
            "clientCertPem",
        ],
        Ty::Str,
    ),
];

/// The value at a path of object keys.
fn at<'a>(raw: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(raw, |v, key| v.get(key))
}

/// Refuses an event whose fields (when present and not null) have another
/// JSON type than their kind documents, or that holds a header twice.
fn check_types(kind: &'static str, raw: &Value, fields: Fields) -> Result<(), EventError> {
    for (path, ty) in fields {
        let Some(v) = at(raw, path).filter(|v| !v.is_null()) else {
            continue;
        };
        let ok = match ty {
            Ty::Str => v.is_string(),
            Ty::Obj => v.is_object(),
            Ty::StrMap => v
                .as_object()
                .is_some_and(|m| m.values().all(Value::is_string)),
            Ty::StrListMap => v.as_object().is_some_and(|m| {
                m.values().all(|x| {
                    x.as_array()
                        .is_some_and(|items| items.iter().all(Value::is_string))
                })
            }),
        };
        let name = || path.join(".");
        if !ok {
            let expected = match ty {
                Ty::Str => "a string",
                Ty::Obj => "an object",
                Ty::StrMap => "an object of strings",
                Ty::StrListMap => "an object of string lists",
            };
            return Err(EventError::Shape {
                kind,
                reason: format!("{} is not {expected}", name()),
            });
        }
        if path[0].ends_with("eaders") && path.len() == 1 {
            let keys: Vec<&String> = v
                .as_object()
                .map(|m| m.keys().collect())
                .unwrap_or_default();
            for (i, a) in keys.iter().enumerate() {
                if let Some(b) = keys[i + 1..].iter().find(|b| b.eq_ignore_ascii_case(a)) {
                    return Err(EventError::Shape {
                        kind,
                        reason: format!(
                            "{} holds header {} twice (in different cases)",
                            name(),
                            b.to_ascii_lowercase()
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Deserializes the typed event from the raw one without copying it (a
/// `clientCert` without `validity` under `requestContext.<holder>` gets an
/// empty one, on a copy). The error names the field, never a value.
fn typed<T: serde::de::DeserializeOwned>(
    kind: &'static str,
    raw: &Value,
    cert_holder: Option<&str>,
) -> Result<T, EventError> {
    let needs_validity = cert_holder.is_some_and(|holder| {
        at(raw, &["requestContext", holder, "clientCert"])
            .and_then(Value::as_object)
            .is_some_and(|c| !c.get("validity").is_some_and(Value::is_object))
    });
    let filled;
    let source = if needs_validity {
        let mut copy = raw.clone();
        if let Some(cert) = copy
            .get_mut("requestContext")
            .and_then(|c| c.get_mut(cert_holder.unwrap_or_default()))
            .and_then(|h| h.get_mut("clientCert"))
            .and_then(Value::as_object_mut)
        {
            cert.insert("validity".into(), json!({}));
        }
        filled = copy;
        &filled
    } else {
        raw
    };
    // Fast path; the path-tracking deserializer only to explain a failure.
    T::deserialize(source).map_err(|_| {
        let reason = match serde_path_to_error::deserialize::<_, T>(source) {
            Err(e) => crate::transport::describe_json_error(&e),
            Ok(_) => "wrong types".into(),
        };
        EventError::Shape { kind, reason }
    })
}

/// The handler failing: what API Gateway turns into 401 / 500.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// → 401.
    #[error("Unauthorized")]
    Unauthorized,
    /// → 500.
    #[error("Internal Server Error")]
    InternalServerError,
    /// The event could not be understood → 500.
    #[error("Internal Server Error")]
    InvalidEvent(String),
    /// The configuration (or the secret it needs) is not usable → 500.
    #[error("Internal Server Error")]
    Configuration(String),
}

impl HandlerError {
    /// Our `errorType` for the runtime.
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::Unauthorized => "Unauthorized",
            HandlerError::InternalServerError => "InternalServerError",
            HandlerError::InvalidEvent(_) => "InvalidEvent",
            HandlerError::Configuration(_) => "ConfigurationError",
        }
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Self {
        Diagnostic {
            error_type: e.error_type().to_owned(),
            error_message: e.to_string(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PolicyResponse<'a> {
    principal_id: &'a str,
    policy_document: PolicyDocument<'a>,
    context: &'a Context,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_identifier_key: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PolicyDocument<'a> {
    version: &'static str,
    statement: [Statement<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Statement<'a> {
    action: &'static str,
    effect: &'static str,
    resource: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SimpleResponse<'a> {
    is_authorized: bool,
    context: &'a Context,
}

/// Turns a verdict into what the Lambda returns: a simple response
/// (HTTP API 2.0 with `CERTBOUND_HTTP_API_RESPONSE=simple`) or an IAM policy.
pub fn respond(simple: bool, verdict: &Verdict) -> Result<Value, HandlerError> {
    let effect = match verdict.decision {
        Decision::Allow => "Allow",
        Decision::Deny => "Deny",
        Decision::Unauthorized => return Err(HandlerError::Unauthorized),
        Decision::InternalServerError => return Err(HandlerError::InternalServerError),
    };
    let value = if simple {
        serde_json::to_value(SimpleResponse {
            is_authorized: verdict.decision == Decision::Allow,
            context: &verdict.context,
        })
    } else {
        serde_json::to_value(PolicyResponse {
            principal_id: &verdict.principal_id,
            policy_document: PolicyDocument {
                version: "2012-10-17",
                statement: [Statement {
                    action: "execute-api:Invoke",
                    effect,
                    resource: &verdict.resource,
                }],
            },
            context: &verdict.context,
            usage_identifier_key: verdict
                .usage_identifier_key
                .as_ref()
                .map(crate::usage::UsageKey::expose),
        })
    };
    value.map_err(|_| HandlerError::InternalServerError)
}

/// One invocation: the whole flow, top to bottom.
pub async fn handle_event<A: Authorizer + ?Sized>(
    authorizer: &A,
    http_api: HttpApiResponse,
    payload: Value,
    request_id: Option<String>,
) -> Result<Value, HandlerError> {
    let (mut request, _) = read_event(payload).map_err(|e| invalid(e, request_id.as_deref()))?;
    let simple = request.source == Source::HttpApiV2 && http_api == HttpApiResponse::Simple;
    request.request_id = request_id.or(request.request_id);
    let verdict = authorize(authorizer, &request).await;
    respond(simple, &verdict)
}

/// Reads an authorizer event into the request the core decides on (the
/// raw event kept for hooks), with the event's kind for logs.
pub fn read_event(payload: Value) -> Result<(AuthRequest, &'static str), EventError> {
    let event = Event::parse(&payload)?;
    let kind = event.kind();
    let mut request = event.into_auth_request()?;
    request.event = Some(RawEvent(payload));
    Ok((request, kind))
}

fn invalid(e: EventError, request_id: Option<&str>) -> HandlerError {
    crate::telemetry::decision(
        Decision::InternalServerError,
        Some(crate::Reason::EventInvalid),
    );
    tracing::warn!(
        target: "certbound::decision",
        verdict = "InternalServerError",
        reason = "event_invalid",
        request_id,
        error = %e,
        "invalid event"
    );
    HandlerError::InvalidEvent(e.to_string())
}

/// Serves the Lambda Runtime API until the runtime stops us.
pub async fn run<A: Authorizer + 'static>(
    authorizer: Arc<A>,
    http_api: HttpApiResponse,
) -> Result<(), lambda_runtime::Error> {
    run_lazy(move || {
        let authorizer: Arc<dyn Authorizer> = authorizer.clone();
        async move { Ok((authorizer, http_api)) }
    })
    .await
}

/// What [`run_lazy`] builds on first use.
pub type Ready = (Arc<dyn Authorizer>, HttpApiResponse);

/// Serves the Lambda Runtime API, building the authorizer on the first
/// invocation. Needed when start-up must call the AWS Parameters and
/// Secrets extension, which answers only during the INVOKE phase. A failed
/// build answers `Internal Server Error` (never Allow) and is retried on the
/// next invocation.
pub async fn run_lazy<F, Fut>(init: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Ready, String>> + Send,
{
    let init = Arc::new(init);
    let cell: Arc<tokio::sync::OnceCell<Ready>> = Arc::new(tokio::sync::OnceCell::new());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (init, cell) = (Arc::clone(&init), Arc::clone(&cell));
        async move {
            let (authorizer, http_api) = cell.get_or_try_init(|| init()).await.map_err(|e| {
                tracing::error!(error = %e, "cannot build the authorizer");
                HandlerError::Configuration(e)
            })?;
            let answer = handle_event(
                authorizer.as_ref(),
                *http_api,
                event.payload,
                Some(event.context.request_id),
            )
            .await;
            // One EMF document for this invocation, once its answer is known.
            crate::telemetry::emf::flush();
            answer
        }
    }))
    .await
}
