//! SigV4 verification (Authorization-header form) for the STS emulator.
//!
//! `parse_authorization` splits the header; `signature` recomputes the signature for a
//! request; `verify` compares in constant time. The caller looks the access key up and
//! decides which error code each failure maps to.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    /// `YYYYMMDD`
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lower-case header names, in the order given (they must be sorted).
    pub signed_headers: Vec<String>,
    pub signature: String,
}

impl Authorization {
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

pub fn parse_authorization(header: &str) -> Result<Authorization, ParseError> {
    let rest = header
        .strip_prefix(ALGORITHM)
        .ok_or_else(|| ParseError(format!("Unsupported AWS 'algorithm': expected {ALGORITHM}")))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let missing =
        |what: &str| ParseError(format!("Authorization header requires '{what}' parameter"));
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed = signed.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let fields: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, terminator] = fields[..] else {
        return Err(ParseError(format!(
            "Credential should be scoped to a valid region, not '{credential}'"
        )));
    };
    if terminator != "aws4_request" || date.len() != 8 || akid.is_empty() {
        return Err(ParseError(format!(
            "Credential should be scoped correctly, not '{credential}'"
        )));
    }
    Ok(Authorization {
        access_key_id: akid.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: signed.split(';').map(|h| h.to_ascii_lowercase()).collect(),
        signature: signature.to_ascii_lowercase(),
    })
}

/// The request as the verifier sees it.
#[derive(Debug, Clone)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path as sent (already URI-encoded by the client).
    pub path: &'a str,
    /// The raw query string without `?`.
    pub query: &'a str,
    /// All headers (name, value); names in any case, repeated names allowed.
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            // `+` in a query is a literal plus for SigV4, not a space.
            let k = dec(&k.replace('+', "%2B"));
            let v = dec(&v.replace('+', "%2B"));
            (uri_encode(&k), uri_encode(&v))
        })
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn header_value(headers: &[(String, String)], name: &str) -> Option<String> {
    let values: Vec<String> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    if values.is_empty() {
        None
    } else {
        Some(values.join(","))
    }
}

/// The canonical request for `req` given the signed header list.
pub fn canonical_request(req: &SignedRequest<'_>, signed_headers: &[String]) -> String {
    let path = if req.path.is_empty() { "/" } else { req.path };
    let mut headers = String::new();
    for name in signed_headers {
        let value = header_value(&req.headers, name).unwrap_or_default();
        headers.push_str(&format!("{name}:{value}\n"));
    }
    let payload_hash = header_value(&req.headers, "x-amz-content-sha256")
        .unwrap_or_else(|| hex::encode(Sha256::digest(req.body)));
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        path,
        canonical_query(req.query),
        headers,
        signed_headers.join(";"),
        payload_hash
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The hex signature for `req` signed at `amz_date` (`YYYYMMDDTHHMMSSZ`) with `secret`.
pub fn signature(
    req: &SignedRequest<'_>,
    auth: &Authorization,
    amz_date: &str,
    secret: &str,
) -> String {
    let creq = canonical_request(req, &auth.signed_headers);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{}\n{}",
        auth.scope(),
        hex::encode(Sha256::digest(creq.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), auth.date.as_bytes());
    let k_region = hmac(&k_date, auth.region.as_bytes());
    let k_service = hmac(&k_region, auth.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    hex::encode(hmac(&k_signing, string_to_sign.as_bytes()))
}

/// Why verification failed (before the key lookup, which the caller does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Malformed(String),
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
    )]
    Mismatch,
    #[error("Signature expired: {0} is now earlier than {1} ({2} - 15 min.)")]
    Expired(String, String, String),
}

/// Parse `YYYYMMDDTHHMMSSZ` (SigV4's basic ISO 8601) to Unix seconds.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' || !s.is_ascii() {
        return None;
    }
    let extended = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    );
    let t = humantime::parse_rfc3339(&extended).ok()?;
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

/// Verify `req` against `secret`. `now` (Unix seconds) enables the ±15 minute date check.
pub fn verify(
    req: &SignedRequest<'_>,
    auth: &Authorization,
    secret: &str,
    now: Option<i64>,
) -> Result<(), VerifyError> {
    let amz_date = header_value(&req.headers, "x-amz-date")
        .ok_or_else(|| VerifyError::Malformed("Missing X-Amz-Date header".into()))?;
    let when = parse_amz_date(&amz_date)
        .ok_or_else(|| VerifyError::Malformed(format!("Invalid X-Amz-Date: {amz_date}")))?;
    if !amz_date.starts_with(&auth.date) {
        return Err(VerifyError::Mismatch);
    }
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(VerifyError::Malformed(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    if let Some(now) = now
        && (now - when).abs() > 15 * 60
    {
        let fmt = |t: i64| {
            passport_core::clock::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64),
            )
            .replace(['-', ':'], "")
        };
        return Err(VerifyError::Expired(fmt(when), fmt(now - 900), fmt(now)));
    }
    let expected = signature(req, auth, &amz_date, secret);
    if expected.as_bytes().ct_eq(auth.signature.as_bytes()).into() {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// `get-vanilla` from the public AWS SigV4 test suite.
    #[test]
    fn aws_test_suite_get_vanilla() {
        let header = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        let auth = parse_authorization(header).unwrap();
        assert_eq!(auth.access_key_id, "AKIDEXAMPLE");
        assert_eq!(auth.region, "us-east-1");
        assert_eq!(auth.service, "service");
        let req = SignedRequest {
            method: "GET",
            path: "/",
            query: "",
            headers: vec![
                ("Host".into(), "example.amazonaws.com".into()),
                ("X-Amz-Date".into(), "20150830T123600Z".into()),
            ],
            body: b"",
        };
        assert_eq!(
            canonical_request(&req, &auth.signed_headers),
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        verify(&req, &auth, SECRET, None).unwrap();
        assert_eq!(
            verify(&req, &auth, "wrong", None),
            Err(VerifyError::Mismatch)
        );
        // The date check: 2015 is long ago.
        assert!(matches!(
            verify(&req, &auth, SECRET, Some(1_700_000_000)),
            Err(VerifyError::Expired(..))
        ));
        assert!(verify(&req, &auth, SECRET, Some(1_440_938_160 + 60)).is_ok());
        // A changed header breaks the signature.
        let mut tampered = req.clone();
        tampered.headers[0].1 = "example2.amazonaws.com".into();
        assert_eq!(
            verify(&tampered, &auth, SECRET, None),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn canonical_query_sorts_and_encodes() {
        assert_eq!(canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
        assert_eq!(canonical_query("k=a%20b&x"), "k=a%20b&x=");
        assert_eq!(canonical_query("k=a+b"), "k=a%2Bb");
        assert_eq!(canonical_query("k=%7e%2f"), "k=~%2F");
    }

    #[test]
    fn amz_dates() {
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20000229T000000Z"), Some(951_782_400));
        assert_eq!(parse_amz_date("2015-08-30T12:36:00Z"), None);
    }

    #[test]
    fn malformed_headers() {
        assert!(parse_authorization("Basic abc").is_err());
        assert!(
            parse_authorization("AWS4-HMAC-SHA256 Credential=A/2015/r/s/aws4_request").is_err()
        );
        assert!(
            parse_authorization(
                "AWS4-HMAC-SHA256 Credential=A/r/s/aws4_request, SignedHeaders=host, Signature=00"
            )
            .is_err()
        );
    }
}
