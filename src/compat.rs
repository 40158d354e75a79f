//! Compatibility levels: which variables an application's SDK understands, by era, and the
//! environment lines for each (`serve --print-env --compat`, `demo --compat`, `inject
//! --compat`).
//!
//! | level | application gets | SDKs |
//! |---|---|---|
//! | `modern` | FULL_URI + AUTHORIZATION_TOKEN_FILE | late 2023 on |
//! | `token-env` | FULL_URI + AUTHORIZATION_TOKEN (value) + the _FILE variable | 2017 on |
//! | `relative-uri` | RELATIVE_URI only (169.254.170.2, no auth) | 2016 on |
//! | `imds` | nothing, or AWS_EC2_METADATA_SERVICE_ENDPOINT | all (IMDSv1) |
//!
//! Only `relative-uri` and `imds` need a redirect in the pod's network namespace (an init
//! container with NET_ADMIN); `modern` and `token-env` keep the `restricted` Pod Security
//! Standard.

use std::net::SocketAddr;
use std::path::Path;

use crate::env;

/// A compatibility level, from safest to most permissive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Compat {
    /// FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (SDKs from late 2023 on).
    #[default]
    Modern,
    /// FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN as a value, from a shared Secret (2017 on).
    TokenEnv,
    /// AWS_CONTAINER_CREDENTIALS_RELATIVE_URI at 169.254.170.2, unauthenticated (2016 on).
    RelativeUri,
    /// IMDS at 169.254.169.254 with IMDSv1 allowed (every SDK).
    Imds,
}

impl Compat {
    pub fn name(self) -> &'static str {
        match self {
            Compat::Modern => "modern",
            Compat::TokenEnv => "token-env",
            Compat::RelativeUri => "relative-uri",
            Compat::Imds => "imds",
        }
    }

    /// Levels that need a NET_ADMIN init container redirecting a link-local address.
    pub fn needs_redirect(self) -> bool {
        matches!(self, Compat::RelativeUri | Compat::Imds)
    }
}

/// Where ECS-style SDKs send RELATIVE_URI requests: `http://169.254.170.2<relative uri>`.
pub const RELATIVE_URI_HOST: &str = "169.254.170.2";
/// The EC2 instance metadata address every SDK falls back to.
pub const IMDS_HOST: &str = "169.254.169.254";
/// The unauthenticated listener's port in the manifests (`--relative-uri-listen`).
pub const RELATIVE_URI_PORT: u16 = 9913;
/// The container-credentials variables; `unset` by levels that do not use them.
pub const CONTAINER_VARIABLES: &[&str] = &[
    env::CONTAINER_FULL_URI,
    env::CONTAINER_RELATIVE_URI,
    env::CONTAINER_AUTH_TOKEN,
    env::CONTAINER_AUTH_TOKEN_FILE,
];

/// What the lines are built from.
pub struct EnvTarget<'a> {
    pub level: Compat,
    /// The main (authenticated) credentials listener.
    pub listen: SocketAddr,
    /// The token file the application reads (written by passport, or the shared Secret).
    pub token_file: &'a Path,
    /// The unauthenticated listener, for `relative-uri`.
    pub relative_uri_listen: Option<SocketAddr>,
    /// Whether the IMDS endpoint is served (AWS_EC2_METADATA_SERVICE_ENDPOINT).
    pub imds: bool,
}

/// `export`/`unset` lines for a POSIX shell. The token VALUE is never printed: for
/// `token-env` the line reads the file when the shell evaluates it.
pub fn env_lines(t: &EnvTarget<'_>) -> String {
    let mut out = String::new();
    let mut unset: Vec<&str> = crate::env::SHADOWING
        .iter()
        .copied()
        .filter(|v| !CONTAINER_VARIABLES.contains(v))
        .collect();
    let url = format!(
        "http://{}{}",
        t.listen,
        passport_core::server::container::PATH
    );
    let file = shell_quote(&t.token_file.to_string_lossy());
    match t.level {
        Compat::Modern | Compat::TokenEnv => {
            out.push_str(&format!(
                "export {}={}\n",
                env::CONTAINER_FULL_URI,
                shell_quote(&url)
            ));
            out.push_str(&format!(
                "export {}={file}\n",
                env::CONTAINER_AUTH_TOKEN_FILE
            ));
            unset.push(env::CONTAINER_RELATIVE_URI);
            if t.level == Compat::TokenEnv {
                out.push_str(&format!(
                    "export {}=\"$(cat {file})\"\n",
                    env::CONTAINER_AUTH_TOKEN
                ));
            } else {
                unset.push(env::CONTAINER_AUTH_TOKEN);
            }
        }
        Compat::RelativeUri => {
            out.push_str(&format!(
                "export {}={}\n",
                env::CONTAINER_RELATIVE_URI,
                passport_core::server::container::PATH
            ));
            if let Some(relative) = t.relative_uri_listen {
                out.push_str(&format!(
                    "# SDKs call http://{RELATIVE_URI_HOST}{}: redirect {RELATIVE_URI_HOST}:80 to {relative} \
                     (k8s/overlays/relative-uri does it in a pod)\n",
                    passport_core::server::container::PATH
                ));
            }
            unset.extend([
                env::CONTAINER_FULL_URI,
                env::CONTAINER_AUTH_TOKEN,
                env::CONTAINER_AUTH_TOKEN_FILE,
            ]);
        }
        Compat::Imds => {
            out.push_str(&format!(
                "# SDKs before the endpoint variable call http://{IMDS_HOST}: redirect {IMDS_HOST}:80 to {} \
                 (k8s/overlays/imds-redirect does it in a pod)\n",
                t.listen
            ));
            unset.extend(CONTAINER_VARIABLES);
        }
    }
    if t.imds {
        // No trailing slash: the Java SDK concatenates paths onto it.
        out.push_str(&format!(
            "export {}=http://{}\n",
            env::EC2_METADATA_SERVICE_ENDPOINT,
            t.listen
        ));
        out.push_str(&format!(
            "export NO_PROXY={}${{NO_PROXY:+,$NO_PROXY}}\n",
            t.listen.ip()
        ));
    }
    out.push_str(&format!("unset {}\n", unset.join(" ")));
    out
}

pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/:._-=@%+,".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(level: Compat, imds: bool) -> String {
        env_lines(&EnvTarget {
            level,
            listen: "127.0.0.1:9911".parse().unwrap(),
            token_file: Path::new("/var/run/passport/auth-token"),
            relative_uri_listen: Some("127.0.0.1:9913".parse().unwrap()),
            imds,
        })
    }

    fn exported(text: &str) -> Vec<&str> {
        text.lines()
            .filter_map(|l| l.strip_prefix("export "))
            .map(|l| l.split('=').next().unwrap())
            .collect()
    }

    #[test]
    fn each_level_exports_only_its_variables() {
        assert_eq!(
            exported(&lines(Compat::Modern, false)),
            [
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
            ]
        );
        assert_eq!(
            exported(&lines(Compat::TokenEnv, false)),
            [
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN"
            ]
        );
        assert_eq!(
            exported(&lines(Compat::RelativeUri, false)),
            ["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]
        );
        assert_eq!(
            exported(&lines(Compat::Imds, true)),
            ["AWS_EC2_METADATA_SERVICE_ENDPOINT", "NO_PROXY"]
        );
    }

    #[test]
    fn the_token_value_is_read_by_the_shell_never_printed() {
        let text = lines(Compat::TokenEnv, false);
        assert!(text.contains(
            "export AWS_CONTAINER_AUTHORIZATION_TOKEN=\"$(cat /var/run/passport/auth-token)\"\n"
        ));
    }

    #[test]
    fn other_levels_variables_are_unset() {
        let unset = |level| -> Vec<String> {
            lines(level, false)
                .lines()
                .find_map(|l| l.strip_prefix("unset "))
                .unwrap()
                .split(' ')
                .map(str::to_owned)
                .collect()
        };
        let has = |level, var: &str| unset(level).iter().any(|v| v == var);
        assert!(has(Compat::Modern, "AWS_CONTAINER_AUTHORIZATION_TOKEN"));
        assert!(has(
            Compat::Modern,
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
        ));
        assert!(!has(Compat::Modern, "AWS_CONTAINER_CREDENTIALS_FULL_URI"));
        assert!(!has(Compat::TokenEnv, "AWS_CONTAINER_AUTHORIZATION_TOKEN"));
        assert!(has(
            Compat::RelativeUri,
            "AWS_CONTAINER_CREDENTIALS_FULL_URI"
        ));
        for var in CONTAINER_VARIABLES {
            assert!(has(Compat::Imds, var));
        }
        assert!(has(Compat::Imds, "AWS_ACCESS_KEY_ID"));
    }

    #[test]
    fn only_the_redirect_levels_need_net_admin() {
        assert!(!Compat::Modern.needs_redirect());
        assert!(!Compat::TokenEnv.needs_redirect());
        assert!(Compat::RelativeUri.needs_redirect());
        assert!(Compat::Imds.needs_redirect());
    }

    #[test]
    fn env_lines_quote_paths() {
        let modern = |file: &str, imds: bool| {
            env_lines(&EnvTarget {
                level: Compat::Modern,
                listen: "127.0.0.1:9911".parse().unwrap(),
                token_file: Path::new(file),
                relative_uri_listen: None,
                imds,
            })
        };
        let text = modern("/tmp/it's here/token", true);
        assert!(text.contains("export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9911\n"));
        assert!(text.contains("export NO_PROXY=127.0.0.1${NO_PROXY:+,$NO_PROXY}\n"));
        let text_without_imds = modern("/a", false);
        assert!(!text_without_imds.contains("METADATA"));
        assert!(text.contains(
            "export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:9911/v1/credentials\n"
        ));
        assert!(text.contains(
            "export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE='/tmp/it'\\''s here/token'\n"
        ));
        assert!(text.contains("unset AWS_ACCESS_KEY_ID"));
    }
}
