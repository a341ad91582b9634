//! Starting simulated controller and broker nodes for integration tests.
#![allow(dead_code)]

use ksim_broker::config::Settings;
use ksim_broker::controller::{run_controller, ControllerConfig, RaftStatus};
use ksim_broker::controller::image::MetadataImage;
use ksim_broker::controller::IMAGE_PATH;
use ksim_broker::server::{run_broker_until, BrokerConfig, ShutdownSignal};
use ksim_broker::storage::{SimDisk, Storage};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Starts a controller node listening on `addr`, on its own SimDisk.
pub fn start_controller(addr: SocketAddr) -> madsim::runtime::NodeHandle {
    let disk = SimDisk::new(5000);
    madsim::runtime::Handle::current()
        .create_node()
        .name("controller")
        .ip(addr.ip())
        .init(move || {
            let s: Arc<dyn Storage> = Arc::new(disk.clone());
            async move { run_controller(s, ControllerConfig::single(addr, Settings::new())).await.unwrap() }
        })
        .build()
}

/// Starts broker `id` listening (and advertised) on `addr`, on its own SimDisk.
pub fn start_broker(id: i32, addr: SocketAddr, controller: SocketAddr) -> madsim::runtime::NodeHandle {
    start_broker_in_quorum(id, addr, vec![controller], Settings::new())
}

/// `start_broker` with broker settings (Kafka names).
pub fn start_broker_with(id: i32, addr: SocketAddr, controller: SocketAddr, settings: Settings) -> madsim::runtime::NodeHandle {
    start_broker_in_quorum(id, addr, vec![controller], settings)
}

/// Starts broker `id` that knows every controller of a quorum.
pub fn start_broker_in_quorum(
    id: i32,
    addr: SocketAddr,
    controllers: Vec<SocketAddr>,
    settings: Settings,
) -> madsim::runtime::NodeHandle {
    start_broker_on_disk(id, addr, controllers, settings, SimDisk::new(5000))
}

/// `start_broker_in_quorum` on a disk the test keeps (to crash it or to
/// look at and damage the broker's files between restarts).
pub fn start_broker_on_disk(
    id: i32,
    addr: SocketAddr,
    controllers: Vec<SocketAddr>,
    settings: Settings,
    disk: SimDisk,
) -> madsim::runtime::NodeHandle {
    start_broker_node(id, addr, controllers, settings, disk).node
}

/// A broker node with its disk and the graceful-shutdown signal of its
/// current process.
pub struct BrokerNode {
    pub node: madsim::runtime::NodeHandle,
    pub disk: SimDisk,
    /// Replaced by every process start.
    shutdown: Arc<Mutex<Arc<ShutdownSignal>>>,
}

impl BrokerNode {
    /// kill -9: the disk keeps its page cache (written back as usual).
    pub fn crash(&self) {
        self.disk.crash();
        madsim::runtime::Handle::current().kill(self.node.id());
    }

    /// Starts the process again (after a crash or a graceful shutdown).
    pub fn start(&self) {
        let handle = madsim::runtime::Handle::current();
        handle.kill(self.node.id());
        handle.restart(self.node.id());
    }

    /// Crash, then start again.
    pub fn restart(&self) {
        self.crash();
        self.start();
    }

    /// Asks the running process to shut down gracefully and waits until
    /// its logs are closed.
    pub async fn shutdown(&self) {
        let signal = self.shutdown.lock().unwrap().clone();
        signal.request();
        signal.finished().await;
    }
}

/// Starts broker `id` on `disk`, able to shut down gracefully.
pub fn start_broker_node(id: i32, addr: SocketAddr, controllers: Vec<SocketAddr>, settings: Settings, disk: SimDisk) -> BrokerNode {
    let shutdown = Arc::new(Mutex::new(Arc::new(ShutdownSignal::new())));
    let slot = shutdown.clone();
    let d = disk.clone();
    let node = madsim::runtime::Handle::current()
        .create_node()
        .name(format!("broker-{id}"))
        .ip(addr.ip())
        .init(move || {
            let s: Arc<dyn Storage> = Arc::new(d.clone());
            let config = BrokerConfig {
                id,
                listen: addr,
                advertised_host: addr.ip().to_string(),
                advertised_port: addr.port(),
                controllers: controllers.clone(),
                log_dirs: vec!["/data0".into()],
                settings: settings.clone(),
                observer: None,
            };
            let signal = Arc::new(ShutdownSignal::new());
            *slot.lock().unwrap() = signal.clone();
            async move { run_broker_until(s, config, 1, signal).await.unwrap() }
        })
        .build();
    BrokerNode { node, disk, shutdown }
}

