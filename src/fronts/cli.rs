//! Command line: `invoke`, `thumbprint`, `serve`, `lambda`.
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
use crate::fronts::lambda::{handle_event, HandlerError};
use crate::logging;

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
    },
    /// Serve the HTTP auth endpoint (nginx auth_request, forwardAuth, ext_authz).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "CERTBOUND_LISTEN", default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
    },
    /// Serve the Lambda Runtime API (automatic when AWS_LAMBDA_RUNTIME_API is set).
    Lambda,
}

/// Entry point of the binary.
pub async fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    logging::init();
    let args: Vec<OsString> = args.into_iter().collect();
    if args.len() <= 1 && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return lambda().await;
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Invoke { event } => invoke(&event).await,
        Command::Thumbprint { file } => thumbprint(&file),
        Command::Serve { listen } => serve(listen).await,
        Command::Lambda => lambda().await,
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

async fn invoke(event: &str) -> ExitCode {
    let bytes = match read_input(event) {
        Ok(b) => b,
        Err(e) => return usage_error(&format!("cannot read event {event}: {e}")),
    };
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

fn thumbprint(file: &str) -> ExitCode {
    let bytes = match read_input(file) {
        Ok(b) => b,
        Err(e) => return usage_error(&format!("cannot read {file}: {e}")),
    };
    match ClientCert::detect(&bytes) {
        Ok(cert) => {
            println!("{}", cert.thumbprint());
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(&format!("{file}: {e}")),
    }
}

async fn serve(listen: SocketAddr) -> ExitCode {
    let Ready { config, authorizer } = match start_from_process_env().await {
        Ok(ready) => ready,
        Err(e) => return usage_error(&e.to_string()),
    };
    match crate::fronts::http::serve(Arc::new(authorizer), config.serve, listen).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => usage_error(&format!("cannot serve on {listen}: {e}")),
    }
}

async fn lambda() -> ExitCode {
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
