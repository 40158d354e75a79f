//! AWS identifiers, parsed once at the edge and valid by construction afterwards.
//!
//! Every flag, annotation or file that names a role, a region or a session name goes
//! through `FromStr` here, so the rest of the code never re-validates a string and cannot
//! disagree with itself about what a valid one is. The rules are STS's own:
//! `RoleArn` 20..2048 characters, `RoleSessionName` `[\w+=,.@-]{2,64}`.

use std::fmt;
use std::str::FromStr;

/// `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoleArn {
    arn: String,
    /// Byte offsets into `arn`, so the parts are borrowed without re-parsing.
    partition_end: usize,
    account_start: usize,
    name_start: usize,
}

impl RoleArn {
    pub fn as_str(&self) -> &str {
        &self.arn
    }

    /// `aws`, `aws-cn`, `aws-us-gov`, ...
    pub fn partition(&self) -> &str {
        &self.arn[4..self.partition_end]
    }

    /// The 12-digit account id.
    pub fn account_id(&self) -> &str {
        &self.arn[self.account_start..self.account_start + 12]
    }

    /// The role's name, without its path: what IMDS lists and assumed-role ARNs carry.
    pub fn name(&self) -> &str {
        &self.arn[self.name_start..]
    }
}

impl FromStr for RoleArn {
    type Err = &'static str;