/// A controller quorum, brokers on disks the test keeps, and a client node.
pub struct TestCluster {
    pub controllers: Vec<ControllerNode>,
    pub brokers: Vec<BrokerNode>,
    pub bootstrap: Vec<SocketAddr>,
    pub client: madsim::runtime::NodeHandle,
}

/// `controllers` controllers (with `controller_settings`) and `brokers`
/// brokers (with `broker_settings`) at [`controller_addr`] and
/// [`broker_addr`], and a client node at 10.0.3.1.
pub fn start_cluster(controllers: usize, brokers: usize, controller_settings: Settings, broker_settings: Settings) -> TestCluster {
    let voters: Vec<SocketAddr> = (0..controllers).map(controller_addr).collect();
    let controllers = start_controllers(&voters, controller_settings);
    let brokers = (0..brokers)
        .map(|i| start_broker_node(i as i32, broker_addr(i), voters.clone(), broker_settings.clone(), SimDisk::new(5000)))
        .collect::<Vec<_>>();
    let bootstrap = (0..brokers.len()).map(broker_addr).collect();
    TestCluster { controllers, brokers, bootstrap, client: client_node("10.0.3.1") }
}

impl TestCluster {
    /// The running (`up`) controller that leads the highest term.
    pub fn active_controller(&self, up: &[bool]) -> Option<(usize, u64)> {
        active_controller(&self.controllers, up)
    }

    /// Controller `i`'s committed metadata image (empty before any).
    pub fn image(&self, i: usize) -> MetadataImage {
        match self.controllers[i].disk.read_all(IMAGE_PATH) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap(),
            Err(_) => MetadataImage::default(),
        }
    }
}

/// One member of a controller quorum, with what a test observes of it.
pub struct ControllerNode {
    pub node: madsim::runtime::NodeHandle,
    pub disk: SimDisk,
    pub status: Arc<Mutex<RaftStatus>>,
}

/// Starts a controller quorum, one node per address (index = Raft id).
pub fn start_controllers(voters: &[SocketAddr], settings: Settings) -> Vec<ControllerNode> {
    (0..voters.len())
        .map(|id| {
            let disk = SimDisk::new(5000);
            let status = Arc::new(Mutex::new(RaftStatus::default()));
            let config = ControllerConfig {
                id,
                listen: voters[id],
                voters: voters.to_vec(),
                settings: settings.clone(),
                status: status.clone(),
            };
            let d = disk.clone();
            let node = madsim::runtime::Handle::current()
                .create_node()
                .name(format!("controller-{id}"))
                .ip(voters[id].ip())
                .init(move || {
                    let s: Arc<dyn Storage> = Arc::new(d.clone());
                    let config = config.clone();
                    async move { run_controller(s, config).await.unwrap() }
                })
                .build();
            ControllerNode { node, disk, status }
        })
        .collect()
}

/// A node to run client code on.
pub fn client_node(ip: &str) -> madsim::runtime::NodeHandle {
    madsim::runtime::Handle::current().create_node().name("client").ip(ip.parse().unwrap()).build()
}

/// Bound on `wait_until` (simulated ms).
pub const WAIT_MAX_MS: u64 = 30_000;
/// How often `wait_until` looks.
pub const POLL_MS: u64 = 100;

/// Broker `i`'s address in multi-node tests.
pub fn broker_addr(i: usize) -> SocketAddr {
    format!("10.0.1.{}:9092", i + 1).parse().unwrap()
}

/// Controller `i`'s address in quorum tests.
pub fn controller_addr(i: usize) -> SocketAddr {
    format!("10.0.2.{}:9093", i + 1).parse().unwrap()
}

/// Waits (simulated time) until `cond` holds; panics after `WAIT_MAX_MS`.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let mut waited = 0;
    while !cond() {
        assert!(waited < WAIT_MAX_MS, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(POLL_MS)).await;
        waited += POLL_MS;
    }
}

/// The running (`up`) controller that reports leading the highest term:
/// (index, term).
pub fn active_controller(controllers: &[ControllerNode], up: &[bool]) -> Option<(usize, u64)> {
    (0..controllers.len())
        .filter(|&i| up[i])
        .filter_map(|i| {
            let st = *controllers[i].status.lock().unwrap();
            st.leader.then_some((st.term, i))
        })
        .max()
        .map(|(t, i)| (i, t))
}
