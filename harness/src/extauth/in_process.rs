//! extauth inside the harness: `extauth::server::start` on port 0 of 127.0.0.1, one replica.
//! Stops with the stack (or on drop: the server's listeners end with it).

use std::net::{Ipv4Addr, SocketAddr};

use extauth::server::{RunningServer, ServeOptions, StoreChoice};

use super::ExtauthError;

/// One in-process server.
#[derive(Debug)]
pub struct InProcessExtauth {
    server: RunningServer,
}

impl InProcessExtauth {
    /// Serves `loaded` on three ephemeral loopback ports.
    pub async fn start(
        loaded: extauth::config::Loaded,
        store: StoreChoice,
    ) -> Result<Self, ExtauthError> {
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let server = extauth::server::start(
            loaded,
            ServeOptions {
                grpc: loopback,
                http: loopback,
                admin: loopback,
                session_store: store,
            },
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

    /// Lets in-flight requests finish (bounded by extauth's drain limit) and stops.
    pub async fn stop(self) {
        self.server.shutdown().await;
    }
}