    fn from_str(arn: &str) -> Result<Self, Self::Err> {
        const SHAPE: &str = "expected arn:aws:iam::ACCOUNT_ID:role/NAME";
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [prefix, partition, service, region, account, resource] = parts[..] else {
            return Err(SHAPE);
        };
        if prefix != "arn"
            || !partition.starts_with("aws")
            || service != "iam"
            || !region.is_empty()
        {
            return Err(SHAPE);
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err("the account id must be 12 digits");
        }
        let Some(path_and_name) = resource.strip_prefix("role/") else {
            return Err("not a role ARN (the resource must start with role/)");
        };
        let name = path_and_name.rsplit('/').next().unwrap_or_default();
        if name.is_empty() || name.len() > 64 {
            return Err("the role name must be 1 to 64 characters");
        }
        if !(20..=2048).contains(&arn.len()) {
            return Err("STS accepts role ARNs of 20 to 2048 characters");
        }
        let partition_end = 4 + partition.len();
        let account_start = partition_end + 1 + service.len() + 1 + region.len() + 1;
        Ok(Self {
            arn: arn.to_owned(),
            partition_end,
            account_start,
            name_start: arn.len() - name.len(),
        })
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

/// An AWS region name such as `eu-west-1`: lower-case letters, digits and dashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Region(String);

impl Region {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Region {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shaped = s.len() <= 32
            && s.contains('-')
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if shaped {
            Ok(Self(s.to_owned()))
        } else {
            Err("not a region name (e.g. eu-west-1)")
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An STS `RoleSessionName`: 2 to 64 characters of `[\w+=,.@-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionName(String);

impl SessionName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Make any text acceptable to STS: characters it refuses become `-`; names over 64
    /// characters keep their start and a hash of the whole, so distinct long pod names stay
    /// distinct; empty or one-character names get a `passport` prefix.
    pub fn sanitize(raw: &str) -> Self {
        let mut name: String = raw
            .trim()
            .chars()
            .map(|c| if session_char_ok(c) { c } else { '-' })
            .collect();
        if name.len() > 64 {
            // FNV-1a: stable across builds and platforms, no dependency needed.
            let hash = raw.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            name.truncate(55);
            name = format!("{name}-{:08x}", hash as u32);
        }
        Self(match name.len() {
            0 => "passport".into(),
            1 => format!("passport-{name}"),
            _ => name,
        })
    }
}

fn session_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

impl FromStr for SessionName {
    type Err = &'static str;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        if !(2..=64).contains(&name.len()) {
            return Err("must be 2 to 64 characters");
        }
        if !name.chars().all(session_char_ok) {
            return Err("may contain only letters, digits and _+=,.@-");
        }
        Ok(Self(name.to_owned()))
    }
}

impl fmt::Display for SessionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name a served role goes by: `default` for `--role-arn` (or its chain), and the
/// `NAME` of each `--extra-role NAME=ARN`, served at `/v1/credentials/NAME`, in metrics
/// labels and in logs. A DNS label (1 to 63 of `[a-z0-9-]`, alphanumeric at both ends), so
/// it is safe in a URL path, a Prometheus label and a Kubernetes field alike.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleName(String);

impl RoleName {
    /// The role given by `--role-arn` (and `--chain-role-arn`).
    pub const DEFAULT: &'static str = "default";

    pub fn default_role() -> Self {
        Self(Self::DEFAULT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_default(&self) -> bool {
        self.0 == Self::DEFAULT
    }
}

impl FromStr for RoleName {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        let shape = !bytes.is_empty()
            && bytes.len() <= 63
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && bytes[0] != b'-'
            && bytes[bytes.len() - 1] != b'-';
        if shape {
            Ok(Self(s.to_owned()))
        } else {
            Err(
                "a role name is 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
            )
        }
    }
}

/// Look roles up by the name in a request path.
impl std::borrow::Borrow<str> for RoleName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_parse_into_their_parts() {
        let arn: RoleArn = "arn:aws-cn:iam::111122223333:role/path/to/app"
            .parse()
            .unwrap();
        assert_eq!(arn.partition(), "aws-cn");
        assert_eq!(arn.account_id(), "111122223333");
        assert_eq!(arn.name(), "app");
        assert_eq!(
            arn.to_string(),
            "arn:aws-cn:iam::111122223333:role/path/to/app"
        );
        let plain: RoleArn = "arn:aws:iam::111122223333:role/app".parse().unwrap();
        assert_eq!((plain.partition(), plain.name()), ("aws", "app"));
        for bad in [
            "",
            "app",
            "arn:aws:iam::1111:role/app",
            "arn:aws:iam::111122223333:user/app",
            "arn:aws:s3::111122223333:role/app",
            "arn:aws:iam:us-east-1:111122223333:role/app",
            "arn:aws:iam::111122223333:role/",
            "arn:aws:iam::11112222333x:role/app",
        ] {
            assert!(bad.parse::<RoleArn>().is_err(), "{bad}");
        }
    }

    #[test]
    fn regions() {
        for good in ["us-east-1", "eu-west-1", "us-gov-west-1", "cn-north-1"] {
            assert_eq!(good.parse::<Region>().unwrap().as_str(), good);
        }
        for bad in [
            "",
            "US-EAST-1",
            "useast1",
            "us east 1",
            "-us-east-1",
            "null",
        ] {
            assert!(bad.parse::<Region>().is_err(), "{bad}");
        }
    }

    #[test]
    fn session_names_validate_and_sanitise() {
        assert!("ab".parse::<SessionName>().is_ok());
        assert!("a".parse::<SessionName>().is_err());
        assert!("a".repeat(65).parse::<SessionName>().is_err());
        assert!("a b".parse::<SessionName>().is_err());
        assert_eq!(SessionName::sanitize("x").as_str(), "passport-x");
        assert_eq!(SessionName::sanitize("").as_str(), "passport");
        assert_eq!(SessionName::sanitize("ok+=,.@-_Z9").as_str(), "ok+=,.@-_Z9");
        assert_eq!(SessionName::sanitize("ünï/côde").as_str(), "-n--c-de");
        let long_a = format!("ns.{}", "a".repeat(100));
        let long_b = format!("ns.{}b", "a".repeat(99));
        let (a, b) = (
            SessionName::sanitize(&long_a),
            SessionName::sanitize(&long_b),
        );
        assert_eq!(a.as_str().len(), 64);
        assert_ne!(a, b);
        assert!(a.as_str().parse::<SessionName>().is_ok());
        assert_eq!(a, SessionName::sanitize(&long_a), "stable");
    }

    #[test]
    fn role_names_are_dns_labels() {
        for ok in ["default", "a", "reports-reader", "s3", "x1-2"] {
            assert_eq!(ok.parse::<RoleName>().unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Reports",
            "a/b",
            "a.b",
            "a b",
            &"a".repeat(64),
        ] {
            assert!(bad.parse::<RoleName>().is_err(), "{bad:?}");
        }
        assert!(RoleName::default_role().is_default());
    }
}
