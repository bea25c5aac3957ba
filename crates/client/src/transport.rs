//! The byte stream under a connection, plain TCP or TLS over TCP, and how one is opened.
//!
//! The connection task is generic over [`Transport`] rather than boxing the socket, so plain TCP
//! keeps its lock-free borrowed split and TLS pays for the one lock it cannot avoid.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, ToSocketAddrs, tcp};

use crate::error::ClientError;

/// A byte stream the connection task can read and write at the same time.
pub(crate) trait Transport: AsyncWrite + Unpin + Send + 'static {
    /// The reading side of [`split`](Self::split).
    type Reader<'a>: AsyncRead + Unpin + Send
    where
        Self: 'a;
    /// The writing side of [`split`](Self::split).
    type Writer<'a>: AsyncWrite + Unpin + Send
    where
        Self: 'a;

    /// Borrows the stream as two halves, so that reading and writing can be separate branches of
    /// one `select!`.
    fn split(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>);
}

impl Transport for TcpStream {
    type Reader<'a> = tcp::ReadHalf<'a>;
    type Writer<'a> = tcp::WriteHalf<'a>;

    fn split(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>) {
        TcpStream::split(self)
    }
}

#[cfg(feature = "tls")]
impl Transport for tokio_rustls::client::TlsStream<TcpStream> {
    type Reader<'a> = tokio::io::ReadHalf<&'a mut Self>;
    type Writer<'a> = tokio::io::WriteHalf<&'a mut Self>;

    fn split(&mut self) -> (Self::Reader<'_>, Self::Writer<'_>) {
        // One TLS session serves both directions (reading can queue an alert or a key update to
        // write), so the halves must share it behind tokio's lock; only this task ever takes it.
        tokio::io::split(self)
    }
}

/// `addr` as an owned [`Target`].
pub(crate) fn to_target(addr: &(impl ServerAddr + ?Sized)) -> Target {
    sealed::ToTarget::to_target(addr)
}

/// A connection being made, as a [`Connector`] returns it.
pub(crate) type Connecting<S> = Pin<Box<dyn Future<Output = Result<S, ClientError>> + Send>>;

/// Makes a new connection to the server the client first connected to, the same way (TCP or
/// TLS, same options); what the connection task calls to reconnect.
pub(crate) type Connector<S> = Box<dyn Fn() -> Connecting<S> + Send + Sync>;

/// A connector for plain TCP to `target`.
pub(crate) fn tcp_connector(target: Target, within: Duration) -> Connector<TcpStream> {
    Box::new(move || {
        let target = target.clone();
        Box::pin(async move { target.tcp(within).await })
    })
}

/// Opens a TCP connection to `addr` within `within`.
pub(crate) async fn tcp(
    addr: impl ToSocketAddrs,
    within: Duration,
) -> Result<TcpStream, ClientError> {
    let stream = match tokio::time::timeout(within, TcpStream::connect(addr)).await {
        Ok(stream) => stream?,
        Err(_elapsed) => {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "connecting timed out").into());
        }
    };
    // Chat packets are small and latency-sensitive; the connection task already batches
    // whatever is queued into one write, so Nagle would only add delay.
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// An address [`Client::connect`](crate::Client::connect) can connect to: anything tokio's
/// [`ToSocketAddrs`] takes, which can also say which host it names, since that is the name TLS
/// verifies unless [`TlsOptions`](crate::TlsOptions) names another.
///
/// Implemented for the types tokio's trait is implemented for except slices: `SocketAddr` (and
/// its V4/V6 forms), `(IpAddr, u16)` (and its V4/V6 forms), `"host:port"` as `str` or `String`,
/// `(&str, u16)`, `(String, u16)`, and references to any of them. Like tokio's trait it cannot be
/// implemented outside this crate.
pub trait ServerAddr: ToSocketAddrs + sealed::ToTarget {
    /// The host this address names, without the port: a DNS name or an IP address in text form
    /// (`"chat.example.com"` for `"chat.example.com:7000"`, `"::1"` for `"[::1]:7000"`); `None`
    /// when it cannot tell.
    fn host(&self) -> Option<String>;
}

mod sealed {
    /// An owned copy of an address, kept by the connection task to reconnect. Private, so that
    /// [`ServerAddr`](super::ServerAddr) cannot be implemented outside this crate.
    pub trait ToTarget {
        /// The address as an owned [`Target`](super::Target).
        fn to_target(&self) -> super::Target;
    }
}

/// An owned [`ServerAddr`]: what it names, kept to connect again later (names are resolved again
/// each time).
#[derive(Debug, Clone)]
pub enum Target {
    /// `"host:port"`.
    Text(String),
    /// A host name or IP address in text form, and a port.
    HostPort(String, u16),
    /// A socket address.
    Addr(SocketAddr),
}

impl Target {
    /// Opens a TCP connection to this address within `within`.
    pub(crate) async fn tcp(&self, within: Duration) -> Result<TcpStream, ClientError> {
        match self {
            Self::Text(text) => tcp(text.as_str(), within).await,
            Self::HostPort(host, port) => tcp((host.as_str(), *port), within).await,
            Self::Addr(addr) => tcp(*addr, within).await,
        }
    }

    /// As [`ServerAddr::host`].
    #[cfg(any(feature = "tls", test))]
    pub(crate) fn host(&self) -> Option<String> {
        match self {
            Self::Text(text) => text.host(),
            Self::HostPort(host, port) => (host.as_str(), *port).host(),
            Self::Addr(addr) => addr.host(),
        }
    }
}

