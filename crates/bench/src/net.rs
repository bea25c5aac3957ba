//! Opening many client sockets from one process.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

/// Raises the soft open-file limit to the hard one, so the run can hold as many connections as
/// the machine allows; returns the limit now in force.
pub fn raise_fd_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// Connects client connection number `index` to `server`.
///
/// With `source_addrs > 0` and a loopback IPv4 server, the socket is first bound to
/// `127.0.0.(1 + index % source_addrs)`: a bound socket takes its ephemeral port for that source
/// address alone, so spreading over several addresses multiplies the ~28 000 ephemeral ports
/// that a single one offers and lets tens of thousands of connections (and the TIME_WAIT ones of
/// the previous run) coexist.
pub(crate) async fn connect(
    server: SocketAddr,
    index: usize,
    source_addrs: u8,
) -> io::Result<TcpStream> {
    let stream = match server.ip() {
        IpAddr::V4(ip) if ip.is_loopback() && source_addrs > 0 => {
            let socket = TcpSocket::new_v4()?;
            // Lets the port of a connection still in TIME_WAIT be bound again.
            socket.set_reuseaddr(true)?;
            let host = 1 + (index % usize::from(source_addrs)) as u8;
            socket.bind(SocketAddr::new(Ipv4Addr::new(127, 0, 0, host).into(), 0))?;
            socket.connect(server).await?
        }
        _ => TcpStream::connect(server).await?,
    };
    // Messages are written in batches already; waiting to coalesce more would only add latency.
    stream.set_nodelay(true)?;
    Ok(stream)
}
