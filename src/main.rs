//! The `certbound` binary: Lambda runtime when `AWS_LAMBDA_RUNTIME_API` is
//! set, otherwise the CLI (`invoke`, `thumbprint`, `serve`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    certbound::fronts::cli::main(std::env::args_os()).await
}
