//! Environment variable names, in one place: the AWS SDK conventions passport reads, sets,
//! removes or checks, and the Kubernetes downward-API names it derives a session from.
//! passport's own `PASSPORT_*` variables are declared with their flags (`--help` lists
//! them), except where another command must name them too.

/// The web-identity token file (IRSA).
pub const WEB_IDENTITY_TOKEN_FILE: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";
pub const ROLE_ARN: &str = "AWS_ROLE_ARN";
pub const ROLE_SESSION_NAME: &str = "AWS_ROLE_SESSION_NAME";
pub const REGION: &str = "AWS_REGION";
pub const DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
pub const ENDPOINT_URL_STS: &str = "AWS_ENDPOINT_URL_STS";
pub const ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";

/// The container-credentials endpoint (ECS/EKS style), read by every SDK.
pub const CONTAINER_FULL_URI: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
/// The 2016 form: a path on 169.254.170.2, no authentication.
pub const CONTAINER_RELATIVE_URI: &str = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
/// The client auth token as a file (SDKs from late 2023).
pub const CONTAINER_AUTH_TOKEN_FILE: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE";
/// The client auth token as a value (SDKs from 2017).
pub const CONTAINER_AUTH_TOKEN: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN";
/// The IMDS endpoint override.
pub const EC2_METADATA_SERVICE_ENDPOINT: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT";

pub const ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
pub const SECURITY_TOKEN: &str = "AWS_SECURITY_TOKEN";
pub const PROFILE: &str = "AWS_PROFILE";
pub const DEFAULT_PROFILE: &str = "AWS_DEFAULT_PROFILE";
pub const SHARED_CREDENTIALS_FILE: &str = "AWS_SHARED_CREDENTIALS_FILE";

/// Downward API: the session name is `NAMESPACE.POD`.
pub const POD_NAME: &str = "POD_NAME";
pub const POD_NAMESPACE: &str = "POD_NAMESPACE";
pub const HOSTNAME: &str = "HOSTNAME";

/// Variables an SDK would use before the container endpoint (static keys, web identity,
/// profiles, the other container-endpoint form): `exec` removes them, `--print-env`
/// unsets them.
pub const SHADOWING: &[&str] = &[
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    SESSION_TOKEN,
    SECURITY_TOKEN,
    WEB_IDENTITY_TOKEN_FILE,
    ROLE_ARN,
    ROLE_SESSION_NAME,
    CONTAINER_RELATIVE_URI,
    CONTAINER_AUTH_TOKEN,
    PROFILE,
    DEFAULT_PROFILE,
];

/// Reads a variable: the process environment in `main`, a table in tests, so no test
/// changes its own environment.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;
