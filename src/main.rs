//! The `certbound` binary: Lambda runtime when `AWS_LAMBDA_RUNTIME_API` is
//! set, otherwise the CLI (`invoke`, `thumbprint`, `serve`).

/// mimalloc: a decision allocates a few dozen small objects (the event's
/// JSON, strings, maps); glibc's allocator was 40 % of a cached decision's
/// instructions (`make callgrind`), mimalloc roughly halves that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    certbound::fronts::cli::main(std::env::args_os())
}
