//! Scope rules without code: a TOML file mapping method + path pattern to
//! the scopes a call needs. Used by the default `determine_scopes`.
//!
//! ```toml
//! # first matching rule wins
//! [[rule]]
//! method = "GET"                    # GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, "*" or "ANY"
//! path = "/accounts/{id}/balances"  # "*" or "{name}" = one segment;
//!                                   # a last "/**" or "/{name+}" = the prefix and everything below
//! scopes = ["accounts"]
//! ```
//!
//! Rules are matched against what the router routed ([`crate::route`]):
//! API Gateway's route template where the event has one, a strictly
//! normalised concrete path otherwise. Literal segments compare without
//! regard to case; when the first rule matching with exact case is another
//! one than the first matching without (a case-sensitive router routes
//! there), both rules' scopes are required. A `HEAD` request matches `GET`
//! rules. What happens to a request that matches no rule is the core's decision
//! ([`crate::decision::ScopeDefault`]).
//!
//! ```
//! use certbound::route::{normalize_path, RouteTarget};
//! use certbound::scopes::ScopeRules;
//!
//! let rules = ScopeRules::from_toml(r#"
//!     [[rule]]
//!     method = "GET"
//!     path = "/accounts/*/balances"
//!     scopes = ["accounts"]
//! "#).unwrap();
//! let target = RouteTarget::from_path(&normalize_path("/accounts/42/balances").unwrap());
//! assert_eq!(rules.required("HEAD", &target), Some(vec!["accounts".to_owned()]));
//! assert_eq!(rules.required("DELETE", &target), None);
//! ```

use serde::Deserialize;

use crate::route::RouteTarget;

/// Why a rules file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RulesError {
    /// The file could not be read.
    #[error("cannot read scope rules {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is not valid or has unknown keys.
    #[error("scope rules are not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    /// A rule is not usable.
    #[error("scope rule #{index}: {reason}")]
    Rule {
        /// 1-based position in the file.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<Rule>,
}

/// One rule as written: method + path pattern → required scopes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// HTTP method, or `*` / `ANY`.
    pub method: String,
    /// Path pattern starting with `/`.
    pub path: String,
    /// Scopes required (all of them).
    pub scopes: Vec<String>,
}

/// Methods a rule may name.
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// A literal segment (compared without regard to case).
    Literal(String),
    /// `*` or `{name}`: exactly one segment.
    One,
    /// A last `**` or `{name+}`: zero or more segments.
    Rest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Compiled {
    /// Upper-case method, or `None` for every method.
    method: Option<String>,
    pattern: Vec<Pattern>,
    scopes: Vec<String>,
    /// The rule as written (for `certbound explain`).
    source: Rule,
}

/// An ordered list of validated rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeRules {
    rules: Vec<Compiled>,
}

impl ScopeRules {
    /// Parses and validates TOML text. Every rule that could never match
    /// or could match something else than it says is refused with its
    /// position.
    pub fn from_toml(text: &str) -> Result<Self, RulesError> {
        let file: RulesFile = toml::from_str(text)?;
        let mut rules = Vec::with_capacity(file.rule.len());
        for (i, rule) in file.rule.iter().enumerate() {
            let compiled = compile(rule).map_err(|reason| RulesError::Rule {
                index: i + 1,
                reason,
            })?;
            rules.push(compiled);
        }
        // Literal segments match without regard to case: two rules that
        // differ only in case would make the first one win by accident.
        for (i, a) in file.rule.iter().enumerate() {
            for b in &file.rule[..i] {
                if a.path != b.path && a.path.eq_ignore_ascii_case(&b.path) {
                    return Err(RulesError::Rule {
                        index: i + 1,
                        reason: format!(
                            "path {:?} differs from {:?} only in case (matching ignores case)",
                            a.path, b.path
                        ),
                    });
                }
            }
        }
        Ok(Self { rules })
    }

    /// Reads a rules file.
    pub fn load(path: &std::path::Path) -> Result<Self, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The scopes of the first rule matching `method` and `target`; `None`
    /// when no rule matches. When the first rule matching with exact case
    /// is another one (a case-sensitive router routes there), its scopes
    /// are required too.
    pub fn required(&self, method: &str, target: &RouteTarget) -> Option<Vec<String>> {
        let (first, rule) = self.matching(method, target)?;
        let mut scopes = rule.scopes.clone();
        if let Some((_, exact)) = self
            .first_match(method, target, true)
            .filter(|(i, _)| *i != first)
        {
            for s in &exact.scopes {
                if !scopes.contains(s) {
                    scopes.push(s.clone());
                }
            }
        }
        Some(scopes)
    }

    /// The first rule matching `method` and `target`, with its position
    /// (1-based, as in start-up errors).
    pub fn matching(&self, method: &str, target: &RouteTarget) -> Option<(usize, &Rule)> {
        self.first_match(method, target, false)
    }

    /// `exact`: literal segments compare with case.
    fn first_match(
        &self,
        method: &str,
        target: &RouteTarget,
        exact: bool,
    ) -> Option<(usize, &Rule)> {
        let method = method.to_ascii_uppercase();
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| {
                method_matches(r.method.as_deref(), &method) && matches(&r.pattern, target, exact)
            })
            .map(|(i, r)| (i + 1, &r.source))
    }
}

