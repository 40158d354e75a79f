//! Property tests: the parsers passport wrote itself never panic on arbitrary input, and
//! what they accept satisfies their contracts.

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn jwt_claim_decoding_never_panics(input in ".{0,400}") {
        let _ = passport::token::decode_claims(&input);
    }

    #[test]
    fn jwt_like_inputs_never_panic(a in "[A-Za-z0-9_=-]{0,60}", b in "[A-Za-z0-9_=-]{0,200}", c in "[A-Za-z0-9_.=-]{0,40}") {
        let _ = passport::token::decode_claims(&format!("{a}.{b}.{c}"));
    }

    #[test]
    fn host_check_never_panics_and_refuses_names(host in "[ -~]{0,80}") {
        if let Ok(value) = hyper::header::HeaderValue::from_str(&host) {
            let allowed = passport::server::host_allowed(Some(&value));
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
        let name = passport::config::sanitize_session_name(&raw);
        prop_assert!(passport::config::validate_session_name(&name).is_ok(), "{raw:?} -> {name:?}");
    }

    #[test]
    fn role_arn_validation_never_panics(arn in "\\PC{0,120}") {
        let _ = passport::config::validate_role_arn(&arn);
    }
}
