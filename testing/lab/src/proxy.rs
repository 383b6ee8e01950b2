//! The latency proxy: a small TCP relay in front of each host's sshd that holds every chunk
//! for a fixed delay in each direction, so that a round trip takes `2 * delay` longer (the
//! machine has no `tc netem`). It can also cut every relayed connection (a network drop).
//!
//! It runs on its own thread with its own tokio runtime, so that the lab API stays
//! synchronous for tests. Each direction is a reader task and a writer task joined by a
//! bounded channel: a slow receiver slows the reader down instead of buffering without end.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Chunks in flight per direction before the reader waits.
const IN_FLIGHT_CHUNKS: usize = 256;

/// One relay: where it listens (inside `netns` when the host has its own network
/// namespace) and the address it relays to (reached from the machine's namespace).
#[derive(Debug, Clone)]
pub struct Route {
    pub listen: SocketAddr,
    pub target: SocketAddr,
    pub netns: Option<String>,
}

impl Route {
    /// A relay in the machine's own network namespace.
    pub fn new(listen: SocketAddr, target: SocketAddr) -> Self {
        Route {
            listen,
            target,
            netns: None,
        }
    }
}

/// A running set of delaying relays; stops when dropped.
#[derive(Debug)]
pub struct LatencyProxy {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    drop_all: watch::Sender<u64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LatencyProxy {
    /// Listens on each route's first address and relays to its second, adding `one_way`
    /// in each direction. Fails if any listener cannot be bound.
    pub fn start(routes: &[Route], one_way: Duration) -> std::io::Result<Self> {
        let mut listeners = Vec::with_capacity(routes.len());
        for route in routes {
            let listen = route.listen;
            let bound = match &route.netns {
                Some(ns) => crate::netns::bind_in(ns, listen),
                None => std::net::TcpListener::bind(listen),
            };
            let l =
                bound.map_err(|e| std::io::Error::new(e.kind(), format!("bind {listen}: {e}")))?;
            l.set_nonblocking(true)?;
            listeners.push((l, route.target));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("k8sup-lab-proxy")
            .build()?;
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel();
        let (drop_all, drop_rx) = watch::channel(0u64);
        let thread = std::thread::Builder::new()
            .name("k8sup-lab-proxy".into())
            .spawn(move || {
                runtime.block_on(async move {
                    for (listener, target) in listeners {
                        let Ok(listener) = TcpListener::from_std(listener) else {
                            continue;
                        };
                        tokio::spawn(accept_loop(listener, target, one_way, drop_rx.clone()));
                    }
                    let _ = shutdown_rx.await;
                });
                // Dropping the runtime here aborts every relay task and closes its sockets.
            })?;
        Ok(LatencyProxy {
            shutdown: Some(shutdown),
            drop_all,
            thread: Some(thread),
        })
    }

    /// Cuts every connection currently relayed (clients see the connection reset/closed).
    pub fn drop_connections(&self) {
        self.drop_all.send_modify(|g| *g += 1);
    }

    /// Stops listening and closes every relayed connection.
    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    one_way: Duration,
    drop_rx: watch::Receiver<u64>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let mut drop_rx = drop_rx.clone();
        drop_rx.mark_unchanged();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(target).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::select! {
                _ = async { tokio::join!(relay(cr, sw, one_way), relay(sr, cw, one_way)) } => {}
                _ = drop_rx.changed() => {}
            }
        });
    }
}

/// Copies one direction, delivering each chunk `delay` after it was read.
async fn relay<R, W>(mut from: R, mut to: W, delay: Duration)
where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT_CHUNKS);
    let reader = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn adds_delay_each_way() {
        let echo = std::net::TcpListener::bind("127.0.0.1:0").expect("bind echo");
        let echo_addr = echo.local_addr().expect("addr");
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = echo.accept() {
                let mut buf = [0u8; 4];
                if s.read_exact(&mut buf).is_ok() {
                    let _ = s.write_all(&buf);
                }
            }
        });
        let front = std::net::TcpListener::bind("127.0.0.1:0").expect("bind probe");
        let front_addr = front.local_addr().expect("addr");
        drop(front);
        let proxy = LatencyProxy::start(
            &[Route::new(front_addr, echo_addr)],
            Duration::from_millis(50),
        )
        .expect("proxy starts");
        let mut c = std::net::TcpStream::connect(front_addr).expect("connect");
        let start = std::time::Instant::now();
        c.write_all(b"ping").expect("write");
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).expect("read");
        let rtt = start.elapsed();
        assert_eq!(&buf, b"ping");
        assert!(rtt >= Duration::from_millis(100), "rtt {rtt:?}");
        assert!(rtt < Duration::from_millis(1000), "rtt {rtt:?}");
        proxy.stop();
    }
}
