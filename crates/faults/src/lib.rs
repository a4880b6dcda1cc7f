#![doc = include_str!("../README.md")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Largest chunk moved at once.
const CHUNK: usize = 16 * 1024;
/// How long opening the upstream connection may take before the relayed one is reset.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the relay does to the traffic it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Bytes pass as they come.
    #[default]
    None,
    /// Every relayed connection is reset, and new ones are reset as soon as they are accepted.
    Cut,
    /// Connections stay open, but nothing moves in either direction.
    Stall,
    /// Every chunk is held this long before it is passed on.
    Delay(Duration),
}

/// What the relay did, counted since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Connections accepted from the program.
    pub accepted: u64,
    /// Connections reset by a cut, relayed or refused.
    pub reset: u64,
    /// Relayed connections open right now.
    pub open: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    reset: AtomicU64,
    open: AtomicU64,
}

/// A TCP relay whose [`Fault`] can be changed at any moment. Dropping it stops accepting and
/// resets every connection it still carries.
#[derive(Debug)]
pub struct Relay {
    address: SocketAddr,
    fault: watch::Sender<Fault>,
    counters: Arc<Counters>,
    accept: JoinHandle<()>,
}

impl Relay {
    /// Listens on `127.0.0.1:0` and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let (fault, _) = watch::channel(Fault::None);
        let counters = Arc::new(Counters::default());
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            fault.clone(),
            Arc::clone(&counters),
        ));
        Ok(Self {
            address,
            fault,
            counters,
            accept,
        })
    }

    /// Where the program should connect instead of the server.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Applies `fault` from now on, to open connections and new ones alike.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    pub fn fault(&self) -> Fault {
        *self.fault.borrow()
    }

    pub fn stats(&self) -> RelayStats {
        RelayStats {
            accepted: self.counters.accepted.load(Ordering::Acquire),
            reset: self.counters.reset.load(Ordering::Acquire),
            open: self.counters.open.load(Ordering::Acquire),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        // Every connection's pumps see the sender go and reset their sockets.
        self.fault.send_replace(Fault::Cut);
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    fault: watch::Sender<Fault>,
    counters: Arc<Counters>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of descriptors, or a connection reset before it was accepted: keep going.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        counters.accepted.fetch_add(1, Ordering::AcqRel);
        if *fault.borrow() == Fault::Cut {
            reset(&client, &counters);
            continue;
        }
        let fault = fault.subscribe();
        let counters = Arc::clone(&counters);
        tokio::spawn(async move {
            let server =
                tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(upstream)).await;
            let Ok(Ok(server)) = server else {
                reset(&client, &counters);
                return;
            };
            counters.open.fetch_add(1, Ordering::AcqRel);
            relay(client, server, fault, &counters).await;
            counters.open.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// Carries one connection both ways until both directions end or a cut resets it.
async fn relay(
    client: TcpStream,
    server: TcpStream,
    fault: watch::Receiver<Fault>,
    counters: &Counters,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let upstream = pump(client_read, server_write, fault.clone());
    let downstream = pump(server_read, client_write, fault);
    let (up, down) = tokio::join!(upstream, downstream);
    if up == Ending::Reset || down == Ending::Reset {
        counters.reset.fetch_add(1, Ordering::AcqRel);
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// The reading side closed; the writing side was shut down after it.
    Closed,
    /// A cut: both sockets reset.
    Reset,
}

/// Moves bytes from `from` to `to` under the current fault.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut fault: watch::Receiver<Fault>,
) -> Ending {
    let mut buffer = vec![0_u8; CHUNK];
    loop {
        // Wait out a stall before reading, so the sender feels it as a silent peer.
        let current = match wait_while_stalled(&mut fault).await {
            Some(current) => current,
            None => return reset_halves(&from, to),
        };
        if current == Fault::Cut {
            return reset_halves(&from, to);
        }
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            changed = fault.changed() => {
                if changed.is_err() {
                    return reset_halves(&from, to);
                }
                continue;
            }
        };
        let count = match read {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return Ending::Closed;
            }
            Ok(count) => count,
        };
        // A fault that began while the chunk was in flight applies to it.
        match wait_while_stalled(&mut fault).await {
            None | Some(Fault::Cut) => return reset_halves(&from, to),
            Some(Fault::Delay(by)) => tokio::time::sleep(by).await,
            Some(Fault::None | Fault::Stall) => {}
        }
        if to.write_all(&buffer[..count]).await.is_err() {
            return Ending::Closed;
        }
    }
}

/// The fault in force once it is not a stall; `None` when the relay is gone.
async fn wait_while_stalled(fault: &mut watch::Receiver<Fault>) -> Option<Fault> {
    loop {
        let current = *fault.borrow_and_update();
        if current != Fault::Stall {
            return Some(current);
        }
        fault.changed().await.ok()?;
    }
}

/// Resets the connection `from` reads and the one `to` writes. Linger 0 makes the close an RST rather than a FIN; the socket closes once both of its halves
/// are dropped.
fn reset_halves(from: &OwnedReadHalf, to: OwnedWriteHalf) -> Ending {
    let _ = from.as_ref().set_zero_linger();
    let _ = to.as_ref().set_zero_linger();
    // Dropping a write half would shut it down first, and the peer would read a FIN before the
    // reset; forgetting it leaves the close to the last half dropped.
    to.forget();
    Ending::Reset
}

fn reset(stream: &TcpStream, counters: &Counters) {
    let _ = stream.set_zero_linger();
    counters.reset.fetch_add(1, Ordering::AcqRel);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Instant;

    use super::*;

    /// An upstream that echoes every byte back.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = socket.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        address
    }

    async fn round_trip(stream: &mut TcpStream, within: Duration) -> std::io::Result<Vec<u8>> {
        stream.write_all(b"ping").await?;
        let mut answer = vec![0_u8; 4];
        match tokio::time::timeout(within, stream.read_exact(&mut answer)).await {
            Ok(read) => read.map(|_| answer),
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    #[tokio::test]
    async fn passes_cuts_heals_stalls_and_delays() {
        let relay = Relay::start(echo_server().await).await.unwrap();
        let mut first = TcpStream::connect(relay.address()).await.unwrap();
        assert_eq!(
            round_trip(&mut first, Duration::from_secs(5))
                .await
                .unwrap(),
            b"ping"
        );

        relay.set(Fault::Cut);
        let mut buffer = [0_u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), first.read(&mut buffer))
            .await
            .expect("the cut reaches an idle connection");
        assert_eq!(
            read.map_err(|e| e.kind()).unwrap_err(),
            std::io::ErrorKind::ConnectionReset
        );
        let mut during = TcpStream::connect(relay.address()).await.unwrap();
        assert!(
            round_trip(&mut during, Duration::from_secs(5))
                .await
                .is_err()
        );

        relay.set(Fault::None);
        let mut healed = TcpStream::connect(relay.address()).await.unwrap();
        assert_eq!(
            round_trip(&mut healed, Duration::from_secs(5))
                .await
                .unwrap(),
            b"ping"
        );

        relay.set(Fault::Stall);
        let stalled = round_trip(&mut healed, Duration::from_millis(300)).await;
        assert_eq!(stalled.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
        relay.set(Fault::None);
        // The stalled bytes arrive once it lifts, in order.
        let mut answer = [0_u8; 4];
        healed.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"ping");

        relay.set(Fault::Delay(Duration::from_millis(100)));
        let started = Instant::now();
        round_trip(&mut healed, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "delayed both ways"
        );
        assert_eq!(relay.stats().accepted, 3);
        assert!(relay.stats().reset >= 2);
    }
}
