//! Builds the simulated cluster: one madsim node per controller and broker,
//! each with its own `SimDisk` that outlives the process (kill/restart), and
//! the operations the fault injector needs (crash, power loss, restart).
//!
//! Node addresses live in 10.0.0.0/16 of madsim's simulated network; nothing
//! here touches a real network.

use ksim_broker::config::Settings;
use ksim_broker::controller::image::MetadataImage;
use ksim_broker::controller::{run_controller, ControllerConfig, RaftStatus, IMAGE_PATH};
use ksim_broker::observe::Observer;
use ksim_broker::server::{run_broker_until, BrokerConfig, ShutdownSignal};
use ksim_broker::storage::{DiskFaults, SimDisk, Storage};
use crate::checker::liveness::MemberView;
use crate::scenario::Target;
use crate::workload::{ClientControl, Recorder};
use madsim::runtime::{Handle, NodeHandle};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Kafka's client port.
pub const BROKER_PORT: u16 = 9092;
/// The controller listener port.
pub const CONTROLLER_PORT: u16 = 9093;

/// One simulated machine running a server process.
pub struct ServerNode {
    pub name: String,
    pub node: NodeHandle,
    pub disk: SimDisk,
    pub addr: SocketAddr,
    /// False between a crash/power loss and the restart.
    pub up: bool,
    /// Controllers only: the Raft role the process last reported (an
    /// observation channel per node, not global state).
    pub raft_status: Option<Arc<Mutex<RaftStatus>>>,
    /// Brokers only: the graceful-shutdown signal of the current process
    /// (replaced at every start).
    pub shutdown: Option<Arc<Mutex<Arc<ShutdownSignal>>>>,
}

/// One simulated machine running a workload client (producer or
/// consumer). Its process can crash and restart; each start is a new
/// process id in the history (DESIGN.md: a crashed client gets a new one).
pub struct ClientNode {
    pub name: String,
    pub node: NodeHandle,
    /// False between a crash and the restart.
    pub up: bool,
    /// What client faults change (clock, stalls); outlives restarts.
    pub control: Arc<ClientControl>,
    incarnation: Arc<Mutex<Incarnation>>,
    recorder: Arc<Recorder>,
}

/// The client's current process.
#[derive(Debug, Default)]
struct Incarnation {
    process: u64,
    /// Processes started on this node so far.
    starts: u32,
    /// The current process's workload returned.
    finished: bool,
}

/// Hands out client process ids: the initial clients take 0.. in order,
/// restarts and the final reader take the next free one.
#[derive(Debug, Default)]
pub struct ProcessIds(AtomicU64);

impl ProcessIds {
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

impl ClientNode {
    /// The history's process id of the running (or last) process.
    pub fn process(&self) -> u64 {
        self.incarnation.lock().unwrap().process
    }

    /// The current process's workload has returned.
    pub fn finished(&self) -> bool {
        self.up && self.incarnation.lock().unwrap().finished
    }
}

pub struct Cluster {
    pub handle: Handle,
    pub controllers: Vec<ServerNode>,
    /// Broker i has Kafka broker id i (`broker:N` targets id N).
    pub brokers: Vec<ServerNode>,
    /// Every broker's `log.dirs` (`/data0` … `/dataN-1`).
    pub log_dirs: Vec<String>,
    /// Producer processes, `producer:N` = index N.
    pub producers: Vec<ClientNode>,
    /// Consumer processes (assign mode and group members), in creation order.
    pub consumers: Vec<ClientNode>,
    /// The scenario target naming each of `consumers`.
    pub consumer_targets: Vec<Target>,
}

/// Inputs to build a cluster (from the scenario's `[cluster]`).
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub brokers: usize,
    pub controllers: usize,
    pub log_dirs: usize,
    pub os_writeback_ms: u64,
    pub settings: Settings,
}

pub fn broker_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 1, (i + 1) as u8))
}

pub fn controller_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 2, (i + 1) as u8))
}

/// Client machines (producers, consumers, the harness's admin) get
/// addresses from 10.0.3.0/24 upward.
pub fn client_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 3 + (i / 250) as u8, (i % 250 + 1) as u8))
}

/// Creates a server node at `addr` whose process (`run`, called again on
/// every restart) sees `disk`, which outlives the process.
fn start_server<F, Fut>(handle: &Handle, name: &str, addr: SocketAddr, disk: &SimDisk, run: F) -> NodeHandle
where
    F: Fn(Arc<dyn Storage>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let disk = disk.clone();
    handle.create_node().name(name).ip(addr.ip()).init(move || run(Arc::new(disk.clone()))).build()
}

