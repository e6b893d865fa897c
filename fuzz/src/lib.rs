//! Shared pieces of the fuzz targets: two fixed client certificates (A, B),
//! encoders that produce each certificate header format the way the real
//! producer does (API Gateway, nginx, Envoy, RFC 9440, Traefik), and a
//! Tokio runtime for the async flow.
//!
//! The encoders are written here from the producers' documentation, not
//! taken from certbound, so that a target can compare certbound's reading
//! with what was really encoded.

use std::future::Future;

use arbitrary::Arbitrary;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use certbound::cert::CertFormat;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Certificate A (EC P-256, self-signed, `CN=fuzz-client-a`): the one the
/// tokens of the invariant targets are bound to.
pub const CERT_A: &[u8] = include_bytes!("../data/a.der");
/// Certificate B (another key, `CN=fuzz-client-b`).
pub const CERT_B: &[u8] = include_bytes!("../data/b.der");
/// RFC 8705 appendix A's certificate (RSA), as PEM.
pub const CERT_RFC8705_PEM: &str = include_str!("../../tests/data/rfc8705-appendix-a.pem");

/// The DER of the RFC 8705 certificate.
pub fn cert_rfc8705() -> Vec<u8> {
    let body: String = CERT_RFC8705_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    STANDARD.decode(body.trim()).expect("fixture is base64")
}

/// `x5t#S256` computed here (SHA-256, base64url without padding).
pub fn thumbprint(der: &[u8]) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, der))
}

/// Runs a future on this thread's current-thread runtime (time enabled:
/// the flow has a deadline).
pub fn block_on<F: Future>(f: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("tokio runtime");
    }
    RT.with(|rt| rt.block_on(f))
}

/// Cosmetic choices a producer may make that do not change the
/// certificate: line endings, where the text starts and ends.
#[derive(Debug, Clone, Copy, Default, Arbitrary)]
pub struct Style {
    /// CRLF instead of LF in PEM.
    pub crlf: bool,
    /// No newline after the END line.
    pub no_final_newline: bool,
    /// Percent-encode every byte (nginx-style values then start `%2D`).
    pub escape_all: bool,
    /// Surrounding spaces (header values are trimmed by HTTP).
    pub padded: bool,
    /// XFCC `Cert=` without quotes (its encoding holds no `,;"`).
    pub unquoted: bool,
}

/// PEM with 64-character lines (OpenSSL, API Gateway's `clientCertPem`).
pub fn pem(der: &[u8], style: Style) -> String {
    let nl = if style.crlf { "\r\n" } else { "\n" };
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN CERTIFICATE-----{nl}");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push_str(nl);
    }
    out.push_str("-----END CERTIFICATE-----");
    if !style.no_final_newline {
        out.push_str(nl);
    }
    out
}

/// nginx `ngx_escape_uri(NGX_ESCAPE_URI_COMPONENT)`: everything but
/// unreserved characters escaped.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Envoy's XFCC `Cert=` encoding: only `\n`, space, `+`, `/`, `=` (and
/// `%` itself) escaped.
const ENVOY: &AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'+')
    .add(b'/')
    .add(b'=')
    .add(b'%')
    .add(b'"');

/// Go's `url.QueryEscape` (Traefik).
const QUERY: &AsciiSet = URI_COMPONENT;

