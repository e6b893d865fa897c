//! Client certificates: decoding from what a gateway or proxy hands us,
//! and the RFC 8705 `x5t#S256` thumbprint.
//!
//! Each source has **one** format, parsed strictly ([`CertFormat`]); a value
//! shaped for another format is refused, never reinterpreted:
//!
//! | format | header (default) | value |
//! |---|---|---|
//! | [`CertFormat::Pem`] | API Gateway `clientCertPem` | PEM; the first `CERTIFICATE` block is the leaf |
//! | [`CertFormat::Nginx`] | `X-Ssl-Cert` | `$ssl_client_escaped_cert`: URL-encoded PEM |
//! | [`CertFormat::Xfcc`] | `X-Forwarded-Client-Cert` | Envoy XFCC; the `Cert=` of the **last** element |
//! | [`CertFormat::Rfc9440`] | `Client-Cert` | `:<base64 DER>:` |
//! | [`CertFormat::Traefik`] | `X-Forwarded-Tls-Client-Cert` | URL-escaped base64 DER, `,`-separated chain, leaf first |
//!
//! Every path ends in [`ClientCert::from_der`], which refuses anything that
//! is not exactly one X.509 certificate. [`ClientCert::detect`] guesses the
//! encoding for the `certbound thumbprint` command only.

use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use der::Decode;
use subtle::ConstantTimeEq;

/// Why bytes could not be read as a client certificate. Messages never
/// hold the certificate itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// Nothing was given.
    #[error("no certificate data")]
    Empty,
    /// PEM armour was found but holds no `CERTIFICATE` block or is broken.
    #[error("PEM data holds no readable CERTIFICATE block: {0}")]
    Pem(String),
    /// The text is not valid base64.
    #[error("certificate is not valid base64 DER")]
    Base64,
    /// Percent-decoding failed or produced bytes that are not UTF-8.
    #[error("URL-encoded certificate does not decode to text")]
    UrlEncoding,
    /// An `X-Forwarded-Client-Cert` value that is not well formed.
    #[error("X-Forwarded-Client-Cert value is not usable: {0}")]
    Xfcc(&'static str),
    /// The value has the shape of another format than the configured one.
    #[error("certificate header is not in the configured {expected} format")]
    WrongFormat {
        /// The configured format.
        expected: CertFormat,
    },
    /// The certificate header was sent more than once.
    #[error("certificate header sent more than once")]
    Repeated,
    /// The bytes are not a DER-encoded X.509 certificate.
    #[error("not a DER-encoded X.509 certificate: {0}")]
    NotCertificate(String),
}

/// How a certificate is encoded by the component that hands it over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertFormat {
    /// PEM text (API Gateway's `clientCertPem`).
    Pem,
    /// nginx `$ssl_client_escaped_cert`: URL-encoded PEM.
    Nginx,
    /// Envoy `X-Forwarded-Client-Cert`.
    Xfcc,
    /// RFC 9440 `Client-Cert`: `:<base64 DER>:`.
    Rfc9440,
    /// Traefik `passTLSClientCert` (`pem: true`): URL-escaped base64 DER
    /// without armour, chain elements separated by `,`.
    Traefik,
}

impl CertFormat {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            CertFormat::Pem => "pem",
            CertFormat::Nginx => "nginx",
            CertFormat::Xfcc => "xfcc",
            CertFormat::Rfc9440 => "rfc9440",
            CertFormat::Traefik => "traefik",
        }
    }

    /// The header a proxy of this kind puts the certificate in.
    pub fn default_header(self) -> &'static str {
        match self {
            CertFormat::Pem | CertFormat::Nginx => "x-ssl-cert",
            CertFormat::Xfcc => "x-forwarded-client-cert",
            CertFormat::Rfc9440 => "client-cert",
            CertFormat::Traefik => "x-forwarded-tls-client-cert",
        }
    }
}

impl std::fmt::Display for CertFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CertFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "pem" => CertFormat::Pem,
            "nginx" => CertFormat::Nginx,
            "xfcc" | "envoy" => CertFormat::Xfcc,
            "rfc9440" => CertFormat::Rfc9440,
            "traefik" => CertFormat::Traefik,
            other => {
                return Err(format!(
                    "{other:?} is not nginx, xfcc, rfc9440, traefik or pem"
                ))
            }
        })
    }
}

/// A client certificate as presented over mutual TLS (cheap to clone).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCert {
    der: Arc<[u8]>,
    thumbprint: Arc<str>,
}

