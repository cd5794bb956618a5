//! Loopback ports for tests, without the "pick a free port, bind it later" race.
//!
//! A port number read from a socket that is then dropped can be taken by any other test
//! before it is used again; with tests running in parallel that happens, rarely, and shows
//! up as a flake far from its cause. So the helpers here hand over the bound socket itself
//! (a server in the test uses it as is), hold a port closed for as long as the test needs a
//! "nothing listens here" address, and, where only a number will do (a program that binds
//! its own port), [`crate::daemon::Daemon`] checks who got the port and retries.

use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

/// 127.0.0.1 with port 0: the kernel picks a free port at bind time, atomically.
const ANY_LOOPBACK_PORT: (Ipv4Addr, u16) = (Ipv4Addr::LOCALHOST, 0);

/// A UDP socket bound to a free port on 127.0.0.1, for a server inside the test. (For tokio,
/// call `set_nonblocking(true)` and `tokio::net::UdpSocket::from_std`.)
pub fn udp_socket() -> UdpSocket {
    UdpSocket::bind(ANY_LOOPBACK_PORT).expect("bind a UDP socket to 127.0.0.1:0")
}

/// A TCP listener on a free port of 127.0.0.1, for a server inside the test. (For tokio,
/// call `set_nonblocking(true)` and `tokio::net::TcpListener::from_std`.)
pub fn tcp_listener() -> TcpListener {
    TcpListener::bind(ANY_LOOPBACK_PORT).expect("bind a TCP listener to 127.0.0.1:0")
}

/// A TCP port on 127.0.0.1 that refuses connections for as long as this value lives: a socket
/// bound to it that never listens. Nothing else can bind the port meanwhile, so a test that
/// needs "nothing listens there" cannot find another test's server there instead.
#[derive(Debug)]
pub struct ClosedTcpPort {
    /// Never read: holding it is the reservation, and dropping it releases the port.
    _socket: Socket,
    addr: SocketAddr,
}

impl ClosedTcpPort {
    /// Bind a fresh port and hold it closed.
    pub fn new() -> ClosedTcpPort {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
            .expect("create a TCP socket");
        socket
            .bind(&SocketAddr::from(ANY_LOOPBACK_PORT).into())
            .expect("bind a TCP socket to 127.0.0.1:0");
        let addr = socket
            .local_addr()
            .expect("local address")
            .as_socket()
            .expect("an IP socket address");
        ClosedTcpPort {
            _socket: socket,
            addr,
        }
    }

    /// The held address (127.0.0.1 and the port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The held port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Default for ClosedTcpPort {
    fn default() -> Self {
        ClosedTcpPort::new()
    }
}

/// A UDP port of 127.0.0.1 with no socket on it, for tests that need the kernel to answer
/// "port unreachable".
///
/// Unlike TCP there is no way to hold such a port: a bound UDP socket swallows datagrams
/// instead of refusing them. The port is one the kernel just picked at random from the
/// ephemeral range and released; no test binds fixed ports, so another test can land on it
/// only through the same random pick, and a test using it should say in its failure message
/// that it found something listening there.
pub fn unused_udp_port() -> u16 {
    udp_socket().local_addr().expect("local address").port()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;
    use std::net::TcpStream;

    #[test]
    fn a_closed_port_refuses_and_stays_reserved() {
        let closed = ClosedTcpPort::new();
        assert!(closed.addr().ip().is_loopback());
        let err = TcpStream::connect(closed.addr()).expect_err("nothing listens");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        let taken = TcpListener::bind(closed.addr()).expect_err("the port is held");
        assert_eq!(taken.kind(), ErrorKind::AddrInUse, "{taken}");
    }

    #[test]
    fn handed_sockets_are_bound_to_loopback() {
        let udp = udp_socket();
        let tcp = tcp_listener();
        assert!(udp.local_addr().unwrap().ip().is_loopback());
        assert_ne!(udp.local_addr().unwrap().port(), 0);
        let client = TcpStream::connect(tcp.local_addr().unwrap()).expect("listening");
        drop(client);
    }
}
