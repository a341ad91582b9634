//! The metadata controller quorum (KRaft-style).
//!
//! Brokers register and heartbeat; the active controller fences brokers whose
//! session expires, elects partition leaders from the ISR, applies ISR
//! changes asked for by leaders (AlterPartition), creates topics, moves
//! leadership back to preferred replicas (`auto.leader.rebalance.enable`)
//! and hands out producer id blocks (KIP-730 AllocateProducerIds).
//!
//! The controllers replicate their decisions with Raft ([`raft`]). The Raft
//! leader is the active controller: it runs [`ControllerState`] on a working
//! copy of the image, proposes each image a decision produces as a log entry,
//! and answers the broker only once that entry is committed. Followers apply
//! committed entries to their copy. Every controller writes its committed
//! image to [`IMAGE_PATH`] (what the harness reads). Broker session timers
//! are soft state of the active controller: a new one starts them fresh.
//! Requests reaching a non-leader are answered NOT_CONTROLLER with a hint.
//!
//! # Layout
//!
//! - [`state`]: the controller's decisions (no I/O).
//! - [`image`]: the metadata image every broker mirrors.
//! - [`raft`]: the consensus core and its on-disk log.
//! - [`rpc`]: broker ↔ controller and controller ↔ controller messages.
//! - this file: the runtime that wires them to the network and the disk.

pub mod image;
pub mod raft;
pub mod rpc;
pub mod state;

use crate::config::{defaults, Settings};
use crate::protocol::{read_frame, write_frame};
use crate::storage::Storage;
use image::MetadataImage;
use raft::store::RaftStore;
use raft::{Command, Message, NodeId, RaftConfig, RaftCore};
use rpc::{ControllerRequest, ControllerResponse};
use state::ControllerState;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify};

/// Where each controller keeps its committed image on its disk.
pub const IMAGE_PATH: &str = "/controller/metadata.json";
pub const IMAGE_DIR: &str = "/controller";
/// The Raft hard state and log.
pub const RAFT_DIR: &str = "/controller/raft";
/// How often broker sessions are checked.
pub const TICK_MS: u64 = 250;
/// How often the Raft core is ticked.
pub const RAFT_TICK_MS: u64 = 50;
/// Kafka's `controller.quorum.election.timeout.ms` default.
pub const ELECTION_TIMEOUT_MS: u64 = 1_000;
pub const RAFT_HEARTBEAT_INTERVAL_MS: u64 = 200;
/// Bound on Raft messages queued for one peer (more are dropped; Raft
/// retransmits).
pub const PEER_QUEUE_MAX: usize = 256;
/// Bounds on connecting to and writing to a peer controller.
pub const PEER_CONNECT_TIMEOUT_MS: u64 = 500;
pub const PEER_WRITE_TIMEOUT_MS: u64 = 500;
/// How long a broker request waits for its decision to commit.
pub const COMMIT_WAIT_MAX_MS: u64 = 5_000;

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// This controller's index in `voters` (its Raft node id).
    pub id: usize,
    pub listen: SocketAddr,
    /// Every controller's address in id order, this one's included.
    pub voters: Vec<SocketAddr>,
    /// Broker-level defaults (`broker.session.timeout.ms`,
    /// `unclean.leader.election.enable`, `auto.leader.rebalance.enable`, …).
    pub settings: Settings,
    /// Where the controller reports its Raft role for observers (the
    /// harness's `active-controller` target). Written, never read back.
    pub status: Arc<Mutex<RaftStatus>>,
}

impl ControllerConfig {
    /// A quorum of one.
    pub fn single(listen: SocketAddr, settings: Settings) -> Self {
        ControllerConfig { id: 0, listen, voters: vec![listen], settings, status: Arc::default() }
    }
}

/// A controller's Raft role as last reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RaftStatus {
    pub term: u64,
    pub leader: bool,
    pub commit_index: u64,
    pub image_version: u64,
}

