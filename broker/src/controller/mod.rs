//! The metadata controller.
//!
//! Brokers register and heartbeat; the controller fences brokers whose
//! session expires, elects partition leaders from the ISR, applies ISR
//! changes asked for by leaders (AlterPartition) and creates topics. Every
//! decision is persisted (an atomically replaced image file on the node's
//! disk) before it is answered, so a controller restart forgets nothing.
//!
//! The walking skeleton runs one controller; the Raft quorum that survives
//! losing a member is a later issue and will replace `persist`/`load` with a
//! replicated metadata log behind the same state machine.

pub mod image;
pub mod rpc;
pub mod state;

use crate::config::{defaults, Settings};
use crate::protocol::{read_frame, write_frame};
use crate::storage::Storage;
use image::MetadataImage;
use rpc::{ControllerRequest, ControllerResponse};
use state::ControllerState;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the controller keeps its image on its disk.
pub const IMAGE_PATH: &str = "/controller/metadata.json";
pub const IMAGE_DIR: &str = "/controller";
/// How often sessions are checked.
pub const TICK_MS: u64 = 250;

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub listen: SocketAddr,
    /// Broker-level defaults (`broker.session.timeout.ms`,
    /// `unclean.leader.election.enable`, …).
    pub settings: Settings,
}

struct Shared {
    state: Mutex<ControllerState>,
    storage: Arc<dyn Storage>,
    start: tokio::time::Instant,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Persists the image if it changed since `before`.
    fn persist_if_changed(&self, state: &ControllerState, before: u64) -> anyhow::Result<()> {
        if state.image.version != before {
            let bytes = serde_json::to_vec(&state.image)?;
            self.storage.write_atomic(IMAGE_PATH, &bytes)?;
        }
        Ok(())
    }

    fn handle(&self, req: ControllerRequest) -> anyhow::Result<ControllerResponse> {
        let now_ms = self.now_ms();
        let mut st = self.state.lock().unwrap();
        let before = st.image.version;
        let resp = match req {
            ControllerRequest::Heartbeat { broker_id, incarnation, host, port, known_version, offline_replicas } => {
                let mut events = st.heartbeat(broker_id, incarnation, &host, port, now_ms);
                events.extend(st.replicas_offline(broker_id, incarnation, &offline_replicas));
                for ev in events {
                    tracing::info!(target: "controller", ?ev);
                }
                let image = (st.image.version != known_version).then(|| st.image.clone());
                ControllerResponse::Heartbeat { image, fenced: st.image.is_fenced(broker_id) }
            }
            ControllerRequest::AlterPartition { broker_id, topic, partition, leader_epoch, partition_epoch, new_isr } => {
                let result = st.alter_partition(broker_id, &topic, partition, leader_epoch, partition_epoch, new_isr);
                if let Ok(ps) = &result {
                    tracing::info!(target: "controller", %topic, partition, isr = ?ps.isr, "ISR changed");
                }
                ControllerResponse::AlterPartition { result }
            }
            ControllerRequest::CreateTopic { name, partitions, replication_factor, configs } => {
                let result = st.create_topic(&name, partitions, replication_factor, configs);
                ControllerResponse::CreateTopic { result }
            }
        };
        self.persist_if_changed(&st, before)?;
        Ok(resp)
    }
}

/// Runs a controller process until it is killed.
pub async fn run_controller(storage: Arc<dyn Storage>, config: ControllerConfig) -> anyhow::Result<()> {
    let session_timeout_ms = config
        .settings
        .u64_or("broker.session.timeout.ms", defaults::BROKER_SESSION_TIMEOUT_MS);
    storage.create_dir_all(IMAGE_DIR)?;
    let state = if storage.exists(IMAGE_PATH) {
        let image: MetadataImage = serde_json::from_slice(&storage.read_all(IMAGE_PATH)?)?;
        ControllerState::restore(image, config.settings.clone(), session_timeout_ms, 0)
    } else {
        ControllerState::new(config.settings.clone(), session_timeout_ms)
    };
    let shared = Arc::new(Shared { state: Mutex::new(state), storage, start: tokio::time::Instant::now() });
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let ticker = {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(TICK_MS)).await;
                let now_ms = shared.now_ms();
                let mut st = shared.state.lock().unwrap();
                let before = st.image.version;
                for ev in st.tick(now_ms) {
                    tracing::info!(target: "controller", ?ev);
                }
                if let Err(e) = shared.persist_if_changed(&st, before) {
                    tracing::error!(target: "controller", "persist failed: {e}");
                }
            }
        })
    };
    let result = loop {
        let (mut stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => break Err(e.into()),
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            while let Ok(Some(frame)) = read_frame(&mut stream).await {
                let Ok(req) = serde_json::from_slice::<ControllerRequest>(&frame) else {
                    return; // malformed: close the connection
                };
                let Ok(resp) = shared.handle(req) else { return };
                let Ok(bytes) = serde_json::to_vec(&resp) else { return };
                if write_frame(&mut stream, &bytes).await.is_err() {
                    return;
                }
            }
        });
    };
    ticker.abort();
    result
}
