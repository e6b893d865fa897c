//! Client certificates: decoding from every encoding a gateway or proxy
//! hands us, and the RFC 8705 `x5t#S256` thumbprint.
//!
//! Accepted encodings (auto-detected, see [`ClientCert::parse`]):
//! - PEM (API Gateway's `clientCertPem`); the first `CERTIFICATE` block is
//!   the leaf, anything after it (a chain) is ignored;
//! - URL-encoded PEM (nginx `$ssl_client_escaped_cert`);
//! - Envoy's `X-Forwarded-Client-Cert` (`…;Cert="<url-encoded PEM>"`);
//! - RFC 9440 `Client-Cert` (`:<base64 DER>:`);
//! - base64 DER (standard or URL-safe alphabet, padded or not, as Traefik
//!   sends it);
//! - raw DER bytes.
//!
//! Every path ends in [`ClientCert::from_der`], which refuses anything that
//! is not exactly one X.509 certificate.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use der::Decode;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why bytes could not be read as a client certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// Nothing was given.
    #[error("no certificate data")]
    Empty,
    /// PEM armour was found but holds no `CERTIFICATE` block or is broken.
    #[error("PEM data holds no readable CERTIFICATE block: {0}")]
    Pem(String),
    /// The text is not valid base64.
    #[error("certificate is neither PEM nor valid base64 DER")]
    Base64,
    /// Percent-decoding produced bytes that are not UTF-8.
    #[error("URL-encoded certificate does not decode to text")]
    UrlEncoding,
    /// An `X-Forwarded-Client-Cert` value without a usable `Cert=` element.
    #[error("X-Forwarded-Client-Cert value has no Cert= element")]
    Xfcc,
    /// The bytes are not a DER-encoded X.509 certificate.
    #[error("not a DER-encoded X.509 certificate: {0}")]
    NotCertificate(String),
}

/// A client certificate as presented over mutual TLS.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCert {
    der: Vec<u8>,
    thumbprint: String,
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
        let thumbprint = thumbprint(&der);
        Ok(Self { der, thumbprint })
    }

    /// Reads the leaf certificate from PEM text (first `CERTIFICATE` block).
    pub fn from_pem(text: &str) -> Result<Self, CertError> {
        let blocks = pem::parse_many(text.as_bytes()).map_err(|e| CertError::Pem(e.to_string()))?;
        let leaf = blocks
            .into_iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .ok_or_else(|| CertError::Pem("no CERTIFICATE block".into()))?;
        Self::from_der(leaf.into_contents())
    }

    /// Auto-detects the encoding (see the module documentation).
    pub fn parse(input: &[u8]) -> Result<Self, CertError> {
        // DER starts with a SEQUENCE tag (0x30) and a binary length byte;
        // no text encoding of a certificate starts like that.
        if input.len() > 1 && input[0] == 0x30 && !input[1].is_ascii_graphic() {
            return Self::from_der(input.to_vec());
        }
        let Ok(text) = std::str::from_utf8(input) else {
            // Not text: only raw DER is possible.
            return Self::from_der(input.to_vec());
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(CertError::Empty);
        }
        if text.len() >= 2 && text.starts_with(':') && text.ends_with(':') {
            // RFC 9440 Client-Cert: a structured-field byte sequence.
            return Self::from_der(decode_base64(&text[1..text.len() - 1])?);
        }
        if let Some(cert) = xfcc_cert(text) {
            return Self::parse_text(&percent_decode(cert)?);
        }
        if text.contains('%') {
            return Self::parse_text(&percent_decode(text)?);
        }
        Self::parse_text(text)
    }

    fn parse_text(text: &str) -> Result<Self, CertError> {
        let text = text.trim();
        if text.contains("-----BEGIN") {
            return Self::from_pem(text);
        }
        if text.is_empty() {
            return Err(CertError::Empty);
        }
        Self::from_der(decode_base64(text)?)
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
        let block = pem::Pem::new("CERTIFICATE", self.der.clone());
        pem::encode_config(
            &block,
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }
}

/// RFC 8705 `x5t#S256` of DER bytes.
pub fn thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(der))
}

/// Compares two thumbprints in constant time (for equal lengths).
pub fn thumbprints_match(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn decode_base64(text: &str) -> Result<Vec<u8>, CertError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(&compact).ok())
        .ok_or(CertError::Base64)
}

fn percent_decode(text: &str) -> Result<String, CertError> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| CertError::UrlEncoding)
}

/// Finds the `Cert=` value of the last element of an Envoy
/// `X-Forwarded-Client-Cert` header (the element added by the proxy closest
/// to us). Returns `None` when the text is not XFCC-shaped.
fn xfcc_cert(text: &str) -> Option<&str> {
    if text.contains("-----BEGIN") || !text.to_ascii_lowercase().contains("cert=") {
        return None;
    }
    let last = split_outside_quotes(text, ',').pop()?;
    split_outside_quotes(last, ';')
        .into_iter()
        .find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case("cert")
                .then(|| value.trim().trim_matches('"'))
        })
}

fn split_outside_quotes(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_with_specific_errors() {
        assert_eq!(ClientCert::parse(b""), Err(CertError::Empty));
        assert_eq!(ClientCert::parse(b"   \n"), Err(CertError::Empty));
        assert_eq!(ClientCert::parse(b"not a cert!"), Err(CertError::Base64));
        assert!(matches!(
            ClientCert::parse(b"aGVsbG8="),
            Err(CertError::NotCertificate(_))
        ));
        assert!(matches!(
            ClientCert::parse(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Err(CertError::NotCertificate(_))
        ));
        assert!(matches!(
            ClientCert::parse(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            Err(CertError::Pem(_))
        ));
        assert!(matches!(
            ClientCert::parse(&[0x30, 0x03, 0x02, 0x01, 0x00]),
            Err(CertError::NotCertificate(_))
        ));
        assert_eq!(ClientCert::parse(b"%FF%FE"), Err(CertError::UrlEncoding));
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
    fn xfcc_takes_cert_of_last_element() {
        let v = r#"By=spiffe://a;Cert="first",By=spiffe://b;Hash=x;Cert="%2D%2D-second";URI=u"#;
        assert_eq!(xfcc_cert(v), Some("%2D%2D-second"));
        assert_eq!(xfcc_cert("By=x;Hash=y"), None);
    }
}