/// Builds a reply once the decision's entry is committed.
type Reply = Box<dyn FnOnce(&MetadataImage) -> ControllerResponse + Send>;

/// A reply to build and where to send it.
type Pending = (Reply, oneshot::Sender<ControllerResponse>);

struct Waiter {
    term: u64,
    reply: Reply,
    tx: oneshot::Sender<ControllerResponse>,
}

/// The active controller's state while it leads one term.
struct Active {
    term: u64,
    /// Decisions so far, committed or not (the log's last image onwards).
    state: ControllerState,
    /// Broker replies waiting for their entry, by log index. Bounded by the
    /// requests in flight (one per broker connection).
    waiting: BTreeMap<u64, Vec<Waiter>>,
    next_session_check_ms: u64,
    next_rebalance_ms: u64,
}

struct Node {
    raft: RaftCore<MetadataImage>,
    store: RaftStore,
    storage: Arc<dyn Storage>,
    config: ControllerConfig,
    session_timeout_ms: u64,
    /// The image at the commit index.
    committed: MetadataImage,
    /// The version in IMAGE_PATH (0: none).
    disk_image_version: u64,
    /// The version of the last image applied since this process started.
    applied_version: u64,
    active: Option<Active>,
    peers: BTreeMap<NodeId, mpsc::Sender<Message<MetadataImage>>>,
    /// A persistence failure: the controller stops (fail-stop).
    fatal: Option<String>,
}

impl Node {
    fn hint(&self) -> Option<SocketAddr> {
        self.raft.leader().map(|l| self.config.voters[l as usize])
    }

    fn not_controller(&self) -> ControllerResponse {
        ControllerResponse::NotController { leader: self.hint() }
    }

    /// Runs the core's commands in order; then follows role changes.
    fn execute(&mut self, cmds: Vec<Command<MetadataImage>>, now_ms: u64) {
        for c in cmds {
            if self.fatal.is_some() {
                return;
            }
            let result = match c {
                Command::PersistHardState(hs) => self.store.save_hard_state(&hs),
                Command::Truncate { from_index } => self.store.truncate(from_index),
                Command::Append(entries) => self.store.append(&entries),
                Command::Send { to, msg } => {
                    // A full queue drops the message: Raft retransmits.
                    let _ = self.peers[&to].try_send(msg);
                    Ok(())
                }
                Command::Apply(entries) => self.apply(entries),
            };
            if let Err(e) = result {
                tracing::error!(target: "controller", id = self.config.id, "persistence failed, stopping: {e}");
                self.fatal = Some(e.to_string());
            }
        }
        self.follow_role(now_ms);
    }

    fn apply(&mut self, entries: Vec<raft::Entry<MetadataImage>>) -> std::io::Result<()> {
        for e in entries {
            if let Some(image) = e.cmd {
                assert!(image.version > self.applied_version, "image versions increase along the log");
                self.applied_version = image.version;
                self.committed = image;
                if self.committed.version > self.disk_image_version {
                    self.storage.write_atomic(IMAGE_PATH, &serde_json::to_vec(&self.committed)?)?;
                    self.disk_image_version = self.committed.version;
                }
            }
            let not_controller = self.not_controller();
            if let Some(active) = &mut self.active {
                let done: Vec<u64> = active.waiting.range(..=e.index).map(|(&i, _)| i).collect();
                for i in done {
                    for w in active.waiting.remove(&i).unwrap_or_default() {
                        // A waiter whose entry was replaced by another term's
                        // never happened: the broker retries elsewhere.
                        let resp = if i == e.index && w.term == e.term { (w.reply)(&self.committed) } else { not_controller.clone() };
                        let _ = w.tx.send(resp);
                    }
                }
            }
        }
        self.report();
        Ok(())
    }

