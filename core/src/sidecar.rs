//! Wiring: a refresher per served role, and one server reading their snapshots, with the
//! shutdown sequence. Each role (the default one and every `--extra-role`) has its own
//! refresher, snapshot, schedule and jitter: one role failing never holds up another.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::aws::RoleName;
use crate::chain::ChainedSource;
use crate::clock::{Clock, SystemClock};
use crate::metrics::Metrics;
use crate::refresh::{RefreshSettings, Refresher, Shared};
use crate::server::{ExtraRoles, Server, ServerSettings};
use crate::sts::{CredentialSource, StsSettings, StsSource};

/// A bound, not yet running sidecar. Binding first lets callers (tests, `exec`, `demo`)
/// learn the ephemeral ports before anything is served.
pub struct Sidecar {
    server: Server,
    /// The default role's first, then the extra roles'.
    refreshers: Vec<Refresher>,
    shared: Arc<Shared>,
}

/// A role served besides the default one, at `/v1/credentials/NAME`.
#[derive(Debug, Clone)]
pub struct ExtraRole {
    pub name: RoleName,
    /// What to ask STS for: web identity into `role_arn`, or, with `chain`, web identity
    /// into `role_arn` and then `sts:AssumeRole` into the chained role.
    pub refresh: RefreshSettings,
}

/// What happens after the stop signal.
#[derive(Debug, Clone, Copy)]
pub struct Shutdown {
    /// Keep serving (and refreshing) this long after the signal.
    pub drain_delay: Duration,
    /// Then wait this long for in-flight requests.
    pub timeout: Duration,
}

impl Shutdown {
    /// No drain delay, one second for in-flight requests: for `exec`, `demo` and tests,
    /// where nothing outlives passport's own caller.
    pub const PROMPT: Shutdown = Shutdown {
        drain_delay: Duration::ZERO,
        timeout: Duration::from_secs(1),
    };
}

impl Sidecar {
    /// Bind with the real STS client and the system clocks (what every command runs).
    pub async fn bind_sts(
        refresh: RefreshSettings,
        server: ServerSettings,
        sts: &StsSettings,
    ) -> io::Result<Self> {
        Self::bind_sts_roles(refresh, Vec::new(), server, sts).await
    }

    /// [`Sidecar::bind_sts`] with extra roles. Every role shares the one STS client (and
    /// its connection pool); each chained role caches its own first hop.
    pub async fn bind_sts_roles(
        refresh: RefreshSettings,
        extra: Vec<ExtraRole>,
        server: ServerSettings,
        sts: &StsSettings,
    ) -> io::Result<Self> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let sts = Arc::new(StsSource::new(sts));
        let source_for = |refresh: &RefreshSettings| -> Arc<dyn CredentialSource> {
            match &refresh.chain {
                None => sts.clone(),
                Some(chain) => Arc::new(ChainedSource::new(
                    sts.clone(),
                    sts.clone(),
                    chain.clone(),
                    clock.clone(),
                )),
            }
        };
        let source = source_for(&refresh);
        let extra = extra
            .into_iter()
            .map(|role| {
                let source = source_for(&role.refresh);
                (role, source)
            })
            .collect();
        Self::bind_roles(refresh, source, extra, server, clock).await
    }

    pub async fn bind(
        refresh: RefreshSettings,
        server: ServerSettings,
        source: Arc<dyn CredentialSource>,
        clock: Arc<dyn Clock>,
    ) -> io::Result<Self> {
        Self::bind_roles(refresh, source, Vec::new(), server, clock).await
    }

    /// Bind the default role and `extra` ones, each with its own credential source.
    pub async fn bind_roles(
        refresh: RefreshSettings,
        source: Arc<dyn CredentialSource>,
        extra: Vec<(ExtraRole, Arc<dyn CredentialSource>)>,
        server: ServerSettings,
        clock: Arc<dyn Clock>,
    ) -> io::Result<Self> {
        let shared = Arc::new(Shared::new(clock.clone(), Arc::new(Metrics::new())));
        let mut refreshers = vec![Refresher::new(refresh, source, shared.clone())];
        let mut roles = ExtraRoles::new();
        for (role, source) in extra {
            let role_shared = Arc::new(Shared::new(clock.clone(), Arc::new(Metrics::new())));
            refreshers.push(
                Refresher::new(role.refresh, source, role_shared.clone())
                    .with_role(role.name.clone()),
            );
            roles.insert(role.name, role_shared);
        }
        let server = Server::bind_roles(server, shared.clone(), roles).await?;
        Ok(Self {
            server,
            refreshers,
            shared,
        })
    }

    /// Seed the refreshers' jitter (deterministic tests): `seed` for the default role,
    /// `seed + n` for the n-th extra role, so their schedules still differ.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.refreshers = self
            .refreshers
            .into_iter()
            .zip(seed..)
            .map(|(refresher, seed)| refresher.with_seed(seed))
            .collect();
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.server.admin_addr()
    }

    pub fn relative_uri_addr(&self) -> Option<SocketAddr> {
        self.server.relative_uri_addr()
    }

    pub fn ipv6_addr(&self) -> Option<SocketAddr> {
        self.server.ipv6_addr()
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// An extra role's shared state (its snapshot and readiness), by name.
    pub fn extra_role(&self, name: &str) -> Option<Arc<Shared>> {
        self.server.extra_role(name)
    }

    /// Refresh and serve until `stop` is cancelled, then drain and return.
    pub async fn run(self, stop: CancellationToken, shutdown: Shutdown) {
        crate::server::log_listening(&self.server);
        let refresher_stop = CancellationToken::new();
        let refreshers: Vec<_> = self
            .refreshers
            .into_iter()
            .map(|refresher| tokio::spawn(refresher.run(refresher_stop.clone())))
            .collect();
        let accept_stop = CancellationToken::new();
        let server = tokio::spawn(self.server.serve(accept_stop.clone(), shutdown.timeout));

        stop.cancelled().await;
        if !shutdown.drain_delay.is_zero() {
            info!(
                drain_delay_ms = shutdown.drain_delay.as_millis() as u64,
                "shutdown requested; still serving during the drain delay"
            );
            tokio::time::sleep(shutdown.drain_delay).await;
        }
        accept_stop.cancel();
        let _ = server.await;
        refresher_stop.cancel();
        for refresher in refreshers {
            let _ = refresher.await;
        }
        info!("stopped");
    }
}
