//! Criterion benchmarks of the core, no network: certificate decoding and
//! thumbprint, event → AuthRequest, the whole flow with an in-memory
//! introspector, and the response. Run: `make bench`.

use std::sync::Arc;

use async_trait::async_trait;
use certbound::cert::{CertFormat, ClientCert};
use certbound::config::HttpApiResponse;
use certbound::fronts::lambda::{handle_event, Event};
use certbound::{
    Action, Answer, IntrospectionError, IntrospectionRequest, IntrospectionResponse, Introspector,
    Settings, StandardAuthorizer,
};
use criterion::{criterion_group, criterion_main, Criterion};

const EVENT: &str = include_str!("../../events/rest-request.json");

struct Fixed(Answer);

#[async_trait]
impl Introspector for Fixed {
    async fn introspect(&self, _: &IntrospectionRequest) -> Result<Answer, IntrospectionError> {
        Ok(self.0.clone())
    }
}

fn pem() -> String {
    let event: serde_json::Value = serde_json::from_str(EVENT).unwrap();
    event["requestContext"]["identity"]["clientCert"]["clientCertPem"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn certs(c: &mut Criterion) {
    let pem = pem();
    let escaped =
        percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC).to_string();
    c.bench_function("cert: PEM → x5t#S256", |b| {
        b.iter(|| ClientCert::from_format(CertFormat::Pem, std::hint::black_box(&pem)).unwrap())
    });
    c.bench_function("cert: nginx URL-encoded PEM → x5t#S256", |b| {
        b.iter(|| {
            ClientCert::from_format(CertFormat::Nginx, std::hint::black_box(&escaped)).unwrap()
        })
    });
}

fn events(c: &mut Criterion) {
    let raw: serde_json::Value = serde_json::from_str(EVENT).unwrap();
    c.bench_function("event: REST REQUEST → AuthRequest", |b| {
        b.iter(|| {
            Event::parse(std::hint::black_box(raw.clone()))
                .unwrap()
                .to_auth_request()
                .unwrap()
        })
    });
}

fn flow(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut ok = IntrospectionResponse::new(Action::Ok);
    ok.result_code = Some("A056001".into());
    ok.subject = Some("john".into());
    ok.client_id = Some("1234".into());
    ok.scopes = Some(vec!["accounts".into()]);
    ok.expires_at_ms = Some(4_102_444_800_000);
    ok.certificate_thumbprint = Some("t9i3fFFsi40iaYFo6grXDTsBiCbSEynf5czFoatax44".into());
    let authorizer =
        StandardAuthorizer::new(Arc::new(Fixed(Answer::Decided(ok))), Settings::default());
    let raw: serde_json::Value = serde_json::from_str(EVENT).unwrap();
    let allowed = rt
        .block_on(handle_event(
            &authorizer,
            HttpApiResponse::Policy,
            raw.clone(),
            None,
        ))
        .unwrap();
    assert_eq!(allowed["policyDocument"]["Statement"][0]["Effect"], "Allow");
    c.bench_function("flow: event → Allow policy (in-memory AS)", |b| {
        b.iter(|| {
            rt.block_on(handle_event(
                &authorizer,
                HttpApiResponse::Policy,
                raw.clone(),
                None,
            ))
            .unwrap()
        })
    });
}

criterion_group!(benches, certs, events, flow);
criterion_main!(benches);