impl Cluster {
    /// Creates and starts every node. Must run inside the madsim runtime.
    /// `observer` receives every broker's replica observations.
    pub fn build(spec: &ClusterSpec, observer: Option<Arc<dyn Observer>>) -> Cluster {
        assert!(spec.brokers >= 1 && spec.brokers <= 200, "brokers out of range: {}", spec.brokers);
        assert!(spec.controllers >= 1, "need a controller");
        let handle = Handle::current();
        let controller_addrs: Vec<SocketAddr> =
            (0..spec.controllers).map(|i| SocketAddr::new(controller_ip(i), CONTROLLER_PORT)).collect();
        let controllers = (0..spec.controllers)
            .map(|i| {
                let disk = SimDisk::new(spec.os_writeback_ms);
                let addr = controller_addrs[i];
                let status = Arc::new(Mutex::new(RaftStatus::default()));
                let config = ControllerConfig {
                    id: i,
                    listen: addr,
                    voters: controller_addrs.clone(),
                    settings: spec.settings.clone(),
                    status: status.clone(),
                };
                let name = format!("controller-{i}");
                let node = start_server(&handle, &name, addr, &disk, move |storage| {
                    let config = config.clone();
                    async move {
                        if let Err(e) = run_controller(storage, config).await {
                            tracing::error!("controller stopped: {e}");
                        }
                    }
                });
                ServerNode { name, node, disk, addr, up: true, raft_status: Some(status), shutdown: None }
            })
            .collect();
        let log_dirs: Vec<String> = (0..spec.log_dirs.max(1)).map(|d| format!("/data{d}")).collect();
        let brokers = (0..spec.brokers)
            .map(|i| {
                let disk = SimDisk::new(spec.os_writeback_ms);
                let addr = SocketAddr::new(broker_ip(i), BROKER_PORT);
                let config = BrokerConfig {
                    id: i as i32,
                    listen: addr,
                    advertised_host: addr.ip().to_string(),
                    advertised_port: BROKER_PORT,
                    controllers: controller_addrs.clone(),
                    log_dirs: log_dirs.clone(),
                    settings: spec.settings.clone(),
                    observer: observer.clone(),
                };
                let name = format!("broker-{i}");
                let shutdown = Arc::new(Mutex::new(Arc::new(ShutdownSignal::new())));
                let slot = shutdown.clone();
                let node = start_server(&handle, &name, addr, &disk, move |storage| {
                    let config = config.clone();
                    // A fresh incarnation per process start, from the seeded rng.
                    let incarnation: u64 = madsim::rand::random();
                    let signal = Arc::new(ShutdownSignal::new());
                    *slot.lock().unwrap() = signal.clone();
                    async move {
                        if let Err(e) = run_broker_until(storage, config, incarnation, signal).await {
                            tracing::error!("broker stopped: {e}");
                        }
                    }
                });
                ServerNode { name, node, disk, addr, up: true, raft_status: None, shutdown: Some(shutdown) }
            })
            .collect();
        Cluster { handle, controllers, brokers, log_dirs, producers: Vec::new(), consumers: Vec::new(), consumer_targets: Vec::new() }
    }

