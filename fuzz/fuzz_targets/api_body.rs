//! Fuzz target `api_body`: any bytes as the body of `POST /v1/tasks`, through
//! `berth_agent::api::decode_submission` with the default (refuse everything) host policy.
//! A bare `containerDefinitions` array (first non-blank byte `[`) comes with the family
//! `fuzz`, as `?family=` gives it; anything else without one.
//!
//! Checked: no panic; an error is a 4xx with a non-empty message, and serializes to the
//! JSON the API answers with.
#![no_main]

use berth_agent::api::decode_submission;
use berth_agent::config::HostPolicy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let family = (data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')).then_some("fuzz");
    if let Err(err) = decode_submission(data, family, &HostPolicy::default(), 1) {
        assert!(err.status().is_client_error(), "status {} for a bad body: {err:?}", err.status());
        assert!(!err.message.trim().is_empty(), "an error with an empty message: {err:?}");
        let json = serde_json::to_string(&err).expect("an API error serializes to JSON");
        assert!(!json.is_empty());
    }
});
