//! One multiplexed connection per broker address.
//!
//! A connection has a writer task (takes requests from a bounded queue,
//! gives each a correlation id, records it as in flight, writes the frame)
//! and a reader task (matches response frames to in-flight requests by
//! correlation id and decodes them). When either side fails, or a request
//! times out, the connection closes: every in-flight request fails as a
//! network error that may have been sent, every queued one as not sent. The
//! `Pool` reopens a closed connection lazily on its next use.

use super::config::NetworkConfig;
use super::error::ClientError;
use crate::protocol::{decode_response, encode_request, read_frame, write_frame};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Requests queued for one connection's writer at most.
pub const MAX_QUEUED_REQUESTS: usize = 1024;

/// What a request gets back: `Ok(None)` for a request that expects no
/// response (acks=0 produce), once it is written.
type Reply = Result<Option<ResponseKind>, ClientError>;

/// One request to send.
#[derive(Debug, Clone)]
pub struct Request {
    pub api_key: ApiKey,
    pub version: i16,
    pub body: RequestKind,
    /// False for acks=0 produce: the broker sends nothing back.
    pub expect_response: bool,
}

struct Outgoing {
    request: Request,
    reply: oneshot::Sender<Reply>,
}

struct InFlight {
    api_key: ApiKey,
    version: i16,
    expect_response: bool,
    reply: oneshot::Sender<Reply>,
}

/// In-flight requests by correlation id; `closed` once the connection died
/// (later registrations fail at once as not sent).
#[derive(Default)]
struct InFlightTable {
    closed: bool,
    by_correlation_id: BTreeMap<i32, InFlight>,
}

struct Shared {
    addr: SocketAddr,
    inflight: Mutex<InFlightTable>,
    /// When a request last started or finished (connections.max.idle.ms).
    last_used: Mutex<Instant>,
}

impl Shared {
    fn is_closed(&self) -> bool {
        self.inflight.lock().unwrap().closed
    }

    /// Marks the connection dead and fails everything in flight (those
    /// requests may have reached the broker).
    fn fail_all(&self, why: &str) {
        let drained = {
            let mut t = self.inflight.lock().unwrap();
            t.closed = true;
            std::mem::take(&mut t.by_correlation_id)
        };
        for (_, f) in drained {
            let _ = f.reply.send(Err(self.network_error(why, true)));
        }
    }

    fn network_error(&self, message: &str, sent: bool) -> ClientError {
        ClientError::Network { addr: self.addr.to_string(), message: message.to_string(), sent }
    }
}

/// One open connection to a broker.
pub struct Connection {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Outgoing>,
    writer: JoinHandle<()>,
    reader: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close("connection dropped");
    }
}

impl Connection {
    /// Connects, bounded by `timeout`.
    pub async fn open(addr: SocketAddr, client_id: String, timeout: Duration) -> Result<Connection, ClientError> {
        let not_sent = |message: String| ClientError::Network { addr: addr.to_string(), message, sent: false };
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(not_sent(format!("connect: {e}"))),
            Err(_) => return Err(not_sent("connect timed out".into())),
        };
        let (read_half, write_half) = tokio::io::split(stream);
        let shared = Arc::new(Shared { addr, inflight: Mutex::new(InFlightTable::default()), last_used: Mutex::new(Instant::now()) });
        let (queue, rx) = mpsc::channel(MAX_QUEUED_REQUESTS);
        let writer = tokio::spawn(write_loop(shared.clone(), write_half, rx, client_id));
        let reader = tokio::spawn(read_loop(shared.clone(), read_half));
        Ok(Connection { shared, queue, writer, reader })
    }

    pub fn is_closed(&self) -> bool {
        self.shared.is_closed() || self.writer.is_finished() || self.reader.is_finished()
    }

    /// Idle: nothing in flight since `max_idle` ago.
    fn is_idle(&self, now: Instant, max_idle: Duration) -> bool {
        self.shared.inflight.lock().unwrap().by_correlation_id.is_empty()
            && *self.shared.last_used.lock().unwrap() + max_idle <= now
    }

    /// Closes the connection: in-flight requests fail (maybe sent), queued
    /// ones fail (not sent) when the writer's queue is dropped.
    pub fn close(&self, why: &str) {
        self.shared.fail_all(why);
        self.writer.abort();
        self.reader.abort();
    }

    /// Sends one request and waits for its response (or, with
    /// `expect_response == false`, until it is written), at most `timeout`.
    /// A timeout closes the connection, as Kafka's NetworkClient does.
    pub async fn call(&self, request: Request, timeout: Duration) -> Reply {
        let api_key = request.api_key;
        let (reply, rx) = oneshot::channel();
        let out = Outgoing { request, reply };
        *self.shared.last_used.lock().unwrap() = Instant::now();
        if self.queue.try_send(out).is_err() {
            return Err(self.shared.network_error("connection closed or its queue is full", false));
        }
        let answer = tokio::time::timeout(timeout, rx).await;
        *self.shared.last_used.lock().unwrap() = Instant::now();
        match answer {
            Ok(Ok(r)) => r,
            // The writer dropped the request unwritten (the connection closed).
            Ok(Err(_)) => Err(self.shared.network_error("connection closed before the request was written", false)),
            Err(_) => {
                self.close("request timed out");
                Err(ClientError::Timeout(format!("{api_key:?} to {} after {} ms", self.shared.addr, timeout.as_millis())))
            }
        }
    }
}

