//! Certificates made here (rcgen): a CA and serving certificates it signs, for the
//! self-managed mode and for tests.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// A CA: its certificate (PEM) and key (PEM).
#[derive(Clone)]
pub struct Ca {
    /// Its subject's common name (the issuer name of what it signs).
    pub common_name: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A serving certificate and its key (PEM).
pub struct Serving {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving")
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

fn err(e: rcgen::Error) -> String {
    format!("certificate generation: {e}")
}

/// The CA's parameters: also what signing with it needs (its name and key), so a CA read
/// back from PEM signs without parsing its certificate.
fn ca_params(common_name: &str) -> Result<CertificateParams, String> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// A new CA valid for `days` (from an hour ago, for clock skew).
pub fn new_ca(common_name: &str, days: i64) -> Result<Ca, String> {
    let key = KeyPair::generate().map_err(err)?;
    let mut params = ca_params(common_name)?;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
    let cert = params.self_signed(&key).map_err(err)?;
    Ok(Ca {
        common_name: common_name.to_owned(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A serving certificate for `dns_names` (IP addresses are accepted too), signed by `ca`.
pub fn serving(ca: &Ca, dns_names: &[String], days: i64) -> Result<Serving, String> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(err)?;
    let issuer = rcgen::Issuer::new(ca_params(&ca.common_name)?, ca_key);
    let key = KeyPair::generate().map_err(err)?;
    let mut params = CertificateParams::new(dns_names.to_vec()).map_err(err)?;
    params.distinguished_name.push(
        DnType::CommonName,
        dns_names.first().map_or("passport-webhook", String::as_str),
    );
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
    let cert = params.signed_by(&key, &issuer).map_err(err)?;
    Ok(Serving {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}
