//! Budget: verifying and parsing a 4 KB event stays under 20 µs on one core.

use checkout_core::{
    config::Secret,
    stripe::Event,
    webhook::{DEFAULT_TOLERANCE_SECS, Verifier, WebhookSecrets, sign},
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

/// A `checkout.session.completed` event padded with metadata to 4 KB, the size of a typical
/// session event with customer details.
fn four_kb_event() -> Vec<u8> {
    let mut body = String::from(
        r#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","api_version":"2025-03-31.basil","created":1700000000,"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},"type":"checkout.session.completed","data":{"object":{"id":"cs_test_a1b2c3","object":"checkout.session","amount_subtotal":2000,"amount_total":2000,"currency":"eur","customer_details":{"email":"jenny@example.com","name":"Jenny Rosen","address":{"city":"Paris","country":"FR","line1":"1 rue de Rivoli","postal_code":"75001"}},"payment_status":"paid","status":"complete","metadata":{"#,
    );
    let mut i = 0;
    while body.len() < 4000 {
        body.push_str(&format!(
            r#""key_{i}":"value value value value value {i}","#
        ));
        i += 1;
    }
    body.push_str(r#""last":"x"}}}}"#);
    body.into_bytes()
}

fn verify_and_parse(c: &mut Criterion) {
    let body = four_kb_event();
    let now = 1_700_000_000;
    let secrets = WebhookSecrets::parse("whsec_bench_old,whsec_bench_current").unwrap();
    let verifier = Verifier::new(secrets, DEFAULT_TOLERANCE_SECS);
    // Signed with the second secret: the worst case tries both.
    let header = sign(&Secret::new("whsec_bench_current"), now, &body);

    let mut group = c.benchmark_group("webhook");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("verify_and_parse_4kb", |b| {
        b.iter(|| {
            verifier
                .verify(Some(black_box(header.as_bytes())), black_box(&body), now)
                .unwrap();
            let event = Event::parse(black_box(&body)).unwrap();
            black_box(event.object_ref().unwrap());
        });
    });
    group.finish();
}

criterion_group!(benches, verify_and_parse);
criterion_main!(benches);
