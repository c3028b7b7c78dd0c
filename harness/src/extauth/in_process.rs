//! extauth inside the harness: `extauth::server::start` on port 0 of 127.0.0.1, one replica.
//! Stops with the stack (or on drop: the server's listeners end with it).

use std::net::{Ipv4Addr, SocketAddr};

use extauth::server::{OpsOptions, RunningServer, ServeOptions, StoreChoice};
use extauth::transport::profile::{HttpListener, Profile};

use super::ExtauthError;

/// One in-process server.
#[derive(Debug)]
pub struct InProcessExtauth {
    server: RunningServer,
}

impl InProcessExtauth {
    /// Serves `loaded` on four ephemeral loopback ports: gRPC, HTTP (forward-auth), HTTP with
    /// the nginx profile (for nginx `auth_request`, and `EXTAUTH_HTTP_NGINX` for people), admin.
    pub async fn start(
        loaded: extauth::config::Loaded,
        store: StoreChoice,
    ) -> Result<Self, ExtauthError> {
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let server = extauth::server::start_with_options(
            loaded,
            ServeOptions {
                grpc: loopback,
                http: loopback,
                admin: loopback,
                session_store: store,
            },
            OpsOptions {
                http_listeners: vec![HttpListener {
                    profile: Profile::Nginx,
                    addr: loopback,
                }],
                ..OpsOptions::default()
            },
            std::sync::Arc::new(extauth::clock::SystemClock),
        )
        .await?;
        Ok(Self { server })
    }

    /// gRPC ext_authz.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.server.grpc_addr()
    }

    /// HTTP mode.
    pub fn http_addr(&self) -> SocketAddr {
        self.server.http_addr()
    }

    /// Admin.
    pub fn admin_addr(&self) -> SocketAddr {
        self.server.admin_addr()
    }

    /// The HTTP listener with the nginx profile.
    pub fn nginx_addr(&self) -> SocketAddr {
        self.server
            .http_listener_addr(Profile::Nginx)
            .unwrap_or_else(|| self.server.http_addr())
    }

    /// Lets in-flight requests finish (bounded by extauth's drain limit) and stops.
    pub async fn stop(self) {
        self.server.shutdown().await;
    }
}
