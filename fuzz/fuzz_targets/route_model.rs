//! Path normalisation + scope rules against a model of what routers and
//! backends route to (invariant: a path that a router reads as a protected
//! resource never gets through with a rule of a less protected one).
//!
//! Rules are generated from a small vocabulary (literals in two cases,
//! `*`, `{id}`, a final `**` / `{rest+}`; each protected by its own scope
//! or not at all) and written as TOML. Request paths are built from
//! pieces a client may send: words in any case, percent-encoded letters,
//! `.`/`..` raw or encoded, empty segments, encoded `/`, `\`, `;params`,
//! double encoding (`%2561`), queries, fragments, raw junk.
//!
//! The model: each reading a router or backend may make of the raw path
//! (decode then resolve dots and merge slashes, like nginx; split then
//! decode, like RFC 3986 routers; `\` as `/`; `;` parameters stripped;
//! percent-decoding applied twice), compared with case or without (ASCII),
//! reaches the **first** rule its segments match — the resource's scopes.
//! The whole flow (`authorize`, in-memory AS, token bound to the presented
//! certificate A, holding a fuzzed subset of the scopes) may answer Allow
//! only when, for every reading, the resource's scopes are all held.
#![no_main]

use std::collections::BTreeSet;
use std::sync::Arc;

use arbitrary::Arbitrary;
use certbound::backends::memory::MemoryBackend;
use certbound::backends::{Claims, Confirmation};
use certbound::cert::{CertFormat, ClientCert};
use certbound::decision::ScopeDefault;
use certbound::request::{parse_authorization, PresentedCert, Source};
use certbound::scopes::ScopeRules;
use certbound::{authorize, AuthRequest, Decision, Settings, StandardAuthorizer};
use certbound_fuzz::{block_on, thumbprint, CERT_A};
use libfuzzer_sys::fuzz_target;

const WORDS: [&str; 6] = ["admin", "Admin", "public", "accounts", "a", "keys"];
const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "DELETE", "get", "PUT"];
const RULE_METHODS: [&str; 4] = ["GET", "POST", "*", "ANY"];

#[derive(Debug, Clone, Copy, Arbitrary)]
enum RuleSeg {
    Word(u8),
    Star,
    Param,
}

#[derive(Debug, Arbitrary)]
struct RuleIn {
    method: u8,
    segs: Vec<RuleSeg>,
    /// 0: no final wildcard, 1: `/**`, 2: `/{rest+}`.
    rest: u8,
    protected: bool,
}

