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
/// `127.0.0.(1 + index % source_addrs)`: spreading over several source addresses multiplies the
/// ~28 000 ephemeral ports that a single one offers, and lets tens of thousands of connections
/// (and the TIME_WAIT ones of the previous runs) coexist.
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
            defer_port_choice(&socket)?;
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

/// Leaves the choice of the source port to `connect`, which knows the destination.
///
/// `bind` to port 0 must pick a port no other socket on that address holds, whatever its
/// destination, and searches the range for one; with the TIME_WAIT sockets of a few earlier
/// 10,000-connection runs filling most of it, that search made a `connect -n 10000` take up to
/// 28 s instead of 0.7 s, and the run reported the bench's port hunt as the server's login rate.
/// `connect` needs only the whole address pair to be unique, and may take over a TIME_WAIT
/// one on loopback.
#[cfg(target_os = "linux")]
fn defer_port_choice(socket: &TcpSocket) -> io::Result<()> {
    nix::sys::socket::setsockopt(
        socket,
        nix::sys::socket::sockopt::IpBindAddressNoPort,
        &true,
    )
    .map_err(io::Error::from)
}

/// Elsewhere `bind` keeps choosing the port: the option is Linux's.
#[cfg(not(target_os = "linux"))]
fn defer_port_choice(_socket: &TcpSocket) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_spread_connection_comes_from_its_source_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        for index in 0..3 {
            let stream = connect(server, index, 2).await.unwrap();
            let (accepted, peer) = listener.accept().await.unwrap();
            let expected = Ipv4Addr::new(127, 0, 0, 1 + (index % 2) as u8);
            assert_eq!(stream.local_addr().unwrap().ip(), IpAddr::V4(expected));
            assert_eq!(peer, stream.local_addr().unwrap());
            assert_ne!(peer.port(), 0, "connect chose a port");
            drop(accepted);
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_port_is_left_to_connect() {
        let socket = TcpSocket::new_v4().unwrap();
        defer_port_choice(&socket).unwrap();
        let deferred =
            nix::sys::socket::getsockopt(&socket, nix::sys::socket::sockopt::IpBindAddressNoPort)
                .unwrap();
        assert!(deferred);
        socket
            .bind(SocketAddr::new(Ipv4Addr::new(127, 0, 0, 2).into(), 0))
            .unwrap();
        // Without the option, bind would have reserved a port already.
        assert_eq!(socket.local_addr().unwrap().port(), 0);
    }
}
