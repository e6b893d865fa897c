//! Certificate decoding in every format (`ClientCert::from_format` for
//! pem, nginx, xfcc, rfc9440, traefik; `ClientCert::detect` for raw DER,
//! base64, PEM, …; `PresentedCert::from_format`, whose parse cache is keyed
//! on the text).
//!
//! Structure-aware: a certificate (A, B, the RFC 8705 one, or edited DER
//! bytes) encoded by the real producer's rules (`certbound_fuzz::encode`),
//! then optionally edited as text; or raw bytes in a chosen format.
//!
//! Asserts:
//! - whatever decodes is one X.509 certificate whose thumbprint is the
//!   SHA-256 of its DER (computed here);
//! - a value encoded exactly as its producer does decodes to exactly the
//!   encoded DER when that DER is a certificate, and fails otherwise;
//!   decoded in another format it fails or gives the same DER (never
//!   another certificate);
//! - an XFCC chain yields its **last** element, a Traefik / PEM chain its
//!   **first** (the leaf);
//! - the cached path (`PresentedCert::from_format`) answers exactly what
//!   the uncached one does, whatever was decoded before;
//! - `detect` on raw DER gives that DER.
#![no_main]

use arbitrary::Arbitrary;
use certbound::cert::{CertFormat, ClientCert};
use certbound::request::PresentedCert;
use certbound_fuzz::{
    apply_der_edits, cert_rfc8705, encode, format, thumbprint, DerEdit, Style, CERT_A, CERT_B,
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum TextEdit {
    Insert(u16, char),
    Remove(u16),
    Replace(u16, char),
    Truncate(u16),
    Append(String),
    Prepend(String),
}

#[derive(Debug, Arbitrary)]
enum Input {
    /// Bytes as text in one format, and through `detect`.
    Raw { format: u8, data: Vec<u8> },
    /// A chain encoded by the producer's rules.
    Built {
        format: u8,
        /// Indices into A, B, RFC 8705, edited A (leaf first).
        chain: Vec<u8>,
        der_edits: Vec<DerEdit>,
        style: Style,
        text_edits: Vec<TextEdit>,
        /// Also decode with this format.
        other: u8,
    },
}

fn edit_text(text: &mut String, edits: &[TextEdit]) {
    for e in edits.iter().take(4) {
        let n = text.chars().count();
        let at = |p: u16, len: usize| {
            let i = if len == 0 {
                0
            } else {
                usize::from(p) % (len + 1)
            };
            text.char_indices().nth(i).map_or(text.len(), |(b, _)| b)
        };
        match e {
            TextEdit::Insert(p, c) => {
                let i = at(*p, n);
                text.insert(i, *c);
            }
            TextEdit::Remove(p) if n > 0 => {
                let i = at(*p, n - 1);
                text.remove(i);
            }
            TextEdit::Replace(p, c) if n > 0 => {
                let i = at(*p, n - 1);
                text.remove(i);
                text.insert(i, *c);
            }
            TextEdit::Truncate(p) => {
                let i = at(*p, n);
                text.truncate(i);
            }
            TextEdit::Append(s) => text.push_str(s),
            TextEdit::Prepend(s) => text.insert_str(0, s),
            _ => {}
        }
    }
}

/// What every successful decode must satisfy.
fn sound(cert: &ClientCert) {
    assert_eq!(cert.thumbprint(), thumbprint(cert.der()));
    let again = ClientCert::from_der(cert.der().to_vec()).expect("decoded DER parses again");
    assert_eq!(again.thumbprint(), cert.thumbprint());
}

/// The uncached and the cached paths agree.
fn decode_both(format: CertFormat, text: &str) -> Result<ClientCert, ()> {
    let plain = ClientCert::from_format(format, text);
    let cached = PresentedCert::from_format(format, Some(text));
    match (&plain, &cached) {
        (Ok(a), PresentedCert::Present(b)) => assert_eq!(a.der(), b.der()),
        (Err(_), PresentedCert::Invalid(_)) => {}
        (Err(_), PresentedCert::Absent) => assert!(text.trim().is_empty()),
        _ => panic!("cached and uncached decoding disagree ({format})"),
    }
    if let Ok(c) = &plain {
        sound(c);
    }
    plain.map_err(|_| ())
}

fuzz_target!(|input: Input| match input {
    Input::Raw { format: f, data } => {
        if let Ok(text) = std::str::from_utf8(&data) {
            let _ = decode_both(format(f), text);
        }
        if let Ok(c) = ClientCert::detect(&data) {
            sound(&c);
        }
        if let Ok(c) = ClientCert::from_der(data.clone()) {
            sound(&c);
            assert_eq!(c.der(), data.as_slice());
            let detected = ClientCert::detect(&data).expect("raw DER is detected");
            assert_eq!(detected.der(), data.as_slice());
        }
    }
    Input::Built {
        format: f,
        chain,
        der_edits,
        style,
        text_edits,
        other,
    } => {
        let rfc = cert_rfc8705();
        let edited = apply_der_edits(CERT_A, &der_edits);
        let pick = |i: &u8| -> &[u8] {
            match i % 4 {
                0 => CERT_A,
                1 => CERT_B,
                2 => &rfc,
                _ => &edited,
            }
        };
        let chain: Vec<&[u8]> = chain.iter().take(3).map(pick).collect();
        if chain.is_empty() {
            return;
        }
        let format = format(f);
        let mut text = encode(format, &chain, style);
        // The certificate the producer meant: XFCC's is the last element's,
        // the others' the leaf.
        let meant = if format == CertFormat::Xfcc {
            chain[chain.len() - 1]
        } else {
            chain[0]
        };
        let valid = ClientCert::from_der(meant.to_vec()).is_ok();
        if text_edits.is_empty() {
            let decoded = decode_both(format, &text);
            match &decoded {
                Ok(c) => assert_eq!(c.der(), meant, "{format}: another certificate"),
                Err(()) => assert!(!valid, "{format}: a producer's value was refused"),
            }
            if chain.len() == 1 {
                let other = certbound_fuzz::format(other);
                if let Ok(c) = decode_both(other, &text) {
                    assert_eq!(
                        c.der(),
                        meant,
                        "{format} read as {other}: another certificate"
                    );
                }
            }
            let _ = ClientCert::detect(text.as_bytes()).map(|c| sound(&c));
        } else {
            edit_text(&mut text, &text_edits);
            let _ = decode_both(format, &text);
            let _ = ClientCert::detect(text.as_bytes()).map(|c| sound(&c));
        }
    }
});