impl std::fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCert")
            .field("x5t#S256", &self.thumbprint)
            .field("der_len", &self.der.len())
            .finish()
    }
}

impl ClientCert {
    /// Accepts exactly one DER-encoded X.509 certificate (no trailing bytes).
    pub fn from_der(der: Vec<u8>) -> Result<Self, CertError> {
        if der.is_empty() {
            return Err(CertError::Empty);
        }
        x509_cert::Certificate::from_der(&der)
            .map_err(|e| CertError::NotCertificate(e.to_string()))?;
        let thumbprint = thumbprint(&der).into();
        Ok(Self {
            der: der.into(),
            thumbprint,
        })
    }

    /// Reads the leaf certificate from PEM text (first `CERTIFICATE` block).
    pub fn from_pem(text: &str) -> Result<Self, CertError> {
        if !text.trim_start().starts_with("-----BEGIN ") {
            return Err(CertError::Pem("no PEM armour".into()));
        }
        let blocks = pem::parse_many(text.as_bytes()).map_err(|e| CertError::Pem(e.to_string()))?;
        let leaf = blocks
            .into_iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .ok_or_else(|| CertError::Pem("no CERTIFICATE block".into()))?;
        Self::from_der(leaf.into_contents())
    }

    /// [`ClientCert::from_format`], remembering what it read: a client
    /// presents the same certificate on every call, and its thumbprint is
    /// not recomputed (PEM decoding, X.509 parsing and SHA-256 are most of
    /// an event's cost). The key is the whole encoded text, compared
    /// exactly, so nothing can map one certificate onto another; only
    /// certificates that parsed are kept (at most [`PARSED_CAPACITY`]).
    pub fn from_format_cached(format: CertFormat, value: &str) -> Result<Self, CertError> {
        static PARSED: OnceLock<moka::sync::Cache<String, (CertFormat, ClientCert)>> =
            OnceLock::new();
        let parsed = PARSED.get_or_init(|| moka::sync::Cache::new(PARSED_CAPACITY));
        let text = value.trim();
        if let Some((f, cert)) = parsed.get(text) {
            if f == format {
                return Ok(cert);
            }
        }
        let cert = Self::from_format(format, text)?;
        if text.len() <= 16 * 1024 {
            parsed.insert(text.to_owned(), (format, cert.clone()));
        }
        Ok(cert)
    }

    /// Reads a certificate in exactly `format`.
    pub fn from_format(format: CertFormat, value: &str) -> Result<Self, CertError> {
        let text = value.trim();
        if text.is_empty() {
            return Err(CertError::Empty);
        }
        let wrong = || CertError::WrongFormat { expected: format };
        match format {
            CertFormat::Pem => Self::from_pem(text),
            CertFormat::Nginx => {
                // nginx escapes the newlines: raw PEM, XFCC or a byte
                // sequence cannot come from $ssl_client_escaped_cert.
                if !text.starts_with("-----BEGIN") && !text.starts_with("%2D") {
                    return Err(wrong());
                }
                if text.contains(['\n', '"']) || text.contains("Cert=") {
                    return Err(wrong());
                }
                Self::from_pem(&percent_decode(text)?)
            }
            CertFormat::Xfcc => {
                let cert = xfcc_last_cert(text)?;
                let pem = percent_decode(&cert)?;
                if !pem.trim_start().starts_with("-----BEGIN") {
                    return Err(CertError::Xfcc("Cert= is not URL-encoded PEM"));
                }
                Self::from_pem(&pem)
            }
            CertFormat::Rfc9440 => {
                let inner = text
                    .strip_prefix(':')
                    .and_then(|t| t.strip_suffix(':'))
                    .filter(|t| !t.contains(':'))
                    .ok_or_else(wrong)?;
                let der = STANDARD.decode(inner).map_err(|_| CertError::Base64)?;
                Self::from_der(der)
            }
            CertFormat::Traefik => {
                if text.contains("-----") || text.starts_with(':') || text.contains('"') {
                    return Err(wrong());
                }
                let decoded = percent_decode(text)?;
                let leaf = decoded.split(',').next().unwrap_or("").trim();
                let compact: String = leaf.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                let der = STANDARD
                    .decode(&compact)
                    .or_else(|_| STANDARD_NO_PAD.decode(&compact))
                    .map_err(|_| CertError::Base64)?;
                Self::from_der(der)
            }
        }
    }

