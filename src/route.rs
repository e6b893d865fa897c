//! What the router routed: request paths turned into the segments scope
//! rules are matched against, the same way for every front.
//!
//! Two sources, in order of trust:
//!
//! 1. **API Gateway's route data** ([`RouteTarget::from_template`]): REST
//!    `resource` (`/accounts/{id}/balances`), HTTP API `routeKey`. The
//!    template says where the segment boundaries are, whatever encoding the
//!    client used; a `{param}` becomes the value API Gateway extracted
//!    (`pathParameters`), kept as **one** segment, and a greedy `{proxy+}`
//!    the segments of its value.
//! 2. **A concrete path** ([`normalize_path`]), where nothing else exists
//!    (TOKEN events, `$default` routes, `certbound serve`): split on `/`
//!    first, then each segment percent-decoded. Anything a router or a
//!    backend may read differently is refused rather than guessed: an
//!    encoded `/` (`%2F`), a `\` (raw or `%5C`), an encoded dot segment
//!    (`%2E%2E`), a `;` (matrix parameters, `;jsessionid`), control
//!    characters, invalid percent-encoding or UTF-8, a segment that still
//!    holds a percent-escape once decoded (`%252e`: double encoding), a
//!    path that does not start with `/`. Literal `.`/`..` segments are resolved, repeated and
//!    trailing `/` folded, the query dropped.

use std::collections::HashMap;

/// Why a concrete path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path does not start with `/` (absolute-form URI, empty, `*`).
    #[error("request path does not start with '/'")]
    NotAbsolute,
    /// `%2F` inside a segment: one segment to some readers, two to others.
    #[error("request path contains an encoded '/' (%2F)")]
    EncodedSlash,
    /// `\` raw or encoded: some servers treat it as `/`.
    #[error("request path contains a backslash")]
    Backslash,
    /// `%2E`-encoded `.` or `..` segment.
    #[error("request path contains an encoded dot segment")]
    EncodedDotSegment,
    /// `;` raw or encoded: path parameters that servlet containers strip.
    #[error("request path contains ';' (path parameters)")]
    Semicolon,
    /// A control character (raw or encoded) or a `#`.
    #[error("request path contains a control character or '#'")]
    ControlCharacter,
    /// `%` not followed by two hex digits.
    #[error("request path has invalid percent-encoding")]
    BadPercentEncoding,
    /// The decoded bytes are not UTF-8.
    #[error("request path does not decode to UTF-8")]
    InvalidUtf8,
    /// A decoded segment still holds a percent-escape (`%252e`, `%25%32%46`):
    /// decoded once more, by a backend or framework, it is another path.
    #[error("request path is percent-encoded twice (%25 before an escape)")]
    DoubleEncoded,
}

/// A normalised concrete path: its decoded segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath {
    segments: Vec<String>,
}

impl NormalizedPath {
    /// The decoded segments (no empty ones).
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The path as text: `/` + segments joined by `/` (segments never hold
    /// a `/`, so this is unambiguous).
    pub fn as_path(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }
}

/// Normalises a concrete request path strictly (see the module docs). The
/// query (from the first `?`) is dropped.
pub fn normalize_path(raw: &str) -> Result<NormalizedPath, PathError> {
    let path = raw.split('?').next().unwrap_or("");
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let mut out: Vec<String> = Vec::new();
    for raw_seg in path[1..].split('/') {
        let seg = decode_segment(raw_seg)?;
        match seg.as_str() {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(seg),
        }
    }
    Ok(NormalizedPath { segments: out })
}

/// Percent-decodes one raw segment, refusing what could be read two ways.
fn decode_segment(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut encoded = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .ok_or(PathError::BadPercentEncoding)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(PathError::BadPercentEncoding);
                }
                let b = (hex_value(hex[0]) << 4) | hex_value(hex[1]);
                if b == b'/' {
                    return Err(PathError::EncodedSlash);
                }
                encoded = true;
                i += 3;
                b
            }
            b => {
                i += 1;
                b
            }
        };
        match b {
            b'\\' => return Err(PathError::Backslash),
            b';' => return Err(PathError::Semicolon),
            b'#' => return Err(PathError::ControlCharacter),
            b if b < 0x20 || b == 0x7f => return Err(PathError::ControlCharacter),
            _ => out.push(b),
        }
    }
    if out
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
    {
        return Err(PathError::DoubleEncoded);
    }
    let seg = String::from_utf8(out).map_err(|_| PathError::InvalidUtf8)?;
    if encoded && (seg == "." || seg == "..") {
        return Err(PathError::EncodedDotSegment);
    }
    Ok(seg)
}

