//! Scope rules as text (`ScopeRules::from_toml`) and request paths
//! (`normalize_path`, `RouteTarget::from_template`), then
//! `ScopeRules::required`.
//!
//! Asserts, beyond "no panic":
//! - a normalised path has no empty, `.` or `..` segment and no segment
//!   holding `/`; normalising its text again gives the same segments
//!   (when no segment decoded to a character that is special in a path);
//! - method names match in any case, and `HEAD` is answered as `GET` when
//!   the rule text names no `HEAD`;
//! - a rule matches whatever the ASCII case of the target: upper-casing
//!   the target never turns a match into no match, or back;
//! - a template with `{param}`s keeps each value as one segment.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use certbound::route::{normalize_path, RouteTarget};
use certbound::scopes::ScopeRules;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    paths: Vec<String>,
    template: String,
    params: Vec<(String, String)>,
    methods: Vec<String>,
    rules: String,
}

fuzz_target!(|input: Input| {
    let rules = ScopeRules::from_toml(&input.rules).ok();
    let params: HashMap<String, String> = input.params.iter().take(4).cloned().collect();
    let mut targets = Vec::new();
    for p in input.paths.iter().take(4) {
        let Ok(n) = normalize_path(p) else { continue };
        for s in n.segments() {
            assert!(!s.is_empty() && s != "." && s != ".." && !s.contains('/'));
        }
        let text = n.as_path();
        assert!(text.starts_with('/'));
        if n.segments()
            .iter()
            .all(|s| !s.contains(['%', '?', '#', ';', '\\']))
        {
            let again = normalize_path(&text).expect("a normalised path is a path");
            assert_eq!(
                again.segments(),
                n.segments(),
                "normalisation is not stable"
            );
        }
        targets.push(RouteTarget::from_path(&n));
    }
    if let Some(t) = RouteTarget::from_template(&input.template, &params) {
        let single = input
            .template
            .split('/')
            .filter(|part| part.starts_with('{') && part.ends_with('}') && !part.ends_with("+}"))
            .count();
        assert!(t.segments().len() >= single);
        targets.push(t);
    }
    let Some(rules) = rules else { return };
    let names_head = input.rules.to_ascii_uppercase().contains("HEAD");
    for t in &targets {
        let upper = RouteTarget::from_path(
            &normalize_path(&format!(
                "/{}",
                t.segments()
                    .iter()
                    .map(|s| s.to_ascii_uppercase())
                    .collect::<Vec<_>>()
                    .join("/")
            ))
            .unwrap_or_else(|_| normalize_path("/").expect("root")),
        );
        let same_shape = upper.segments().len() == t.segments().len();
        for m in input.methods.iter().take(3) {
            let a = rules.required(m, t);
            assert_eq!(a, rules.required(&m.to_ascii_lowercase(), t));
            assert_eq!(a, rules.required(&m.to_ascii_uppercase(), t));
            if same_shape
                && t.segments()
                    .iter()
                    .all(|s| s.is_ascii() && !s.contains(['%', '/', ';', '\\', '#', '?']))
            {
                assert_eq!(
                    a.is_some(),
                    rules.required(m, &upper).is_some(),
                    "case changed whether a rule matches"
                );
            }
        }
        if !names_head {
            assert_eq!(rules.required("HEAD", t), rules.required("GET", t));
        }
    }
});
