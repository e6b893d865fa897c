//! The fronts: thin adapters that turn their input into an
//! [`crate::request::AuthRequest`] and a [`crate::verdict::Verdict`] into
//! their output.

pub mod cli;
pub mod cognito;
pub mod http;
pub mod lambda;
