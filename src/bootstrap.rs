//! The composition root: secrets → configuration → transport → backend →
//! authorizer, in one place, for the CLI, the Lambda front and custom
//! binaries (see `examples/time_scopes.rs`).

use std::sync::Arc;

use crate::authorizer::StandardAuthorizer;
use crate::backends::authlete::AuthleteIntrospector;
use crate::backends::jwt::JwtBackend;
use crate::backends::limit::InflightLimit;
use crate::backends::rfc7662::Rfc7662Introspector;
use crate::backends::Introspector;
use crate::cache::CachedBackend;
use crate::config::{BackendConfig, Config, ConfigError, Env};
use crate::secrets::{fetch_overlay, SecretError};
use crate::transport::{build_client, ClientBuildError};

/// Why certbound could not start. Messages name the variable at fault and
/// never hold a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The secret could not be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A variable is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP client could not be built (CA file).
    #[error("CERTBOUND_INTROSPECTION_CA_FILE is invalid: {0}")]
    Transport(#[from] ClientBuildError),
}

/// What a front needs: the configuration and the ready-made authorizer.
pub struct Ready {
    /// The configuration read.
    pub config: Config,
    /// The authorizer built from it.
    pub authorizer: StandardAuthorizer,
}

/// Reads the secret named by `CERTBOUND_SECRET_ID` (if any) and the
/// environment, and validates everything.
pub async fn load_config(env: &Env<'_>) -> Result<Config, StartError> {
    let overlay = fetch_overlay(env).await?;
    // The overlay holds credentials only (checked by `secrets`).
    let config = Config::from_env(&env.with_overlay(&overlay))?;
    Ok(config)
}

/// The backend a configuration names, over one shared HTTP client, alone:
/// no in-flight cap, no cache (`certbound explain`).
pub fn bare_backend(config: &Config) -> Result<Arc<dyn Introspector>, StartError> {
    let client = build_client(&config.http)?;
    Ok(match &config.backend {
        BackendConfig::Authlete(c) => Arc::new(AuthleteIntrospector::new(client, c.clone())),
        BackendConfig::Rfc7662(c) => Arc::new(Rfc7662Introspector::new(client, c.clone())),
        BackendConfig::Jwt(c) => Arc::new(JwtBackend::new(client, c.clone())),
    })
}

/// Builds the backend a configuration names behind the in-flight cap
/// (`CERTBOUND_MAX_INFLIGHT`) and, when one is configured, the cache — in
/// that order, so that answers from the cache never wait for a permit.
pub fn backend(config: &Config) -> Result<Arc<dyn Introspector>, StartError> {
    let backend: Arc<dyn Introspector> = Arc::new(InflightLimit::new(
        bare_backend(config)?,
        config.max_inflight,
    ));
    Ok(if config.cache.enabled() {
        Arc::new(CachedBackend::new(backend, config.cache))
    } else {
        backend
    })
}

/// The ready-made authorizer for a configuration.
pub fn authorizer(config: &Config) -> Result<StandardAuthorizer, StartError> {
    crate::telemetry::build_info(config.backend.metrics_label());
    Ok(
        StandardAuthorizer::new(backend(config)?, config.settings.clone())
            .with_scope_rules(config.scope_rules.clone()),
    )
}

/// Everything, from an environment.
pub async fn start(env: &Env<'_>) -> Result<Ready, StartError> {
    let config = load_config(env).await?;
    let authorizer = authorizer(&config)?;
    Ok(Ready { config, authorizer })
}

/// Everything, from the process environment.
pub async fn start_from_process_env() -> Result<Ready, StartError> {
    start(&Env::process()).await
}

/// The Cognito trigger's configuration (its own variables only; the secret,
/// when set, may hold `CERTBOUND_COGNITO_CLIENT_CERTS`).
pub async fn trigger_config(
    env: &Env<'_>,
) -> Result<crate::fronts::cognito::TriggerConfig, StartError> {
    let overlay = fetch_overlay(env).await?;
    let config = crate::fronts::cognito::TriggerConfig::from_env(&env.with_overlay(&overlay))?;
    Ok(config)
}
