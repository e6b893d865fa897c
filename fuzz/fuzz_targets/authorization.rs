//! `Authorization` / `DPoP` header parsing: `parse_authorization`,
//! `credentials_from_values` (REST events: `headers` + `multiValueHeaders`),
//! `credentials_from_headers` (header maps), `single_header` (DPoP, Host)
//! and `htu`.
//!
//! Asserts, beyond "no panic":
//! - a parsed token is non-empty, holds no space, appears in the value, and
//!   the scheme is the value's first word (`Bearer` / `DPoP`, any case);
//! - a value is accepted exactly when it matches that grammar (checked by a
//!   model written here);
//! - no value → `Missing`; two distinct values → `Ambiguous`; the same
//!   value repeated is the value; the header-map reading agrees with the
//!   text reading;
//! - `single_header` refuses a header sent twice, even with equal values;
//! - `htu` is `https://host/path`, without query, fragment or userinfo.
#![no_main]

use arbitrary::Arbitrary;
use certbound::request::{
    credentials_from_headers, credentials_from_values, htu, parse_authorization, single_header,
    CredentialsError, Scheme,
};
use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret;

#[derive(Debug, Arbitrary)]
struct Input {
    values: Vec<String>,
    /// Names in the header map (any case, maybe not `authorization`).
    names: Vec<u8>,
    dpop: Vec<String>,
    host: Option<String>,
    path: String,
}

/// The grammar, written independently: scheme, one or more spaces, a token
/// without spaces, optional trailing spaces.
fn model(value: &str) -> Option<(Scheme, &str)> {
    let space = value.find(' ')?;
    let (scheme, rest) = (&value[..space], &value[space..]);
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Scheme::Bearer,
        "dpop" => Scheme::DPoP,
        _ => return None,
    };
    let token = rest.trim_matches(' ');
    (!token.is_empty() && !token.contains(' ')).then_some((scheme, token))
}

fuzz_target!(|input: Input| {
    for v in input.values.iter().take(4) {
        let parsed = parse_authorization(v);
        match (&parsed, model(v)) {
            (Ok(c), Some((scheme, token))) => {
                assert_eq!(c.scheme, scheme);
                assert_eq!(c.token.expose_secret(), token);
                assert!(v.contains(c.token.expose_secret()));
            }
            (Err(CredentialsError::Malformed), None) => {}
            _ => panic!("parse_authorization disagrees with the grammar"),
        }
    }

    let values: Vec<&str> = input.values.iter().take(4).map(String::as_str).collect();
    let from_values = credentials_from_values(values.iter().copied());
    let mut distinct: Vec<&str> = Vec::new();
    for v in &values {
        if !distinct.contains(v) {
            distinct.push(v);
        }
    }
    match distinct.as_slice() {
        [] => assert!(matches!(from_values, Err(CredentialsError::Missing))),
        [one] => assert_eq!(
            from_values
                .as_ref()
                .ok()
                .map(|c| c.token.expose_secret().to_owned()),
            model(one).map(|(_, t)| t.to_owned())
        ),
        _ => assert!(matches!(from_values, Err(CredentialsError::Ambiguous))),
    }

    // The same values in a header map, under names of any case.
    let mut map = http::HeaderMap::new();
    let mut in_map: Vec<&str> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let upper = input.names.get(i).copied().unwrap_or(0);
        let name = if upper % 3 == 2 {
            "x-authorization"
        } else if upper % 3 == 1 {
            "Authorization"
        } else {
            "authorization"
        };
        let (Ok(n), Ok(val)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(v),
        ) else {
            continue;
        };
        if name != "x-authorization" {
            in_map.push(v);
        }
        map.append(n, val);
    }
    let from_map = credentials_from_headers(&[&map]);
    let from_text = credentials_from_values(in_map.iter().copied());
    assert_eq!(
        from_map
            .as_ref()
            .map(|c| (c.scheme, c.token.expose_secret().to_owned())),
        from_text
            .as_ref()
            .map(|c| (c.scheme, c.token.expose_secret().to_owned())),
    );

    let mut dpop = http::HeaderMap::new();
    for v in input.dpop.iter().take(3) {
        if let Ok(val) = http::HeaderValue::from_str(v) {
            dpop.append("dpop", val);
        }
    }
    match (
        single_header(&dpop, "dpop"),
        dpop.get_all("dpop").iter().count(),
    ) {
        (Ok(None), 0) => {}
        (Ok(Some(v)), 1) => assert_eq!(dpop.get("dpop").map(|h| h.as_bytes()), Some(v.as_bytes())),
        (Err(_), 1) => assert!(dpop.get("dpop").is_some_and(|h| h.to_str().is_err())),
        (Err(_), n) if n > 1 => {}
        (r, n) => panic!("single_header: {r:?} for {n} values"),
    }

    if let Some(u) = htu(input.host.as_deref(), &input.path) {
        let rest = u.strip_prefix("https://").expect("htu is https");
        let host = rest.split('/').next().unwrap_or("");
        assert!(!host.is_empty() && !host.contains(['@', '?', '#', ' ']));
        assert!(
            !u[8 + host.len()..].contains(['?', '#']),
            "query or fragment in htu"
        );
        assert!(u[8 + host.len()..].starts_with('/'));
    }
});
