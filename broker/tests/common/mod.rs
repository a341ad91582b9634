//! Starting simulated controller and broker nodes for integration tests.
#![allow(dead_code)]

use ksim_broker::config::Settings;
use ksim_broker::controller::{run_controller, ControllerConfig};
use ksim_broker::server::{run_broker, BrokerConfig};
use ksim_broker::storage::{SimDisk, Storage};
use std::net::SocketAddr;
use std::sync::Arc;

/// Starts a controller node listening on `addr`, on its own SimDisk.
pub fn start_controller(addr: SocketAddr) -> madsim::runtime::NodeHandle {
    let disk = SimDisk::new(5000);
    madsim::runtime::Handle::current()
        .create_node()
        .name("controller")
        .ip(addr.ip())
        .init(move || {
            let s: Arc<dyn Storage> = Arc::new(disk.clone());
            async move { run_controller(s, ControllerConfig { listen: addr, settings: Settings::new() }).await.unwrap() }
        })
        .build()
}

/// Starts broker `id` listening (and advertised) on `addr`, on its own SimDisk.
pub fn start_broker(id: i32, addr: SocketAddr, controller: SocketAddr) -> madsim::runtime::NodeHandle {
    let disk = SimDisk::new(5000);
    madsim::runtime::Handle::current()
        .create_node()
        .name(format!("broker-{id}"))
        .ip(addr.ip())
        .init(move || {
            let s: Arc<dyn Storage> = Arc::new(disk.clone());
            let config = BrokerConfig {
                id,
                listen: addr,
                advertised_host: addr.ip().to_string(),
                advertised_port: addr.port(),
                controllers: vec![controller],
                log_dirs: vec!["/data0".into()],
                settings: Settings::new(),
                observer: None,
            };
            async move { run_broker(s, config, 1).await.unwrap() }
        })
        .build()
}

/// A node to run client code on.
pub fn client_node(ip: &str) -> madsim::runtime::NodeHandle {
    madsim::runtime::Handle::current().create_node().name("client").ip(ip.parse().unwrap()).build()
}