    /// Starts or stops acting as the active controller as Raft leadership
    /// comes and goes.
    fn follow_role(&mut self, now_ms: u64) {
        let leading_term = self.raft.is_leader().then(|| self.raft.term());
        if self.active.as_ref().map(|a| a.term) != leading_term {
            if let Some(old) = self.active.take() {
                tracing::info!(target: "controller", id = self.config.id, term = old.term, "no longer the active controller");
                let resp = self.not_controller();
                for w in old.waiting.into_values().flatten() {
                    let _ = w.tx.send(resp.clone());
                }
            }
            if let Some(term) = leading_term {
                // Decisions continue from the log's last image: the no-op
                // this leader appended commits everything before it.
                let image = self.raft.entries().iter().rev().find_map(|e| e.cmd.clone()).unwrap_or_default();
                tracing::info!(target: "controller", id = self.config.id, term, version = image.version, "active controller");
                let state = ControllerState::restore(image, self.config.settings.clone(), self.session_timeout_ms, now_ms);
                let interval_ms = self.rebalance_interval_ms();
                self.active = Some(Active {
                    term,
                    state,
                    waiting: BTreeMap::new(),
                    next_session_check_ms: now_ms + TICK_MS,
                    next_rebalance_ms: now_ms + interval_ms,
                });
            }
        }
        self.report();
    }

    /// `leader.imbalance.check.interval.seconds`, in ms.
    fn rebalance_interval_ms(&self) -> u64 {
        let key = "leader.imbalance.check.interval.seconds";
        1000 * self.config.settings.u64_or(key, defaults::LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS)
    }

    fn report(&self) {
        *self.config.status.lock().unwrap() = RaftStatus {
            term: self.raft.term(),
            leader: self.raft.is_leader(),
            commit_index: self.raft.commit_index(),
            image_version: self.committed.version,
        };
    }

    /// Proposes the working image if `before` is older; registers the reply.
    fn propose_if_changed(&mut self, before: u64, waiter: Option<Pending>, now_ms: u64) -> Option<Pending> {
        let active = self.active.as_mut().expect("active");
        if active.state.image.version == before {
            return waiter;
        }
        let (index, cmds) = self.raft.propose(active.state.image.clone()).expect("the active controller is the leader");
        if let Some((reply, tx)) = waiter {
            active.waiting.entry(index).or_default().push(Waiter { term: active.term, reply, tx });
        }
        self.execute(cmds, now_ms);
        None
    }

    /// A broker request. Answers at once, or returns a receiver for the
    /// answer that comes when the decision commits.
    fn handle(&mut self, req: ControllerRequest, now_ms: u64) -> Result<ControllerResponse, oneshot::Receiver<ControllerResponse>> {
        if self.fatal.is_some() {
            return Ok(ControllerResponse::NotController { leader: None });
        }
        let Some(active) = self.active.as_mut() else { return Ok(self.not_controller()) };
        let st = &mut active.state;
        let before = st.image.version;
        let reply: Reply = match req {
            ControllerRequest::Heartbeat { broker_id, incarnation, host, port, known_version, offline_replicas } => {
                let mut events = st.heartbeat(broker_id, incarnation, &host, port, now_ms);
                events.extend(st.replicas_offline(broker_id, incarnation, &offline_replicas));
                for ev in events {
                    tracing::info!(target: "controller", ?ev);
                }
                Box::new(move |img: &MetadataImage| ControllerResponse::Heartbeat {
                    image: (img.version != known_version).then(|| img.clone()),
                    fenced: img.is_fenced(broker_id),
                })
            }
            ControllerRequest::AlterPartition { broker_id, topic, partition, leader_epoch, partition_epoch, new_isr } => {
                let result = st.alter_partition(broker_id, &topic, partition, leader_epoch, partition_epoch, new_isr);
                if let Ok(ps) = &result {
                    tracing::info!(target: "controller", %topic, partition, isr = ?ps.isr, "ISR changed");
                }
                Box::new(move |_: &MetadataImage| ControllerResponse::AlterPartition { result })
            }
            ControllerRequest::CreateTopic { name, partitions, replication_factor, configs } => {
                let result = st.create_topic(&name, partitions, replication_factor, configs);
                Box::new(move |_: &MetadataImage| ControllerResponse::CreateTopic { result })
            }
            ControllerRequest::TopicAdmin(cmd) => {
                let result = st.apply_topic_command(cmd);
                Box::new(move |_: &MetadataImage| ControllerResponse::TopicAdmin { result })
            }
            ControllerRequest::AllocateProducerIds { broker_id, incarnation } => {
                let result = st.allocate_producer_ids(broker_id, incarnation);
                Box::new(move |_: &MetadataImage| ControllerResponse::AllocateProducerIds { result })
            }
            ControllerRequest::Raft(_) => unreachable!("Raft messages are stepped, not handled"),
        };
        let (tx, rx) = oneshot::channel();
        match self.propose_if_changed(before, Some((reply, tx)), now_ms) {
            // Nothing changed: answer from the committed image.
            Some((reply, _)) => Ok(reply(&self.committed)),
            None => Err(rx),
        }
    }

