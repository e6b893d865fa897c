//! Command line: `invoke`, `thumbprint`, `serve`, `lambda`, `explain`.
//!
//! Exit codes: 0 success; 1 the handler failed (`invoke`: the error JSON is
//! on stdout); 2 usage or configuration error (message on stderr).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::bootstrap::{start_from_process_env, Ready};
use crate::cert::ClientCert;
use crate::config::Env;
use crate::fronts::lambda::{handle_event, HandlerError};
use crate::logging;
use crate::telemetry::MetricsSettings;

#[derive(Debug, Parser)]
#[command(
    name = "certbound",
    version,
    about = "Authorizer for certificate-bound OAuth access tokens (RFC 8705)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one Lambda invocation on an event; print what the runtime would return.
    Invoke {
        /// Event JSON file, or `-` for stdin.
        #[arg(long, default_value = "-")]
        event: String,
    },
    /// Print the x5t#S256 of a certificate (PEM, URL-encoded PEM, base64 DER or DER).
    Thumbprint {
        /// Certificate file, or `-` for stdin.
        #[arg(default_value = "-")]
        file: String,
        /// Print `Name=ATTRIBUTE,Value=<x5t#S256>` for `aws cognito-idp
        /// admin-update-user-attributes --user-attributes` (default
        /// attribute: custom:cert_fingerprint).
        #[arg(long, value_name = "ATTRIBUTE", num_args = 0..=1, require_equals = true, default_missing_value = crate::fronts::cognito::DEFAULT_CERT_ATTRIBUTE)]
        cognito_attribute: Option<String>,
    },
    /// Serve the HTTP auth endpoint (nginx auth_request, forwardAuth, ext_authz).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "CERTBOUND_LISTEN", default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
    },
    /// Serve the Lambda Runtime API (automatic when AWS_LAMBDA_RUNTIME_API is set).
    Lambda,
    /// Explain, step by step, what certbound decides for one event or one
    /// proxied HTTP request (the real configuration and backend; the token
    /// and secrets are never printed). Exit 0 on Allow, 1 otherwise.
    Explain {
        /// A Lambda authorizer event (JSON file, or `-` for stdin).
        #[arg(long, conflicts_with = "request", required_unless_present = "request")]
        event: Option<String>,
        /// A raw HTTP/1.1 request as the proxy sends it to `certbound
        /// serve` (request line and headers; file, or `-` for stdin).
        #[arg(long)]
        request: Option<String>,
    },
}

/// Entry point of the binary: parses the command line, then runs the
/// command on the Tokio runtime that fits it — one thread for Lambda (one
/// event at a time: no worker threads to start, a faster cold start) and the
/// one-shot commands, `CERTBOUND_WORKER_THREADS` (default: the number of
/// CPUs) for `serve`.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    logging::init();
    let args: Vec<OsString> = args.into_iter().collect();
    let handler = match Handler::from_env() {
        Ok(h) => h,
        Err(e) => return usage_error(&e),
    };
    let command = if args.len() <= 1 && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        Command::Lambda
    } else {
        match Cli::try_parse_from(args) {
            Ok(cli) => cli.command,
            Err(e) => {
                let _ = e.print();
                return if e.use_stderr() {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
        }
    };
    let runtime = match &command {
        Command::Serve { .. } => match worker_threads() {
            Ok(n) => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(n)
                .enable_all()
                .build(),
            Err(e) => return usage_error(&e),
        },
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => return usage_error(&format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(async move {
        match command {
            Command::Invoke { event } => invoke(handler, &event).await,
            Command::Thumbprint {
                file,
                cognito_attribute,
            } => thumbprint(&file, cognito_attribute.as_deref()),
            Command::Serve { listen } => serve(listen).await,
            Command::Lambda => lambda(handler).await,
            Command::Explain { event, request } => explain(event, request).await,
        }
    })
}

fn addr_of(listener: &tokio::net::TcpListener) -> String {
    listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string())
}

fn worker_threads() -> Result<usize, String> {
    match std::env::var("CERTBOUND_WORKER_THREADS") {
        Err(_) => Ok(std::thread::available_parallelism().map_or(1, usize::from)),
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=256).contains(n))
            .ok_or_else(|| {
                format!("CERTBOUND_WORKER_THREADS is invalid: {v:?} is not a number in 1..=256")
            }),
    }
}

