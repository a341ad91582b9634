//! Controller heartbeats, applying the metadata image, and ISR upkeep.

use super::{fetcher, BrokerShared, TopicPartition};
use crate::controller::image::MetadataImage;
use crate::controller::rpc::{call, ControllerRequest, ControllerResponse};
use crate::replica::Role;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Bound on one controller round trip.
pub const CONTROLLER_RPC_TIMEOUT_MS: u64 = 3_000;
/// How often leaders check their ISR (shrink and expand).
pub const ISR_CHECK_INTERVAL_MS: u64 = 250;

/// Bound on controllers tried for one request (hints followed included).
pub const CONTROLLER_CALL_ATTEMPTS_PER_CONTROLLER: usize = 3;
/// Pause after a controller that knows no active controller (an election
/// is under way).
pub const CONTROLLER_NO_LEADER_BACKOFF_MS: u64 = 100;

/// Sends one request to the active controller: starts with the last one
/// that answered, follows NOT_CONTROLLER hints, else tries the others in
/// turn; a bounded number of attempts.
pub async fn controller_call(shared: &BrokerShared, req: &ControllerRequest) -> anyhow::Result<ControllerResponse> {
    use std::sync::atomic::Ordering;
    let addrs = &shared.config.controllers;
    if addrs.is_empty() {
        anyhow::bail!("no controllers configured");
    }
    let mut i = shared.controller_hint.load(Ordering::Relaxed) % addrs.len();
    let mut last_err = anyhow::anyhow!("no controller answered");
    for _ in 0..CONTROLLER_CALL_ATTEMPTS_PER_CONTROLLER * addrs.len() {
        match call(addrs[i], req, Duration::from_millis(CONTROLLER_RPC_TIMEOUT_MS)).await {
            Ok(ControllerResponse::NotController { leader }) => {
                last_err = anyhow::anyhow!("controller {} is not the active controller", addrs[i]);
                match leader.and_then(|a| addrs.iter().position(|&x| x == a)) {
                    Some(j) if j != i => i = j,
                    _ => {
                        i = (i + 1) % addrs.len();
                        tokio::time::sleep(Duration::from_millis(CONTROLLER_NO_LEADER_BACKOFF_MS)).await;
                    }
                }
            }
            Ok(resp) => {
                shared.controller_hint.store(i, Ordering::Relaxed);
                return Ok(resp);
            }
            Err(e) => {
                last_err = e;
                i = (i + 1) % addrs.len();
            }
        }
    }
    Err(last_err)
}

/// One heartbeat now; applies any newer image.
pub async fn heartbeat_once(shared: &Arc<BrokerShared>, hw_checkpoints: &BTreeMap<TopicPartition, i64>) -> anyhow::Result<()> {
    super::buggify::maybe_delay(super::buggify::LATE_HEARTBEAT).await;
    let known_version = shared.image.lock().unwrap().version;
    let offline_replicas: Vec<TopicPartition> = shared.dirs.lock().unwrap().offline_replicas.iter().cloned().collect();
    let req = ControllerRequest::Heartbeat {
        broker_id: shared.config.id,
        incarnation: shared.incarnation,
        host: shared.config.advertised_host.clone(),
        port: shared.config.advertised_port,
        known_version,
        offline_replicas,
    };
    if let ControllerResponse::Heartbeat { image: Some(image), .. } = controller_call(shared, &req).await? {
        apply_image(shared, image, hw_checkpoints);
    }
    Ok(())
}

pub async fn heartbeat_loop(shared: Arc<BrokerShared>, hw_checkpoints: BTreeMap<TopicPartition, i64>) {
    let interval = Duration::from_millis(shared.config.heartbeat_interval_ms());
    loop {
        if let Err(e) = heartbeat_once(&shared, &hw_checkpoints).await {
            tracing::debug!(broker = shared.config.id, "heartbeat failed: {e}");
        }
        // A failed log dir is reported at once, not at the next interval.
        tokio::select! {
            biased;
            () = tokio::time::sleep(interval) => {}
            () = shared.dirs_changed.notified() => {}
        }
    }
}