impl sealed::ToTarget for str {
    fn to_target(&self) -> Target {
        Target::Text(self.to_owned())
    }
}

impl sealed::ToTarget for String {
    fn to_target(&self) -> Target {
        Target::Text(self.clone())
    }
}

impl sealed::ToTarget for (&str, u16) {
    fn to_target(&self) -> Target {
        Target::HostPort(self.0.to_owned(), self.1)
    }
}

impl sealed::ToTarget for (String, u16) {
    fn to_target(&self) -> Target {
        Target::HostPort(self.0.clone(), self.1)
    }
}

impl<T: sealed::ToTarget + ?Sized> sealed::ToTarget for &T {
    fn to_target(&self) -> Target {
        (**self).to_target()
    }
}

impl ServerAddr for str {
    fn host(&self) -> Option<String> {
        // The last colon separates the port, as in the standard library's own parsing; brackets
        // only mark an IPv6 address.
        let (host, _port) = self.rsplit_once(':')?;
        let host = host
            .strip_prefix('[')
            .and_then(|inner| inner.strip_suffix(']'))
            .unwrap_or(host);
        (!host.is_empty()).then(|| host.to_owned())
    }
}

impl ServerAddr for String {
    fn host(&self) -> Option<String> {
        self.as_str().host()
    }
}

impl ServerAddr for (&str, u16) {
    fn host(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.0.to_owned())
    }
}

impl ServerAddr for (String, u16) {
    fn host(&self) -> Option<String> {
        (self.0.as_str(), self.1).host()
    }
}

macro_rules! ip_server_addr {
    ($($ty:ty),* $(,)?) => {$(
        impl ServerAddr for $ty {
            fn host(&self) -> Option<String> {
                Some(self.ip().to_string())
            }
        }
    )*};
}

ip_server_addr!(SocketAddr, SocketAddrV4, SocketAddrV6);

macro_rules! socket_target {
    ($($ty:ty),* $(,)?) => {$(
        impl sealed::ToTarget for $ty {
            fn to_target(&self) -> Target {
                Target::Addr(SocketAddr::from(*self))
            }
        }
    )*};
}

socket_target!(SocketAddr, SocketAddrV4, SocketAddrV6);

macro_rules! ip_port_target {
    ($($ty:ty),* $(,)?) => {$(
        impl sealed::ToTarget for ($ty, u16) {
            fn to_target(&self) -> Target {
                Target::Addr(SocketAddr::new(IpAddr::from(self.0), self.1))
            }
        }
    )*};
}

ip_port_target!(IpAddr, Ipv4Addr, Ipv6Addr);

macro_rules! ip_port_server_addr {
    ($($ty:ty),* $(,)?) => {$(
        impl ServerAddr for ($ty, u16) {
            fn host(&self) -> Option<String> {
                Some(self.0.to_string())
            }
        }
    )*};
}

ip_port_server_addr!(IpAddr, Ipv4Addr, Ipv6Addr);

impl<T: ServerAddr + ?Sized> ServerAddr for &T {
    fn host(&self) -> Option<String> {
        (**self).host()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_come_from_every_form_of_address() {
        assert_eq!(
            "chat.example.com:7000".host().as_deref(),
            Some("chat.example.com")
        );
        assert_eq!(
            String::from("localhost:1").host().as_deref(),
            Some("localhost")
        );
        assert_eq!("[::1]:7000".host().as_deref(), Some("::1"));
        assert_eq!("127.0.0.1:7000".host().as_deref(), Some("127.0.0.1"));
        assert_eq!("no-port".host(), None);
        assert_eq!(":7000".host(), None);
        assert_eq!(("example.org", 7000).host().as_deref(), Some("example.org"));
        assert_eq!(
            (String::from("example.org"), 7000).host().as_deref(),
            Some("example.org")
        );
        let v6: SocketAddr = "[::1]:9".parse().expect("valid");
        assert_eq!(v6.host().as_deref(), Some("::1"));
        // What `connect` sees when given a reference.
        fn host_of(addr: impl ServerAddr) -> Option<String> {
            addr.host()
        }
        let by_ref: &SocketAddr = &v6;
        assert_eq!(host_of(by_ref).as_deref(), Some("::1"));
        let text = String::from("h:1");
        let by_ref: &String = &text;
        assert_eq!(host_of(by_ref).as_deref(), Some("h"));
        assert_eq!(
            (Ipv4Addr::LOCALHOST, 9).host().as_deref(),
            Some("127.0.0.1")
        );
    }

    #[test]
    fn targets_keep_what_the_address_names() {
        fn target_of(addr: impl ServerAddr) -> Target {
            addr.to_target()
        }
        assert!(matches!(target_of("h:1"), Target::Text(t) if t == "h:1"));
        assert!(matches!(target_of(("h", 2)), Target::HostPort(h, 2) if h == "h"));
        let v6: SocketAddr = "[::1]:9".parse().expect("valid");
        let by_ref: &SocketAddr = &v6;
        assert!(matches!(target_of(by_ref), Target::Addr(a) if a == v6));
        let target = target_of((Ipv4Addr::LOCALHOST, 9));
        assert_eq!(target.host().as_deref(), Some("127.0.0.1"));
        assert_eq!(target_of("[::1]:7").host().as_deref(), Some("::1"));
        assert_eq!(
            target_of((String::from("example.org"), 1))
                .host()
                .as_deref(),
            Some("example.org")
        );
    }
}