/// What the Lambda function (and `invoke`) runs: `CERTBOUND_HANDLER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handler {
    /// The API Gateway authorizer (default).
    Authorizer,
    /// The Cognito pre-token-generation trigger.
    CognitoPreToken,
}

impl Handler {
    fn from_env() -> Result<Self, String> {
        match std::env::var("CERTBOUND_HANDLER")
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "" | "authorizer" => Ok(Handler::Authorizer),
            "cognito-pre-token" => Ok(Handler::CognitoPreToken),
            other => Err(format!(
                "CERTBOUND_HANDLER is invalid: {other:?} is not authorizer or cognito-pre-token"
            )),
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("certbound: {message}");
    ExitCode::from(2)
}

fn read_input(name: &str) -> std::io::Result<Vec<u8>> {
    if name == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(name)
    }
}

fn print_json(value: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
}

async fn invoke(handler: Handler, event: &str) -> ExitCode {
    let bytes = match read_input(event) {
        Ok(b) => b,
        Err(e) => return usage_error(&format!("cannot read event {event}: {e}")),
    };
    if handler == Handler::CognitoPreToken {
        return invoke_trigger(&bytes).await;
    }
    let Ready { config, authorizer } = match start_from_process_env().await {
        Ok(ready) => ready,
        Err(e) => return usage_error(&e.to_string()),
    };
    let result = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(payload) => handle_event(&authorizer, config.http_api_response, payload, None).await,
        Err(e) => {
            let kind = crate::transport::json_error_kind(&e);
            tracing::warn!(reason = "event_invalid", error = kind, "event is not JSON");
            Err(HandlerError::InvalidEvent(format!(
                "event is not JSON ({kind})"
            )))
        }
    };
    match result {
        Ok(response) => {
            print_json(&response);
            ExitCode::SUCCESS
        }
        Err(e) => {
            print_json(&serde_json::json!({
                "errorType": e.error_type(),
                "errorMessage": e.to_string(),
            }));
            ExitCode::from(1)
        }
    }
}

async fn invoke_trigger(bytes: &[u8]) -> ExitCode {
    let config = match crate::bootstrap::trigger_config(&crate::config::Env::process()).await {
        Ok(c) => c,
        Err(e) => return usage_error(&e.to_string()),
    };
    let result = serde_json::from_slice::<serde_json::Value>(bytes)
        .map_err(|_| crate::fronts::cognito::TriggerError::NotATriggerEvent)
        .and_then(|event| crate::fronts::cognito::handle(&config, event));
    match result {
        Ok(response) => {
            print_json(&response);
            ExitCode::SUCCESS
        }
        Err(e) => {
            let d = lambda_runtime::Diagnostic::from(e);
            print_json(&serde_json::json!({
                "errorType": d.error_type,
                "errorMessage": d.error_message,
            }));
            ExitCode::from(1)
        }
    }
}

