use std::time::Duration;

use events::{CancellationReason, OrderId};
use standard_webhooks::{ID, SIGNATURE, Secret, TIMESTAMP};

use super::*;

/// The Standard Webhooks specification's test vector.
const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SPEC_TS: i64 = 1_614_265_330;
const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

const ORDER: &str = "ord_0190b5a3c8e07d4f9a2b3c4d5e6f7a8b";

fn confirmed_body() -> Vec<u8> {
    format!(
        r#"{{"type":"order.confirmed","timestamp":"2024-07-01T12:00:00.123Z","data":{{"order_id":"{ORDER}","status":"confirmed","reason":null}}}}"#
    )
    .into_bytes()
}

fn cancelled_body() -> Vec<u8> {
    format!(
        r#"{{"type":"order.cancelled","timestamp":"2024-07-01T12:00:00Z","data":{{"order_id":"{ORDER}","status":"cancelled","reason":"out_of_stock"}}}}"#
    )
    .into_bytes()
}

/// The three headers of a message, as a list [`HeaderSource`] reads.
struct Headers([(&'static str, String); 3]);

impl Headers {
    fn new(id: &str, timestamp: i64, signature: String) -> Self {
        Self([
            (ID, id.to_owned()),
            (TIMESTAMP, timestamp.to_string()),
            (SIGNATURE, signature),
        ])
    }

    /// The headers order-api would send: `body` signed with `SPEC_SECRET`.
    fn signed(id: &str, timestamp: i64, body: &[u8]) -> Result<Self, SecretError> {
        let signature = Secret::parse(SPEC_SECRET)?.sign(id, timestamp, body);
        Ok(Self::new(id, timestamp, signature))
    }
}

impl HeaderSource for Headers {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

fn verifier() -> Result<CallbackVerifier, SecretError> {
    CallbackVerifier::new(SPEC_SECRET)
}

fn the_order() -> OrderId {
    ORDER.parse().expect("a valid order id")
}

#[tokio::test]
async fn the_specification_vector_passes_the_signature_check() -> Result<(), SecretError> {
    let verifier = verifier()?;
    let headers = Headers::new(SPEC_ID, SPEC_TS, SPEC_SIGNATURE.to_owned());
    // Signed correctly, but not an order callback: refused only at decoding, and not recorded,
    // so a retry meets the same answer rather than "replayed".
    for _ in 0..2 {
        let refused = verifier.verify_at(&headers, SPEC_BODY, SPEC_TS).await;
        assert!(
            matches!(refused, Err(CallbackError::UndecodableBody(_))),
            "{refused:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_signed_callback_decodes_into_its_type() -> Result<(), SecretError> {
    let verifier = verifier()?;
    let body = confirmed_body();
    let headers = Headers::signed("msg_1", SPEC_TS, &body)?;
    let verified = verifier.verify_at(&headers, &body, SPEC_TS).await;
    let verified = verified.expect("a genuine callback is accepted");
    assert_eq!(verified.webhook_id, "msg_1");
    assert!(matches!(
        verified.callback,
        OrderCallback::Confirmed { order_id, .. } if order_id == the_order()
    ));
    assert_eq!(
        verified.callback.timestamp().to_rfc3339(),
        "2024-07-01T12:00:00.123+00:00"
    );

    let body = cancelled_body();
    let headers = Headers::signed("msg_2", SPEC_TS, &body)?;
    let verified = verifier.verify_at(&headers, &body, SPEC_TS).await;
    assert!(matches!(
        verified.map(|verified| verified.callback),
        Ok(OrderCallback::Cancelled { order_id, reason: CancellationReason::OutOfStock, .. })
            if order_id == the_order()
    ));
    Ok(())
}

#[tokio::test]
async fn a_body_whose_status_contradicts_its_type_is_refused() -> Result<(), SecretError> {
    let body = String::from_utf8(confirmed_body())
        .expect("text")
        .replace(r#""status":"confirmed""#, r#""status":"cancelled""#)
        .into_bytes();
    let headers = Headers::signed("msg_1", SPEC_TS, &body)?;
    let refused = verifier()?.verify_at(&headers, &body, SPEC_TS).await;
    assert!(matches!(refused, Err(CallbackError::UndecodableBody(_))));
    Ok(())
}

#[tokio::test]
async fn forged_and_tampered_callbacks_are_refused() -> Result<(), SecretError> {
    let verifier = verifier()?;
    let body = confirmed_body();
    let other = Secret::parse(&Secret::generate())?;
    let forged = Headers::new("msg_1", SPEC_TS, other.sign("msg_1", SPEC_TS, &body));
    let refused = verifier.verify_at(&forged, &body, SPEC_TS).await;
    assert!(matches!(refused, Err(CallbackError::BadSignature)));

    let genuine = Headers::signed("msg_1", SPEC_TS, &body)?;
    let tampered = cancelled_body();
    let refused = verifier.verify_at(&genuine, &tampered, SPEC_TS).await;
    assert!(matches!(refused, Err(CallbackError::BadSignature)));

    // Neither was recorded: the genuine message still comes through.
    assert!(verifier.verify_at(&genuine, &body, SPEC_TS).await.is_ok());
    Ok(())
}

#[tokio::test]
async fn stale_and_future_timestamps_are_refused() -> Result<(), SecretError> {
    let verifier = verifier()?;
    let body = confirmed_body();
    let headers = Headers::signed("msg_1", SPEC_TS, &body)?;
    let stale = verifier.verify_at(&headers, &body, SPEC_TS + 301).await;
    assert!(matches!(
        stale,
        Err(CallbackError::Timestamp {
            age_s: 301,
            tolerance_s: 300
        })
    ));
    let future = verifier.verify_at(&headers, &body, SPEC_TS - 301).await;
    assert!(matches!(
        future,
        Err(CallbackError::Timestamp { age_s: -301, .. })
    ));
    // A longer tolerance lets the stale one through.
    let lenient = verifier.with_tolerance(Duration::from_secs(600));
    assert!(
        lenient
            .verify_at(&headers, &body, SPEC_TS + 301)
            .await
            .is_ok()
    );
    Ok(())
}

#[tokio::test]
async fn missing_and_malformed_headers_are_refused() -> Result<(), SecretError> {
    let verifier = verifier()?;
    let body = confirmed_body();
    let missing: [(&str, &str); 2] = [(ID, "msg_1"), (SIGNATURE, SPEC_SIGNATURE)];
    let refused = verifier.verify_at(missing.as_slice(), &body, SPEC_TS).await;
    assert!(matches!(
        refused,
        Err(CallbackError::MissingHeader(TIMESTAMP))
    ));
    let malformed: [(&str, &str); 3] = [
        (ID, "msg_1"),
        (TIMESTAMP, "yesterday"),
        (SIGNATURE, SPEC_SIGNATURE),
    ];
    let refused = verifier
        .verify_at(malformed.as_slice(), &body, SPEC_TS)
        .await;
    assert!(matches!(refused, Err(CallbackError::MalformedHeader(_))));
    Ok(())
}

#[tokio::test]
async fn a_repeated_id_is_refused_until_its_window_ends() -> Result<(), SecretError> {
    let verifier = verifier()?;
    let body = confirmed_body();
    let first = Headers::signed("msg_1", SPEC_TS, &body)?;
    assert!(verifier.verify_at(&first, &body, SPEC_TS).await.is_ok());
    // The same request again, and a retry signed anew under the same id: both repeats.
    let replayed = verifier.verify_at(&first, &body, SPEC_TS + 10).await;
    assert!(matches!(replayed, Err(CallbackError::Replayed { id }) if id == "msg_1"));
    let retry = Headers::signed("msg_1", SPEC_TS + 300, &body)?;
    let replayed = verifier.verify_at(&retry, &body, SPEC_TS + 300).await;
    assert!(matches!(replayed, Err(CallbackError::Replayed { .. })));
    // Once the first message's timestamp is out of the window, so is its id: the first
    // request is refused by its timestamp, a message signed anew is accepted.
    let late = verifier.verify_at(&first, &body, SPEC_TS + 301).await;
    assert!(matches!(late, Err(CallbackError::Timestamp { .. })));
    let retry = Headers::signed("msg_1", SPEC_TS + 301, &body)?;
    assert!(
        verifier
            .verify_at(&retry, &body, SPEC_TS + 301)
            .await
            .is_ok()
    );
    Ok(())
}

#[tokio::test]
async fn a_forgotten_id_is_accepted_again() -> Result<(), CallbackError> {
    let verifier = verifier().expect("the specification's secret");
    let body = confirmed_body();
    let headers = Headers::signed("msg_1", SPEC_TS, &body).expect("signed");
    verifier.verify_at(&headers, &body, SPEC_TS).await?;
    verifier.forget("msg_1").await?;
    verifier.verify_at(&headers, &body, SPEC_TS + 1).await?;
    Ok(())
}

#[test]
fn only_a_replay_is_acknowledged() {
    let replayed = CallbackError::Replayed { id: "msg_1".into() };
    assert_eq!(replayed.status(), 200);
    assert_eq!(CallbackError::BadSignature.status(), 401);
    assert_eq!(
        CallbackError::Timestamp {
            age_s: 301,
            tolerance_s: 300
        }
        .status(),
        401
    );
    assert_eq!(CallbackError::MissingHeader(ID).status(), 400);
}