    /// Starts a client machine at `ip` whose process runs `workload(process
    /// id)`, again (with a fresh id from `ids`) after every restart.
    #[allow(clippy::too_many_arguments)]
    pub fn add_client<F, Fut>(
        &mut self,
        role: ClientRole,
        ip: IpAddr,
        ids: &Arc<ProcessIds>,
        recorder: &Arc<Recorder>,
        control: Arc<ClientControl>,
        workload: F,
    ) -> NodeRef
    where
        F: Fn(u64) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let node_ref = match &role {
            ClientRole::Producer => NodeRef::Producer(self.producers.len()),
            ClientRole::Consumer(_) => NodeRef::Consumer(self.consumers.len()),
        };
        let name = node_ref.to_string();
        let incarnation = Arc::new(Mutex::new(Incarnation::default()));
        let inc = incarnation.clone();
        let ids = ids.clone();
        let node = self
            .handle
            .create_node()
            .name(&name)
            .ip(ip)
            .init(move || {
                let process = {
                    let mut i = inc.lock().unwrap();
                    i.process = ids.next();
                    i.starts += 1;
                    i.finished = false;
                    i.process
                };
                let run = workload(process);
                let inc = inc.clone();
                async move {
                    run.await;
                    let mut i = inc.lock().unwrap();
                    if i.process == process {
                        i.finished = true;
                    }
                }
            })
            .build();
        let client = ClientNode { name, node, up: true, control, incarnation, recorder: recorder.clone() };
        match role {
            ClientRole::Producer => self.producers.push(client),
            ClientRole::Consumer(target) => {
                self.consumers.push(client);
                self.consumer_targets.push(target);
            }
        }
        node_ref
    }

    /// Every client's current process has finished its workload.
    pub fn clients_finished(&self) -> bool {
        self.producers.iter().chain(&self.consumers).all(|c| c.finished())
    }

    /// The consumer a `consumer:N` or `consumer:GROUP/N` target names.
    pub fn consumer_named(&self, target: &Target) -> Option<NodeRef> {
        self.consumer_targets.iter().position(|t| t == target).map(NodeRef::Consumer)
    }

    /// The live members of consumer group `group` (up, workload still
    /// running) as the liveness watch sees them.
    pub fn group_members(&self, group: &str) -> Vec<MemberView> {
        self.consumers
            .iter()
            .zip(&self.consumer_targets)
            .filter(|(c, t)| matches!(t, Target::Consumer { group: g, .. } if g == group) && c.up)
            .filter_map(|(c, _)| {
                let i = c.incarnation.lock().unwrap();
                (!i.finished).then(|| MemberView { process: i.process, joined: c.control.membership() })
            })
            .collect()
    }

    /// The client behind a client `NodeRef`.
    pub fn client(&self, target: NodeRef) -> Option<&ClientNode> {
        match target {
            NodeRef::Producer(i) => self.producers.get(i),
            NodeRef::Consumer(i) => self.consumers.get(i),
            NodeRef::Broker(_) | NodeRef::Controller(_) => None,
        }
    }

    /// The madsim node of any node.
    pub fn node_id(&self, target: NodeRef) -> madsim::task::NodeId {
        match target {
            NodeRef::Broker(i) => self.brokers[i].node.id(),
            NodeRef::Controller(i) => self.controllers[i].node.id(),
            NodeRef::Producer(i) => self.producers[i].node.id(),
            NodeRef::Consumer(i) => self.consumers[i].node.id(),
        }
    }

    /// Every node: brokers, controllers, then clients.
    pub fn all_nodes(&self) -> Vec<NodeRef> {
        (0..self.brokers.len())
            .map(NodeRef::Broker)
            .chain((0..self.controllers.len()).map(NodeRef::Controller))
            .chain((0..self.producers.len()).map(NodeRef::Producer))
            .chain((0..self.consumers.len()).map(NodeRef::Consumer))
            .collect()
    }

    pub fn bootstrap(&self) -> Vec<SocketAddr> {
        self.brokers.iter().map(|b| b.addr).collect()
    }

    /// The newest committed image any controller has on its disk (each
    /// writes every committed image before the active one answers).
    pub fn controller_image(&self) -> Option<MetadataImage> {
        self.controllers
            .iter()
            .filter_map(|c| {
                let bytes = c.disk.read_all(IMAGE_PATH).ok()?;
                serde_json::from_slice::<MetadataImage>(&bytes).ok()
            })
            .max_by_key(|img| img.version)
    }

    /// The active controller: among running controllers that report being
    /// the Raft leader, the one in the highest term (an old leader cut off
    /// by a partition may not know yet that it was replaced).
    pub fn active_controller(&self) -> Option<usize> {
        self.controllers
            .iter()
            .enumerate()
            .filter(|(_, c)| c.up)
            .filter_map(|(i, c)| {
                let st = *c.raft_status.as_ref()?.lock().unwrap();
                st.leader.then_some((st.term, i))
            })
            .max()
            .map(|(_, i)| i)
    }

    /// The server behind a broker/controller `NodeRef` (None for clients).
    fn server_mut(&mut self, target: NodeRef) -> Option<&mut ServerNode> {
        match target {
            NodeRef::Broker(i) => Some(&mut self.brokers[i]),
            NodeRef::Controller(i) => Some(&mut self.controllers[i]),
            NodeRef::Producer(_) | NodeRef::Consumer(_) => None,
        }
    }

    fn set_up(&mut self, target: NodeRef, up: bool) {
        match target {
            NodeRef::Broker(i) => self.brokers[i].up = up,
            NodeRef::Controller(i) => self.controllers[i].up = up,
            NodeRef::Producer(i) => self.producers[i].up = up,
            NodeRef::Consumer(i) => self.consumers[i].up = up,
        }
    }

    /// Kills the node's process. A client's death goes into the history
    /// (its sends in flight as `info`, then `crash`).
    fn kill(&mut self, target: NodeRef) {
        self.handle.kill(self.node_id(target));
        self.set_up(target, false);
        if let Some(c) = self.client(target) {
            c.recorder.crash(c.process());
        }
    }

    /// kill -9: the process dies; the OS page cache survives.
    pub fn crash(&mut self, target: NodeRef) {
        if let Some(n) = self.server_mut(target) {
            n.disk.crash();
        }
        self.kill(target);
    }

    /// Graceful stop: a broker closes its logs (fsync, producer snapshots,
    /// clean-shutdown marker) and its process ends; a controller's process
    /// is stopped (its disk, as after a crash, keeps the page cache).
    /// Clients are not stopped this way (false).
    pub fn shutdown(&mut self, target: NodeRef) -> bool {
        match self.server_mut(target).map(|n| n.shutdown.clone()) {
            Some(Some(slot)) => {
                slot.lock().unwrap().request();
                self.set_up(target, false);
                true
            }
            Some(None) => {
                self.kill(target);
                true
            }
            None => false,
        }
    }

    /// Power loss: unsynced page cache is lost (the last write may tear).
    /// A client machine has no disk: this is a crash.
    pub fn power_loss<R: rand::Rng>(&mut self, target: NodeRef, rng: &mut R) {
        if let Some(n) = self.server_mut(target) {
            let tear = rng.random_bool(0.5);
            n.disk.power_loss(rng, tear);
        }
        self.kill(target);
    }

    /// Starts a stopped node again (kill first: madsim's restart alone would
    /// leave old sockets bound). A client comes back as a new process.
    pub fn restart(&mut self, target: NodeRef) {
        if self.is_up(target) {
            return;
        }
        let id = self.node_id(target);
        self.handle.kill(id);
        self.handle.restart(id);
        self.set_up(target, true);
    }

    /// Switches disk faults on for a server (its process sees them at once).
    pub fn break_disk(&mut self, target: NodeRef, f: impl FnOnce(&mut DiskFaults)) {
        if let Some(n) = self.server_mut(target) {
            n.disk.update_faults(f);
        }
    }

    /// The disk is repaired (faults off, data as it was) and the node's
    /// process restarted: Kafka brings a failed log dir back only on
    /// restart, and a broker whose every dir failed has halted.
    pub fn repair_disk(&mut self, target: NodeRef) {
        let Some(n) = self.server_mut(target) else { return };
        n.disk.set_faults(DiskFaults::default());
        if self.is_up(target) {
            self.crash(target);
        }
        self.restart(target);
    }

    /// The log dir of `broker` holding its replica of `topic/partition`.
    pub fn dir_of_replica(&self, broker: usize, topic: &str, partition: i32) -> Option<String> {
        let disk = &self.brokers[broker].disk;
        self.log_dirs.iter().find(|d| disk.exists(&format!("{d}/{topic}-{partition}"))).cloned()
    }

    pub fn is_up(&self, target: NodeRef) -> bool {
        match target {
            NodeRef::Broker(i) => self.brokers[i].up,
            NodeRef::Controller(i) => self.controllers[i].up,
            NodeRef::Producer(i) => self.producers[i].up,
            NodeRef::Consumer(i) => self.consumers[i].up,
        }
    }
}

/// Which kind of client a client node runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRole {
    Producer,
    /// A consumer, with the scenario target that names it (`consumer:N`
    /// or `consumer:GROUP/N`).
    Consumer(Target),
}

/// A node by role and index (broker index = broker id; producer and
/// consumer indexes count the scenario's processes of that kind from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeRef {
    Broker(usize),
    Controller(usize),
    Producer(usize),
    /// A consumer (assign mode or group member), by creation order.
    Consumer(usize),
}

impl NodeRef {
    /// A broker or controller (has a disk, serves the cluster).
    pub fn is_server(self) -> bool {
        matches!(self, NodeRef::Broker(_) | NodeRef::Controller(_))
    }
}

impl std::fmt::Display for NodeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeRef::Broker(i) => write!(f, "broker-{i}"),
            NodeRef::Controller(i) => write!(f, "controller-{i}"),
            NodeRef::Producer(i) => write!(f, "producer-{i}"),
            NodeRef::Consumer(i) => write!(f, "consumer-{i}"),
        }
    }
}