fn compile(rule: &Rule) -> Result<Compiled, String> {
    let method = rule.method.as_str();
    if method.chars().any(char::is_whitespace) || method.is_empty() {
        return Err(format!("method {method:?} is empty or holds whitespace"));
    }
    let method = match method.to_ascii_uppercase().as_str() {
        "*" | "ANY" => None,
        m if METHODS.contains(&m) => Some(m.to_owned()),
        _ => {
            return Err(format!(
                "method {method:?} is not one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, * or ANY"
            ))
        }
    };
    let path = rule.path.as_str();
    if !path.starts_with('/') {
        return Err(format!("path {path:?} must start with '/'"));
    }
    if path
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '%' | ';' | '\\' | '?' | '#'))
    {
        return Err(format!(
            "path {path:?} holds whitespace, a control character or one of % ; \\ ? # (write paths decoded, without query)"
        ));
    }
    if path.len() > 1 && path.ends_with('/') {
        return Err(format!(
            "path {path:?} ends with '/' (trailing slashes are folded before matching; drop it)"
        ));
    }
    let parts: Vec<&str> = if path == "/" {
        Vec::new()
    } else {
        path[1..].split('/').collect()
    };
    let mut pattern = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let p = match *part {
            "" => return Err(format!("path {path:?} has an empty segment ('//')")),
            "." | ".." => return Err(format!("path {path:?} has a dot segment")),
            "**" if last => Pattern::Rest,
            "**" => return Err("'**' is only allowed as the last segment".into()),
            "*" => Pattern::One,
            p if p.starts_with('{') || p.ends_with('}') || p.contains(['{', '}']) => {
                let name = p
                    .strip_prefix('{')
                    .and_then(|n| n.strip_suffix('}'))
                    .filter(|n| !n.is_empty() && !n.contains(['{', '}']))
                    .ok_or_else(|| {
                        format!("segment {p:?} of {path:?}: a parameter is a whole segment {{name}} with balanced braces")
                    })?;
                match name.strip_suffix('+') {
                    Some(_) if last => Pattern::Rest,
                    Some(_) => {
                        return Err(format!(
                            "segment {p:?}: a greedy parameter is only allowed last"
                        ))
                    }
                    None => Pattern::One,
                }
            }
            p if p.contains('*') => {
                return Err(format!(
                    "segment {p:?} of {path:?}: '*' matches a whole segment only"
                ))
            }
            p => Pattern::Literal(p.to_owned()),
        };
        pattern.push(p);
    }
    if rule
        .scopes
        .iter()
        .any(|s| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err("a scope is empty or holds whitespace".into());
    }
    Ok(Compiled {
        method,
        pattern,
        scopes: rule.scopes.clone(),
        source: rule.clone(),
    })
}

fn method_matches(rule: Option<&str>, method: &str) -> bool {
    match rule {
        None => true,
        Some(m) => m == method || (m == "GET" && method == "HEAD"),
    }
}