fn escape_every_byte(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// One XFCC element carrying `der` (with the other keys Envoy sets).
pub fn xfcc_element(der: &[u8], style: Style, quoted: bool) -> String {
    let pem_text = pem(
        der,
        Style {
            crlf: false,
            ..style
        },
    );
    let cert = if style.escape_all {
        escape_every_byte(&pem_text)
    } else {
        utf8_percent_encode(&pem_text, ENVOY).to_string()
    };
    let hash: String = ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if quoted {
        format!("By=spiffe://cluster.local/ns/default/sa/api;Hash={hash};Cert=\"{cert}\";Subject=\"CN=client,O=Example\";URI=")
    } else {
        format!("By=spiffe://cluster.local/ns/default/sa/api;Hash={hash};Cert={cert}")
    }
}

/// The value a proxy of `format` puts in its header for the chain `chain`
/// (leaf first; XFCC: one element per entry, the proxy's own last).
pub fn encode(format: CertFormat, chain: &[&[u8]], style: Style) -> String {
    let leaf = chain.first().copied().unwrap_or_default();
    let value = match format {
        CertFormat::Pem => chain
            .iter()
            .map(|der| pem(der, style))
            .collect::<Vec<_>>()
            .join(""),
        CertFormat::Nginx => {
            let text = pem(
                leaf,
                Style {
                    crlf: false,
                    ..style
                },
            );
            if style.escape_all {
                escape_every_byte(&text)
            } else {
                utf8_percent_encode(&text, URI_COMPONENT).to_string()
            }
        }
        CertFormat::Xfcc => chain
            .iter()
            .map(|der| xfcc_element(der, style, !style.unquoted))
            .collect::<Vec<_>>()
            .join(","),
        CertFormat::Rfc9440 => format!(":{}:", STANDARD.encode(leaf)),
        CertFormat::Traefik => chain
            .iter()
            .map(|der| utf8_percent_encode(&STANDARD.encode(der), QUERY).to_string())
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    };
    if style.padded {
        format!("  {value} ")
    } else {
        value
    }
}

/// The formats, for `arbitrary` choices.
pub const FORMATS: [CertFormat; 5] = [
    CertFormat::Pem,
    CertFormat::Nginx,
    CertFormat::Xfcc,
    CertFormat::Rfc9440,
    CertFormat::Traefik,
];

/// A certificate format chosen by the fuzzer.
pub fn format(i: u8) -> CertFormat {
    FORMATS[usize::from(i) % FORMATS.len()]
}

/// Byte-level edits of a DER certificate, so that the presented
/// certificate may differ from A in any byte (and still parse, or not).
#[derive(Debug, Clone, Arbitrary)]
pub enum DerEdit {
    /// XOR one byte.
    Flip(u16, u8),
    /// Insert a byte.
    Insert(u16, u8),
    /// Remove a byte.
    Remove(u16),
    /// Cut the tail.
    Truncate(u16),
    /// Append bytes.
    Append(Vec<u8>),
}

/// Applies edits (positions taken modulo the length).
pub fn apply_der_edits(der: &[u8], edits: &[DerEdit]) -> Vec<u8> {
    let mut out = der.to_vec();
    for edit in edits.iter().take(4) {
        let at = |p: u16, len: usize| if len == 0 { 0 } else { usize::from(p) % len };
        match edit {
            DerEdit::Flip(p, x) if !out.is_empty() => {
                let i = at(*p, out.len());
                out[i] ^= x;
            }
            DerEdit::Insert(p, b) => {
                let i = at(*p, out.len() + 1);
                out.insert(i, *b);
            }
            DerEdit::Remove(p) if !out.is_empty() => {
                let i = at(*p, out.len());
                out.remove(i);
            }
            DerEdit::Truncate(p) => {
                let i = at(*p, out.len() + 1);
                out.truncate(i);
            }
            DerEdit::Append(bytes) => out.extend(bytes.iter().take(64)),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use certbound::cert::ClientCert;

    #[test]
    fn every_encoding_of_a_decodes_to_a() {
        for format in FORMATS {
            for style in [
                Style::default(),
                Style {
                    crlf: true,
                    no_final_newline: true,
                    escape_all: true,
                    padded: true,
                    unquoted: true,
                },
            ] {
                let text = encode(format, &[CERT_A], style);
                let cert = ClientCert::from_format(format, &text)
                    .unwrap_or_else(|e| panic!("{format} {style:?}: {e}"));
                assert_eq!(cert.der(), CERT_A);
                assert_eq!(cert.thumbprint(), thumbprint(CERT_A));
            }
        }
    }
}