fn hex_value(h: u8) -> u8 {
    match h {
        b'0'..=b'9' => h - b'0',
        b'a'..=b'f' => h - b'a' + 10,
        _ => h - b'A' + 10,
    }
}

/// The segments scope rules are matched against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTarget {
    segments: Vec<String>,
}

impl RouteTarget {
    /// A target from a normalised concrete path.
    pub fn from_path(path: &NormalizedPath) -> Self {
        Self {
            segments: path.segments.clone(),
        }
    }

    /// A target from an API Gateway route template (`/a/{id}/b`,
    /// `/{proxy+}`) and the path parameters API Gateway extracted. `None`
    /// when the template is not a path (`$default`) or a parameter has no
    /// value: then the concrete path has to do.
    pub fn from_template(template: &str, params: &HashMap<String, String>) -> Option<Self> {
        let rest = template.strip_prefix('/')?;
        let mut segments = Vec::new();
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        for (i, part) in parts.iter().enumerate() {
            match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) if name.ends_with('+') => {
                    if i + 1 != parts.len() {
                        return None;
                    }
                    let value = params.get(name.trim_end_matches('+'))?;
                    segments.extend(
                        value
                            .split('/')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned),
                    );
                }
                Some(name) => {
                    let value = params.get(name)?;
                    if value.is_empty() {
                        return None;
                    }
                    segments.push(value.clone());
                }
                None if part.is_empty() => {}
                None => segments.push((*part).to_owned()),
            }
        }
        Some(Self { segments })
    }

    /// The segments.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalize_path(p).map(|n| n.as_path())
    }

    #[test]
    fn resolves_what_every_reader_resolves_alike() {
        assert_eq!(norm("/a/./b/../c?q=1/../x").unwrap(), "/a/c");
        assert_eq!(norm("/../../").unwrap(), "/");
        assert_eq!(norm("/").unwrap(), "/");
        assert_eq!(norm("//a///b/").unwrap(), "/a/b");
        assert_eq!(norm("/%61dmin/x").unwrap(), "/admin/x");
        assert_eq!(norm("/caf%C3%A9").unwrap(), "/café");
        assert_eq!(norm("/a%20b").unwrap(), "/a b");
    }

    #[test]
    fn refuses_what_readers_may_read_differently() {
        use PathError::*;
        for (p, e) in [
            ("", NotAbsolute),
            ("example", NotAbsolute),
            ("http://h/admin", NotAbsolute),
            ("*", NotAbsolute),
            ("/accounts/1%2F2/balances", EncodedSlash),
            ("/accounts/1%2f2/balances", EncodedSlash),
            ("/public/..%2Fadmin", EncodedSlash),
            ("/a\\b", Backslash),
            ("/a%5Cb", Backslash),
            ("/public/%2E%2E/admin", EncodedDotSegment),
            ("/public/%2e/admin", EncodedDotSegment),
            ("/admin;jsessionid=1", Semicolon),
            ("/admin%3Bx", Semicolon),
            ("/a%00", ControlCharacter),
            ("/a%0A", ControlCharacter),
            ("/a\tb", ControlCharacter),
            ("/a#frag", ControlCharacter),
            ("/a%zz", BadPercentEncoding),
            ("/a%2", BadPercentEncoding),
            ("/a%+1", BadPercentEncoding),
            ("/a%FF", InvalidUtf8),
        ] {
            assert_eq!(norm(p), Err(e), "{p:?}");
        }
    }

    #[test]
    fn templates_keep_segment_boundaries() {
        let params: HashMap<String, String> = [
            ("id".to_owned(), "1/2".to_owned()),
            ("proxy".to_owned(), "x/y/z".to_owned()),
        ]
        .into_iter()
        .collect();
        let t = RouteTarget::from_template("/accounts/{id}/balances", &params).unwrap();
        assert_eq!(t.segments(), ["accounts", "1/2", "balances"]);
        let t = RouteTarget::from_template("/files/{proxy+}", &params).unwrap();
        assert_eq!(t.segments(), ["files", "x", "y", "z"]);
        let t = RouteTarget::from_template("/", &params).unwrap();
        assert!(t.segments().is_empty());
        assert!(RouteTarget::from_template("$default", &params).is_none());
        assert!(RouteTarget::from_template("/a/{missing}", &params).is_none());
        assert!(RouteTarget::from_template("/{proxy+}/x", &params).is_none());
    }
}