/// Mirrors the controller's image: opens new local replicas, changes roles,
/// starts fetchers for the leaders we now follow.
pub fn apply_image(shared: &Arc<BrokerShared>, image: MetadataImage, hw_checkpoints: &BTreeMap<TopicPartition, i64>) {
    {
        let mut mine = shared.image.lock().unwrap();
        if image.version <= mine.version {
            return;
        }
        *mine = image.clone();
    }
    let me = shared.config.id;
    let now_ms = shared.now_ms();
    let mut leaders_followed = Vec::new();
    for (name, topic) in &image.topics {
        for ps in &topic.partitions {
            if !ps.replicas.contains(&me) {
                continue;
            }
            let key = (name.clone(), ps.partition);
            if shared.is_offline(&key) {
                continue; // its log dir failed: offline until restart
            }
            let exists = shared.partitions.lock().unwrap().contains_key(&key);
            if !exists {
                let hw = hw_checkpoints.get(&key).copied().unwrap_or(0);
                match shared.open_partition(name, ps.partition, hw) {
                    Ok(p) => {
                        shared.partitions.lock().unwrap().insert(key.clone(), p);
                    }
                    Err(e) => {
                        tracing::error!(broker = me, "cannot open {name}/{}: {e}", ps.partition);
                        continue;
                    }
                }
            }
            let mut parts = shared.partitions.lock().unwrap();
            let Some(p) = parts.get_mut(&key) else { continue }; // its dir failed meanwhile
            // Topic config changes (IncrementalAlterConfigs) reach the live log.
            let settings = crate::config::TopicSettings::resolve(&shared.config.settings, &topic.configs);
            if settings != p.settings {
                tracing::info!(broker = me, topic = %name, partition = ps.partition, "topic config changed");
                p.log.set_config(shared.log_config(&settings));
                p.settings = settings;
            }
            if p.apply_state(ps.clone(), now_ms) {
                tracing::info!(broker = me, topic = %name, partition = ps.partition, role = ?p.role, epoch = ps.leader_epoch, "role change");
            }
            if let Role::Follower { leader } = p.role {
                leaders_followed.push(leader);
            }
            shared.handle_storage_failures(&mut parts);
        }
    }
    for leader in leaders_followed {
        let mut fetchers = shared.fetchers.lock().unwrap();
        if fetchers.insert(leader) {
            tokio::spawn(fetcher::fetcher_loop(shared.clone(), leader));
        }
    }
    shared.progress.notify_waiters();
}

/// Leaders ask the controller to shrink or expand their ISR.
pub async fn isr_loop(shared: Arc<BrokerShared>) {
    let lag_ms = shared.config.replica_lag_time_max_ms();
    loop {
        tokio::time::sleep(Duration::from_millis(ISR_CHECK_INTERVAL_MS)).await;
        let now_ms = shared.now_ms();
        let wanted: Vec<(TopicPartition, i32, i32, Vec<i32>)> = {
            let mut parts = shared.partitions.lock().unwrap();
            parts
                .iter_mut()
                .filter_map(|(k, p)| {
                    let isr = p.wanted_isr_change(lag_ms, now_ms)?;
                    p.pending_isr = Some(isr.clone());
                    Some((k.clone(), p.state.leader_epoch, p.state.partition_epoch, isr))
                })
                .collect()
        };
        for ((topic, partition), leader_epoch, partition_epoch, new_isr) in wanted {
            let req = ControllerRequest::AlterPartition {
                broker_id: shared.config.id,
                topic: topic.clone(),
                partition,
                leader_epoch,
                partition_epoch,
                new_isr: new_isr.clone(),
            };
            super::buggify::maybe_delay(super::buggify::LATE_ALTER_PARTITION).await;
            let result = controller_call(&shared, &req).await;
            let mut parts = shared.partitions.lock().unwrap();
            let Some(p) = parts.get_mut(&(topic.clone(), partition)) else { continue };
            match result {
                Ok(ControllerResponse::AlterPartition { result: Ok(state) }) => {
                    tracing::info!(broker = shared.config.id, %topic, partition, isr = ?state.isr, "ISR changed");
                    p.pending_isr = None;
                    p.apply_state(state, now_ms);
                }
                Ok(other) => {
                    tracing::info!(broker = shared.config.id, %topic, partition, ?other, "AlterPartition refused");
                    p.pending_isr = None;
                }
                Err(e) => {
                    tracing::debug!(broker = shared.config.id, "AlterPartition failed: {e}");
                    p.pending_isr = None;
                }
            }
            drop(parts);
            shared.progress.notify_waiters();
        }
    }
}
