//! # certbound
//!
//! An authorizer for APIs protected with certificate-bound OAuth access
//! tokens (RFC 8705): it learns what the token is from a backend
//! (introspection at Authlete or any RFC 7662 endpoint), checks that it is
//! bound to the client certificate of the mutual-TLS connection
//! (`x5t#S256`) and that it carries the scopes the route needs, and answers
//! Allow, Deny, Unauthorized or Internal Server Error.
//!
//! The flow, top to bottom, is [`authorizer::authorize`]; the one decision
//! over what a backend answered is [`decision`]; the fronts in [`fronts`]
//! (Lambda, HTTP, CLI) only translate in and out; [`bootstrap`] wires
//! secrets, configuration, transport, backend and authorizer together.
#![warn(missing_docs)]

pub mod authorizer;
pub mod backends;
pub mod bootstrap;
pub mod cache;
pub mod cert;
pub mod config;
pub mod decision;
pub mod explain;
pub mod fronts;
#[doc(hidden)]
pub mod fuzzing;
pub mod logging;
pub mod request;
pub mod route;
pub mod scopes;
pub mod secrets;
pub mod telemetry;
pub mod transport;
pub mod usage;
pub mod verdict;

pub use authorizer::{authorize, Authorizer, Settings, StandardAuthorizer};
pub use backends::{
    Action, Answer, IntrospectionError, IntrospectionRequest, IntrospectionResponse, Introspector,
};
pub use request::AuthRequest;
pub use verdict::{Challenge, Context, ContextValue, Decision, Reason, Verdict};
