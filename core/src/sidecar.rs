//! Wiring: one refresher plus one server sharing one snapshot, with the shutdown sequence.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::chain::ChainedSource;
use crate::clock::{Clock, SystemClock};
use crate::metrics::Metrics;
use crate::refresh::{RefreshSettings, Refresher, Shared};
use crate::server::{Server, ServerSettings};
use crate::sts::{CredentialSource, StsSettings, StsSource};

/// A bound, not yet running sidecar. Binding first lets callers (tests, `exec`, `demo`)
/// learn the ephemeral ports before anything is served.
pub struct Sidecar {
    server: Server,
    refresher: Refresher,
    shared: Arc<Shared>,
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
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let sts = Arc::new(StsSource::new(sts));
        let source: Arc<dyn CredentialSource> = match &refresh.chain {
            None => sts,
            Some(chain) => Arc::new(ChainedSource::new(
                sts.clone(),
                sts,
                chain.clone(),
                clock.clone(),
            )),
        };
        Self::bind(refresh, server, source, clock).await
    }

    pub async fn bind(
        refresh: RefreshSettings,
        server: ServerSettings,
        source: Arc<dyn CredentialSource>,
        clock: Arc<dyn Clock>,
    ) -> io::Result<Self> {
        let shared = Arc::new(Shared::new(clock, Arc::new(Metrics::new())));
        let server = Server::bind(server, shared.clone()).await?;
        let refresher = Refresher::new(refresh, source, shared.clone());
        Ok(Self {
            server,
            refresher,
            shared,
        })
    }

    /// Seed the refresher's jitter (deterministic tests).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.refresher = self.refresher.with_seed(seed);
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

    /// Refresh and serve until `stop` is cancelled, then drain and return.
    pub async fn run(self, stop: CancellationToken, shutdown: Shutdown) {
        crate::server::log_listening(&self.server);
        let refresher_stop = CancellationToken::new();
        let refresher = tokio::spawn(self.refresher.run(refresher_stop.clone()));
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
        let _ = refresher.await;
        info!("stopped");
    }
}
