//! The cache-hit path, N times, for `valgrind --tool=callgrind` (instruction
//! counts are stable on a noisy machine): `make callgrind`. Not a criterion
//! benchmark: `cargo bench --bench hotpath -- N` runs it N times.

mod support;

use certbound::config::HttpApiResponse;
use certbound::fronts::lambda::handle_event;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let authorizer = support::cached();
    let raw: serde_json::Value = serde_json::from_str(support::EVENT).unwrap();
    let mut allowed = 0;
    for _ in 0..n {
        let out = rt
            .block_on(handle_event(
                &authorizer,
                HttpApiResponse::Policy,
                raw.clone(),
                None,
            ))
            .unwrap();
        allowed += usize::from(out["policyDocument"]["Statement"][0]["Effect"] == "Allow");
    }
    assert_eq!(allowed, n);
    println!("{n} cache-hit decisions");
}
