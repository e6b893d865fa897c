//! # certbound
//!
//! An authorizer for APIs protected with certificate-bound OAuth access
//! tokens (RFC 8705): it introspects the token, checks that it is bound to
//! the client certificate of the mutual-TLS connection (`x5t#S256`) and that
//! it carries the scopes the route needs, and answers Allow, Deny,
//! Unauthorized or Internal Server Error.
//!
//! The flow, top to bottom, is [`authorizer::authorize`]; the fronts in
//! [`fronts`] (Lambda, HTTP, CLI) only translate in and out.

pub mod authorizer;
pub mod cert;
pub mod config;
pub mod fronts;
pub mod introspection;
pub mod logging;
pub mod request;
pub mod scopes;
pub mod secrets;
pub mod verdict;

pub use authorizer::{authorize, Authorizer, Settings, StandardAuthorizer};
pub use introspection::{
    Action, IntrospectionError, IntrospectionRequest, IntrospectionResponse, Introspector,
};
pub use request::AuthRequest;
pub use verdict::{Context, ContextValue, Decision, Verdict};