    /// Guesses the encoding (the `certbound thumbprint` command, for
    /// operators): raw DER, PEM, RFC 9440, XFCC, URL-encoded PEM, base64 /
    /// base64url DER. Never used on request data.
    pub fn detect(input: &[u8]) -> Result<Self, CertError> {
        // DER starts with a SEQUENCE tag (0x30) and a binary length byte;
        // no text encoding of a certificate starts like that.
        if input.len() > 1 && input[0] == 0x30 && !input[1].is_ascii_graphic() {
            return Self::from_der(input.to_vec());
        }
        let Ok(text) = std::str::from_utf8(input) else {
            return Self::from_der(input.to_vec());
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(CertError::Empty);
        }
        if text.starts_with("-----BEGIN") && text.contains('\n') {
            return Self::from_pem(text);
        }
        if text.starts_with(':') {
            return Self::from_format(CertFormat::Rfc9440, text);
        }
        if text.to_ascii_lowercase().contains("cert=") {
            return Self::from_format(CertFormat::Xfcc, text);
        }
        if text.contains('%') {
            return Self::detect(percent_decode(text)?.as_bytes());
        }
        if text.starts_with("-----BEGIN") {
            return Self::from_pem(text);
        }
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(&compact).ok())
            .ok_or(CertError::Base64)
            .and_then(Self::from_der)
    }

    /// The DER bytes of the certificate.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// `x5t#S256`: base64url (no padding) of the SHA-256 of the DER bytes.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The certificate as canonical PEM (LF line endings).
    pub fn to_pem(&self) -> String {
        let block = pem::Pem::new("CERTIFICATE", self.der.to_vec());
        pem::encode_config(
            &block,
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }
}

/// How many parsed certificates [`ClientCert::from_format_cached`] keeps.
pub const PARSED_CAPACITY: u64 = 1024;

/// RFC 8705 `x5t#S256` of DER bytes.
pub fn thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, der))
}

/// Compares two thumbprints in constant time (for equal lengths).
pub fn thumbprints_match(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn percent_decode(text: &str) -> Result<String, CertError> {
    // Strict: every '%' starts a valid escape.
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%'
            && !bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
        {
            return Err(CertError::UrlEncoding);
        }
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| CertError::UrlEncoding)
}

/// One XFCC element as `key=value` pairs (quotes removed, `\"` unescaped).
type XfccElement = Vec<(String, String)>;

/// Parses an Envoy `X-Forwarded-Client-Cert` value quote-aware: elements
/// separated by `,`, pairs by `;`, values optionally double-quoted with
/// `\"` escapes. Unbalanced quotes or a pair without `=` are refused.
fn parse_xfcc(text: &str) -> Result<Vec<XfccElement>, CertError> {
    let mut elements = Vec::new();
    let mut element: XfccElement = Vec::new();
    let (mut key, mut value) = (String::new(), String::new());
    let (mut in_value, mut quoted, mut was_quoted) = (false, false, false);
    let mut chars = text.chars();
    let finish_pair = |key: &mut String,
                       value: &mut String,
                       in_value: bool,
                       element: &mut XfccElement|
     -> Result<(), CertError> {
        if !in_value {
            return Err(CertError::Xfcc("empty element or pair without '='"));
        }
        if key.trim().is_empty() {
            return Err(CertError::Xfcc("pair without a key"));
        }
        element.push((
            key.trim().to_ascii_lowercase(),
            std::mem::take(value).trim().to_owned(),
        ));
        key.clear();
        Ok(())
    };
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '\\' => value.push(chars.next().ok_or(CertError::Xfcc("dangling escape"))?),
                '"' => quoted = false,
                c => value.push(c),
            }
            continue;
        }
        match c {
            '"' if in_value && value.trim().is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            '"' => return Err(CertError::Xfcc("misplaced quote")),
            '=' if !in_value => in_value = true,
            ';' | ',' => {
                finish_pair(&mut key, &mut value, in_value, &mut element)?;
                in_value = false;
                was_quoted = false;
                if c == ',' {
                    elements.push(std::mem::take(&mut element));
                }
            }
            c if in_value => {
                if was_quoted && !c.is_whitespace() {
                    return Err(CertError::Xfcc("text after a quoted value"));
                }
                value.push(c);
            }
            c => key.push(c),
        }
    }
    if quoted {
        return Err(CertError::Xfcc("unbalanced quotes"));
    }
    finish_pair(&mut key, &mut value, in_value, &mut element)?;
    elements.push(element);
    Ok(elements)
}

