//! Scope rules without code: a TOML file mapping method + path pattern to
//! the scopes a call needs. Used by the default `determine_scopes`.
//!
//! ```toml
//! # first matching rule wins; no match = no scope required
//! [[rule]]
//! method = "GET"          # HTTP method, or "*" / "ANY" for every method
//! path = "/example"       # "*" matches one segment; a trailing "/**" matches
//!                         # the prefix itself and anything below it
//! scopes = ["api:read"]
//! ```

use serde::Deserialize;

/// Why a rules file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file could not be read.
    #[error("cannot read scope rules {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The TOML is not valid or has unknown keys.
    #[error("scope rules are not valid TOML: {0}")]
    Toml(String),
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

/// One rule: method + path pattern → required scopes.
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

/// An ordered list of rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeRules {
    rules: Vec<Rule>,
}

impl ScopeRules {
    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self, RulesError> {
        let file: RulesFile = toml::from_str(text).map_err(|e| RulesError::Toml(e.to_string()))?;
        for (i, rule) in file.rule.iter().enumerate() {
            let bad = |reason: &str| RulesError::Rule {
                index: i + 1,
                reason: reason.to_owned(),
            };
            if rule.method.trim().is_empty() {
                return Err(bad("method is empty"));
            }
            if !rule.path.starts_with('/') {
                return Err(bad("path must start with '/'"));
            }
            let segments: Vec<&str> = rule.path.split('/').collect();
            if segments[..segments.len() - 1].contains(&"**") {
                return Err(bad("'**' is only allowed as the last segment"));
            }
            if rule.scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
                return Err(bad("a scope is empty or contains a space"));
            }
        }
        Ok(Self { rules: file.rule })
    }

    /// Reads a rules file.
    pub fn load(path: &std::path::Path) -> Result<Self, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|e| RulesError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
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

    /// The scopes of the first rule matching `method` and `path`; `None`
    /// when no rule matches. `path` is normalised first (query dropped,
    /// percent-decoded, dot segments resolved, repeated and trailing `/`
    /// folded).
    pub fn required(&self, method: &str, path: &str) -> Option<Vec<String>> {
        let path = normalize_path(path);
        self.rules
            .iter()
            .find(|r| method_matches(&r.method, method) && path_matches(&r.path, &path))
            .map(|r| r.scopes.clone())
    }
}

fn method_matches(pattern: &str, method: &str) -> bool {
    pattern == "*" || pattern.eq_ignore_ascii_case("ANY") || pattern.eq_ignore_ascii_case(method)
}

fn path_matches(pattern: &str, path: &str) -> bool {
    let pat: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for (i, p) in pat.iter().enumerate() {
        match *p {
            "**" => return true,
            "*" if seg.get(i).is_some_and(|s| !s.is_empty()) => {}
            literal if seg.get(i) == Some(&literal) => {}
            _ => return false,
        }
    }
    pat.len() == seg.len()
}

/// Normalises a request path for matching: drops query and fragment,
/// percent-decodes, folds `//`, resolves `.` and `..`.
pub fn normalize_path(raw: &str) -> String {
    let raw = raw.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    // A trailing slash is dropped too: `/example/` must not escape the
    // rule for `/example`.
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    "#;

    #[test]
    fn first_matching_rule_wins() {
        let r = ScopeRules::from_toml(RULES).unwrap();
        let req = |m, p| r.required(m, p);
        assert_eq!(req("GET", "/example"), Some(vec!["api:read".into()]));
        assert_eq!(req("get", "/example?x=1"), Some(vec!["api:read".into()]));
        assert_eq!(req("POST", "/example"), Some(vec!["api:write".into()]));
        assert_eq!(req("DELETE", "/example"), None);
        assert_eq!(
            req("GET", "/accounts/42/balances"),
            Some(vec!["accounts".into()])
        );
        assert_eq!(req("GET", "/accounts/42/balances/x"), None);
        // "/admin/**" covers "/admin" itself too (the safer reading).
        assert_eq!(
            req("PUT", "/admin"),
            Some(vec!["admin".into(), "api:write".into()])
        );
        assert_eq!(req("PUT", "/administrator"), None);
        assert_eq!(
            req("PUT", "/admin/x/y"),
            Some(vec!["admin".into(), "api:write".into()])
        );
        // path tricks resolve before matching
        assert_eq!(
            req("PUT", "/public/../admin/x"),
            Some(vec!["admin".into(), "api:write".into()])
        );
        assert_eq!(
            req("PUT", "/%61dmin/x"),
            Some(vec!["admin".into(), "api:write".into()])
        );
        assert_eq!(req("GET", "//example"), Some(vec!["api:read".into()]));
        assert_eq!(req("GET", "/example/"), Some(vec!["api:read".into()]));
    }

    #[test]
    fn bad_rules_are_refused_with_position() {
        for (text, needle) in [
            ("[[rule]]\nmethod='GET'\npath='x'\nscopes=[]", "#1"),
            ("[[rule]]\nmethod=''\npath='/x'\nscopes=[]", "method"),
            ("[[rule]]\nmethod='GET'\npath='/**/x'\nscopes=[]", "**"),
            ("[[rule]]\nmethod='GET'\npath='/x'\nscopes=['a b']", "space"),
            ("[[rule]]\nmethod='GET'\npath='/x'\nscope=['a']", "TOML"),
            ("[[rules]]\nmethod='GET'", "TOML"),
        ] {
            let e = ScopeRules::from_toml(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalize_path("/a/./b/../c?q#f"), "/a/c");
        assert_eq!(normalize_path("/../../"), "/");
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("/a/b/"), "/a/b");
        assert_eq!(normalize_path("/a%2Fb"), "/a/b");
    }
}
