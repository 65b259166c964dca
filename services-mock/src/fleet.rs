//! Every mock started in-process on free loopback ports, for tests: real
//! HTTP servers, controlled through their real admin routes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::identity::{DEFAULT_ISSUER, Identity};
use crate::{MockState, Service, app, serve};

#[derive(Debug)]
struct RunningMock {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

/// All mocks, each on its own `127.0.0.1:<free port>`. Dropping the fleet
/// stops them.
#[derive(Debug)]
pub struct Fleet {
    mocks: BTreeMap<Service, RunningMock>,
    identity: Arc<Identity>,
    http: reqwest::Client,
}

impl Fleet {
    /// Starts every mock with the default issuer.
    pub async fn start() -> anyhow::Result<Fleet> {
        Fleet::start_only(&Service::ALL).await
    }

    /// Starts the identity provider and the services `bff` calls (its
    /// registry entry's egress list): what a test of that BFF needs.
    pub async fn for_bff(bff: &bff_registry::Bff) -> anyhow::Result<Fleet> {
        let mut services = Vec::new();
        for name in bff.calls {
            services.push(name.parse::<Service>().map_err(anyhow::Error::msg)?);
        }
        Fleet::start_only(&services).await
    }

    /// Starts the identity provider and `services`; the others are not
    /// running ([`Fleet::url`] of one is empty). Placed orders are kept in
    /// memory.
    pub async fn start_only(services: &[Service]) -> anyhow::Result<Fleet> {
        Fleet::start_with_data(services, None).await
    }

    /// [`Fleet::start_only`], with the orders service keeping its orders in
    /// `data_dir` (a later fleet on the same directory finds them).
    pub async fn start_with_data(
        services: &[Service],
        data_dir: Option<&std::path::Path>,
    ) -> anyhow::Result<Fleet> {
        let identity = Arc::new(Identity::new(DEFAULT_ISSUER)?);
        let mut mocks = BTreeMap::new();
        let wanted = Service::ALL.into_iter().filter(|s| *s == Service::Identity || services.contains(s));
        for service in wanted {
            let mut state = match service {
                Service::Orders => MockState::with_data_dir(DEFAULT_ISSUER, data_dir)?,
                _ => MockState::new(DEFAULT_ISSUER)?,
            };
            state.identity = Arc::clone(&identity);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let (tx, rx) = oneshot::channel::<()>();
            tokio::spawn(serve(listener, app(service, state), async {
                let _ = rx.await;
            }));
            mocks.insert(service, RunningMock { addr, shutdown: Some(tx) });
        }
        Ok(Fleet { mocks, identity, http: reqwest::Client::new() })
    }

    /// Whether `service` runs in this fleet.
    pub fn runs(&self, service: Service) -> bool {
        self.mocks.contains_key(&service)
    }

    /// The base URL of `service`, e.g. `http://127.0.0.1:41234` (empty
    /// when it does not run in this fleet).
    pub fn url(&self, service: Service) -> String {
        self.mocks.get(&service).map(|m| format!("http://{}", m.addr)).unwrap_or_default()
    }

    /// The identity provider's keys, to mint tokens in tests.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// A service token for `service` on behalf of `user`, acted by `actor`
    /// (what a BFF's token exchange would obtain).
    pub fn service_token(&self, service: Service, user: &str, actor: &str) -> String {
        self.identity.service_token(service.name(), user, actor).unwrap_or_default()
    }

    /// Stops one mock (its port then refuses connections).
    pub fn stop(&mut self, service: Service) {
        if let Some(tx) = self.mocks.get_mut(&service).and_then(|m| m.shutdown.take()) {
            let _ = tx.send(());
        }
    }

    /// `PUT /__faults` on `service`; fails if the mock rejects the body.
    pub async fn set_faults(&self, service: Service, faults: Value) -> anyhow::Result<()> {
        let response = self
            .http
            .put(format!("{}/__faults", self.url(service)))
            .json(&faults)
            .send()
            .await
            .with_context(|| format!("PUT /__faults on {service}"))?;
        if !response.status().is_success() {
            bail!("{service} rejected faults: {}", response.text().await.unwrap_or_default());
        }
        Ok(())
    }

    /// `DELETE /__faults` on `service`.
    pub async fn clear_faults(&self, service: Service) -> anyhow::Result<()> {
        self.http.delete(format!("{}/__faults", self.url(service))).send().await?.error_for_status()?;
        Ok(())
    }

    /// `DELETE /__stats` on `service`.
    pub async fn reset_stats(&self, service: Service) -> anyhow::Result<()> {
        self.http.delete(format!("{}/__stats", self.url(service))).send().await?.error_for_status()?;
        Ok(())
    }

    /// `GET /__stats` of `service`.
    pub async fn stats(&self, service: Service) -> anyhow::Result<Value> {
        let response = self.http.get(format!("{}/__stats", self.url(service))).send().await?;
        Ok(response.error_for_status()?.json().await?)
    }

    /// Requests that reached `service`'s routes (`total` of `/__stats`).
    pub async fn requests(&self, service: Service) -> anyhow::Result<u64> {
        self.stats(service).await?["total"].as_u64().context("stats without total")
    }

    /// Requests that reached any domain service of this fleet (identity excluded).
    pub async fn domain_requests(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for service in self.mocks.keys().copied().filter(|s| *s != Service::Identity) {
            total += self.requests(service).await?;
        }
        Ok(total)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for mock in self.mocks.values_mut() {
            if let Some(tx) = mock.shutdown.take() {
                let _ = tx.send(());
            }
        }
    }
}
