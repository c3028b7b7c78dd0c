//! A throwaway `redis-server` process on a free loopback port: extauth's shared spawner
//! ([`extauth::testing::RedisServer`]), started with `--port N --bind 127.0.0.1 --save ""
//! --appendonly no` (and `requirepass` when asked), waited for with `PING` (bounded), killed
//! by its PID on stop or drop; `start_again` restarts it on the same port, so scenarios can
//! show a session-store outage.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

pub use extauth::testing::RedisServer;

use super::{RedisError, record_children};

/// Starts one, with `requirepass password` when given.
pub fn start(password: Option<&str>) -> Result<RedisServer, RedisError> {
    record_children();
    let mut builder = RedisServer::builder();
    if let Some(password) = password {
        builder = builder.password(password);
    }
    Ok(builder.start()?)
}

/// One `PING` over a fresh plain-TCP connection, bounded by short timeouts (a server with a
/// password answers `-NOAUTH`, which counts as up).
pub fn ping(port: u16) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))
        .map_err(|e| format!("connect: {e}"))?;
    let timeout = Some(Duration::from_millis(500));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|e| format!("socket: {e}"))?;
    stream
        .write_all(b"PING\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).map_err(|e| format!("read: {e}"))?;
    let reply = String::from_utf8_lossy(&buf[..n]);
    if reply.starts_with("+PONG") || reply.starts_with("-NOAUTH") {
        Ok(())
    } else {
        Err(format!("unexpected reply {:?}", reply.trim_end()))
    }
}