/// The `Cert=` value of the **last** XFCC element: the one the proxy
/// closest to us added (under `APPEND_FORWARD` the client's own come first).
fn xfcc_last_cert(text: &str) -> Result<String, CertError> {
    let elements = parse_xfcc(text)?;
    let last = elements.last().ok_or(CertError::Xfcc("no element"))?;
    let mut certs = last.iter().filter(|(k, _)| k == "cert");
    let cert = certs
        .next()
        .ok_or(CertError::Xfcc("last element has no Cert="))?;
    if certs.next().is_some() {
        return Err(CertError::Xfcc("last element has more than one Cert="));
    }
    Ok(cert.1.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_with_specific_errors() {
        assert_eq!(ClientCert::detect(b""), Err(CertError::Empty));
        assert_eq!(ClientCert::detect(b"   \n"), Err(CertError::Empty));
        assert_eq!(ClientCert::detect(b"not a cert!"), Err(CertError::Base64));
        assert!(matches!(
            ClientCert::detect(b"aGVsbG8="),
            Err(CertError::NotCertificate(_))
        ));
        assert!(matches!(
            ClientCert::detect(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Err(CertError::NotCertificate(_))
        ));
        assert!(matches!(
            ClientCert::detect(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            Err(CertError::Pem(_))
        ));
        assert!(matches!(
            ClientCert::detect(&[0x30, 0x03, 0x02, 0x01, 0x00]),
            Err(CertError::NotCertificate(_))
        ));
        assert_eq!(ClientCert::detect(b"%FF%FE"), Err(CertError::UrlEncoding));
        assert_eq!(ClientCert::detect(b"%ZZ"), Err(CertError::UrlEncoding));
    }

    #[test]
    fn thumbprint_is_base64url_sha256_without_padding() {
        // SHA-256("") = e3b0c442…; base64url without '='.
        assert_eq!(
            thumbprint(b""),
            "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }

    #[test]
    fn constant_time_compare_matches_only_equal_strings() {
        assert!(thumbprints_match("abc", "abc"));
        assert!(!thumbprints_match("abc", "abd"));
        assert!(!thumbprints_match("abc", "abcd"));
    }

    #[test]
    fn xfcc_is_split_quote_aware_and_the_last_element_wins() {
        let v = r#"By=spiffe://a;Cert="-----BEGIN%20first",By=spiffe://b;Hash=x;Cert="-----BEGIN%20second";URI=u"#;
        assert_eq!(xfcc_last_cert(v).unwrap(), "-----BEGIN%20second");
        // A quoted value may hold ',' ';' '=' and escaped quotes.
        let v = r#"Subject="CN=a,O=\"x;y\"";Cert="c1",By=b;Cert=c2"#;
        let parsed = parse_xfcc(v).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0][0].1, r#"CN=a,O="x;y""#);
        assert_eq!(xfcc_last_cert(v).unwrap(), "c2");
        for bad in [
            r#"Cert="unbalanced"#,
            r#"By=a;Cert="x"y"#,
            r#"By=a;Cert=x"y""#,
            "By=a;;Cert=x",
            "By=a;Cert",
            ",Cert=x",
            "Cert=x,",
            "=x",
        ] {
            assert!(parse_xfcc(bad).is_err(), "{bad}");
        }
        assert_eq!(
            xfcc_last_cert("Cert=a,By=b;Hash=c"),
            Err(CertError::Xfcc("last element has no Cert="))
        );
        assert_eq!(
            xfcc_last_cert("By=b;Cert=a;Cert=b"),
            Err(CertError::Xfcc("last element has more than one Cert="))
        );
    }

    #[test]
    fn formats_refuse_each_others_shapes() {
        use CertFormat::*;
        for (format, value) in [
            (Nginx, ":AAAA:"),
            (Nginx, "By=x;Cert=\"%2D%2D\""),
            (Nginx, "MIIB"),
            (Rfc9440, "-----BEGIN%20CERTIFICATE"),
            (Rfc9440, "MIIBAAAA"),
            (Traefik, ":MIIB:"),
            (Traefik, "-----BEGIN%20CERTIFICATE-----"),
        ] {
            assert_eq!(
                ClientCert::from_format(format, value),
                Err(CertError::WrongFormat { expected: format }),
                "{format} {value}"
            );
        }
        assert!(matches!(
            ClientCert::from_format(Xfcc, "%2D%2D%2D"),
            Err(CertError::Xfcc(_))
        ));
        assert!(matches!(
            ClientCert::from_format(Pem, "%2D%2D%2D"),
            Err(CertError::Pem(_))
        ));
    }
}
