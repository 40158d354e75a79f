//! Property tests: the parsers passport wrote itself never panic on arbitrary input, and
//! what they accept satisfies their contracts.

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn jwt_claim_decoding_never_panics(input in ".{0,400}") {
        let _ = passport_core::token::decode_claims(&input);
    }

    #[test]
    fn jwt_like_inputs_never_panic(a in "[A-Za-z0-9_=-]{0,60}", b in "[A-Za-z0-9_=-]{0,200}", c in "[A-Za-z0-9_.=-]{0,40}") {
        let _ = passport_core::token::decode_claims(&format!("{a}.{b}.{c}"));
    }

    #[test]
    fn host_check_never_panics_and_refuses_names(host in "[ -~]{0,80}") {
        if let Ok(value) = hyper::header::HeaderValue::from_str(&host) {
            let allowed = passport_core::server::host_allowed(Some(&value));
            if allowed {
                // Only IP literals and localhost get through, with an optional numeric port.
                let name = host.trim_start_matches('[').split(']').next().unwrap();
                let name = if host.starts_with('[') { name.to_string() } else {
                    host.rsplit_once(':').map_or(host.clone(), |(n, _)| n.to_string())
                };
                prop_assert!(name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok(), "{host}");
            }
        }
    }

    #[test]
    fn sanitised_session_names_are_always_valid(raw in "\\PC{0,200}") {
        let name = passport_core::aws::SessionName::sanitize(&raw);
        prop_assert!(name.as_str().parse::<passport_core::aws::SessionName>().is_ok(), "{raw:?} -> {name:?}");
    }

    #[test]
    fn role_arn_parsing_never_panics(arn in "(arn:aws[a-z-]{0,8}:iam::[0-9]{10,13}:role/)?\\PC{0,80}") {
        if let Ok(parsed) = arn.parse::<passport_core::aws::RoleArn>() {
            // Whatever parses round-trips, and its parts are slices of it.
            prop_assert_eq!(parsed.as_str(), arn.as_str());
            prop_assert!(arn.contains(parsed.account_id()) && arn.ends_with(parsed.name()));
        }
    }
}
