//! What every front hands to the core: [`AuthRequest`], plus the parsing of
//! the `Authorization` header and of API Gateway resource ARNs.
//!
//! Nothing here prints a token: the token is a [`SecretString`], header
//! values and the raw event are wrapped so that `Debug` shows names only.

use std::collections::HashMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use crate::cert::{CertError, CertFormat, ClientCert};
use crate::route::{normalize_path, PathError, RouteTarget};

/// The authorization scheme of the presented token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// RFC 6750 bearer token.
    Bearer,
    /// RFC 9449 DPoP-bound token (the proof comes in the `DPoP` header).
    DPoP,
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Bearer => "Bearer",
            Scheme::DPoP => "DPoP",
        })
    }
}

/// An access token and the scheme it came with. `Debug` shows the scheme
/// and a hash prefix, never the token.
#[derive(Clone)]
pub struct Credentials {
    /// `Bearer` or `DPoP`.
    pub scheme: Scheme,
    /// The access token itself. Never log it: use [`Credentials::token_hash`].
    pub token: SecretString,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("scheme", &self.scheme)
            .field("token_sha256", &self.token_hash())
            .finish()
    }
}

impl Credentials {
    /// The first 8 hex digits of the token's SHA-256: safe to log.
    pub fn token_hash(&self) -> String {
        token_hash(self.token.expose_secret())
    }
}

/// The first 8 hex digits of SHA-256 of a token: safe to log.
pub fn token_hash(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why no usable token was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// No `Authorization` header (or TOKEN-event value) at all.
    #[error("no Authorization header")]
    Missing,
    /// The header does not read `Bearer <token>` or `DPoP <token>`.
    #[error("Authorization header is not 'Bearer <token>' or 'DPoP <token>'")]
    Malformed,
    /// The header was sent more than once with different values.
    #[error("Authorization header sent more than once")]
    Ambiguous,
}

/// Parses an `Authorization` value: `Bearer <token>` or `DPoP <token>`,
/// scheme in any case, separated by one or more spaces, trailing spaces
/// allowed, the token itself without spaces (the reference's rule).
pub fn parse_authorization(value: &str) -> Result<Credentials, CredentialsError> {
    let (scheme, rest) = value.split_once(' ').ok_or(CredentialsError::Malformed)?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::DPoP
    } else {
        return Err(CredentialsError::Malformed);
    };
    let token = rest.trim_matches(' ');
    if token.is_empty() || token.contains(' ') {
        return Err(CredentialsError::Malformed);
    }
    Ok(Credentials {
        scheme,
        token: SecretString::from(token),
    })
}

/// The `Authorization` header across header maps (REST events carry both
/// `headers` and `multiValueHeaders`): none → `Missing`, more than one
/// distinct value → `Ambiguous`, not text → `Malformed`.
pub fn credentials_from_headers(
    maps: &[&http::HeaderMap],
) -> Result<Credentials, CredentialsError> {
    let mut values: Vec<&[u8]> = Vec::new();
    for map in maps {
        for v in map.get_all(http::header::AUTHORIZATION) {
            if !values.contains(&v.as_bytes()) {
                values.push(v.as_bytes());
            }
        }
    }
    match values.as_slice() {
        [] => Err(CredentialsError::Missing),
        [one] => std::str::from_utf8(one)
            .map_err(|_| CredentialsError::Malformed)
            .and_then(parse_authorization),
        _ => Err(CredentialsError::Ambiguous),
    }
}

/// The `Authorization` credentials from every value sent (a REST event's
/// `headers` and `multiValueHeaders`): none → `Missing`, more than one
/// distinct value → `Ambiguous`.
pub fn credentials_from_values<'v>(
    values: impl Iterator<Item = &'v str>,
) -> Result<Credentials, CredentialsError> {
    let mut found: Option<&str> = None;
    for v in values {
        match found {
            None => found = Some(v),
            Some(f) if f == v => {}
            Some(_) => return Err(CredentialsError::Ambiguous),
        }
    }
    found.map_or(Err(CredentialsError::Missing), parse_authorization)
}

/// The value of a header that must appear at most once, as text: `Ok(None)`
/// when absent, `Err` when repeated (even with the same value) or not text.
pub fn single_header(map: &http::HeaderMap, name: &str) -> Result<Option<String>, HeaderError> {
    let mut values = map.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(HeaderError::Repeated(name.to_owned()));
    }
    first
        .to_str()
        .map(|v| Some(v.to_owned()))
        .map_err(|_| HeaderError::NotText(name.to_owned()))
}

/// A header that cannot be read unambiguously. Messages name the header,
/// never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// Sent more than once.
    #[error("header {0} sent more than once")]
    Repeated(String),
    /// Not visible ASCII.
    #[error("header {0} is not text")]
    NotText(String),
    /// Required and absent.
    #[error("header {0} is missing")]
    Missing(String),
}

/// The request's headers (an [`http::HeaderMap`]: names in lower case,
/// repeated headers kept apart). `Debug` lists the names only (values may
/// hold tokens).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(http::HeaderMap);

