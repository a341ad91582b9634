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
use ksim_broker::server::{run_broker, BrokerConfig};
use ksim_broker::storage::{DiskFaults, SimDisk, Storage};
use madsim::runtime::{Handle, NodeHandle};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
}

pub struct Cluster {
    pub handle: Handle,
    pub controllers: Vec<ServerNode>,
    /// Broker i has Kafka broker id i (`broker:N` targets id N).
    pub brokers: Vec<ServerNode>,
    /// Every broker's `log.dirs` (`/data0` … `/dataN-1`).
    pub log_dirs: Vec<String>,
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
                ServerNode { name, node, disk, addr, up: true, raft_status: Some(status) }
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
                let node = start_server(&handle, &name, addr, &disk, move |storage| {
                    let config = config.clone();
                    // A fresh incarnation per process start, from the seeded rng.
                    let incarnation: u64 = madsim::rand::random();
                    async move {
                        if let Err(e) = run_broker(storage, config, incarnation).await {
                            tracing::error!("broker stopped: {e}");
                        }
                    }
                });
                ServerNode { name, node, disk, addr, up: true, raft_status: None }
            })
            .collect();
        Cluster { handle, controllers, brokers, log_dirs }
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

    fn node_mut(&mut self, target: NodeRef) -> &mut ServerNode {
        match target {
            NodeRef::Broker(i) => &mut self.brokers[i],
            NodeRef::Controller(i) => &mut self.controllers[i],
        }
    }

    /// kill -9: the process dies; the OS page cache survives.
    pub fn crash(&mut self, target: NodeRef) {
        let handle = self.handle.clone();
        let n = self.node_mut(target);
        n.disk.crash();
        handle.kill(n.node.id());
        n.up = false;
    }

    /// Power loss: unsynced page cache is lost (the last write may tear).
    pub fn power_loss<R: rand::Rng>(&mut self, target: NodeRef, rng: &mut R) {
        let handle = self.handle.clone();
        let n = self.node_mut(target);
        let tear = rng.random_bool(0.5);
        n.disk.power_loss(rng, tear);
        handle.kill(n.node.id());
        n.up = false;
    }

    /// Starts a stopped node again (kill first: madsim's restart alone would
    /// leave old sockets bound).
    pub fn restart(&mut self, target: NodeRef) {
        let handle = self.handle.clone();
        let n = self.node_mut(target);
        if n.up {
            return;
        }
        handle.kill(n.node.id());
        handle.restart(n.node.id());
        n.up = true;
    }

    /// Switches disk faults on for a node (its process sees them at once).
    pub fn break_disk(&mut self, target: NodeRef, f: impl FnOnce(&mut DiskFaults)) {
        self.node_mut(target).disk.update_faults(f);
    }

    /// The disk is repaired (faults off, data as it was) and the node's
    /// process restarted: Kafka brings a failed log dir back only on
    /// restart, and a broker whose every dir failed has halted.
    pub fn repair_disk(&mut self, target: NodeRef) {
        self.node_mut(target).disk.set_faults(DiskFaults::default());
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
        }
    }
}

/// A server node by role and index (broker index = broker id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeRef {
    Broker(usize),
    Controller(usize),
}

impl std::fmt::Display for NodeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeRef::Broker(i) => write!(f, "broker-{i}"),
            NodeRef::Controller(i) => write!(f, "controller-{i}"),
        }
    }
}