    fn step(&mut self, msg: Message<MetadataImage>, now_ms: u64) {
        if self.fatal.is_none() {
            let cmds = self.raft.step(msg);
            self.execute(cmds, now_ms);
        }
    }

    fn tick(&mut self, now_ms: u64) {
        if self.fatal.is_some() {
            return;
        }
        let cmds = self.raft.tick(now_ms);
        self.execute(cmds, now_ms);
        let rebalance = self.config.settings.bool_or("auto.leader.rebalance.enable", defaults::AUTO_LEADER_REBALANCE_ENABLE);
        let interval_ms = self.rebalance_interval_ms();
        let Some(active) = self.active.as_mut() else { return };
        let before = active.state.image.version;
        if now_ms >= active.next_session_check_ms {
            active.next_session_check_ms = now_ms + TICK_MS;
            for ev in active.state.tick(now_ms) {
                tracing::info!(target: "controller", ?ev);
            }
        }
        if now_ms >= active.next_rebalance_ms {
            active.next_rebalance_ms = now_ms + interval_ms;
            if rebalance {
                for ev in active.state.rebalance_leaders() {
                    tracing::info!(target: "controller", ?ev, "preferred leader");
                }
            }
        }
        self.propose_if_changed(before, None, now_ms);
    }
}

struct Shared {
    node: Mutex<Node>,
    start: tokio::time::Instant,
    stopped: Notify,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn with_node<T>(&self, f: impl FnOnce(&mut Node, u64) -> T) -> T {
        let now_ms = self.now_ms();
        let mut node = self.node.lock().unwrap();
        let out = f(&mut node, now_ms);
        if node.fatal.is_some() {
            self.stopped.notify_one();
        }
        out
    }

    async fn answer(&self, req: ControllerRequest) -> Option<ControllerResponse> {
        if let ControllerRequest::Raft(msg) = req {
            self.with_node(|n, now| n.step(msg, now));
            return None;
        }
        match self.with_node(|n, now| n.handle(req, now)) {
            Ok(resp) => Some(resp),
            Err(rx) => match tokio::time::timeout(Duration::from_millis(COMMIT_WAIT_MAX_MS), rx).await {
                Ok(Ok(resp)) => Some(resp),
                _ => Some(ControllerResponse::NotController { leader: None }),
            },
        }
    }
}

/// Sends Raft messages to one peer over a long-lived connection, in order.
async fn peer_sender(addr: SocketAddr, mut rx: mpsc::Receiver<Message<MetadataImage>>) {
    let mut conn: Option<tokio::net::TcpStream> = None;
    while let Some(msg) = rx.recv().await {
        let Ok(bytes) = serde_json::to_vec(&ControllerRequest::Raft(msg)) else { continue };
        if conn.is_none() {
            let connect = tokio::net::TcpStream::connect(addr);
            conn = tokio::time::timeout(Duration::from_millis(PEER_CONNECT_TIMEOUT_MS), connect).await.ok().and_then(|r| r.ok());
        }
        let Some(stream) = conn.as_mut() else { continue };
        let write = tokio::time::timeout(Duration::from_millis(PEER_WRITE_TIMEOUT_MS), write_frame(stream, &bytes)).await;
        if !matches!(write, Ok(Ok(()))) {
            conn = None;
        }
    }
}