impl Headers {
    /// Takes a header map.
    pub fn new(map: http::HeaderMap) -> Self {
        Self(map)
    }

    /// A header's value as text, when it is there once and is text.
    pub fn text(&self, name: &str) -> Option<&str> {
        let mut values = self.0.get_all(name).iter();
        let first = values.next()?;
        values.next().is_none().then_some(())?;
        first.to_str().ok()
    }
}

impl std::ops::Deref for Headers {
    type Target = http::HeaderMap;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// The raw Lambda event, for hooks. `Debug` does not show it (it holds the
/// token).
#[derive(Clone, PartialEq)]
pub struct RawEvent(pub serde_json::Value);

impl std::ops::Deref for RawEvent {
    type Target = serde_json::Value;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl fmt::Debug for RawEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawEvent(<redacted>)")
    }
}

/// DPoP `htu`: `https://host/path`, no query.
pub fn htu(host: Option<&str>, path: &str) -> Option<String> {
    let host = host?.trim();
    if host.is_empty() || host.contains(['/', ' ', '?', '#', '@']) {
        return None;
    }
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let sep = if path.starts_with('/') { "" } else { "/" };
    Some(format!("https://{host}{sep}{path}"))
}

/// The client certificate as far as the request shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PresentedCert {
    /// No certificate was presented (or the front does not carry one).
    #[default]
    Absent,
    /// A readable certificate.
    Present(ClientCert),
    /// Something was presented but it is not a certificate.
    Invalid(CertError),
}

impl PresentedCert {
    /// Parses optional certificate data in a given format.
    pub fn from_format(format: CertFormat, data: Option<&str>) -> Self {
        match data.map(str::trim) {
            None | Some("") => Self::Absent,
            Some(text) => match ClientCert::from_format_cached(format, text) {
                Ok(cert) => Self::Present(cert),
                Err(e) => Self::Invalid(e),
            },
        }
    }

    /// The certificate, when one was presented and readable.
    pub fn cert(&self) -> Option<&ClientCert> {
        match self {
            Self::Present(c) => Some(c),
            _ => None,
        }
    }
}

/// Where a request came from (hooks may want to know).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// API Gateway REST API `REQUEST` authorizer.
    RestRequest,
    /// API Gateway HTTP API payload 1.0 authorizer (REST-shaped).
    HttpApiV1,
    /// API Gateway REST API `TOKEN` authorizer.
    RestToken,
    /// API Gateway HTTP API payload 2.0 authorizer.
    HttpApiV2,
    /// The HTTP auth endpoint (`certbound serve`).
    Http,
}

/// One authorization question, independent of the front that asked it.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// Which front produced it.
    pub source: Source,
    /// The token, or why there is none.
    pub credentials: Result<Credentials, CredentialsError>,
    /// The `DPoP` proof header, when present.
    pub dpop_proof: Option<String>,
    /// The client certificate of the mutual-TLS connection.
    pub client_cert: PresentedCert,
    /// HTTP method of the protected call (upper case).
    pub method: String,
    /// The normalised concrete path (see [`crate::route`]): decoded,
    /// dot segments resolved, stage prefix removed, no query. Empty when
    /// the path was refused (then [`AuthRequest::path_error`] says why).
    /// Compare this one in hooks, never [`AuthRequest::raw_path`].
    pub path: String,
    /// Why the concrete path was refused, if it was.
    pub path_error: Option<PathError>,
    /// The path exactly as received (may hold a query, encodings, dots).
    pub raw_path: String,
    /// API Gateway's route template (`/accounts/{id}/balances`), when the
    /// event carries one.
    pub route: Option<String>,
    /// The path parameters API Gateway extracted for [`AuthRequest::route`].
    pub path_parameters: HashMap<String, String>,
    /// What scope rules are matched against: the route template with its
    /// parameter values when there is one, else the concrete path.
    pub target: Result<RouteTarget, PathError>,
    /// What a policy is about: the `methodArn` / `routeArn`, or the URI.
    pub resource: String,
    /// The target URI for DPoP (`htu`): scheme, host and path, no query.
    pub htu: Option<String>,
    /// Request headers.
    pub headers: Headers,
    /// The raw Lambda event, for hooks that need more than the above.
    pub event: Option<RawEvent>,
    /// A request id for logs (Lambda request id or a generated one).
    pub request_id: Option<String>,
}

impl AuthRequest {
    /// A request with the given method, raw path and resource and nothing
    /// else (no token, no certificate, no route template).
    pub fn new(source: Source, method: &str, raw_path: &str, resource: &str) -> Self {
        let mut r = Self {
            source,
            credentials: Err(CredentialsError::Missing),
            dpop_proof: None,
            client_cert: PresentedCert::Absent,
            method: method.to_ascii_uppercase(),
            path: String::new(),
            path_error: None,
            raw_path: String::new(),
            route: None,
            path_parameters: HashMap::new(),
            target: Err(PathError::NotAbsolute),
            resource: resource.to_owned(),
            htu: None,
            headers: Headers::default(),
            event: None,
            request_id: None,
        };
        r.set_path(raw_path, None, HashMap::new());
        r
    }