async fn write_loop(
    shared: Arc<Shared>,
    mut w: tokio::io::WriteHalf<TcpStream>,
    mut rx: mpsc::Receiver<Outgoing>,
    client_id: String,
) {
    let mut next_correlation_id: i32 = 0;
    while let Some(out) = rx.recv().await {
        let correlation_id = next_correlation_id;
        next_correlation_id = next_correlation_id.wrapping_add(1);
        let Outgoing { request, reply } = out;
        let frame = match encode_request(request.api_key, request.version, correlation_id, &client_id, &request.body) {
            Ok(f) => f,
            Err(e) => {
                let _ = reply.send(Err(shared.network_error(&format!("cannot encode request: {e}"), false)));
                continue;
            }
        };
        {
            let mut t = shared.inflight.lock().unwrap();
            if t.closed {
                let _ = reply.send(Err(shared.network_error("connection closed", false)));
                return;
            }
            let entry = InFlight {
                api_key: request.api_key,
                version: request.version,
                expect_response: request.expect_response,
                reply,
            };
            let previous = t.by_correlation_id.insert(correlation_id, entry);
            assert!(previous.is_none(), "correlation id {correlation_id} reused while in flight");
        }
        if let Err(e) = write_frame(&mut w, &frame).await {
            shared.fail_all(&format!("write failed: {e}"));
            return;
        }
        if !request.expect_response {
            let done = shared.inflight.lock().unwrap().by_correlation_id.remove(&correlation_id);
            if let Some(f) = done {
                let _ = f.reply.send(Ok(None));
            }
        }
    }
}

async fn read_loop(shared: Arc<Shared>, mut r: tokio::io::ReadHalf<TcpStream>) {
    loop {
        let frame = match read_frame(&mut r).await {
            Ok(Some(f)) => f,
            Ok(None) => return shared.fail_all("connection closed by the broker"),
            Err(e) => return shared.fail_all(&format!("read failed: {e}")),
        };
        if frame.len() < 4 {
            return shared.fail_all("response frame shorter than a correlation id");
        }
        let correlation_id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let entry = shared.inflight.lock().unwrap().by_correlation_id.remove(&correlation_id);
        let Some(f) = entry.filter(|f| f.expect_response) else {
            return shared.fail_all(&format!("response with unknown correlation id {correlation_id}"));
        };
        let result = match decode_response(f.api_key, f.version, frame) {
            Ok((_, body)) => Ok(Some(body)),
            Err(e) => Err(ClientError::Malformed(format!("{:?} v{} response: {e}", f.api_key, f.version))),
        };
        let _ = f.reply.send(result);
    }
}

/// Connections by broker address, opened on first use and reopened after
/// they close.
pub struct Pool {
    config: NetworkConfig,
    connections: Mutex<BTreeMap<SocketAddr, Arc<Connection>>>,
}

impl Pool {
    pub fn new(config: NetworkConfig) -> Pool {
        Pool { config, connections: Mutex::new(BTreeMap::new()) }
    }

    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// Closes connections idle for connections.max.idle.ms (Kafka's
    /// Selector does this as it polls); the next use reopens them.
    pub fn close_idle(&self) {
        let max_idle = Duration::from_millis(self.config.connections_max_idle_ms);
        let now = Instant::now();
        let mut conns = self.connections.lock().unwrap();
        let idle: Vec<SocketAddr> = conns.iter().filter(|(_, c)| c.is_closed() || c.is_idle(now, max_idle)).map(|(a, _)| *a).collect();
        for addr in idle {
            if let Some(c) = conns.remove(&addr) {
                tracing::debug!(%addr, "closing idle connection");
                c.close("idle for connections.max.idle.ms");
            }
        }
    }

    /// Open connections (for tests of idle closing).
    pub fn open_connections(&self) -> usize {
        self.connections.lock().unwrap().values().filter(|c| !c.is_closed()).count()
    }

    async fn connection(&self, addr: SocketAddr) -> Result<Arc<Connection>, ClientError> {
        self.close_idle();
        if let Some(c) = self.connections.lock().unwrap().get(&addr) {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        let fresh = Arc::new(Connection::open(addr, self.config.client_id.clone(), timeout).await?);
        let mut conns = self.connections.lock().unwrap();
        // Another task may have opened one meanwhile: keep the first.
        match conns.get(&addr) {
            Some(c) if !c.is_closed() => Ok(c.clone()),
            _ => {
                conns.insert(addr, fresh.clone());
                Ok(fresh)
            }
        }
    }

    /// Sends a request to `addr` and waits for the response, bounded by
    /// `timeout` (callers pass request.timeout.ms or less).
    pub async fn call(&self, addr: SocketAddr, request: Request, timeout: Duration) -> Reply {
        let conn = self.connection(addr).await?;
        conn.call(request, timeout).await
    }

    /// `call` for a request that always has a response.
    pub async fn request(&self, addr: SocketAddr, api_key: ApiKey, version: i16, body: RequestKind) -> Result<ResponseKind, ClientError> {
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        let request = Request { api_key, version, body, expect_response: true };
        match self.call(addr, request, timeout).await? {
            Some(r) => Ok(r),
            None => Err(ClientError::Malformed(format!("{api_key:?}: no response body"))),
        }
    }
}
