//! The controller quorum in a simulated cluster (3 controllers, 3 brokers):
//! the active controller fails over, and a partitioned one cannot decide.
#![cfg(madsim)]

mod common;

use ksim_broker::client::{Admin, AdminConfig};
use ksim_broker::config::Settings;
use ksim_broker::controller::image::{MetadataImage, NO_LEADER};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

const BROKERS: usize = 3;
const CONTROLLERS: usize = 3;
use common::{wait_until, TestCluster, POLL_MS};

fn start_cluster() -> TestCluster {
    common::start_cluster(CONTROLLERS, BROKERS, Settings::new(), Settings::new())
}

async fn create_topic(bootstrap: &[SocketAddr], name: &str) {
    let admin = Admin::new(bootstrap.to_vec(), AdminConfig::from_map(&BTreeMap::new()).unwrap());
    let mut tries = 0;
    while let Err(e) = admin.create_topic(name, 3, 3, BTreeMap::new()).await {
        tries += 1;
        assert!(tries < 60, "create_topic {name} kept failing: {e}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    admin.wait_for_leaders(name, 3, Duration::from_secs(30)).await.expect("leaders");
}

// KIP-595 (KRaft): losing the active controller elects another; brokers keep
// their sessions, leadership still moves, topics can still be created, and
// the old controller catches up after restarting.
#[madsim::test]
async fn active_controller_failover_keeps_the_cluster_running() {
    let cluster = start_cluster();
    let client = &cluster.client;
    let handle = madsim::runtime::Handle::current();
    let mut up = vec![true; CONTROLLERS];
    let bootstrap = cluster.bootstrap.clone();
    client.spawn(async move { create_topic(&bootstrap, "t").await }).await.unwrap();
    let (old, old_term) = cluster.active_controller(&up).expect("an active controller");

    handle.kill(cluster.controllers[old].node.id());
    up[old] = false;
    wait_until("a new active controller", || cluster.active_controller(&up).is_some_and(|(_, t)| t > old_term)).await;
    let (new, _) = cluster.active_controller(&up).unwrap();
    assert_ne!(new, old);

    // Longer than the session timeout (9 s): nobody is fenced.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let img = cluster.image(new);
    assert_eq!(img.brokers.len(), BROKERS);
    assert!(img.brokers.values().all(|b| !b.fenced), "brokers kept heartbeating: {:?}", img.brokers);
    assert_eq!(cluster.active_controller(&up).map(|(i, _)| i), Some(new), "no needless re-election");

    // A broker crash still moves partition leadership.
    let led_by_0 = |img: &MetadataImage| {
        img.topics["t"].partitions.iter().filter(|p| p.leader == 0).count()
    };
    assert!(led_by_0(&cluster.image(new)) > 0, "broker 0 leads something before its crash");
    handle.kill(cluster.brokers[0].node.id());
    wait_until("broker 0 fenced and replaced", || {
        let img = cluster.image(new);
        img.is_fenced(0) && led_by_0(&img) == 0 && img.topics["t"].partitions.iter().all(|p| p.leader != NO_LEADER)
    })
    .await;

    // Topic creation works after the failover (RF 3 with broker 0 fenced:
    // it is a replica, the others lead).
    let bootstrap: Vec<SocketAddr> = cluster.bootstrap[1..].to_vec();
    client.spawn(async move { create_topic(&bootstrap, "u").await }).await.unwrap();
    assert!(cluster.image(new).topics.contains_key("u"));

    // The old controller restarts and catches up.
    handle.kill(cluster.controllers[old].node.id());
    handle.restart(cluster.controllers[old].node.id());
    up[old] = true;
    wait_until("the restarted controller to catch up", || cluster.image(old).version == cluster.image(new).version).await;
    assert_eq!(cluster.image(old), cluster.image(new));
    assert!(cluster.image(old).topics.contains_key("u"));
}

// Raft §5.4 / KIP-595: a controller cut off from the quorum (the active one)
// makes no decisions; the majority elects another and carries on.
#[madsim::test]
async fn partitioned_controller_cannot_decide() {
    let cluster = start_cluster();
    let client = &cluster.client;
    let up = vec![true; CONTROLLERS];
    let bootstrap = cluster.bootstrap.clone();
    client.spawn(async move { create_topic(&bootstrap, "t").await }).await.unwrap();
    let (old, old_term) = cluster.active_controller(&up).expect("an active controller");
    let frozen = cluster.image(old);

    let net = madsim::net::NetSim::current();
    net.clog_node(cluster.controllers[old].node.id());
    // Brokers cannot reach it either: its sessions all expire (9 s), yet it
    // cannot commit a single fence.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let st = *cluster.controllers[old].status.lock().unwrap();
    assert!(!st.leader, "check-quorum: the cut-off controller stepped down");
    assert_eq!(cluster.image(old), frozen, "the minority decided nothing");
    let (new, new_term) = cluster.active_controller(&up).expect("the majority elected a controller");
    assert_ne!(new, old);
    assert!(new_term > old_term);
    assert!(cluster.image(new).brokers.values().all(|b| !b.fenced), "brokers heartbeat to the new controller");

    let bootstrap = cluster.bootstrap.clone();
    client.spawn(async move { create_topic(&bootstrap, "u").await }).await.unwrap();
    assert!(!cluster.image(old).topics.contains_key("u"));

    net.unclog_node(cluster.controllers[old].node.id());
    wait_until("the healed controller to catch up", || cluster.image(old).version == cluster.image(new).version).await;
    assert!(cluster.image(old).topics.contains_key("u"));
}

/// Crashes the preferred leader of t/0, restarts it once another replica
/// leads, and returns whether it leads again within `wait_ms` of rejoining
/// the ISR.
async fn preferred_leader_returns(settings: Settings, wait_ms: u64) -> bool {
    let cluster = common::start_cluster(CONTROLLERS, BROKERS, settings.clone(), settings);
    let client = &cluster.client;
    let handle = madsim::runtime::Handle::current();
    let up = vec![true; CONTROLLERS];
    let bootstrap = cluster.bootstrap.clone();
    client.spawn(async move { create_topic(&bootstrap, "t").await }).await.unwrap();
    let (active, _) = cluster.active_controller(&up).expect("an active controller");
    let p0 = |c: &TestCluster| c.image(active).topics["t"].partitions[0].clone();
    let preferred = p0(&cluster).replicas[0];
    assert_eq!(p0(&cluster).leader, preferred);

    handle.kill(cluster.brokers[preferred as usize].node.id());
    wait_until("failover away from the preferred replica", || {
        let p = p0(&cluster);
        p.leader != preferred && p.leader != NO_LEADER
    })
    .await;
    handle.restart(cluster.brokers[preferred as usize].node.id());
    wait_until("the preferred replica back in the ISR", || p0(&cluster).isr.contains(&preferred)).await;
    let mut waited = 0;
    while waited < wait_ms {
        if p0(&cluster).leader == preferred {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        waited += POLL_MS;
    }
    false
}

// auto.leader.rebalance.enable (default true): once the preferred replica
// (the first assigned) is back in the ISR, the active controller moves
// leadership back to it at the next imbalance check.
#[madsim::test]
async fn auto_leader_rebalance_moves_leadership_back_to_the_preferred_replica() {
    let settings = Settings::from_pairs([("leader.imbalance.check.interval.seconds", "2")]);
    assert!(preferred_leader_returns(settings, 10_000).await);
}

#[madsim::test]
async fn without_auto_leader_rebalance_leadership_stays_where_failover_put_it() {
    let settings = Settings::from_pairs([
        ("leader.imbalance.check.interval.seconds", "2"),
        ("auto.leader.rebalance.enable", "false"),
    ]);
    assert!(!preferred_leader_returns(settings, 10_000).await);
}