/// `exact`: literal segments compare with case (else without).
fn matches(pattern: &[Pattern], target: &RouteTarget, exact: bool) -> bool {
    let segments = target.segments();
    let same = |s: &String, l: &String| {
        if exact {
            s == l
        } else {
            s.eq_ignore_ascii_case(l)
        }
    };
    for (i, p) in pattern.iter().enumerate() {
        match p {
            Pattern::Rest => return true,
            Pattern::One if segments.get(i).is_some_and(|s| !s.is_empty()) => {}
            Pattern::Literal(l) if segments.get(i).is_some_and(|s| same(s, l)) => {}
            _ => return false,
        }
    }
    pattern.len() == segments.len()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::route::normalize_path;

    const RULES: &str = r#"
        [[rule]]
        method = "GET"
        path = "/example"
        scopes = ["api:read"]
        [[rule]]
        method = "POST"
        path = "/example"
        scopes = ["api:write"]
        [[rule]]
        method = "*"
        path = "/accounts/*/balances"
        scopes = ["accounts"]
        [[rule]]
        method = "ANY"
        path = "/admin/**"
        scopes = ["admin", "api:write"]
        [[rule]]
        method = "get"
        path = "/users/{id}/keys/{rest+}"
        scopes = ["keys"]
        [[rule]]
        method = "GET"
        path = "/"
        scopes = []
    "#;

    fn req(r: &ScopeRules, m: &str, p: &str) -> Option<Vec<String>> {
        r.required(m, &RouteTarget::from_path(&normalize_path(p).unwrap()))
    }

    fn s(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|x| x.to_string()).collect())
    }

    #[test]
    fn first_matching_rule_wins() {
        let r = ScopeRules::from_toml(RULES).unwrap();
        assert_eq!(req(&r, "GET", "/example"), s(&["api:read"]));
        assert_eq!(req(&r, "get", "/example?x=1"), s(&["api:read"]));
        assert_eq!(req(&r, "HEAD", "/example"), s(&["api:read"]), "HEAD = GET");
        assert_eq!(req(&r, "POST", "/example"), s(&["api:write"]));
        assert_eq!(req(&r, "DELETE", "/example"), None);
        assert_eq!(req(&r, "GET", "/accounts/42/balances"), s(&["accounts"]));
        assert_eq!(req(&r, "GET", "/accounts/42/balances/x"), None);
        assert_eq!(req(&r, "PUT", "/admin"), s(&["admin", "api:write"]));
        assert_eq!(req(&r, "PUT", "/administrator"), None);
        assert_eq!(req(&r, "PUT", "/admin/x/y"), s(&["admin", "api:write"]));
        assert_eq!(req(&r, "PUT", "/ADMIN/x"), s(&["admin", "api:write"]));
        assert_eq!(req(&r, "GET", "/Example"), s(&["api:read"]));
        assert_eq!(
            req(&r, "PUT", "/public/../admin/x"),
            s(&["admin", "api:write"])
        );
        assert_eq!(req(&r, "PUT", "/%61dmin/x"), s(&["admin", "api:write"]));
        assert_eq!(req(&r, "GET", "//example"), s(&["api:read"]));
        assert_eq!(req(&r, "GET", "/example/"), s(&["api:read"]));
        assert_eq!(req(&r, "GET", "/users/7/keys"), s(&["keys"]));
        assert_eq!(req(&r, "GET", "/users/7/keys/a/b"), s(&["keys"]));
        assert_eq!(req(&r, "GET", "/"), s(&[]));
    }

    #[test]
    fn route_templates_match_rules_written_either_way() {
        let r = ScopeRules::from_toml(RULES).unwrap();
        let params: HashMap<String, String> = [
            ("id".to_owned(), "1/2".to_owned()),
            ("proxy".to_owned(), "admin/x".to_owned()),
        ]
        .into_iter()
        .collect();
        let t = RouteTarget::from_template("/accounts/{id}/balances", &params).unwrap();
        assert_eq!(
            r.required("GET", &t),
            s(&["accounts"]),
            "an id with '/' stays one segment"
        );
        let t = RouteTarget::from_template("/{proxy+}", &params).unwrap();
        assert_eq!(r.required("GET", &t), s(&["admin", "api:write"]));
        let braces = ScopeRules::from_toml(
            "[[rule]]\nmethod='GET'\npath='/accounts/{id}/balances'\nscopes=['a']",
        )
        .unwrap();
        let t = RouteTarget::from_template("/accounts/{accountId}/balances", &params);
        assert!(
            t.is_none(),
            "a parameter without value falls back to the path"
        );
        let t = RouteTarget::from_template("/accounts/{id}/balances", &params).unwrap();
        assert_eq!(braces.required("GET", &t), s(&["a"]));
        assert_eq!(req(&braces, "GET", "/accounts/9/balances"), s(&["a"]));
    }

    #[test]
    fn bad_rules_are_refused_with_position() {
        for (text, needle) in [
            ("[[rule]]\nmethod='GET'\npath='x'\nscopes=[]", "#1"),
            ("[[rule]]\nmethod=''\npath='/x'\nscopes=[]", "method"),
            ("[[rule]]\nmethod='GET '\npath='/x'\nscopes=[]", "whitespace"),
            ("[[rule]]\nmethod='FETCH'\npath='/x'\nscopes=[]", "not one of"),
            ("[[rule]]\nmethod='GET'\npath='/x/'\nscopes=[]", "ends with '/'"),
            ("[[rule]]\nmethod='GET'\npath='/x '\nscopes=[]", "whitespace"),
            ("[[rule]]\nmethod='GET'\npath='/a//b'\nscopes=[]", "empty segment"),
            ("[[rule]]\nmethod='GET'\npath='/a/{id/b'\nscopes=[]", "balanced"),
            ("[[rule]]\nmethod='GET'\npath='/a/{}/b'\nscopes=[]", "balanced"),
            ("[[rule]]\nmethod='GET'\npath='/a/x{id}'\nscopes=[]", "balanced"),
            ("[[rule]]\nmethod='GET'\npath='/a/{p+}/b'\nscopes=[]", "greedy"),
            ("[[rule]]\nmethod='GET'\npath='/a%2Fb'\nscopes=[]", "%"),
            ("[[rule]]\nmethod='GET'\npath='/a/../b'\nscopes=[]", "dot"),
            ("[[rule]]\nmethod='GET'\npath='/a*'\nscopes=[]", "whole segment"),
            ("[[rule]]\nmethod='GET'\npath='/**/x'\nscopes=[]", "**"),
            ("[[rule]]\nmethod='GET'\npath='/x'\nscopes=['a b']", "whitespace"),
            ("[[rule]]\nmethod='GET'\npath='/x'\nscope=['a']", "TOML"),
            ("[[rules]]\nmethod='GET'", "TOML"),
            (
                "[[rule]]\nmethod='GET'\npath='/x'\nscopes=[]\n[[rule]]\nmethod='GET'\npath='/X'\nscopes=['a']",
                "#2",
            ),
        ] {
            let e = ScopeRules::from_toml(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