#[derive(Debug, Arbitrary)]
enum Piece {
    /// A vocabulary word, upper-casing the letters whose bit is set.
    Word(u8, u8),
    /// A vocabulary word with the letters whose bit is set percent-encoded
    /// (lower or upper hex).
    Encoded(u8, u8, bool),
    /// `%25` + the hex of the word's first letter + the rest (`%2561dmin`).
    DoubleEncoded(u8),
    Dot,
    DotDot,
    /// `.` / `..` with one dot or both encoded.
    EncodedDots(u8),
    Empty,
    /// `%2F` or `%2f` between two words.
    EncodedSlash(u8, u8),
    Backslash(u8),
    EncodedBackslash(u8),
    /// `word;jsessionid=x`
    Matrix(u8),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
struct Input {
    rules: Vec<RuleIn>,
    method: u8,
    pieces: Vec<Piece>,
    trailing_slash: bool,
    query: Option<String>,
    fragment: bool,
    /// Bit i set: the token holds scope `s{i}`.
    granted: u16,
    deny_unmatched: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Pat {
    Lit(String),
    One,
    Rest,
}

struct Model {
    method: Option<String>,
    pattern: Vec<Pat>,
    scope: Option<String>,
}

fn word(i: u8) -> &'static str {
    WORDS[usize::from(i) % WORDS.len()]
}

fn build_rules(rules: &[RuleIn]) -> (String, Vec<Model>) {
    let mut toml = String::new();
    let mut models = Vec::new();
    for (i, r) in rules.iter().take(6).enumerate() {
        let method = RULE_METHODS[usize::from(r.method) % RULE_METHODS.len()];
        let mut path = String::new();
        let mut pattern = Vec::new();
        for s in r.segs.iter().take(4) {
            match s {
                RuleSeg::Word(w) => {
                    path.push('/');
                    path.push_str(word(*w));
                    pattern.push(Pat::Lit(word(*w).to_owned()));
                }
                RuleSeg::Star => {
                    path.push_str("/*");
                    pattern.push(Pat::One);
                }
                RuleSeg::Param => {
                    path.push_str("/{id}");
                    pattern.push(Pat::One);
                }
            }
        }
        match r.rest % 3 {
            1 => {
                path.push_str("/**");
                pattern.push(Pat::Rest);
            }
            2 => {
                path.push_str("/{rest+}");
                pattern.push(Pat::Rest);
            }
            _ => {}
        }
        if path.is_empty() {
            path.push('/');
        }
        let scope = r.protected.then(|| format!("s{i}"));
        let scopes = scope
            .as_deref()
            .map_or(String::new(), |s| format!("\"{s}\""));
        toml.push_str(&format!(
            "[[rule]]\nmethod = \"{method}\"\npath = \"{path}\"\nscopes = [{scopes}]\n"
        ));
        models.push(Model {
            method: match method {
                "*" | "ANY" => None,
                m => Some(m.to_owned()),
            },
            pattern,
            scope,
        });
    }
    (toml, models)
}

fn hex(b: u8, lower: bool) -> String {
    if lower {
        format!("%{b:02x}")
    } else {
        format!("%{b:02X}")
    }
}

fn build_path(input: &Input) -> String {
    let mut path = String::new();
    for p in input.pieces.iter().take(6) {
        path.push('/');
        match p {
            Piece::Word(w, mask) => {
                for (i, c) in word(*w).chars().enumerate() {
                    if mask >> (i % 8) & 1 == 1 {
                        path.push(c.to_ascii_uppercase());
                    } else {
                        path.push(c);
                    }
                }
            }
            Piece::Encoded(w, mask, lower) => {
                for (i, c) in word(*w).chars().enumerate() {
                    if mask >> (i % 8) & 1 == 1 {
                        path.push_str(&hex(c as u8, *lower));
                    } else {
                        path.push(c);
                    }
                }
            }
            Piece::DoubleEncoded(w) => {
                let w = word(*w);
                path.push_str(&format!("%25{:02x}{}", w.as_bytes()[0], &w[1..]));
            }
            Piece::Dot => path.push('.'),
            Piece::DotDot => path.push_str(".."),
            Piece::EncodedDots(v) => path.push_str(
                [
                    ".%2e",
                    "%2e.",
                    "%2E%2E",
                    "%2e",
                    "%2E",
                    "%252e%252e",
                    "..%00",
                    "...",
                ][usize::from(*v) % 8],
            ),
            Piece::Empty => {}
            Piece::EncodedSlash(a, b) => {
                path.push_str(word(*a));
                path.push_str(if a % 2 == 0 { "%2F" } else { "%2f" });
                path.push_str(word(*b));
            }
            Piece::Backslash(w) => {
                path.push_str("..\\");
                path.push_str(word(*w));
            }
            Piece::EncodedBackslash(w) => {
                path.push_str("..%5C");
                path.push_str(word(*w));
            }
            Piece::Matrix(w) => {
                path.push_str(word(*w));
                path.push_str(";jsessionid=1");
            }
            Piece::Raw(s) => path.extend(s.chars().take(8)),
        }
    }
    if input.trailing_slash || path.is_empty() {
        path.push('/');
    }
    if input.fragment {
        path.push_str("#frag");
    }
    if let Some(q) = &input.query {
        path.push('?');
        path.extend(q.chars().take(8));
    }
    path
}

/// Percent-decodes every valid `%XX` (invalid ones stay), as bytes.
fn decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let h = &bytes[i + 1..i + 3];
            if let Ok(b) = u8::from_str_radix(std::str::from_utf8(h).unwrap_or("zz"), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Splits on `/`, drops empty and `.` segments, resolves `..`.
fn resolve(segments: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for s in segments {
        match s.as_slice() {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            _ => out.push(s),
        }
    }
    out
}

fn split(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes.split(|b| *b == b'/').map(<[u8]>::to_vec).collect()
}

/// The readings of a raw path (query and fragment removed first).
fn readings(raw: &str) -> Vec<Vec<Vec<u8>>> {
    let path = raw.split(['?', '#']).next().unwrap_or("").as_bytes();
    let strip_matrix = |segs: Vec<Vec<u8>>| -> Vec<Vec<u8>> {
        segs.into_iter()
            .map(|s| s.split(|b| *b == b';').next().unwrap_or_default().to_vec())
            .collect()
    };
    let backslashed: Vec<u8> = path
        .iter()
        .map(|b| if *b == b'\\' { b'/' } else { *b })
        .collect();
    let mut out = Vec::new();
    for p in [path.to_vec(), backslashed] {
        // nginx: decode, then resolve dot segments and merge slashes.
        let decoded = decode(&p);
        out.push(resolve(split(&decoded)));
        out.push(resolve(strip_matrix(split(&decoded))));
        let d2 = decode(&decoded);
        out.push(resolve(split(&d2)));
        let d2b: Vec<u8> = d2
            .iter()
            .map(|b| if *b == b'\\' { b'/' } else { *b })
            .collect();
        out.push(resolve(split(&d2b)));
        // RFC 3986 routers: split, resolve raw dot segments, decode each.
        out.push(resolve(split(&p)).into_iter().map(|s| decode(&s)).collect());
        out.push(resolve(split(&p).into_iter().map(|s| decode(&s)).collect()));
        out.push(
            resolve(strip_matrix(split(&p)))
                .into_iter()
                .map(|s| decode(&s))
                .collect(),
        );
    }
    out
}

fn seg_matches(p: &Pat, seg: &[u8], case: bool) -> bool {
    match p {
        Pat::Lit(l) if case => l.as_bytes() == seg,
        Pat::Lit(l) => l.as_bytes().eq_ignore_ascii_case(seg),
        Pat::One => !seg.is_empty(),
        Pat::Rest => true,
    }
}

fn rule_matches(m: &Model, method: &str, segs: &[Vec<u8>], case: bool) -> bool {
    let method = method.to_ascii_uppercase();
    let method_ok = match &m.method {
        None => true,
        Some(r) => *r == method || (r == "GET" && method == "HEAD"),
    };
    if !method_ok {
        return false;
    }
    for (i, p) in m.pattern.iter().enumerate() {
        if *p == Pat::Rest {
            return true;
        }
        match segs.get(i) {
            Some(s) if seg_matches(p, s, case) => {}
            _ => return false,
        }
    }
    m.pattern.len() == segs.len()
}

fuzz_target!(|input: Input| {
    let (toml, models) = build_rules(&input.rules);
    let Ok(rules) = ScopeRules::from_toml(&toml) else {
        return;
    };
    let method = METHODS[usize::from(input.method) % METHODS.len()];
    let raw = build_path(&input);
    let granted: BTreeSet<String> = (0..6)
        .filter(|i| input.granted >> i & 1 == 1)
        .map(|i| format!("s{i}"))
        .collect();

    let backend = Arc::new(MemoryBackend::new());
    backend.insert(
        "tok",
        Claims {
            active: true,
            scopes: granted.iter().cloned().collect(),
            exp: Some(4_102_444_800),
            cnf: Confirmation {
                x5t_s256: Some(thumbprint(CERT_A)),
                jkt: None,
            },
            ..Default::default()
        },
    );
    let mut settings = Settings::default();
    if input.deny_unmatched {
        settings.validation.scope_default = ScopeDefault::Deny;
    }
    let authorizer = StandardAuthorizer::new(backend, settings).with_scope_rules(rules);
    let mut request = AuthRequest::new(Source::Http, method, &raw, "");
    request.credentials = parse_authorization("Bearer tok");
    request.client_cert = PresentedCert::Present(
        ClientCert::from_format(
            CertFormat::Rfc9440,
            &certbound_fuzz::encode(CertFormat::Rfc9440, &[CERT_A], Default::default()),
        )
        .expect("certificate A"),
    );
    let verdict = block_on(authorize(&authorizer, &request));
    if verdict.decision != Decision::Allow {
        return;
    }
    for segs in readings(&raw) {
        for case in [true, false] {
            let reached = models.iter().find(|m| rule_matches(m, method, &segs, case));
            if let Some(scope) = reached.and_then(|m| m.scope.as_ref()) {
                assert!(
                    granted.contains(scope),
                    "{method} {raw:?} allowed without {scope}: a router reading {:?} (case-sensitive: {case}) reaches a rule requiring it\nrules:\n{toml}",
                    segs.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect::<Vec<_>>(),
                );
            }
        }
    }
});