/// Runs a controller process until it is killed (or its disk fails).
pub async fn run_controller(storage: Arc<dyn Storage>, config: ControllerConfig) -> anyhow::Result<()> {
    assert_eq!(config.voters.get(config.id), Some(&config.listen), "listen address is voters[id]");
    let session_timeout_ms = config
        .settings
        .u64_or("broker.session.timeout.ms", defaults::BROKER_SESSION_TIMEOUT_MS);
    storage.create_dir_all(IMAGE_DIR)?;
    let (store, recovered) = RaftStore::open::<MetadataImage>(storage.clone(), RAFT_DIR)?;
    if recovered.dropped_tail_bytes > 0 {
        tracing::warn!(target: "controller", id = config.id, bytes = recovered.dropped_tail_bytes, "dropped a torn Raft log tail");
    }
    let committed: MetadataImage = if storage.exists(IMAGE_PATH) {
        serde_json::from_slice(&storage.read_all(IMAGE_PATH)?)?
    } else {
        MetadataImage::default()
    };
    let raft_config = RaftConfig {
        id: config.id as NodeId,
        voters: (0..config.voters.len() as NodeId).collect(),
        election_timeout_min_ms: ELECTION_TIMEOUT_MS,
        heartbeat_interval_ms: RAFT_HEARTBEAT_INTERVAL_MS,
    };
    // Election timeouts come from the run's seeded rng (deterministic).
    #[cfg(madsim)]
    let seed: u64 = madsim::rand::random();
    #[cfg(not(madsim))]
    let seed: u64 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let raft = RaftCore::restore(raft_config, recovered.hard_state, recovered.entries, seed, 0);
    let mut peers = BTreeMap::new();
    let mut senders = Vec::new();
    for (i, addr) in config.voters.iter().enumerate() {
        if i != config.id {
            let (tx, rx) = mpsc::channel(PEER_QUEUE_MAX);
            peers.insert(i as NodeId, tx);
            senders.push(tokio::spawn(peer_sender(*addr, rx)));
        }
    }
    let node = Node {
        raft,
        store,
        storage,
        session_timeout_ms,
        disk_image_version: committed.version,
        applied_version: 0,
        committed,
        active: None,
        peers,
        fatal: None,
        config: config.clone(),
    };
    node.report();
    let shared = Arc::new(Shared { node: Mutex::new(node), start: tokio::time::Instant::now(), stopped: Notify::new() });
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let ticker = {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(RAFT_TICK_MS)).await;
                shared.with_node(|n, now| n.tick(now));
            }
        })
    };
    let result = loop {
        let accepted = tokio::select! {
            biased;
            a = listener.accept() => a,
            _ = shared.stopped.notified() => break Err(anyhow::anyhow!("controller stopped: persistence failed")),
        };
        let (mut stream, _) = match accepted {
            Ok(c) => c,
            Err(e) => break Err(e.into()),
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            while let Ok(Some(frame)) = read_frame(&mut stream).await {
                let Ok(req) = serde_json::from_slice::<ControllerRequest>(&frame) else {
                    return; // malformed: close the connection
                };
                let Some(resp) = shared.answer(req).await else { continue };
                let Ok(bytes) = serde_json::to_vec(&resp) else { return };
                if write_frame(&mut stream, &bytes).await.is_err() {
                    return;
                }
            }
        });
    };
    ticker.abort();
    for s in senders {
        s.abort();
    }
    result
}