fn thumbprint(file: &str, cognito_attribute: Option<&str>) -> ExitCode {
    let bytes = match read_input(file) {
        Ok(b) => b,
        Err(e) => return usage_error(&format!("cannot read {file}: {e}")),
    };
    match ClientCert::detect(&bytes) {
        Ok(cert) => {
            match cognito_attribute {
                Some(attribute) => println!("Name={attribute},Value={}", cert.thumbprint()),
                None => println!("{}", cert.thumbprint()),
            }
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(&format!("{file}: {e}")),
    }
}

async fn serve(listen: SocketAddr) -> ExitCode {
    // Installed before the start, so that build information is recorded.
    let metrics = match MetricsSettings::from_env(&Env::process()) {
        Ok(m) => m,
        Err(e) => return usage_error(&e.to_string()),
    };
    let prometheus = match (metrics.enabled, metrics.listen) {
        (true, Some(addr)) => {
            let listener = match crate::telemetry::prometheus::bind(addr, listen).await {
                Ok(l) => l,
                Err(e) => return usage_error(&e.to_string()),
            };
            match crate::telemetry::prometheus::install() {
                Ok(handle) => Some((listener, handle)),
                Err(e) => return usage_error(&format!("cannot set up metrics: {e}")),
            }
        }
        _ => None,
    };
    let Ready { config, authorizer } = match start_from_process_env().await {
        Ok(ready) => ready,
        Err(e) => return usage_error(&e.to_string()),
    };
    if let Some((listener, handle)) = prometheus {
        tracing::info!(listen = %addr_of(&listener), path = crate::telemetry::prometheus::METRICS_PATH, "metrics listener ready");
        crate::telemetry::prometheus::spawn_upkeep(handle.clone());
        let app = crate::telemetry::prometheus::router(handle);
        tokio::spawn(crate::fronts::http::run(
            listener,
            app,
            config.serve.limits,
            crate::fronts::http::shutdown(),
        ));
    }
    match crate::fronts::http::serve(Arc::new(authorizer), config.serve, listen).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => usage_error(&format!("cannot serve on {listen}: {e}")),
    }
}

async fn explain(event: Option<String>, request: Option<String>) -> ExitCode {
    let (file, is_event) = match (event, request) {
        (Some(f), _) => (f, true),
        (None, Some(f)) => (f, false),
        (None, None) => return usage_error("explain needs --event FILE or --request FILE"),
    };
    let bytes = match read_input(&file) {
        Ok(b) => b,
        Err(e) => return usage_error(&format!("cannot read {file}: {e}")),
    };
    let config = match crate::bootstrap::load_config(&crate::config::Env::process()).await {
        Ok(c) => c,
        Err(e) => return usage_error(&e.to_string()),
    };
    let backend = match crate::bootstrap::bare_backend(&config) {
        Ok(b) => b,
        Err(e) => return usage_error(&e.to_string()),
    };
    let parsed = if is_event {
        crate::explain::request_from_event(&bytes)
    } else {
        crate::explain::request_from_http(&bytes, &config.serve)
    };
    let (request, origin) = match parsed {
        Ok(r) => r,
        Err(why) => {
            println!("certbound explain: {file}\n\n1. not understood: {why}\n\n5. outcome\n   InternalServerError (reason event_invalid; certbound serve: HTTP 500)");
            return ExitCode::from(1);
        }
    };
    let explained =
        crate::explain::explain(&config, backend, &request, &format!("{origin} ({file})")).await;
    print!("{}", explained.text);
    if explained.verdict.decision == crate::verdict::Decision::Allow {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn lambda(handler: Handler) -> ExitCode {
    if handler == Handler::CognitoPreToken {
        // Only the trigger's own settings; a secret may hold the client map.
        let config = match crate::bootstrap::trigger_config(&crate::config::Env::process()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "configuration error");
                return ExitCode::from(2);
            }
        };
        return match crate::fronts::cognito::run(config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "lambda runtime stopped");
                ExitCode::from(1)
            }
        };
    }
    match MetricsSettings::from_env(&Env::process()) {
        Ok(m) if m.enabled => {
            crate::telemetry::emf::install(&m.namespace);
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!(error = %e, "configuration error");
            return ExitCode::from(2);
        }
    }
    let result = if std::env::var_os("CERTBOUND_SECRET_ID").is_some() {
        // The secrets extension answers only during INVOKE: build lazily.
        crate::fronts::lambda::run_lazy(|| async {
            let Ready { config, authorizer } =
                start_from_process_env().await.map_err(|e| e.to_string())?;
            let authorizer: Arc<dyn crate::Authorizer> = Arc::new(authorizer);
            Ok((authorizer, config.http_api_response))
        })
        .await
    } else {
        // No network needed: fail at init, where a bad deployment shows.
        match start_from_process_env().await {
            Ok(Ready { config, authorizer }) => {
                crate::fronts::lambda::run(Arc::new(authorizer), config.http_api_response).await
            }
            Err(e) => {
                tracing::error!(error = %e, "configuration error");
                return ExitCode::from(2);
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "lambda runtime stopped");
            ExitCode::from(1)
        }
    }
}