    /// Sets the raw path and, when the event has one, the route template
    /// and its parameters; computes [`AuthRequest::path`] and
    /// [`AuthRequest::target`].
    pub fn set_path(
        &mut self,
        raw_path: &str,
        route: Option<&str>,
        path_parameters: HashMap<String, String>,
    ) {
        self.raw_path = raw_path.to_owned();
        let normalized = normalize_path(raw_path);
        (self.path, self.path_error) = match &normalized {
            Ok(p) => (p.as_path(), None),
            Err(e) => (String::new(), Some(e.clone())),
        };
        let templated = route.and_then(|t| RouteTarget::from_template(t, &path_parameters));
        self.target = match templated {
            Some(t) => Ok(t),
            None => normalized.map(|p| RouteTarget::from_path(&p)),
        };
        self.route = route.map(str::to_owned);
        self.path_parameters = path_parameters;
    }

    /// The scheme for challenges: the presented one, else `Bearer`.
    pub fn scheme(&self) -> Scheme {
        self.credentials
            .as_ref()
            .map(|c| c.scheme)
            .unwrap_or(Scheme::Bearer)
    }

    /// 8-hex SHA-256 prefix of the token, when there is one.
    pub fn token_hash(&self) -> Option<String> {
        self.credentials.as_ref().ok().map(Credentials::token_hash)
    }
}

/// The parts of an `execute-api` ARN:
/// `arn:PARTITION:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/PATH…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodArn {
    /// API id.
    pub api_id: String,
    /// Stage name (`$default` for HTTP APIs).
    pub stage: String,
    /// HTTP method (`GET`, …, or `*`/`ANY`).
    pub method: String,
    /// Resource path with a leading `/`.
    pub path: String,
}

/// Why an ARN could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an execute-api ARN (arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/PATH): {0:?}")]
pub struct ArnError(pub String);

impl MethodArn {
    /// Splits like the reference: six `:` parts, the last into four `/`
    /// parts (`API/STAGE/METHOD/PATH…`). The path part must be there (the
    /// root resource is `…/GET/`).
    pub fn parse(arn: &str) -> Result<Self, ArnError> {
        let err = || ArnError(arn.chars().take(200).collect());
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        if parts.len() != 6 || parts[0] != "arn" || parts[2] != "execute-api" {
            return Err(err());
        }
        let res: Vec<&str> = parts[5].splitn(4, '/').collect();
        if res.len() != 4 || res[0].is_empty() || res[1].is_empty() || res[2].is_empty() {
            return Err(err());
        }
        Ok(Self {
            api_id: res[0].to_owned(),
            stage: res[1].to_owned(),
            method: res[2].to_owned(),
            path: format!("/{}", res[3]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_follows_the_reference_pattern() {
        let ok = |v: &str| {
            parse_authorization(v).map(|c| (c.scheme, c.token.expose_secret().to_owned()))
        };
        assert_eq!(ok("Bearer abc"), Ok((Scheme::Bearer, "abc".into())));
        assert_eq!(ok("bEaReR   abc  "), Ok((Scheme::Bearer, "abc".into())));
        assert_eq!(ok("DPoP x.y.z"), Ok((Scheme::DPoP, "x.y.z".into())));
        assert_eq!(ok("dpop tok"), Ok((Scheme::DPoP, "tok".into())));
        for bad in [
            "",
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Basic dXNlcjpwYXNz",
            " Bearer abc",
            "Bearer\tabc",
            "Bearerabc",
        ] {
            assert_eq!(
                parse_authorization(bad).err(),
                Some(CredentialsError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let c = parse_authorization("Bearer supersecrettoken").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert_eq!(c.token_hash().len(), 8);

        let mut map = http::HeaderMap::new();
        map.insert("authorization", "Bearer supersecrettoken".parse().unwrap());
        let mut r = AuthRequest::new(Source::Http, "GET", "/x", "GET /x");
        r.credentials = credentials_from_headers(&[&map]);
        r.headers = Headers::new(map.clone());
        r.event = Some(RawEvent(
            serde_json::json!({"headers": {"Authorization": "Bearer supersecrettoken"}}),
        ));
        let shown = format!("{r:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(
            shown.contains("authorization"),
            "header names stay visible: {shown}"
        );
    }

    #[test]
    fn arn_is_split_like_the_reference() {
        let a =
            MethodArn::parse("arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/GET/time/now")
                .unwrap();
        assert_eq!((a.api_id.as_str(), a.stage.as_str()), ("abc123", "prod"));
        assert_eq!((a.method.as_str(), a.path.as_str()), ("GET", "/time/now"));
        let root = MethodArn::parse("arn:aws:execute-api:r:1:api/$default/POST/").unwrap();
        assert_eq!(root.path, "/");
        for bad in [
            "",
            "arn:aws:s3:::bucket",
            "arn:aws:execute-api:r:1:api",
            "arn:aws:execute-api:r:1:api/s",
            "arn:aws:execute-api:r:1:api/s/GET",
            "arn:aws:execute-api:r:1:api//GET/x",
        ] {
            assert!(MethodArn::parse(bad).is_err(), "{bad}");
        }
    }
}
